//! Users, roles and tenants.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use portcullis_core::manage::{
    ListParams, Page, RoleInput, RoleView, TenantInput, TenantView, UserInput, UserView,
};

use super::{created, no_content};
use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, JsonBody, PathParams, QueryParams};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/users", get(list_users).post(create_user))
        .route(
            "/users/{user_id}",
            get(get_user).put(update_user).delete(delete_user),
        )
        .route("/roles", get(list_roles).post(create_role))
        .route(
            "/roles/{name}",
            get(get_role).put(update_role).delete(delete_role),
        )
        .route("/tenants", get(list_tenants).post(create_tenant))
        .route(
            "/tenants/{tenant_id}",
            get(get_tenant).put(update_tenant).delete(delete_tenant),
        )
}

async fn create_user(
    _: Admin,
    State(s): State<AppState>,
    JsonBody(i): JsonBody<UserInput>,
) -> Result<Response, ApiError> {
    Ok(created(s.core.create_user(&i).await?))
}

async fn list_users(
    _: Admin,
    State(s): State<AppState>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<Page<UserView>>, ApiError> {
    Ok(Json(s.core.list_users(&p).await?))
}

async fn get_user(
    _: Admin,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(s.core.get_user(&id).await?))
}

async fn update_user(
    _: Admin,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(i): JsonBody<UserInput>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(s.core.update_user(&id, &i).await?))
}

async fn delete_user(
    _: Admin,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    s.core.delete_user(&id).await?;
    Ok(no_content())
}

async fn create_role(
    _: Admin,
    State(s): State<AppState>,
    JsonBody(i): JsonBody<RoleInput>,
) -> Result<Response, ApiError> {
    Ok(created(s.core.create_role(&i).await?))
}

async fn list_roles(
    _: Admin,
    State(s): State<AppState>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<Page<RoleView>>, ApiError> {
    Ok(Json(s.core.list_roles(&p).await?))
}

async fn get_role(
    _: Admin,
    State(s): State<AppState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<RoleView>, ApiError> {
    Ok(Json(s.core.get_role(&name).await?))
}

async fn update_role(
    _: Admin,
    State(s): State<AppState>,
    PathParams(name): PathParams<String>,
    JsonBody(i): JsonBody<RoleInput>,
) -> Result<Json<RoleView>, ApiError> {
    Ok(Json(s.core.update_role(&name, &i).await?))
}

async fn delete_role(
    _: Admin,
    State(s): State<AppState>,
    PathParams(name): PathParams<String>,
) -> Result<Response, ApiError> {
    s.core.delete_role(&name).await?;
    Ok(no_content())
}

async fn create_tenant(
    _: Admin,
    State(s): State<AppState>,
    JsonBody(i): JsonBody<TenantInput>,
) -> Result<Response, ApiError> {
    Ok(created(s.core.create_tenant(&i).await?))
}

async fn list_tenants(
    _: Admin,
    State(s): State<AppState>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<Page<TenantView>>, ApiError> {
    Ok(Json(s.core.list_tenants(&p).await?))
}

async fn get_tenant(
    _: Admin,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<TenantView>, ApiError> {
    Ok(Json(s.core.get_tenant(&id).await?))
}

async fn update_tenant(
    _: Admin,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(i): JsonBody<TenantInput>,
) -> Result<Json<TenantView>, ApiError> {
    Ok(Json(s.core.update_tenant(&id, &i).await?))
}

async fn delete_tenant(
    _: Admin,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    s.core.delete_tenant(&id).await?;
    Ok(no_content())
}
