//! The audit log (query and JSON-lines export) and the decision simulator.

use crate::openapi::services as doc;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use portcullis_core::manage::{
    AuditParams, AuditSummary, AuditSummaryParams, SimulateInput, SimulateOutput,
};
use portcullis_domain::AuditEvent;

use crate::AppState;
use crate::auth::{Admin, need};
use crate::error::{ApiError, JsonBody, QueryParams};
use crate::openapi::schemas::{
    AuditEvent as AuditEventDoc, AuditLogPage, AuditSummary as AuditSummaryDoc, ErrorBody,
    RejectedList,
};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/audit", get(list_audit))
        .route("/audit/export", get(export_audit))
        .route("/audit/rejected", get(list_rejected))
        .route("/audit/summary", get(audit_summary))
        .route("/decisions/simulate", post(simulate))
}

/// Read the audit log
///
/// Reads the recorded decisions, newest first, a page at a time, filtered by app, user, tenant,
/// client, outcome and time. Events are written asynchronously, within moments of the decision.
/// With `kind=management`, reads who changed what through this API instead (filtered by actor,
/// target, action and time), each change with its before and after.
#[utoipa::path(
    get,
    path = "/v1/mgmt/audit",
    operation_id = "listAudit",
    tag = "Audit",
    security(("adminKey" = ["read"]), ("adminKey" = ["audit"])),
    params(doc::AuditParams),
    responses(
        (status = 200, description = "A page of events: decisions, or with `kind=management` management changes.", body = AuditLogPage),
        (status = 400, description = "A filter is not valid: an unknown outcome, a malformed date-time, a limit out of range (`invalid_request`), or a cursor this server did not issue (`invalid_cursor`).", body = ErrorBody),
    )
)]
async fn list_audit(
    _: Admin<need::ReadAudit>,
    State(s): State<AppState>,
    QueryParams(p): QueryParams<AuditParams>,
) -> Result<Response, ApiError> {
    Ok(if p.is_management()? {
        Json(s.core.list_management(&p).await?).into_response()
    } else {
        Json(s.core.list_audit(&p).await?).into_response()
    })
}

/// Summarize the decisions
///
/// Counts the recorded decisions of a window per time bucket and outcome, and per app (with the
/// app's denials and decision latency): what a dashboard charts. The database groups them; no
/// event is read one by one. Buckets are aligned on the Unix epoch (hours start at :00 UTC), every
/// bucket of the window is listed, empty ones included, and a window may hold at most 500.
#[utoipa::path(
    get,
    path = "/v1/mgmt/audit/summary",
    operation_id = "summarizeAudit",
    tag = "Audit",
    security(("adminKey" = ["read"]), ("adminKey" = ["audit"])),
    params(doc::AuditSummaryParams),
    responses(
        (status = 200, description = "The window's decisions per bucket, outcome and app.", body = AuditSummaryDoc),
        (status = 400, description = "The window is not valid: a malformed date-time, `since` not before `until`, a bucket out of range, or more than 500 buckets (`invalid_request`).", body = ErrorBody),
    )
)]
async fn audit_summary(
    _: Admin<need::ReadAudit>,
    State(s): State<AppState>,
    QueryParams(p): QueryParams<AuditSummaryParams>,
) -> Result<Json<AuditSummary>, ApiError> {
    Ok(Json(s.core.audit_summary(&p).await?))
}

/// Filters of the rejected-request counts.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct RejectedParams {
    /// Only minutes at or after this instant (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only minutes before this instant (RFC 3339).
    #[param(format = DateTime)]
    until: Option<String>,
    /// At most this many rows (1 to 1000; default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Count the requests refused before a decision
///
/// Requests refused before any decision — without a valid inbound token, malformed, from an OAuth
/// client that failed authentication, or over a rate limit — are not recorded one by one (anyone
/// could grow the log so); they are counted per minute, surface (`token`, `token_exchange`,
/// `connect`, `callback`, `oauth`) and reason. Newest minute first.
#[utoipa::path(
    get,
    path = "/v1/mgmt/audit/rejected",
    operation_id = "listRejectedRequests",
    tag = "Audit",
    security(("adminKey" = ["read"]), ("adminKey" = ["audit"])),
    params(RejectedParams),
    responses(
        (status = 200, description = "The counts, newest minute first.", body = RejectedList),
        (status = 400, description = "A filter is not valid (`invalid_request`).", body = ErrorBody),
    )
)]
async fn list_rejected(
    _: Admin<need::ReadAudit>,
    State(s): State<AppState>,
    QueryParams(p): QueryParams<RejectedParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let items = s
        .core
        .list_rejected(p.since.as_deref(), p.until.as_deref(), p.limit)
        .await?;
    Ok(Json(serde_json::json!({ "items": items })))
}

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
    params(doc::AuditParams),
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
    let core = s.core.clone();
    let body = if p.is_management()? {
        let (mut query, _) = p.management_query()?;
        query.limit = 1000;
        json_lines(query, move |q| {
            let core = core.clone();
            async move { core.management_page(&q).await }
        })
        .await?
    } else {
        let (mut query, _) = p.query()?;
        query.limit = 1000;
        json_lines(query, move |q| {
            let core = core.clone();
            async move { core.audit_page(&q).await }
        })
        .await?
    };
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(resp)
}

/// A query the export pages through: its page size and its cursor.
trait Paged: Clone + Send + Sync + 'static {
    fn limit(&self) -> u32;
    fn continue_after(&mut self, id: String);
}

impl Paged for portcullis_domain::AuditQuery {
    fn limit(&self) -> u32 {
        self.limit
    }
    fn continue_after(&mut self, id: String) {
        self.before_id = Some(id);
    }
}

impl Paged for portcullis_domain::ManagementQuery {
    fn limit(&self) -> u32 {
        self.limit
    }
    fn continue_after(&mut self, id: String) {
        self.before_id = Some(id);
    }
}

/// An event of a log: serializable, with its (cursor) id.
trait Event: serde::Serialize + Send + 'static {
    fn id(&self) -> &str;
}

impl Event for AuditEvent {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Event for portcullis_domain::ManagementEvent {
    fn id(&self) -> &str {
        &self.id
    }
}

/// Streams every event `fetch` reads from `query` on, a page at a time, as JSON lines. The first
/// page is read before answering, so that a bad filter is a 400, not a cut stream.
async fn json_lines<Q, E, F, Fut>(query: Q, fetch: F) -> Result<Body, ApiError>
where
    Q: Paged,
    E: Event,
    F: Fn(Q) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Vec<E>, portcullis_core::ServiceError>> + Send,
{
    let first = fetch(query.clone()).await?;
    let fetch = std::sync::Arc::new(fetch);
    let stream = futures_util::stream::unfold(Some((first, query)), move |state| {
        let fetch = fetch.clone();
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
            let next = if page.len() < query.limit() as usize {
                None
            } else {
                if let Some(last) = page.last() {
                    query.continue_after(last.id().to_owned());
                }
                match fetch(query.clone()).await {
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
    Ok(Body::from_stream(stream))
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
    request_body(content = doc::SimulateInput, description = "The request to evaluate: `token` or `subject`, not both."),
    responses(
        (status = 200, description = "The decision and its explanation.", body = doc::SimulateOutput),
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
#[openapi(paths(list_audit, export_audit, list_rejected, audit_summary, simulate))]
pub(super) struct Doc;
