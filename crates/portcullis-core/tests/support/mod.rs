//! What the core tests share: services on a SQLite store in a temporary directory.

#![allow(
    dead_code,
    clippy::unwrap_used,
    reason = "test support: each test uses a part"
)]

use std::sync::Arc;

use portcullis_core::{Core, CoreOptions, Settings};
use portcullis_crypto::envelope::MasterKey;
use portcullis_domain::{LocalChangeFeed, Stores, SystemClock};
use portcullis_store_sqlite::SqliteStore;

/// A SQLite store at `dir/p.db`: the set of stores, the backend, and its change feed.
pub fn sqlite_stores(dir: &std::path::Path) -> (Stores, Arc<SqliteStore>, Arc<LocalChangeFeed>) {
    let store = Arc::new(SqliteStore::open(&dir.join("p.db")).unwrap());
    let feed = Arc::new(store.change_feed());
    (
        Stores::from_backend(store.clone(), feed.clone()),
        store,
        feed,
    )
}

/// The services on `stores`, with `settings` and a fresh master key.
pub async fn start(stores: Stores, settings: Settings) -> Arc<Core> {
    start_with_clock(stores, settings, Arc::new(SystemClock)).await
}

/// The same on the clock given (a [`portcullis_domain::ManualClock`] for time-dependent tests).
pub async fn start_with_clock(
    stores: Stores,
    settings: Settings,
    clock: Arc<dyn portcullis_domain::Clock>,
) -> Arc<Core> {
    Core::start(
        stores,
        CoreOptions {
            settings,
            master_keys: vec![MasterKey::generate("test").unwrap()],
            config_issuers: vec![],
            clock,
        },
    )
    .await
    .unwrap()
}
