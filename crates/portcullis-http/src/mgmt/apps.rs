//! Outbound apps and their access control policies.

use crate::openapi::services as doc;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use portcullis_core::manage::{
    AppInput, AppView, ListParams, Page, PolicyView, ReplayInput, ReplayOutput,
};
use serde_json::Value;

use super::{created, no_content, record};
use crate::AppState;
use crate::auth::{Admin, need};
use crate::error::{ApiError, JsonBody, PathParams, QueryParams};
use crate::openapi::schemas::{AppPage, ErrorBody, PolicyDocument, PolicyPage};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/outbound-apps", get(list_apps).post(create_app))
        .route(
            "/outbound-apps/{app_id}",
            get(get_app).put(update_app).delete(delete_app),
        )
        .route(
            "/outbound-apps/{app_id}/policies",
            get(list_policies).post(create_policy),
        )
        .route(
            "/outbound-apps/{app_id}/policies/replay",
            axum::routing::post(replay_policies),
        )
        .route(
            "/outbound-apps/{app_id}/policies/{policy_id}",
            get(get_policy).put(update_policy).delete(delete_policy),
        )
}

/// Register an outbound app
///
/// Registers a third-party provider: an OAuth app (its client credentials, endpoints and the
/// scopes it offers) or an API-key app. The id is a slug chosen here and used in every URL; it
/// cannot change. The client secret is sealed at rest and never shown again. A new app has no
/// policy, so every authenticated user may fetch tokens for it until one is added.
#[utoipa::path(
    post,
    path = "/v1/mgmt/outbound-apps",
    operation_id = "createApp",
    tag = "Apps",
    security(("adminKey" = ["apps"])),
    request_body(content = doc::AppInput, description = "The app."),
    responses(
        (status = 201, description = "The app was registered.", body = doc::AppView),
        (status = 400, description = "The app is not valid: a missing or malformed field (`invalid_request`, `invalid_id`), or settings that do not fit its type (`invalid_app`).", body = ErrorBody),
        (status = 409, description = "An app with this id exists (`already_exists`).", body = ErrorBody),
    )
)]
async fn create_app(
    Admin(admin, _): Admin<need::Apps>,
    State(s): State<AppState>,
    JsonBody(input): JsonBody<AppInput>,
) -> Result<Response, ApiError> {
    let app = s.core.create_app(&input).await?;
    let target = format!("outbound-apps/{}", app.id);
    record(&s, &admin, "app.create", target, None::<()>, Some(&app)).await;
    Ok(created(app))
}

/// List outbound apps
///
/// Lists the registered outbound apps by id, a page at a time. Client secrets are never shown.
#[utoipa::path(
    get,
    path = "/v1/mgmt/outbound-apps",
    operation_id = "listApps",
    tag = "Apps",
    security(("adminKey" = ["read"]), ("adminKey" = ["apps"])),
    params(doc::ListParams),
    responses(
        (status = 200, description = "A page of apps.", body = AppPage),
    )
)]
async fn list_apps(
    _: Admin<need::ReadApps>,
    State(s): State<AppState>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<Page<AppView>>, ApiError> {
    Ok(Json(s.core.list_apps(&p).await?))
}

/// Read an outbound app
///
/// Reads an app's settings (never its client secret: `hasClientSecret` says whether one is stored).
#[utoipa::path(
    get,
    path = "/v1/mgmt/outbound-apps/{appId}",
    operation_id = "getApp",
    tag = "Apps",
    security(("adminKey" = ["read"]), ("adminKey" = ["apps"])),
    params(("appId" = String, Path, description = "The outbound app's id.")),
    responses(
        (status = 200, description = "The app.", body = doc::AppView),
        (status = 404, description = "No app has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn get_app(
    _: Admin<need::ReadApps>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<AppView>, ApiError> {
    Ok(Json(s.core.get_app(&id).await?))
}

/// Replace an outbound app
///
/// Replaces an app's settings. The id and the type cannot change; an omitted `clientSecret` keeps
/// the stored one. Removing a scope that a policy still names is refused, so that no policy
/// silently changes meaning: change the policies first. The change reaches every node's cache at
/// once.
#[utoipa::path(
    put,
    path = "/v1/mgmt/outbound-apps/{appId}",
    operation_id = "updateApp",
    tag = "Apps",
    security(("adminKey" = ["apps"])),
    params(("appId" = String, Path, description = "The outbound app's id.")),
    request_body(content = doc::AppInput, description = "The app's new settings."),
    responses(
        (status = 200, description = "The app as stored.", body = doc::AppView),
        (status = 400, description = "The settings are not valid, or try to change the id or the type (`invalid_request`, `invalid_app`).", body = ErrorBody),
        (status = 404, description = "No app has this id (`not_found`).", body = ErrorBody),
        (status = 409, description = "A policy names a scope this change removes (`policies_reference_removed_scopes`), or the app changed meanwhile (`conflict`).", body = ErrorBody),
    )
)]
async fn update_app(
    Admin(admin, _): Admin<need::Apps>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(input): JsonBody<AppInput>,
) -> Result<Json<AppView>, ApiError> {
    let before = s.core.get_app(&id).await.ok();
    let app = s.core.update_app(&id, &input).await?;
    let target = format!("outbound-apps/{id}");
    record(&s, &admin, "app.update", target, before, Some(&app)).await;
    Ok(Json(app))
}

/// Delete an outbound app
///
/// Deletes an app with its policies and every stored connection to it. Tokens already handed out
/// stay valid at the provider until they expire; revoke connections first to end them there.
#[utoipa::path(
    delete,
    path = "/v1/mgmt/outbound-apps/{appId}",
    operation_id = "deleteApp",
    tag = "Apps",
    security(("adminKey" = ["apps"])),
    params(("appId" = String, Path, description = "The outbound app's id.")),
    responses(
        (status = 204, description = "The app is deleted."),
        (status = 404, description = "No app has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn delete_app(
    Admin(admin, _): Admin<need::Apps>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    let before = s.core.get_app(&id).await.ok();
    s.core.delete_app(&id).await?;
    let target = format!("outbound-apps/{id}");
    record(&s, &admin, "app.delete", target, before, None::<()>).await;
    Ok(no_content())
}

/// Add a policy to an app
///
/// Adds an access control policy. It is validated as a whole and every problem is reported with
/// its JSON path; its scopes must be ones the app offers. It takes effect on the very next token
/// request, on every node. Adding the first enforcing policy closes an open app: whoever no policy
/// matches is then denied.
#[utoipa::path(
    post,
    path = "/v1/mgmt/outbound-apps/{appId}/policies",
    operation_id = "createPolicy",
    tag = "Policies",
    security(("adminKey" = ["policies"])),
    params(("appId" = String, Path, description = "The outbound app's id.")),
    request_body(content = PolicyDocument, description = "The policy."),
    responses(
        (status = 201, description = "The policy was added.", body = doc::PolicyView),
        (status = 400, description = "The policy is not valid (`invalid_policy`; `details` lists every problem as a `PolicyProblem`).", body = ErrorBody),
        (status = 404, description = "No app has this id (`not_found`).", body = ErrorBody),
        (status = 409, description = "The app has a policy with this name (`duplicate_policy_name`), already has the most policies an app may have (`limit_exceeded`), or changed meanwhile (`conflict`).", body = ErrorBody),
    )
)]
async fn create_policy(
    Admin(admin, _): Admin<need::Policies>,
    State(s): State<AppState>,
    PathParams(app_id): PathParams<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let policy = s.core.create_policy(&app_id, &body).await?;
    let target = format!("outbound-apps/{app_id}/policies/{}", policy.id);
    record(
        &s,
        &admin,
        "policy.create",
        target,
        None::<()>,
        Some(&policy),
    )
    .await;
    Ok(created(policy))
}

/// List an app's policies
///
/// Lists an app's policies, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/mgmt/outbound-apps/{appId}/policies",
    operation_id = "listPolicies",
    tag = "Policies",
    security(("adminKey" = ["read"]), ("adminKey" = ["policies"])),
    params(("appId" = String, Path, description = "The outbound app's id."), doc::ListParams),
    responses(
        (status = 200, description = "A page of policies.", body = PolicyPage),
        (status = 404, description = "No app has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn list_policies(
    _: Admin<need::ReadPolicies>,
    State(s): State<AppState>,
    PathParams(app_id): PathParams<String>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<Page<PolicyView>>, ApiError> {
    Ok(Json(s.core.list_policies(&app_id, &p).await?))
}

/// Replay a draft policy set
///
/// Answers what a change to the app's policies would do, before it is saved: the draft (the
/// app's whole policy set as it would be after the change) re-decides every decision recorded
/// for the app in the window, from the inputs each one recorded (the user's roles and the
/// token's claims), and the answer counts the decisions that would change and names the users
/// who would lose or gain which scopes. Nothing is changed or recorded. Decisions recorded
/// without inputs (refused before the policies ran) are not replayed.
#[utoipa::path(
    post,
    path = "/v1/mgmt/outbound-apps/{appId}/policies/replay",
    operation_id = "replayPolicies",
    tag = "Policies",
    security(("adminKey" = ["read"]), ("adminKey" = ["policies"])),
    params(("appId" = String, Path, description = "The outbound app's id.")),
    request_body(content = doc::ReplayInput, description = "The draft policy set and the window."),
    responses(
        (status = 200, description = "What the draft would change.", body = doc::ReplayOutput),
        (status = 400, description = "The body does not have the documented shape (`invalid_body`), or the draft is not valid (`invalid_policy`, with `details` when the set's problems are known; `invalid_request` for a window that ends before it starts, or a `limit` out of range).", body = ErrorBody),
        (status = 404, description = "No app has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn replay_policies(
    _: Admin<need::ReadPolicies>,
    State(s): State<AppState>,
    PathParams(app_id): PathParams<String>,
    JsonBody(input): JsonBody<ReplayInput>,
) -> Result<Json<ReplayOutput>, ApiError> {
    Ok(Json(s.core.replay_policies(&app_id, &input).await?))
}

/// Read a policy
///
/// Reads one policy of an app.
#[utoipa::path(
    get,
    path = "/v1/mgmt/outbound-apps/{appId}/policies/{policyId}",
    operation_id = "getPolicy",
    tag = "Policies",
    security(("adminKey" = ["read"]), ("adminKey" = ["policies"])),
    params(("appId" = String, Path, description = "The outbound app's id."), ("policyId" = String, Path, description = "The policy's id.")),
    responses(
        (status = 200, description = "The policy.", body = doc::PolicyView),
        (status = 404, description = "No app has this id, or the app has no policy with this id (`not_found`).", body = ErrorBody),
    )
)]
async fn get_policy(
    _: Admin<need::ReadPolicies>,
    State(s): State<AppState>,
    PathParams((app_id, id)): PathParams<(String, String)>,
) -> Result<Json<PolicyView>, ApiError> {
    Ok(Json(s.core.get_policy(&app_id, &id).await?))
}

/// Replace a policy
///
/// Replaces a policy's document (its id stays). It is validated like a new one and takes effect
/// on the very next token request.
#[utoipa::path(
    put,
    path = "/v1/mgmt/outbound-apps/{appId}/policies/{policyId}",
    operation_id = "updatePolicy",
    tag = "Policies",
    security(("adminKey" = ["policies"])),
    params(("appId" = String, Path, description = "The outbound app's id."), ("policyId" = String, Path, description = "The policy's id.")),
    request_body(content = PolicyDocument, description = "The policy's new document."),
    responses(
        (status = 200, description = "The policy as stored.", body = doc::PolicyView),
        (status = 400, description = "The policy is not valid (`invalid_policy`; `details` lists every problem as a `PolicyProblem`).", body = ErrorBody),
        (status = 404, description = "No app has this id, or the app has no policy with this id (`not_found`).", body = ErrorBody),
        (status = 409, description = "Another policy of the app has this name (`duplicate_policy_name`), or the app changed meanwhile (`conflict`).", body = ErrorBody),
    )
)]
async fn update_policy(
    Admin(admin, _): Admin<need::Policies>,
    State(s): State<AppState>,
    PathParams((app_id, id)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<PolicyView>, ApiError> {
    let before = s.core.get_policy(&app_id, &id).await.ok();
    let policy = s.core.update_policy(&app_id, &id, &body).await?;
    let target = format!("outbound-apps/{app_id}/policies/{id}");
    record(&s, &admin, "policy.update", target, before, Some(&policy)).await;
    Ok(Json(policy))
}

/// Delete a policy
///
/// Deletes a policy; it stops counting on the very next token request. Deleting an app's last
/// enforcing policy opens the app to every authenticated user.
#[utoipa::path(
    delete,
    path = "/v1/mgmt/outbound-apps/{appId}/policies/{policyId}",
    operation_id = "deletePolicy",
    tag = "Policies",
    security(("adminKey" = ["policies"])),
    params(("appId" = String, Path, description = "The outbound app's id."), ("policyId" = String, Path, description = "The policy's id.")),
    responses(
        (status = 204, description = "The policy is deleted."),
        (status = 404, description = "No app has this id, or the app has no policy with this id (`not_found`).", body = ErrorBody),
    )
)]
async fn delete_policy(
    Admin(admin, _): Admin<need::Policies>,
    State(s): State<AppState>,
    PathParams((app_id, id)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let before = s.core.get_policy(&app_id, &id).await.ok();
    s.core.delete_policy(&app_id, &id).await?;
    let target = format!("outbound-apps/{app_id}/policies/{id}");
    record(&s, &admin, "policy.delete", target, before, None::<()>).await;
    Ok(no_content())
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    replay_policies,
    list_apps,
    create_app,
    get_app,
    update_app,
    delete_app,
    list_policies,
    create_policy,
    get_policy,
    update_policy,
    delete_policy
))]
pub(super) struct Doc;
