//! Single sign-on connections: the upstream OpenID providers users sign in with, and the rules
//! mapping their claims to roles and tenants.

use crate::openapi::services as doc;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use portcullis_core::manage::{ListParams, Page, SsoConnectionInput, SsoConnectionView};

use super::{created, no_content, record};
use crate::AppState;
use crate::auth::{Admin, need};
use crate::error::{ApiError, JsonBody, PathParams, QueryParams};
use crate::openapi::schemas::{ErrorBody, SsoConnectionPage};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/sso-connections",
            get(list_connections).post(create_connection),
        )
        .route(
            "/sso-connections/{connection_id}",
            get(get_connection)
                .put(update_connection)
                .delete(delete_connection),
        )
}

/// Add an SSO connection
///
/// Adds an upstream OpenID Connect provider users sign in with ("Sign in with {name}" on the
/// sign-in page). Its mappings turn the id_token's claims (Entra ID `groups` or `roles`, Okta
/// groups) into roles and tenant memberships at every sign-in. Needs the `directory` scope: the
/// mappings give roles.
#[utoipa::path(
    post,
    path = "/v1/mgmt/sso-connections",
    operation_id = "createSsoConnection",
    tag = "Single sign-on",
    security(("adminKey" = ["directory"])),
    request_body(content = doc::SsoConnectionInput, description = "The connection."),
    responses(
        (status = 201, description = "The connection was added.", body = doc::SsoConnectionView),
        (status = 400, description = "The connection is not valid (`invalid_request`, `invalid_id`, `invalid_url`, `invalid_scope`, `invalid_mapping`).", body = ErrorBody),
        (status = 409, description = "A connection with this id exists (`already_exists`), or a mapping names a role or tenant that does not exist (`unknown_reference`).", body = ErrorBody),
    )
)]
async fn create_connection(
    Admin(admin, _): Admin<need::Directory>,
    State(s): State<AppState>,
    JsonBody(i): JsonBody<SsoConnectionInput>,
) -> Result<Response, ApiError> {
    let view = s.core.create_sso_connection(&i).await?;
    let target = format!("sso-connections/{}", view.id);
    record(
        &s,
        &admin,
        "sso_connection.create",
        target,
        None::<()>,
        Some(&view),
    )
    .await;
    Ok(created(view))
}

/// List SSO connections
///
/// Lists the SSO connections, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/mgmt/sso-connections",
    operation_id = "listSsoConnections",
    tag = "Single sign-on",
    security(("adminKey" = ["read"]), ("adminKey" = ["directory"])),
    params(doc::ListParams),
    responses(
        (status = 200, description = "A page of SSO connections.", body = SsoConnectionPage),
    )
)]
async fn list_connections(
    _: Admin<need::ReadDirectory>,
    State(s): State<AppState>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<Page<SsoConnectionView>>, ApiError> {
    Ok(Json(s.core.list_sso_connections(&p).await?))
}

/// Read an SSO connection
///
/// Reads an SSO connection (never its secret).
#[utoipa::path(
    get,
    path = "/v1/mgmt/sso-connections/{connectionId}",
    operation_id = "getSsoConnection",
    tag = "Single sign-on",
    security(("adminKey" = ["read"]), ("adminKey" = ["directory"])),
    params(("connectionId" = String, Path, description = "The connection's id.")),
    responses(
        (status = 200, description = "The connection.", body = doc::SsoConnectionView),
        (status = 404, description = "No connection has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn get_connection(
    _: Admin<need::ReadDirectory>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<SsoConnectionView>, ApiError> {
    Ok(Json(s.core.get_sso_connection(&id).await?))
}

/// Replace an SSO connection
///
/// Replaces an SSO connection's settings (its id stays; its secret too when none is given). The
/// mappings apply from each user's next sign-in.
#[utoipa::path(
    put,
    path = "/v1/mgmt/sso-connections/{connectionId}",
    operation_id = "updateSsoConnection",
    tag = "Single sign-on",
    security(("adminKey" = ["directory"])),
    params(("connectionId" = String, Path, description = "The connection's id.")),
    request_body(content = doc::SsoConnectionInput, description = "The connection's new settings."),
    responses(
        (status = 200, description = "The connection as stored.", body = doc::SsoConnectionView),
        (status = 400, description = "The connection is not valid (`invalid_request`, `invalid_url`, `invalid_scope`, `invalid_mapping`).", body = ErrorBody),
        (status = 404, description = "No connection has this id (`not_found`).", body = ErrorBody),
        (status = 409, description = "A mapping names a role or tenant that does not exist (`unknown_reference`).", body = ErrorBody),
    )
)]
async fn update_connection(
    Admin(admin, _): Admin<need::Directory>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(i): JsonBody<SsoConnectionInput>,
) -> Result<Json<SsoConnectionView>, ApiError> {
    let before = s.core.get_sso_connection(&id).await.ok();
    let view = s.core.update_sso_connection(&id, &i).await?;
    let target = format!("sso-connections/{id}");
    record(
        &s,
        &admin,
        "sso_connection.update",
        target,
        before,
        Some(&view),
    )
    .await;
    Ok(Json(view))
}

/// Delete an SSO connection
///
/// Deletes an SSO connection: nobody signs in with it any more. Its users stay, with their
/// identity links and roles.
#[utoipa::path(
    delete,
    path = "/v1/mgmt/sso-connections/{connectionId}",
    operation_id = "deleteSsoConnection",
    tag = "Single sign-on",
    security(("adminKey" = ["directory"])),
    params(("connectionId" = String, Path, description = "The connection's id.")),
    responses(
        (status = 204, description = "The connection is deleted."),
        (status = 404, description = "No connection has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn delete_connection(
    Admin(admin, _): Admin<need::Directory>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    let before = s.core.get_sso_connection(&id).await.ok();
    s.core.delete_sso_connection(&id).await?;
    let target = format!("sso-connections/{id}");
    record(
        &s,
        &admin,
        "sso_connection.delete",
        target,
        before,
        None::<()>,
    )
    .await;
    Ok(no_content())
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    create_connection,
    list_connections,
    get_connection,
    update_connection,
    delete_connection
))]
pub(super) struct Doc;
