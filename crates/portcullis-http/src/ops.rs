//! Operations: liveness, readiness, metrics, the OpenAPI document.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
}

/// Liveness: the process answers (no dependency is touched).
async fn healthz() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
        .into_response()
}

/// Readiness: the database answers and the change feed is live (a node whose feed is down would
/// serve from the database only, slower; it reports not ready so that a balancer can prefer
/// others).
async fn readyz(State(state): State<AppState>) -> Response {
    let db = state.core.stores.health.ping().await;
    let feed = state.core.stores.changes.is_live();
    let backend = state.core.stores.health.backend();
    match (db, feed) {
        (Ok(()), true) => (
            StatusCode::OK,
            axum::Json(json!({"status": "ready", "database": backend})),
        )
            .into_response(),
        (db, feed) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the server is not ready",
        )
        .with_details(json!({
            "database": if db.is_ok() { "ok" } else { "unavailable" },
            "changeFeed": if feed { "live" } else { "reconnecting" },
        }))
        .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(render) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            render(),
        )
            .into_response(),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "metrics are not enabled",
        )
        .into_response(),
    }
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi_document(),
    )
        .into_response()
}
