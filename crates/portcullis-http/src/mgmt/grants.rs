//! What users granted Portcullis's own authorization server: their passwords (set by an admin)
//! and the consents they remembered (listed and revoked by an admin).

use crate::openapi::services as doc;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, put};
use axum::{Json, Router};
use portcullis_core::authz::{ConsentList, PasswordInput};
use serde::Deserialize;

use super::{no_content, record};
use crate::AppState;
use crate::auth::{Admin, need};
use crate::error::{ApiError, JsonBody, PathParams, QueryParams};
use crate::openapi::schemas::ErrorBody;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/users/{user_id}/password", put(set_password))
        .route(
            "/users/{user_id}/consents",
            get(list_consents).delete(revoke_consents),
        )
}

/// Set a user's password
///
/// Sets the password a user signs in with at Portcullis's authorization server (8 to 256
/// characters; stored as an argon2id hash). Clears any lockout. The management audit records
/// that it was set, never the password.
#[utoipa::path(
    put,
    path = "/v1/mgmt/users/{userId}/password",
    operation_id = "setUserPassword",
    tag = "Users",
    security(("adminKey" = ["directory"])),
    params(("userId" = String, Path, description = "The user's id.")),
    request_body = doc::PasswordInput,
    responses(
        (status = 204, description = "The password is set."),
        (status = 400, description = "The password is too short or too long (`invalid_password`), or the body is malformed.", body = ErrorBody),
        (status = 404, description = "No user has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn set_password(
    Admin(admin, _): Admin<need::Directory>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(i): JsonBody<PasswordInput>,
) -> Result<Response, ApiError> {
    s.core.set_password(&id, &i.password).await?;
    let target = format!("users/{id}/password");
    record(
        &s,
        &admin,
        "user.password.set",
        target,
        None::<()>,
        None::<()>,
    )
    .await;
    Ok(no_content())
}

/// List a user's consents
///
/// The consents a user remembered at Portcullis's authorization server: which client, for which
/// resource, which scopes.
#[utoipa::path(
    get,
    path = "/v1/mgmt/users/{userId}/consents",
    operation_id = "listUserConsents",
    tag = "Users",
    security(("adminKey" = ["read"]), ("adminKey" = ["directory"])),
    params(("userId" = String, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "The consents.", body = doc::ConsentList),
        (status = 404, description = "No user has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn list_consents(
    _: Admin<need::ReadDirectory>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<ConsentList>, ApiError> {
    Ok(Json(s.core.list_consents(&id).await?))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConsentQuery {
    client_id: Option<String>,
}

/// Revoke a user's consents
///
/// Forgets the consents a user gave one client (`clientId`), or every client, and revokes the
/// refresh tokens of those grants: the client must ask again, and the user sees the consent
/// screen again.
#[utoipa::path(
    delete,
    path = "/v1/mgmt/users/{userId}/consents",
    operation_id = "revokeUserConsents",
    tag = "Users",
    security(("adminKey" = ["directory"])),
    params(("userId" = String, Path, description = "The user's id."), doc::ConsentParams),
    responses(
        (status = 204, description = "Revoked (or nothing to revoke)."),
        (status = 404, description = "No user has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn revoke_consents(
    Admin(admin, _): Admin<need::Directory>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    QueryParams(q): QueryParams<ConsentQuery>,
) -> Result<Response, ApiError> {
    s.core.revoke_consents(&id, q.client_id.as_deref()).await?;
    let target = match &q.client_id {
        Some(c) => format!("users/{id}/consents/{c}"),
        None => format!("users/{id}/consents"),
    };
    record(
        &s,
        &admin,
        "user.consents.revoke",
        target,
        None::<()>,
        None::<()>,
    )
    .await;
    Ok(no_content())
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(set_password, list_consents, revoke_consents))]
pub(crate) struct Doc;
