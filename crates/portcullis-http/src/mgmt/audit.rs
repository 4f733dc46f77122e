//! The audit log (query and JSON-lines export) and the decision simulator.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use portcullis_core::manage::{AuditParams, Page, SimulateInput, SimulateOutput};
use portcullis_domain::AuditEvent;

use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, JsonBody, QueryParams};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/audit", get(list_audit))
        .route("/audit/export", get(export_audit))
        .route("/decisions/simulate", post(simulate))
}

async fn list_audit(
    _: Admin,
    State(s): State<AppState>,
    QueryParams(p): QueryParams<AuditParams>,
) -> Result<Json<Page<AuditEvent>>, ApiError> {
    Ok(Json(s.core.list_audit(&p).await?))
}

/// Streams every event matching the filters as JSON lines, newest first.
async fn export_audit(
    _: Admin,
    State(s): State<AppState>,
    QueryParams(p): QueryParams<AuditParams>,
) -> Result<Response, ApiError> {
    let (mut query, _) = p.query()?;
    query.limit = 1000;
    let core = s.core.clone();
    // Validate the query once before streaming, so that a bad filter is a 400, not a cut stream.
    let first = core.audit_page(&query).await?;
    let stream = futures_util::stream::unfold(Some((first, query)), move |state| {
        let core = core.clone();
        async move {
            let (page, mut query) = state?;
            if page.is_empty() {
                return None;
            }
            let mut chunk = String::new();
            for e in &page {
                if let Ok(line) = serde_json::to_string(e) {
                    chunk.push_str(&line);
                    chunk.push('\n');
                }
            }
            let next = if page.len() < query.limit as usize {
                None
            } else {
                query.before_id = page.last().map(|e| e.id.clone());
                match core.audit_page(&query).await {
                    Ok(p) => Some((p, query)),
                    Err(e) => {
                        tracing::error!(error = %e, "an audit export stopped early");
                        None
                    }
                }
            };
            Some((Ok::<_, std::io::Error>(chunk), next))
        }
    });
    let mut resp = Body::from_stream(stream).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(resp)
}

async fn simulate(
    _: Admin,
    State(s): State<AppState>,
    JsonBody(i): JsonBody<SimulateInput>,
) -> Result<Json<SimulateOutput>, ApiError> {
    Ok(Json(s.core.simulate(&i).await?))
}
