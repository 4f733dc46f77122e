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
use crate::auth::{Admin, need};
use crate::error::{ApiError, JsonBody, QueryParams};
use crate::openapi::schemas::{AuditEvent as AuditEventDoc, AuditPage, ErrorBody};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/audit", get(list_audit))
        .route("/audit/export", get(export_audit))
        .route("/decisions/simulate", post(simulate))
}

/// Read the audit log
///
/// Reads the recorded decisions, newest first, a page at a time, filtered by app, user, tenant,
/// client, outcome and time. Events are written asynchronously, within moments of the decision.
#[utoipa::path(
    get,
    path = "/v1/mgmt/audit",
    operation_id = "listAudit",
    tag = "Audit",
    security(("adminKey" = ["read"]), ("adminKey" = ["audit"])),
    params(AuditParams),
    responses(
        (status = 200, description = "A page of events.", body = AuditPage),
        (status = 400, description = "A filter is not valid: an unknown outcome, a malformed date-time, a limit out of range (`invalid_request`), or a cursor this server did not issue (`invalid_cursor`).", body = ErrorBody),
    )
)]
async fn list_audit(
    _: Admin<need::ReadAudit>,
    State(s): State<AppState>,
    QueryParams(p): QueryParams<AuditParams>,
) -> Result<Json<Page<AuditEvent>>, ApiError> {
    Ok(Json(s.core.list_audit(&p).await?))
}

/// Streams every event matching the filters as JSON lines, newest first.
/// Export the audit log
///
/// Streams every event matching the filters, newest first, as JSON lines (one `AuditEvent` per
/// line), for a SIEM or an archive. `limit` and `cursor` are ignored: the export reads on to the
/// end. A bad filter is a 400 before anything is streamed.
#[utoipa::path(
    get,
    path = "/v1/mgmt/audit/export",
    operation_id = "exportAudit",
    tag = "Audit",
    security(("adminKey" = ["read"]), ("adminKey" = ["audit"])),
    params(AuditParams),
    responses(
        (status = 200, description = "The events, one JSON object per line (`application/x-ndjson`).", body = AuditEventDoc, content_type = "application/x-ndjson"),
        (status = 400, description = "A filter is not valid (`invalid_request`, `invalid_cursor`).", body = ErrorBody),
    )
)]
async fn export_audit(
    _: Admin<need::ReadAudit>,
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

/// Simulate a decision
///
/// Evaluates a token request without handing anything out, and explains the decision: either for a
/// real inbound token (verified like a real request), or for a subject described directly (a user
/// of the directory, or given roles and claims). Use it to check a policy change before users see
/// it. Nothing is recorded in the audit log.
#[utoipa::path(
    post,
    path = "/v1/mgmt/decisions/simulate",
    operation_id = "simulateDecision",
    tag = "Audit",
    security(("adminKey" = ["read"]), ("adminKey" = ["policies"])),
    request_body(content = SimulateInput, description = "The request to evaluate: `token` or `subject`, not both."),
    responses(
        (status = 200, description = "The decision and its explanation.", body = SimulateOutput),
        (status = 400, description = "The question is not valid: both or neither of `token` and `subject` (`invalid_request`), or the token is not valid (`invalid_token`, with `details.reason`) or lacks the fetch scope (`insufficient_scope`).", body = ErrorBody),
        (status = 404, description = "No app has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn simulate(
    _: Admin<need::ReadPolicies>,
    State(s): State<AppState>,
    JsonBody(i): JsonBody<SimulateInput>,
) -> Result<Json<SimulateOutput>, ApiError> {
    Ok(Json(s.core.simulate(&i).await?))
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_audit, export_audit, simulate))]
pub(super) struct Doc;
