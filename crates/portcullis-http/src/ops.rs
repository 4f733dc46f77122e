//! Operations: liveness, readiness, metrics, the OpenAPI document.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;
use crate::openapi::schemas::{ErrorBody, Health, OpenApiDocument, Ready};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
}

/// Liveness
///
/// Answers as long as the process serves requests; no dependency is touched, so an orchestrator
/// can restart a process that stops answering without restarting healthy ones during a database
/// outage.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "Operations",
    responses((status = 200, description = "The process is alive.", body = Health)),
)]
async fn healthz() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
        .into_response()
}

/// Readiness
///
/// Ready when the database answers and the change feed (which keeps every node's caches fresh)
/// is live. A node whose feed is down would serve from the database only, slower, so it reports
/// not ready and a load balancer can prefer the others.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "Operations",
    responses(
        (status = 200, description = "The node is ready.", body = Ready),
        (status = 503, description = "The node is not ready (`not_ready`): `details.database` is `ok` or `unavailable`, `details.changeFeed` is `live` or `reconnecting`.", body = ErrorBody),
    ),
)]
async fn readyz(State(state): State<AppState>) -> Response {
    let ready = state.core.readiness().await;
    let (db, feed, backend) = (ready.database, ready.change_feed, ready.backend);
    match (db, feed) {
        (true, true) => (
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
            "database": if db { "ok" } else { "unavailable" },
            "changeFeed": if feed { "live" } else { "reconnecting" },
        }))
        .into_response(),
    }
}

/// Prometheus metrics
///
/// The process's metrics in the Prometheus text exposition format: HTTP requests and their
/// latency by route and status, token requests by outcome, provider refreshes, and audit events
/// written or lost.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "Operations",
    responses(
        (status = 200, description = "The metrics.", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 404, description = "Metrics are not enabled in this process (`not_found`).", body = ErrorBody),
    ),
)]
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

/// This document
///
/// The OpenAPI 3.1 description of the whole HTTP API: every route, its parameters, bodies,
/// answers and errors.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "Operations",
    responses((status = 200, description = "The OpenAPI document.", body = OpenApiDocument)),
)]
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi_document(),
    )
        .into_response()
}

/// The operations routes' part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(healthz, readyz, metrics, openapi))]
pub(crate) struct Doc;
