//! Token management: connections, API keys, token import, admin-initiated connect links.

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use portcullis_core::manage::{ListParams, Page};
use portcullis_core::{AdminConnectRequest, ConnectionInfo, ImportToken, RevokeReport};
use portcullis_crypto::SecretString;
use serde::Deserialize;
use serde_json::json;

use super::created;
use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, JsonBody, PathParams, QueryParams};

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

async fn app_connections(
    _: Admin,
    State(s): State<AppState>,
    PathParams(app_id): PathParams<String>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<Page<ConnectionInfo>>, ApiError> {
    Ok(Json(s.core.list_app_connections(&app_id, &p).await?))
}

async fn user_connections(
    _: Admin,
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
    /// The key (write-only).
    #[schema(value_type = String)]
    api_key: SecretString,
    /// The user it belongs to.
    #[serde(default)]
    user_id: Option<String>,
    /// The tenant it belongs to.
    #[serde(default)]
    tenant_id: Option<String>,
}

async fn put_api_key(
    Admin(admin): Admin,
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
            &format!("admin:{}", admin.key_id),
        )
        .await?;
    Ok(created(info))
}

/// A token import: one token, or a batch stored all or nothing.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ImportBody {
    /// The tokens.
    tokens: Vec<ImportToken>,
}

async fn import_tokens(
    Admin(admin): Admin,
    State(s): State<AppState>,
    PathParams(app_id): PathParams<String>,
    JsonBody(b): JsonBody<ImportBody>,
) -> Result<Response, ApiError> {
    let stored = s
        .core
        .import_tokens(&app_id, &b.tokens, &format!("admin:{}", admin.key_id))
        .await?;
    Ok(created(json!({ "items": stored })))
}

async fn admin_connect(
    Admin(admin): Admin,
    State(s): State<AppState>,
    PathParams(app_id): PathParams<String>,
    JsonBody(b): JsonBody<AdminConnectRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let url = s.core.admin_connect(&app_id, &b, &admin).await?;
    Ok(Json(json!({ "url": url })))
}

async fn get_connection(
    _: Admin,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<ConnectionInfo>, ApiError> {
    Ok(Json(s.core.get_connection(&id).await?))
}

async fn revoke_connection(
    _: Admin,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<RevokeReport>, ApiError> {
    Ok(Json(s.core.revoke_connection(&id).await?))
}

async fn revoke_user_connections(
    _: Admin,
    State(s): State<AppState>,
    PathParams(user_id): PathParams<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let revoked = s.core.revoke_user_connections(&user_id).await?;
    Ok(Json(json!({ "items": revoked })))
}

async fn refresh_connection(
    _: Admin,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<ConnectionInfo>, ApiError> {
    Ok(Json(s.core.force_refresh_connection(&id).await?))
}
