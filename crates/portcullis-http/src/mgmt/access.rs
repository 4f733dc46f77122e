//! Who may call: admin keys, trusted issuers, OAuth clients; and the data keys sealing secrets.

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use portcullis_core::admin::{AdminKeyInfo, AdminKeyInput};
use portcullis_core::manage::{
    ClientInput, ClientView, IssuerInput, IssuerView, KeyStatus, ListParams, Page,
};
use serde_json::json;

use super::{created, no_content};
use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, JsonBody, PathParams, QueryParams};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin-keys", get(list_admin_keys).post(create_admin_key))
        .route(
            "/admin-keys/{key_id}",
            axum::routing::delete(delete_admin_key),
        )
        .route("/issuers", get(list_issuers).post(create_issuer))
        .route(
            "/issuers/{issuer_id}",
            get(get_issuer).put(update_issuer).delete(delete_issuer),
        )
        .route("/clients", get(list_clients).post(create_client))
        .route(
            "/clients/{client_id}",
            get(get_client).put(update_client).delete(delete_client),
        )
        .route("/clients/{client_id}/secret", post(rotate_client_secret))
        .route("/keys", get(key_status))
        .route("/keys/rotate", post(rotate_keys))
}

async fn create_admin_key(
    _: Admin,
    State(s): State<AppState>,
    JsonBody(i): JsonBody<AdminKeyInput>,
) -> Result<Response, ApiError> {
    Ok(created(s.core.create_admin_key(&i).await?))
}

async fn list_admin_keys(
    _: Admin,
    State(s): State<AppState>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<Page<AdminKeyInfo>>, ApiError> {
    let (page, limit) = p.page_request()?;
    let rows = s.core.list_admin_keys(&page).await?;
    Ok(Json(Page::from_rows(rows, limit, |k| k.id.clone())))
}

async fn delete_admin_key(
    Admin(me): Admin,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    if me.key_id == id {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "cannot_delete_own_key",
            "an admin key cannot delete itself; use another key",
        ));
    }
    s.core.delete_admin_key(&id).await?;
    Ok(no_content())
}

async fn create_issuer(
    _: Admin,
    State(s): State<AppState>,
    JsonBody(i): JsonBody<IssuerInput>,
) -> Result<Response, ApiError> {
    Ok(created(s.core.create_issuer(&i).await?))
}

async fn list_issuers(
    _: Admin,
    State(s): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(json!({ "items": s.core.list_issuers().await? })))
}

async fn get_issuer(
    _: Admin,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<IssuerView>, ApiError> {
    Ok(Json(s.core.get_issuer(&id).await?))
}

async fn update_issuer(
    _: Admin,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(i): JsonBody<IssuerInput>,
) -> Result<Json<IssuerView>, ApiError> {
    Ok(Json(s.core.update_issuer(&id, &i).await?))
}

async fn delete_issuer(
    _: Admin,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    s.core.delete_issuer(&id).await?;
    Ok(no_content())
}

async fn create_client(
    _: Admin,
    State(s): State<AppState>,
    JsonBody(i): JsonBody<ClientInput>,
) -> Result<Response, ApiError> {
    Ok(created(s.core.create_client(&i).await?))
}

async fn list_clients(
    _: Admin,
    State(s): State<AppState>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<Page<ClientView>>, ApiError> {
    Ok(Json(s.core.list_clients(&p).await?))
}

async fn get_client(
    _: Admin,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<ClientView>, ApiError> {
    Ok(Json(s.core.get_client(&id).await?))
}

async fn update_client(
    _: Admin,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(i): JsonBody<ClientInput>,
) -> Result<Json<ClientView>, ApiError> {
    Ok(Json(s.core.update_client(&id, &i).await?))
}

async fn rotate_client_secret(
    _: Admin,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    Ok(created(s.core.rotate_client_secret(&id).await?))
}

async fn delete_client(
    _: Admin,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    s.core.delete_client(&id).await?;
    Ok(no_content())
}

async fn key_status(_: Admin, State(s): State<AppState>) -> Result<Json<KeyStatus>, ApiError> {
    Ok(Json(s.core.key_status().await?))
}

async fn rotate_keys(_: Admin, State(s): State<AppState>) -> Result<Json<KeyStatus>, ApiError> {
    Ok(Json(s.core.rotate_keys().await?))
}
