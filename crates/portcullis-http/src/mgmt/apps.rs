//! Outbound apps and their access control policies.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use portcullis_core::manage::{AppInput, AppView, ListParams, Page, PolicyView};
use serde_json::Value;

use super::{created, no_content};
use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, JsonBody, PathParams, QueryParams};

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
            "/outbound-apps/{app_id}/policies/{policy_id}",
            get(get_policy).put(update_policy).delete(delete_policy),
        )
}

async fn create_app(
    _: Admin,
    State(s): State<AppState>,
    JsonBody(input): JsonBody<AppInput>,
) -> Result<Response, ApiError> {
    Ok(created(s.core.create_app(&input).await?))
}

async fn list_apps(
    _: Admin,
    State(s): State<AppState>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<Page<AppView>>, ApiError> {
    Ok(Json(s.core.list_apps(&p).await?))
}

async fn get_app(
    _: Admin,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<AppView>, ApiError> {
    Ok(Json(s.core.get_app(&id).await?))
}

async fn update_app(
    _: Admin,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(input): JsonBody<AppInput>,
) -> Result<Json<AppView>, ApiError> {
    Ok(Json(s.core.update_app(&id, &input).await?))
}

async fn delete_app(
    _: Admin,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    s.core.delete_app(&id).await?;
    Ok(no_content())
}

async fn create_policy(
    _: Admin,
    State(s): State<AppState>,
    PathParams(app_id): PathParams<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    Ok(created(s.core.create_policy(&app_id, &body).await?))
}

async fn list_policies(
    _: Admin,
    State(s): State<AppState>,
    PathParams(app_id): PathParams<String>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<Page<PolicyView>>, ApiError> {
    Ok(Json(s.core.list_policies(&app_id, &p).await?))
}

async fn get_policy(
    _: Admin,
    State(s): State<AppState>,
    PathParams((app_id, id)): PathParams<(String, String)>,
) -> Result<Json<PolicyView>, ApiError> {
    Ok(Json(s.core.get_policy(&app_id, &id).await?))
}

async fn update_policy(
    _: Admin,
    State(s): State<AppState>,
    PathParams((app_id, id)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<PolicyView>, ApiError> {
    Ok(Json(s.core.update_policy(&app_id, &id, &body).await?))
}

async fn delete_policy(
    _: Admin,
    State(s): State<AppState>,
    PathParams((app_id, id)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    s.core.delete_policy(&app_id, &id).await?;
    Ok(no_content())
}
