//! The HTTP crate's integration tests: the router with real services on a temporary SQLite
//! store, driven in process.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failed expectation is a failed test"
)]

mod field_errors;
mod fuzz;
mod openapi;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use portcullis_core::{Core, CoreOptions, Settings};
use portcullis_crypto::envelope::MasterKey;
use portcullis_domain::{Stores, SystemClock};

/// Portcullis's services with `settings` over a new SQLite store in `dir`, keys sealed with a
/// master key named `key_id`, on the system clock; and the store's bootstrap admin key.
async fn core_on_sqlite(
    dir: &std::path::Path,
    settings: Settings,
    key_id: &str,
) -> (Arc<Core>, String) {
    let store = portcullis_store_sqlite::SqliteStore::open(&dir.join("p.db")).unwrap();
    let feed = Arc::new(store.change_feed());
    let core = Core::start(
        Stores::from_backend(Arc::new(store), feed),
        CoreOptions {
            settings,
            master_keys: vec![MasterKey::generate(key_id).unwrap()],
            config_issuers: Vec::new(),
            clock: Arc::new(SystemClock),
        },
    )
    .await
    .unwrap();
    let admin = core
        .bootstrap_admin_key(None)
        .await
        .unwrap()
        .expect("a fresh store gets a bootstrap key")
        .expose()
        .to_owned();
    (core, admin)
}

/// [`Settings`] without rate limits: a test sends as many requests as it likes.
fn unlimited() -> Settings {
    Settings {
        rate_limit_per_address: None,
        rate_limit_per_subject: None,
        ..Settings::default()
    }
}

/// Sends `req` through `router` in process: the answer's status, headers and whole body.
async fn send(router: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
    let resp = router.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes)
}
