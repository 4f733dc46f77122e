//! Users, roles and tenants.

use crate::openapi::services as doc;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use portcullis_core::manage::{
    ListParams, Page, RoleInput, RoleView, TenantInput, TenantView, UserInput, UserView,
};

use super::{created, no_content, record};
use crate::AppState;
use crate::auth::{Admin, need};
use crate::error::{ApiError, JsonBody, PathParams, QueryParams};
use crate::openapi::schemas::{ErrorBody, RolePage, TenantPage, UserPage};

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

/// Add a user
///
/// Adds a user to the directory. A registered user's roles (and tenant roles) come from here, live,
/// rather than from the inbound token's roles claim; a disabled user gets no outbound token.
#[utoipa::path(
    post,
    path = "/v1/mgmt/users",
    operation_id = "createUser",
    tag = "Users",
    security(("adminKey" = ["directory"])),
    request_body(content = doc::UserInput, description = "The user."),
    responses(
        (status = 201, description = "The user was added.", body = doc::UserView),
        (status = 400, description = "The user is not valid (`invalid_request`, `invalid_id`).", body = ErrorBody),
        (status = 409, description = "A user with this id or email exists (`already_exists`), or the user names a role or tenant that does not exist (`unknown_reference`; `details` names it).", body = ErrorBody),
    )
)]
async fn create_user(
    Admin(admin, _): Admin<need::Directory>,
    State(s): State<AppState>,
    JsonBody(i): JsonBody<UserInput>,
) -> Result<Response, ApiError> {
    let view = s.core.create_user(&i).await?;
    let target = format!("users/{}", view.id);
    record(&s, &admin, "user.create", target, None::<()>, Some(&view)).await;
    Ok(created(view))
}

/// List users
///
/// Lists the directory's users by id, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/mgmt/users",
    operation_id = "listUsers",
    tag = "Users",
    security(("adminKey" = ["read"]), ("adminKey" = ["directory"])),
    params(doc::ListParams),
    responses(
        (status = 200, description = "A page of users.", body = UserPage),
    )
)]
async fn list_users(
    _: Admin<need::ReadDirectory>,
    State(s): State<AppState>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<Page<UserView>>, ApiError> {
    Ok(Json(s.core.list_users(&p).await?))
}

/// Read a user
///
/// Reads a user of the directory.
#[utoipa::path(
    get,
    path = "/v1/mgmt/users/{userId}",
    operation_id = "getUser",
    tag = "Users",
    security(("adminKey" = ["read"]), ("adminKey" = ["directory"])),
    params(("userId" = String, Path, description = "The user's id (for users of an external issuer, their `sub`).")),
    responses(
        (status = 200, description = "The user.", body = doc::UserView),
        (status = 404, description = "No user has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn get_user(
    _: Admin<need::ReadDirectory>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(s.core.get_user(&id).await?))
}

/// Replace a user
///
/// Replaces a user (the id cannot change). New roles take effect on the user's very next token
/// request, on every node.
#[utoipa::path(
    put,
    path = "/v1/mgmt/users/{userId}",
    operation_id = "updateUser",
    tag = "Users",
    security(("adminKey" = ["directory"])),
    params(("userId" = String, Path, description = "The user's id (for users of an external issuer, their `sub`).")),
    request_body(content = doc::UserInput, description = "The user's new record."),
    responses(
        (status = 200, description = "The user as stored.", body = doc::UserView),
        (status = 400, description = "The user is not valid, or tries to change the id (`invalid_request`).", body = ErrorBody),
        (status = 404, description = "No user has this id (`not_found`).", body = ErrorBody),
        (status = 409, description = "Another user has this email (`already_exists`), or the user names a role or tenant that does not exist (`unknown_reference`; `details` names it).", body = ErrorBody),
    )
)]
async fn update_user(
    Admin(admin, _): Admin<need::Directory>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(i): JsonBody<UserInput>,
) -> Result<Json<UserView>, ApiError> {
    let before = s.core.get_user(&id).await.ok();
    let view = s.core.update_user(&id, &i).await?;
    let target = format!("users/{id}");
    record(&s, &admin, "user.update", target, before, Some(&view)).await;
    Ok(Json(view))
}

/// Delete a user
///
/// Deletes a user and the user's connections (without revoking them at the providers: revoke
/// them first with `DELETE /v1/mgmt/users/{userId}/connections` to end them there).
#[utoipa::path(
    delete,
    path = "/v1/mgmt/users/{userId}",
    operation_id = "deleteUser",
    tag = "Users",
    security(("adminKey" = ["directory"])),
    params(("userId" = String, Path, description = "The user's id (for users of an external issuer, their `sub`).")),
    responses(
        (status = 204, description = "The user is deleted."),
        (status = 404, description = "No user has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn delete_user(
    Admin(admin, _): Admin<need::Directory>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    let before = s.core.get_user(&id).await.ok();
    s.core.delete_user(&id).await?;
    let target = format!("users/{id}");
    record(&s, &admin, "user.delete", target, before, None::<()>).await;
    Ok(no_content())
}

/// Add a role
///
/// Adds a role that users may hold and policies may name.
#[utoipa::path(
    post,
    path = "/v1/mgmt/roles",
    operation_id = "createRole",
    tag = "Roles",
    security(("adminKey" = ["directory"])),
    request_body(content = doc::RoleInput, description = "The role."),
    responses(
        (status = 201, description = "The role was added.", body = doc::RoleView),
        (status = 400, description = "The role is not valid (`invalid_request`, `invalid_id`).", body = ErrorBody),
        (status = 409, description = "A role with this name exists (`already_exists`).", body = ErrorBody),
    )
)]
async fn create_role(
    Admin(admin, _): Admin<need::Directory>,
    State(s): State<AppState>,
    JsonBody(i): JsonBody<RoleInput>,
) -> Result<Response, ApiError> {
    let view = s.core.create_role(&i).await?;
    let target = format!("roles/{}", view.name);
    record(&s, &admin, "role.create", target, None::<()>, Some(&view)).await;
    Ok(created(view))
}

/// List roles
///
/// Lists the roles by name, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/mgmt/roles",
    operation_id = "listRoles",
    tag = "Roles",
    security(("adminKey" = ["read"]), ("adminKey" = ["directory"])),
    params(doc::ListParams),
    responses(
        (status = 200, description = "A page of roles.", body = RolePage),
    )
)]
async fn list_roles(
    _: Admin<need::ReadDirectory>,
    State(s): State<AppState>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<Page<RoleView>>, ApiError> {
    Ok(Json(s.core.list_roles(&p).await?))
}

/// Read a role
///
/// Reads a role.
#[utoipa::path(
    get,
    path = "/v1/mgmt/roles/{name}",
    operation_id = "getRole",
    tag = "Roles",
    security(("adminKey" = ["read"]), ("adminKey" = ["directory"])),
    params(("name" = String, Path, description = "The role's name.")),
    responses(
        (status = 200, description = "The role.", body = doc::RoleView),
        (status = 404, description = "No role has this name (`not_found`).", body = ErrorBody),
    )
)]
async fn get_role(
    _: Admin<need::ReadDirectory>,
    State(s): State<AppState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<RoleView>, ApiError> {
    Ok(Json(s.core.get_role(&name).await?))
}

/// Replace a role's description
///
/// Replaces a role's description (the name cannot change).
#[utoipa::path(
    put,
    path = "/v1/mgmt/roles/{name}",
    operation_id = "updateRole",
    tag = "Roles",
    security(("adminKey" = ["directory"])),
    params(("name" = String, Path, description = "The role's name.")),
    request_body(content = doc::RoleInput, description = "The role's new description."),
    responses(
        (status = 200, description = "The role as stored.", body = doc::RoleView),
        (status = 400, description = "The description is not valid, or the body tries to change the name (`invalid_request`).", body = ErrorBody),
        (status = 404, description = "No role has this name (`not_found`).", body = ErrorBody),
    )
)]
async fn update_role(
    Admin(admin, _): Admin<need::Directory>,
    State(s): State<AppState>,
    PathParams(name): PathParams<String>,
    JsonBody(i): JsonBody<RoleInput>,
) -> Result<Json<RoleView>, ApiError> {
    let before = s.core.get_role(&name).await.ok();
    let view = s.core.update_role(&name, &i).await?;
    let target = format!("roles/{name}");
    record(&s, &admin, "role.update", target, before, Some(&view)).await;
    Ok(Json(view))
}

/// Delete a role
///
/// Deletes a role that no user holds.
#[utoipa::path(
    delete,
    path = "/v1/mgmt/roles/{name}",
    operation_id = "deleteRole",
    tag = "Roles",
    security(("adminKey" = ["directory"])),
    params(("name" = String, Path, description = "The role's name.")),
    responses(
        (status = 204, description = "The role is deleted."),
        (status = 404, description = "No role has this name (`not_found`).", body = ErrorBody),
        (status = 409, description = "A user still holds the role (`role_in_use`).", body = ErrorBody),
    )
)]
async fn delete_role(
    Admin(admin, _): Admin<need::Directory>,
    State(s): State<AppState>,
    PathParams(name): PathParams<String>,
) -> Result<Response, ApiError> {
    let before = s.core.get_role(&name).await.ok();
    s.core.delete_role(&name).await?;
    let target = format!("roles/{name}");
    record(&s, &admin, "role.delete", target, before, None::<()>).await;
    Ok(no_content())
}

/// Add a tenant
///
/// Adds a tenant (an organization). Users become members through their `tenants` list; a tenant
/// can also own a shared connection to an app.
#[utoipa::path(
    post,
    path = "/v1/mgmt/tenants",
    operation_id = "createTenant",
    tag = "Tenants",
    security(("adminKey" = ["directory"])),
    request_body(content = doc::TenantInput, description = "The tenant."),
    responses(
        (status = 201, description = "The tenant was added.", body = doc::TenantView),
        (status = 400, description = "The tenant is not valid (`invalid_request`, `invalid_id`).", body = ErrorBody),
        (status = 409, description = "A tenant with this id exists (`already_exists`).", body = ErrorBody),
    )
)]
async fn create_tenant(
    Admin(admin, _): Admin<need::Directory>,
    State(s): State<AppState>,
    JsonBody(i): JsonBody<TenantInput>,
) -> Result<Response, ApiError> {
    let view = s.core.create_tenant(&i).await?;
    let target = format!("tenants/{}", view.id);
    record(&s, &admin, "tenant.create", target, None::<()>, Some(&view)).await;
    Ok(created(view))
}

/// List tenants
///
/// Lists the tenants by id, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/mgmt/tenants",
    operation_id = "listTenants",
    tag = "Tenants",
    security(("adminKey" = ["read"]), ("adminKey" = ["directory"])),
    params(doc::ListParams),
    responses(
        (status = 200, description = "A page of tenants.", body = TenantPage),
    )
)]
async fn list_tenants(
    _: Admin<need::ReadDirectory>,
    State(s): State<AppState>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<Page<TenantView>>, ApiError> {
    Ok(Json(s.core.list_tenants(&p).await?))
}

/// Read a tenant
///
/// Reads a tenant.
#[utoipa::path(
    get,
    path = "/v1/mgmt/tenants/{tenantId}",
    operation_id = "getTenant",
    tag = "Tenants",
    security(("adminKey" = ["read"]), ("adminKey" = ["directory"])),
    params(("tenantId" = String, Path, description = "The tenant's id.")),
    responses(
        (status = 200, description = "The tenant.", body = doc::TenantView),
        (status = 404, description = "No tenant has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn get_tenant(
    _: Admin<need::ReadDirectory>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<TenantView>, ApiError> {
    Ok(Json(s.core.get_tenant(&id).await?))
}

/// Replace a tenant
///
/// Replaces a tenant's name and attributes (the id cannot change).
#[utoipa::path(
    put,
    path = "/v1/mgmt/tenants/{tenantId}",
    operation_id = "updateTenant",
    tag = "Tenants",
    security(("adminKey" = ["directory"])),
    params(("tenantId" = String, Path, description = "The tenant's id.")),
    request_body(content = doc::TenantInput, description = "The tenant's new record."),
    responses(
        (status = 200, description = "The tenant as stored.", body = doc::TenantView),
        (status = 400, description = "The tenant is not valid, or the body tries to change the id (`invalid_request`).", body = ErrorBody),
        (status = 404, description = "No tenant has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn update_tenant(
    Admin(admin, _): Admin<need::Directory>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(i): JsonBody<TenantInput>,
) -> Result<Json<TenantView>, ApiError> {
    let before = s.core.get_tenant(&id).await.ok();
    let view = s.core.update_tenant(&id, &i).await?;
    let target = format!("tenants/{id}");
    record(&s, &admin, "tenant.update", target, before, Some(&view)).await;
    Ok(Json(view))
}

/// Delete a tenant
///
/// Deletes a tenant with its memberships and its connections.
#[utoipa::path(
    delete,
    path = "/v1/mgmt/tenants/{tenantId}",
    operation_id = "deleteTenant",
    tag = "Tenants",
    security(("adminKey" = ["directory"])),
    params(("tenantId" = String, Path, description = "The tenant's id.")),
    responses(
        (status = 204, description = "The tenant is deleted."),
        (status = 404, description = "No tenant has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn delete_tenant(
    Admin(admin, _): Admin<need::Directory>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    let before = s.core.get_tenant(&id).await.ok();
    s.core.delete_tenant(&id).await?;
    let target = format!("tenants/{id}");
    record(&s, &admin, "tenant.delete", target, before, None::<()>).await;
    Ok(no_content())
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_users,
    create_user,
    get_user,
    update_user,
    delete_user,
    list_roles,
    create_role,
    get_role,
    update_role,
    delete_role,
    list_tenants,
    create_tenant,
    get_tenant,
    update_tenant,
    delete_tenant
))]
pub(super) struct Doc;
