//! Portcullis's HTTP surface. [`router`] builds the whole API on an [`AppState`]; handlers are
//! short: an extractor authenticates, then one service call and a DTO.
//!
//! - `/v1/outbound/...`: the token endpoint MCP servers call with the user's inbound token, the
//!   connect flow and the provider callback;
//! - `/oauth2/token`: RFC 8693 token exchange for confidential clients;
//! - `/v1/mgmt/...`: the management API (admin keys);
//! - `/console`: the admin console (a static page calling the management API with a session
//!   cookie);
//! - `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.

mod account;
mod auth;
mod authorize;
mod connect;
mod console;
mod error;
mod mgmt;
mod oauth;
pub(crate) mod openapi;
mod ops;
mod outbound;
mod sso;
mod wellknown;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use portcullis_core::Core;
use tower_http::catch_panic::CatchPanicLayer;

pub use error::ApiError;
pub use openapi::openapi_document;

/// Renders the Prometheus exposition of the process's metrics.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The services.
    pub core: Arc<Core>,
    /// The metrics renderer (`/metrics` answers 404 without one).
    pub metrics: Option<MetricsRenderer>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// The largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The whole HTTP API.
pub fn router(state: AppState) -> Router {
    // The surfaces anyone can reach are rate-limited per client address.
    let limited = Router::new()
        .merge(outbound::routes())
        .merge(oauth::routes())
        .merge(authorize::routes())
        .merge(account::routes())
        .merge(sso::routes())
        .merge(connect::routes())
        .merge(wellknown::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), limit_address));
    Router::new()
        .merge(ops::routes())
        .merge(console::routes())
        .merge(limited)
        .nest("/v1/mgmt", mgmt::routes())
        .route_layer(middleware::from_fn(observe))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the server failed; the details are in its logs",
            )
            .into_response()
        }))
        .with_state(state)
}

/// Refuses a request whose client address is over its rate limit: 429 with `Retry-After`, in the
/// OAuth error shape on `/oauth2`, the API's elsewhere. The address is the connection's peer (a
/// deployment behind a proxy limits there, or per subject here).
async fn limit_address(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    let surface = if path.starts_with("/oauth2/") {
        "oauth"
    } else if path.ends_with("/connect") {
        "connect"
    } else if path.ends_with("/callback") {
        "callback"
    } else {
        "token"
    };
    match state.core.rate_limit_address(peer.ip(), surface) {
        Ok(()) => next.run(req).await,
        Err(wait) if surface == "oauth" => {
            let secs = portcullis_core::limits::retry_after_secs(wait);
            let mut e = oauth::ExchangeError::new(
                429,
                "rate_limited",
                format!("too many requests from this address; retry in {secs} s"),
            );
            e.extra.insert("retry_after".into(), secs.into());
            oauth::oauth_error(e)
        }
        Err(wait) => ApiError::rate_limited("address", wait).into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept this method",
    )
}

/// The id of a request: answered in `X-Request-Id`, logged, and recorded with the management
/// changes it makes.
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub(crate) String);

/// A new request id: `req_` and 96 bits (hex) of a keyed hash (SipHash, its key random per
/// process) of a counter. Unique in practice and unpredictable without the key, like random bytes,
/// but made without asking the system's generator on every request (which took ~2% of a warm
/// token request's CPU).
fn new_request_id() -> String {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static KEY: std::sync::LazyLock<std::collections::hash_map::RandomState> =
        std::sync::LazyLock::new(std::collections::hash_map::RandomState::new);
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let (a, b) = (KEY.hash_one((n, 0u8)), KEY.hash_one((n, 1u8)));
    format!("req_{a:016x}{:08x}", b as u32)
}

/// Records request metrics and a log line per request (never the headers or the body), and gives
/// the request its id.
async fn observe(mut req: Request, next: Next) -> Response {
    let request_id = new_request_id();
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let api = req.uri().path().starts_with("/v1/") || req.uri().path().starts_with("/oauth2/");
    let started = Instant::now();
    let mut resp = next.run(req).await;
    // Answers of the API may carry a secret or a capability (tokens, connect links, new keys,
    // client secrets): no cache keeps any of them.
    if api {
        resp.headers_mut().insert(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
    }
    if let Ok(v) = axum::http::HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let elapsed = started.elapsed();
    let status = resp.status().as_u16().to_string();
    metrics::counter!("portcullis_http_requests_total", "method" => method.to_string(), "route" => route.clone(), "status" => status.clone()).increment(1);
    metrics::histogram!("portcullis_http_request_duration_seconds", "method" => method.to_string(), "route" => route.clone()).record(elapsed.as_secs_f64());
    if elapsed > Duration::from_secs(1) || resp.status().is_server_error() {
        tracing::info!(%method, %route, %status, %request_id, elapsed_ms = elapsed.as_millis() as u64, "request");
    } else {
        tracing::debug!(%method, %route, %status, %request_id, elapsed_us = elapsed.as_micros() as u64, "request");
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::new_request_id;

    /// Request ids are `req_` and 24 hex digits, and no two are alike.
    #[test]
    fn request_ids_are_distinct() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(10) {
            let hex = id.strip_prefix("req_").unwrap_or_default();
            assert_eq!(hex.len(), 24, "{id}");
            assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        }
    }
}
