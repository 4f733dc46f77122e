//! Token management: connections, API keys, token import, admin-initiated connect links.

use crate::openapi::services as doc;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use portcullis_core::manage::{ListParams, Page};
use portcullis_core::{AdminConnectRequest, ConnectionInfo, ImportToken, RevokeReport};
use portcullis_crypto::SecretString;
use serde::Deserialize;
use serde_json::json;

use super::{created, record};
use crate::AppState;
use crate::auth::{Admin, need};
use crate::error::{ApiError, JsonBody, PathParams, QueryParams};
use crate::openapi::schemas::{
    ConnectLink, ConnectionList, ConnectionPage, ErrorBody, RevokeReportList,
};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/outbound-apps/{app_id}/connections", get(app_connections))
        .route("/outbound-apps/{app_id}/api-keys", post(put_api_key))
        .route("/outbound-apps/{app_id}/tokens", post(import_tokens))
        .route("/outbound-apps/{app_id}/connect", post(admin_connect))
        .route(
            "/connections/{connection_id}",
            get(get_connection).delete(revoke_connection),
        )
        .route(
            "/connections/{connection_id}/refresh",
            post(refresh_connection),
        )
        .route(
            "/users/{user_id}/connections",
            get(user_connections).delete(revoke_user_connections),
        )
}

/// List an app's connections
///
/// Lists the stored connections to an app (users', tenants' and the app-wide one), a page at a
/// time. Tokens are never shown: only their metadata.
#[utoipa::path(
    get,
    path = "/v1/mgmt/outbound-apps/{appId}/connections",
    operation_id = "listAppConnections",
    tag = "Connections",
    security(("adminKey" = ["read"]), ("adminKey" = ["vault"])),
    params(("appId" = String, Path, description = "The outbound app's id."), doc::ListParams),
    responses(
        (status = 200, description = "A page of connections.", body = ConnectionPage),
        (status = 404, description = "No app has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn app_connections(
    _: Admin<need::ReadVault>,
    State(s): State<AppState>,
    PathParams(app_id): PathParams<String>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<Page<ConnectionInfo>>, ApiError> {
    Ok(Json(s.core.list_app_connections(&app_id, &p).await?))
}

/// List a user's connections
///
/// Lists a user's connections across apps, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/mgmt/users/{userId}/connections",
    operation_id = "listUserConnections",
    tag = "Connections",
    security(("adminKey" = ["read"]), ("adminKey" = ["vault"])),
    params(("userId" = String, Path, description = "The user's id."), doc::ListParams),
    responses(
        (status = 200, description = "A page of connections.", body = ConnectionPage),
        (status = 404, description = "No user has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn user_connections(
    _: Admin<need::ReadVault>,
    State(s): State<AppState>,
    PathParams(user_id): PathParams<String>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<Page<ConnectionInfo>>, ApiError> {
    Ok(Json(s.core.list_user_connections(&user_id, &p).await?))
}

/// The body of an API-key upload.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ApiKeyBody {
    /// The API key, 1 to 8,192 characters. It is sealed at rest and never shown; only the token
    /// endpoints hand it out.
    #[schema(value_type = String, min_length = 1, max_length = 8192)]
    api_key: SecretString,
    /// The user whose key it is (with `tenantId`: the user's key within that tenant).
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$"
    )]
    user_id: Option<String>,
    /// The tenant whose shared key it is. Without `userId` and `tenantId`, the key is the
    /// app's, for every user.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$"
    )]
    tenant_id: Option<String>,
}

/// Store an API key
///
/// Stores the API key of an API-key app for a user (`userId`), a tenant (`tenantId`), a user
/// within a tenant (both), or the whole app (neither), replacing any key stored for the same
/// owner. The key is sealed at rest and handed out only through the token endpoints, when the
/// policies allow.
#[utoipa::path(
    post,
    path = "/v1/mgmt/outbound-apps/{appId}/api-keys",
    operation_id = "putApiKey",
    tag = "Connections",
    security(("adminKey" = ["vault"])),
    params(("appId" = String, Path, description = "The outbound app's id.")),
    request_body(content = ApiKeyBody, description = "The key and whose it is."),
    responses(
        (status = 201, description = "The key is stored: the connection's metadata.", body = doc::ConnectionInfo),
        (status = 400, description = "The body is not valid (`invalid_request`, `invalid_api_key`).", body = ErrorBody),
        (status = 404, description = "No app has this id (`not_found`).", body = ErrorBody),
        (status = 409, description = "The tenant does not exist (`unknown_reference`), or the app is not of the kind this needs (`not_an_api_key_app`, `not_an_oauth_app`).", body = ErrorBody),
    )
)]
async fn put_api_key(
    Admin(admin, _): Admin<need::Vault>,
    State(s): State<AppState>,
    PathParams(app_id): PathParams<String>,
    JsonBody(b): JsonBody<ApiKeyBody>,
) -> Result<Response, ApiError> {
    let info = s
        .core
        .put_api_key(
            &app_id,
            &b.api_key,
            b.user_id,
            b.tenant_id,
            &format!("admin:{}", admin.actor_id),
        )
        .await?;
    let target = format!("connections/{}", info.id);
    record(&s, &admin, "api_key.put", target, None::<()>, Some(&info)).await;
    Ok(created(info))
}

/// A token import: one token, or a batch stored all or nothing.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ImportBody {
    /// The tokens to import (1 to 1,000), each for a different owner; stored all or nothing.
    #[schema(min_items = 1, max_items = 1000, value_type = Vec<doc::ImportToken>)]
    tokens: Vec<ImportToken>,
}

/// Import OAuth tokens
///
/// Imports tokens obtained elsewhere (a migration from another vault): one connection per token
/// (1 to 1,000 tokens, each for a user, a tenant, or a user within a tenant, each owner once),
/// stored all or nothing, so a batch with one bad token changes nothing. A connection stored for
/// the same owner is replaced.
#[utoipa::path(
    post,
    path = "/v1/mgmt/outbound-apps/{appId}/tokens",
    operation_id = "importTokens",
    tag = "Connections",
    security(("adminKey" = ["vault"])),
    params(("appId" = String, Path, description = "The outbound app's id.")),
    request_body(content = ImportBody, description = "The tokens."),
    responses(
        (status = 201, description = "Every token is stored.", body = ConnectionList),
        (status = 400, description = "A token is not valid (`invalid_request`), names a scope the app does not offer (`invalid_scope`); nothing was stored.", body = ErrorBody),
        (status = 404, description = "No app has this id (`not_found`).", body = ErrorBody),
        (status = 409, description = "A token names a tenant that does not exist (`unknown_reference`), or the app uses API keys (`not_an_oauth_app`); nothing was stored.", body = ErrorBody),
    )
)]
async fn import_tokens(
    Admin(admin, _): Admin<need::Vault>,
    State(s): State<AppState>,
    PathParams(app_id): PathParams<String>,
    JsonBody(b): JsonBody<ImportBody>,
) -> Result<Response, ApiError> {
    let stored = s
        .core
        .import_tokens(&app_id, &b.tokens, &format!("admin:{}", admin.actor_id))
        .await?;
    let target = format!("outbound-apps/{app_id}");
    let after = Some(json!({ "imported": &stored }));
    record(&s, &admin, "tokens.import", target, None::<()>, after).await;
    Ok(created(json!({ "items": stored })))
}

/// Create a connect link
///
/// Creates a consent link for a tenant's shared connection (`tenantId`) or for a named user
/// (`userId`, who must open it: signed in as that user when Portcullis can sign them in;
/// otherwise the first browser to open it claims it). This is how tenant-wide connections are
/// provisioned by an admin.
#[utoipa::path(
    post,
    path = "/v1/mgmt/outbound-apps/{appId}/connect",
    operation_id = "adminConnect",
    tag = "Connections",
    security(("adminKey" = ["vault"])),
    params(("appId" = String, Path, description = "The outbound app's id.")),
    request_body(content = doc::AdminConnectRequest, description = "Whose connection the link creates."),
    responses(
        (status = 200, description = "The link to open in a browser.", body = ConnectLink),
        (status = 400, description = "Neither a tenant nor a user is named (`invalid_request`), a scope is not offered (`invalid_scope`), or the return URL is not allowed (`invalid_return_url`).", body = ErrorBody),
        (status = 404, description = "No app has this id (`not_found`).", body = ErrorBody),
        (status = 409, description = "The tenant does not exist (`unknown_reference`), or the app is not of the kind this needs (`not_an_api_key_app`, `not_an_oauth_app`).", body = ErrorBody),
    )
)]
async fn admin_connect(
    Admin(admin, _): Admin<need::Vault>,
    State(s): State<AppState>,
    PathParams(app_id): PathParams<String>,
    JsonBody(b): JsonBody<AdminConnectRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let url = s.core.admin_connect(&app_id, &b, &admin).await?;
    // The link is a capability: recorded is that one was made, never the link.
    let target = format!("outbound-apps/{app_id}");
    record(
        &s,
        &admin,
        "connect_link.create",
        target,
        None::<()>,
        None::<()>,
    )
    .await;
    Ok(Json(json!({ "url": url })))
}

/// Read a connection
///
/// Reads a connection's metadata: owner, scopes, expiry, refresh state (never a token).
#[utoipa::path(
    get,
    path = "/v1/mgmt/connections/{connectionId}",
    operation_id = "getConnection",
    tag = "Connections",
    security(("adminKey" = ["read"]), ("adminKey" = ["vault"])),
    params(("connectionId" = String, Path, description = "The connection's id.")),
    responses(
        (status = 200, description = "The connection.", body = doc::ConnectionInfo),
        (status = 404, description = "No connection has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn get_connection(
    _: Admin<need::ReadVault>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<ConnectionInfo>, ApiError> {
    Ok(Json(s.core.get_connection(&id).await?))
}

/// Revoke a connection
///
/// Deletes a connection and asks the provider to revoke its tokens (RFC 7009) when the app has a
/// revocation endpoint. The connection is deleted whatever the provider answers; the report says
/// whether the provider confirmed.
#[utoipa::path(
    delete,
    path = "/v1/mgmt/connections/{connectionId}",
    operation_id = "revokeConnection",
    tag = "Connections",
    security(("adminKey" = ["vault"])),
    params(("connectionId" = String, Path, description = "The connection's id.")),
    responses(
        (status = 200, description = "The connection is deleted.", body = doc::RevokeReport),
        (status = 404, description = "No connection has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn revoke_connection(
    Admin(admin, _): Admin<need::Vault>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<RevokeReport>, ApiError> {
    let before = s.core.get_connection(&id).await.ok();
    let report = s.core.revoke_connection(&id).await?;
    let target = format!("connections/{id}");
    record(
        &s,
        &admin,
        "connection.revoke",
        target,
        before,
        Some(&report),
    )
    .await;
    Ok(Json(report))
}

/// Revoke every connection of a user
///
/// Revokes every connection of a user (offboarding), each at its provider too when the app has a
/// revocation endpoint.
#[utoipa::path(
    delete,
    path = "/v1/mgmt/users/{userId}/connections",
    operation_id = "revokeUserConnections",
    tag = "Connections",
    security(("adminKey" = ["vault"])),
    params(("userId" = String, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "What was revoked, connection by connection.", body = RevokeReportList),
        (status = 404, description = "No user has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn revoke_user_connections(
    Admin(admin, _): Admin<need::Vault>,
    State(s): State<AppState>,
    PathParams(user_id): PathParams<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let revoked = s.core.revoke_user_connections(&user_id).await?;
    let target = format!("users/{user_id}/connections");
    let after = Some(json!({ "revoked": &revoked }));
    record(
        &s,
        &admin,
        "connections.revoke_all",
        target,
        None::<()>,
        after,
    )
    .await;
    Ok(Json(json!({ "items": revoked })))
}

/// Refresh a connection now
///
/// Refreshes the connection's access token at the provider now, whatever its expiry (for example
/// after a provider-side change of the grant).
#[utoipa::path(
    post,
    path = "/v1/mgmt/connections/{connectionId}/refresh",
    operation_id = "refreshConnection",
    tag = "Connections",
    security(("adminKey" = ["vault"])),
    params(("connectionId" = String, Path, description = "The connection's id.")),
    responses(
        (status = 200, description = "The connection after the refresh.", body = doc::ConnectionInfo),
        (status = 409, description = "The connection cannot be refreshed: it holds an API key, or has no refresh token (`not_refreshable`).", body = ErrorBody),
        (status = 404, description = "No connection has this id (`not_found`).", body = ErrorBody),
        (status = 409, description = "The provider rejected the refresh token: the connection now needs the user's consent (`consent_required`).", body = ErrorBody),
    )
)]
async fn refresh_connection(
    Admin(admin, _): Admin<need::Vault>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<ConnectionInfo>, ApiError> {
    let info = s.core.force_refresh_connection(&id).await?;
    let target = format!("connections/{id}");
    record(
        &s,
        &admin,
        "connection.refresh",
        target,
        None::<()>,
        Some(&info),
    )
    .await;
    Ok(Json(info))
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    app_connections,
    put_api_key,
    import_tokens,
    admin_connect,
    get_connection,
    revoke_connection,
    refresh_connection,
    user_connections,
    revoke_user_connections
))]
pub(super) struct Doc;
