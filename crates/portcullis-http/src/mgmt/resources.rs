//! Resource servers (MCP servers) Portcullis issues tokens for, and their RFC 9728 metadata.

use crate::openapi::services as doc;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use portcullis_core::manage::{ListParams, Page, ResourceInput, ResourceView};
use serde_json::Value;

use super::{created, no_content, record};
use crate::AppState;
use crate::auth::{Admin, need};
use crate::error::{ApiError, JsonBody, PathParams, QueryParams};
use crate::openapi::schemas::{ErrorBody, ProtectedResourceMetadata, ResourcePage};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/resources", get(list_resources).post(create_resource))
        .route(
            "/resources/{resource_id}",
            get(get_resource)
                .put(update_resource)
                .delete(delete_resource),
        )
        .route("/resources/{resource_id}/metadata", get(resource_metadata))
}

/// Register a resource server
///
/// Registers an MCP server (a resource server): its canonical URI is the audience of the tokens
/// Portcullis issues for it, and its scopes (its tools' scopes) are what clients may ask for;
/// `outbound.token.fetch` is always among them.
#[utoipa::path(
    post,
    path = "/v1/mgmt/resources",
    operation_id = "createResource",
    tag = "Resources",
    security(("adminKey" = ["clients"])),
    request_body(content = doc::ResourceInput, description = "The resource server."),
    responses(
        (status = 201, description = "The resource server was registered.", body = doc::ResourceView),
        (status = 400, description = "The resource is not valid (`invalid_request`, `invalid_id`, `invalid_resource_uri`, `invalid_scope`).", body = ErrorBody),
        (status = 409, description = "A resource with this id or URI exists (`already_exists`).", body = ErrorBody),
    )
)]
async fn create_resource(
    Admin(admin, _): Admin<need::Clients>,
    State(s): State<AppState>,
    JsonBody(i): JsonBody<ResourceInput>,
) -> Result<Response, ApiError> {
    let view = s.core.create_resource(&i).await?;
    let target = format!("resources/{}", view.id);
    record(
        &s,
        &admin,
        "resource.create",
        target,
        None::<()>,
        Some(&view),
    )
    .await;
    Ok(created(view))
}

/// List resource servers
///
/// Lists the registered resource servers, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/mgmt/resources",
    operation_id = "listResources",
    tag = "Resources",
    security(("adminKey" = ["read"]), ("adminKey" = ["clients"])),
    params(doc::ListParams),
    responses(
        (status = 200, description = "A page of resource servers.", body = ResourcePage),
    )
)]
async fn list_resources(
    _: Admin<need::ReadClients>,
    State(s): State<AppState>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<Page<ResourceView>>, ApiError> {
    Ok(Json(s.core.list_resources(&p).await?))
}

/// Read a resource server
///
/// Reads a resource server: its URI, name and scopes.
#[utoipa::path(
    get,
    path = "/v1/mgmt/resources/{resourceId}",
    operation_id = "getResource",
    tag = "Resources",
    security(("adminKey" = ["read"]), ("adminKey" = ["clients"])),
    params(("resourceId" = String, Path, description = "The resource server's id.")),
    responses(
        (status = 200, description = "The resource server.", body = doc::ResourceView),
        (status = 404, description = "No resource server has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn get_resource(
    _: Admin<need::ReadClients>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<ResourceView>, ApiError> {
    Ok(Json(s.core.get_resource(&id).await?))
}

/// Replace a resource server
///
/// Replaces a resource server's URI, name, description and scopes (its id stays).
#[utoipa::path(
    put,
    path = "/v1/mgmt/resources/{resourceId}",
    operation_id = "updateResource",
    tag = "Resources",
    security(("adminKey" = ["clients"])),
    params(("resourceId" = String, Path, description = "The resource server's id.")),
    request_body(content = doc::ResourceInput, description = "The resource server's new settings."),
    responses(
        (status = 200, description = "The resource server as stored.", body = doc::ResourceView),
        (status = 400, description = "The resource is not valid (`invalid_request`, `invalid_resource_uri`, `invalid_scope`).", body = ErrorBody),
        (status = 404, description = "No resource server has this id (`not_found`).", body = ErrorBody),
        (status = 409, description = "Another resource server has this URI (`already_exists`).", body = ErrorBody),
    )
)]
async fn update_resource(
    Admin(admin, _): Admin<need::Clients>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(i): JsonBody<ResourceInput>,
) -> Result<Json<ResourceView>, ApiError> {
    let before = s.core.get_resource(&id).await.ok();
    let view = s.core.update_resource(&id, &i).await?;
    let target = format!("resources/{id}");
    record(&s, &admin, "resource.update", target, before, Some(&view)).await;
    Ok(Json(view))
}

/// Delete a resource server
///
/// Deletes a resource server: no token is issued for it any more.
#[utoipa::path(
    delete,
    path = "/v1/mgmt/resources/{resourceId}",
    operation_id = "deleteResource",
    tag = "Resources",
    security(("adminKey" = ["clients"])),
    params(("resourceId" = String, Path, description = "The resource server's id.")),
    responses(
        (status = 204, description = "The resource server is deleted."),
        (status = 404, description = "No resource server has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn delete_resource(
    Admin(admin, _): Admin<need::Clients>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    let before = s.core.get_resource(&id).await.ok();
    s.core.delete_resource(&id).await?;
    let target = format!("resources/{id}");
    record(&s, &admin, "resource.delete", target, before, None::<()>).await;
    Ok(no_content())
}

/// A resource server's protected resource metadata (RFC 9728)
///
/// The document the MCP server serves (or proxies) at its `/.well-known/oauth-protected-resource`
/// path: its canonical URI, Portcullis as its authorization server, its scopes.
#[utoipa::path(
    get,
    path = "/v1/mgmt/resources/{resourceId}/metadata",
    operation_id = "getResourceMetadata",
    tag = "Resources",
    security(("adminKey" = ["read"]), ("adminKey" = ["clients"])),
    params(("resourceId" = String, Path, description = "The resource server's id.")),
    responses(
        (status = 200, description = "The metadata.", body = ProtectedResourceMetadata),
        (status = 404, description = "No resource server has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn resource_metadata(
    _: Admin<need::ReadClients>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(s.core.resource_metadata(&id).await?))
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    create_resource,
    list_resources,
    get_resource,
    update_resource,
    delete_resource,
    resource_metadata
))]
pub(super) struct Doc;
