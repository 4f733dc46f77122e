//! Policy as code: a desired state applied all or nothing.

use crate::openapi::services as doc;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use portcullis_core::apply::{ApplyInput, ApplyOutcome};

use crate::AppState;
use crate::auth::{Admin, need};
use crate::error::{ApiError, JsonBody};
use crate::openapi::schemas::ErrorBody;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/apply", post(apply))
}

/// Apply a desired state, all or nothing
///
/// Brings the server to the state the body declares for the roles, tenants, users and apps it
/// lists (with each app's policies): creates what is missing, updates what differs, deletes the
/// policies of a listed app that the body no longer has, and does nothing when they already match
/// (what `portcullis apply -f` sends). The whole state is checked first — a problem anywhere is a
/// 400 `invalid_apply` whose `details` list every problem with its place, such as
/// `apps[1].policies[0].conditions[0].operator` — and written in one transaction with one
/// management audit event (`apply`): a failed apply changes nothing. With `dryRun`, the same
/// checks and plan, and nothing written. A user entry's omitted fields keep their stored values;
/// an app's client secret is set on create or when the app has none.
///
/// The key needs `apps` to change apps, `policies` to change policies, `directory` for roles,
/// tenants and users (a dry run: any key).
#[utoipa::path(
    post,
    path = "/v1/mgmt/apply",
    operation_id = "applyState",
    tag = "Policy as code",
    security(("adminKey" = ["apps"]), ("adminKey" = ["policies"]), ("adminKey" = ["directory"]), ("adminKey" = ["read"])),
    request_body(content = doc::ApplyInput, description = "The desired state, and `dryRun`."),
    responses(
        (status = 200, description = "The state is applied (or, with `dryRun`, checked): the changes, in order; none when the server already matched.", body = doc::ApplyOutcome),
        (status = 400, description = "The desired state has problems (`invalid_apply`, `details`: each problem's `path`, `code` and `message`) or too many entries (`invalid_request`); nothing was changed.", body = ErrorBody),
        (status = 409, description = "Something changed meanwhile, or a name is taken (`conflict`); nothing was changed.", body = ErrorBody),
    )
)]
async fn apply(
    Admin(admin, _): Admin<need::ByContent>,
    State(s): State<AppState>,
    JsonBody(input): JsonBody<ApplyInput>,
) -> Result<Json<ApplyOutcome>, ApiError> {
    Ok(Json(s.core.apply(&admin, input).await?))
}

/// The part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(apply))]
pub(super) struct Doc;
