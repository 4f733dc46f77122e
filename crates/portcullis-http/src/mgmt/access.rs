//! Who may call: admin keys, trusted issuers, OAuth clients; and the data keys sealing secrets.

use crate::openapi::services as doc;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use portcullis_core::SigningKeyView;
use portcullis_core::admin::{AdminKeyInfo, AdminKeyInput};
use portcullis_core::manage::{
    ClientInput, ClientView, IssuerInput, IssuerView, KeyStatus, ListParams, Page,
};

use super::{created, no_content, record};
use crate::AppState;
use crate::auth::{Admin, need};
use crate::error::{ApiError, JsonBody, PathParams, QueryParams};
use crate::openapi::schemas::{AdminKeyPage, ClientPage, ErrorBody, IssuerPage};
use serde_json::json;

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
        .route("/signing-keys", get(list_signing_keys))
        .route("/signing-keys/rotate", post(rotate_signing_key))
}

/// Create an admin key
///
/// Creates an admin key. The key is in this answer and nowhere else, ever: store it now. Give each
/// automation its own key, with an expiry, so that one can be revoked without the others.
#[utoipa::path(
    post,
    path = "/v1/mgmt/admin-keys",
    operation_id = "createAdminKey",
    tag = "Admin keys",
    security(("adminKey" = ["admin"])),
    request_body(content = doc::AdminKeyInput, description = "What the key is for, and when it expires."),
    responses(
        (status = 201, description = "The key was created.", body = doc::NewAdminKey),
        (status = 400, description = "The name is empty or too long, or the expiry is in the past (`invalid_request`).", body = ErrorBody),
    )
)]
async fn create_admin_key(
    Admin(admin, _): Admin<need::AdminKeys>,
    State(s): State<AppState>,
    JsonBody(i): JsonBody<AdminKeyInput>,
) -> Result<Response, ApiError> {
    let new = s.core.create_admin_key(&i).await?;
    let target = format!("admin-keys/{}", new.info.id);
    record(
        &s,
        &admin,
        "admin_key.create",
        target,
        None::<()>,
        Some(&new.info),
    )
    .await;
    Ok(created(new))
}

/// List admin keys
///
/// Lists the admin keys' metadata, a page at a time (never a key: only its hash is stored).
#[utoipa::path(
    get,
    path = "/v1/mgmt/admin-keys",
    operation_id = "listAdminKeys",
    tag = "Admin keys",
    security(("adminKey" = ["admin"])),
    params(doc::ListParams),
    responses(
        (status = 200, description = "A page of admin keys.", body = AdminKeyPage),
    )
)]
async fn list_admin_keys(
    _: Admin<need::AdminKeys>,
    State(s): State<AppState>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<Page<AdminKeyInfo>>, ApiError> {
    let (page, limit) = p.page_request()?;
    let rows = s.core.list_admin_keys(&page).await?;
    Ok(Json(Page::from_rows(rows, limit, |k| k.id.clone())))
}

/// Delete an admin key
///
/// Deletes an admin key: it stops working on every node at once. A key cannot delete itself, so
/// that the last key cannot be lost by mistake.
#[utoipa::path(
    delete,
    path = "/v1/mgmt/admin-keys/{keyId}",
    operation_id = "deleteAdminKey",
    tag = "Admin keys",
    security(("adminKey" = ["admin"])),
    params(("keyId" = String, Path, description = "The admin key's id.")),
    responses(
        (status = 204, description = "The key is deleted."),
        (status = 404, description = "No admin key has this id (`not_found`).", body = ErrorBody),
        (status = 409, description = "The key named is the one making the call (`cannot_delete_own_key`).", body = ErrorBody),
    )
)]
async fn delete_admin_key(
    Admin(me, _): Admin<need::AdminKeys>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    if me.actor_id == id {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "cannot_delete_own_key",
            "an admin key cannot delete itself; use another key",
        ));
    }
    s.core.delete_admin_key(&id).await?;
    let target = format!("admin-keys/{id}");
    record(&s, &me, "admin_key.delete", target, None::<()>, None::<()>).await;
    Ok(no_content())
}

/// Trust an issuer
///
/// Adds a trusted issuer of inbound tokens: its `iss`, where its keys are (a JWKS URL, or an
/// OpenID Connect discovery URL), the audiences accepted, and which claims carry roles and tenants.
/// Its tokens are accepted from the next request on.
#[utoipa::path(
    post,
    path = "/v1/mgmt/issuers",
    operation_id = "createIssuer",
    tag = "Issuers",
    security(("adminKey" = ["issuers"])),
    request_body(content = doc::IssuerInput, description = "The issuer."),
    responses(
        (status = 201, description = "The issuer is trusted.", body = doc::IssuerView),
        (status = 400, description = "The issuer is not valid: a malformed URL, no audience, an unknown algorithm (`invalid_issuer`, `invalid_request`).", body = ErrorBody),
        (status = 409, description = "This issuer is already trusted, here or in the configuration file (`already_exists`).", body = ErrorBody),
    )
)]
async fn create_issuer(
    Admin(admin, _): Admin<need::Issuers>,
    State(s): State<AppState>,
    JsonBody(i): JsonBody<IssuerInput>,
) -> Result<Response, ApiError> {
    let view = s.core.create_issuer(&i).await?;
    let target = format!("issuers/{}", view.id);
    record(&s, &admin, "issuer.create", target, None::<()>, Some(&view)).await;
    Ok(created(view))
}

/// List trusted issuers
///
/// Lists the issuers whose tokens are accepted as inbound tokens, by id: those of the
/// configuration file (`source: config`, read-only) and those added through the API
/// (`source: api`).
#[utoipa::path(
    get,
    path = "/v1/mgmt/issuers",
    operation_id = "listIssuers",
    tag = "Issuers",
    security(("adminKey" = ["read"]), ("adminKey" = ["issuers"])),
    params(doc::ListParams),
    responses(
        (status = 200, description = "A page of trusted issuers.", body = IssuerPage),
    )
)]
async fn list_issuers(
    _: Admin<need::ReadIssuers>,
    State(s): State<AppState>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<Page<IssuerView>>, ApiError> {
    Ok(Json(s.core.list_issuers(&p).await?))
}

/// Read a trusted issuer
///
/// Reads an issuer added through the API.
#[utoipa::path(
    get,
    path = "/v1/mgmt/issuers/{issuerId}",
    operation_id = "getIssuer",
    tag = "Issuers",
    security(("adminKey" = ["read"]), ("adminKey" = ["issuers"])),
    params(("issuerId" = String, Path, description = "The issuer's id (as listed; issuers from the configuration file cannot be read or changed here).")),
    responses(
        (status = 200, description = "The issuer.", body = doc::IssuerView),
        (status = 404, description = "No issuer added through the API has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn get_issuer(
    _: Admin<need::ReadIssuers>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<IssuerView>, ApiError> {
    Ok(Json(s.core.get_issuer(&id).await?))
}

/// Replace a trusted issuer
///
/// Replaces an issuer added through the API; the change applies from the next request on.
#[utoipa::path(
    put,
    path = "/v1/mgmt/issuers/{issuerId}",
    operation_id = "updateIssuer",
    tag = "Issuers",
    security(("adminKey" = ["issuers"])),
    params(("issuerId" = String, Path, description = "The issuer's id (as listed; issuers from the configuration file cannot be read or changed here).")),
    request_body(content = doc::IssuerInput, description = "The issuer's new settings."),
    responses(
        (status = 200, description = "The issuer as stored.", body = doc::IssuerView),
        (status = 400, description = "The issuer is not valid (`invalid_issuer`, `invalid_request`).", body = ErrorBody),
        (status = 404, description = "No issuer added through the API has this id (`not_found`).", body = ErrorBody),
        (status = 409, description = "The new `issuer` is already trusted, here or in the configuration file (`already_exists`).", body = ErrorBody),
    )
)]
async fn update_issuer(
    Admin(admin, _): Admin<need::Issuers>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(i): JsonBody<IssuerInput>,
) -> Result<Json<IssuerView>, ApiError> {
    let before = s.core.get_issuer(&id).await.ok();
    let view = s.core.update_issuer(&id, &i).await?;
    let target = format!("issuers/{id}");
    record(&s, &admin, "issuer.update", target, before, Some(&view)).await;
    Ok(Json(view))
}

/// Stop trusting an issuer
///
/// Removes an issuer added through the API: its tokens are refused from the next request on.
#[utoipa::path(
    delete,
    path = "/v1/mgmt/issuers/{issuerId}",
    operation_id = "deleteIssuer",
    tag = "Issuers",
    security(("adminKey" = ["issuers"])),
    params(("issuerId" = String, Path, description = "The issuer's id (as listed; issuers from the configuration file cannot be read or changed here).")),
    responses(
        (status = 204, description = "The issuer is removed."),
        (status = 404, description = "No issuer added through the API has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn delete_issuer(
    Admin(admin, _): Admin<need::Issuers>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    let before = s.core.get_issuer(&id).await.ok();
    s.core.delete_issuer(&id).await?;
    let target = format!("issuers/{id}");
    record(&s, &admin, "issuer.delete", target, before, None::<()>).await;
    Ok(no_content())
}

/// Register an OAuth client
///
/// Registers a confidential client for token exchange (`/oauth2/token`), optionally limited to
/// some outbound apps. Its secret is in this answer and nowhere else, ever: store it now.
#[utoipa::path(
    post,
    path = "/v1/mgmt/clients",
    operation_id = "createClient",
    tag = "Clients",
    security(("adminKey" = ["clients"])),
    request_body(content = doc::ClientInput, description = "The client."),
    responses(
        (status = 201, description = "The client was registered, with its secret.", body = doc::NewClient),
        (status = 400, description = "The client is not valid (`invalid_request`, `invalid_id`).", body = ErrorBody),
        (status = 409, description = "A client with this id exists (`already_exists`).", body = ErrorBody),
    )
)]
async fn create_client(
    Admin(admin, _): Admin<need::Clients>,
    State(s): State<AppState>,
    JsonBody(i): JsonBody<ClientInput>,
) -> Result<Response, ApiError> {
    let new = s.core.create_client(&i).await?;
    let target = format!("clients/{}", new.client.id);
    record(
        &s,
        &admin,
        "client.create",
        target,
        None::<()>,
        Some(&new.client),
    )
    .await;
    Ok(created(new))
}

/// List OAuth clients
///
/// Lists the confidential clients allowed to use token exchange, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/mgmt/clients",
    operation_id = "listClients",
    tag = "Clients",
    security(("adminKey" = ["read"]), ("adminKey" = ["clients"])),
    params(doc::ListParams),
    responses(
        (status = 200, description = "A page of clients.", body = ClientPage),
    )
)]
async fn list_clients(
    _: Admin<need::ReadClients>,
    State(s): State<AppState>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<Page<ClientView>>, ApiError> {
    Ok(Json(s.core.list_clients(&p).await?))
}

/// Read an OAuth client
///
/// Reads a client (never its secret).
#[utoipa::path(
    get,
    path = "/v1/mgmt/clients/{clientId}",
    operation_id = "getClient",
    tag = "Clients",
    security(("adminKey" = ["read"]), ("adminKey" = ["clients"])),
    params(("clientId" = String, Path, description = "The client's `client_id`.")),
    responses(
        (status = 200, description = "The client.", body = doc::ClientView),
        (status = 404, description = "No client has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn get_client(
    _: Admin<need::ReadClients>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<ClientView>, ApiError> {
    Ok(Json(s.core.get_client(&id).await?))
}

/// Replace an OAuth client
///
/// Replaces a client's name and allowed apps (its id and secret stay).
#[utoipa::path(
    put,
    path = "/v1/mgmt/clients/{clientId}",
    operation_id = "updateClient",
    tag = "Clients",
    security(("adminKey" = ["clients"])),
    params(("clientId" = String, Path, description = "The client's `client_id`.")),
    request_body(content = doc::ClientInput, description = "The client's new settings."),
    responses(
        (status = 200, description = "The client as stored.", body = doc::ClientView),
        (status = 400, description = "The client is not valid (`invalid_request`, `invalid_id`).", body = ErrorBody),
        (status = 404, description = "No client has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn update_client(
    Admin(admin, _): Admin<need::Clients>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(i): JsonBody<ClientInput>,
) -> Result<Json<ClientView>, ApiError> {
    let before = s.core.get_client(&id).await.ok();
    let view = s.core.update_client(&id, &i).await?;
    let target = format!("clients/{id}");
    record(&s, &admin, "client.update", target, before, Some(&view)).await;
    Ok(Json(view))
}

/// Rotate a client's secret
///
/// Issues a new secret for a client; the old one stops working at once. The new secret is in this
/// answer and nowhere else, ever.
#[utoipa::path(
    post,
    path = "/v1/mgmt/clients/{clientId}/secret",
    operation_id = "rotateClientSecret",
    tag = "Clients",
    security(("adminKey" = ["clients"])),
    params(("clientId" = String, Path, description = "The client's `client_id`.")),
    responses(
        (status = 201, description = "The client with its new secret.", body = doc::NewClient),
        (status = 404, description = "No client has this id (`not_found`).", body = ErrorBody),
        (status = 409, description = "The client is public: it has no secret (`public_client`).", body = ErrorBody),
    )
)]
async fn rotate_client_secret(
    Admin(admin, _): Admin<need::Clients>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    let new = s.core.rotate_client_secret(&id).await?;
    let target = format!("clients/{id}");
    let what = Some(json!({ "secret": "rotated" }));
    record(&s, &admin, "client.rotate_secret", target, None::<()>, what).await;
    Ok(created(new))
}

/// Delete an OAuth client
///
/// Deletes a client: its token exchanges are refused from the next request on.
#[utoipa::path(
    delete,
    path = "/v1/mgmt/clients/{clientId}",
    operation_id = "deleteClient",
    tag = "Clients",
    security(("adminKey" = ["clients"])),
    params(("clientId" = String, Path, description = "The client's `client_id`.")),
    responses(
        (status = 204, description = "The client is deleted."),
        (status = 404, description = "No client has this id (`not_found`).", body = ErrorBody),
    )
)]
async fn delete_client(
    Admin(admin, _): Admin<need::Clients>,
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    let before = s.core.get_client(&id).await.ok();
    s.core.delete_client(&id).await?;
    let target = format!("clients/{id}");
    record(&s, &admin, "client.delete", target, before, None::<()>).await;
    Ok(no_content())
}

/// Read the key ring
///
/// Lists the data keys that seal secrets at rest (each wrapped by a master key), which one is
/// active, and the state of the last re-encryption started on this node.
#[utoipa::path(
    get,
    path = "/v1/mgmt/keys",
    operation_id = "getKeyStatus",
    tag = "Keys",
    security(("adminKey" = ["read"]), ("adminKey" = ["keys"])),
    responses(
        (status = 200, description = "The key ring.", body = doc::KeyStatus),
    )
)]
async fn key_status(
    _: Admin<need::ReadKeys>,
    State(s): State<AppState>,
) -> Result<Json<KeyStatus>, ApiError> {
    Ok(Json(s.core.key_status().await?))
}

/// Rotate the data key
///
/// Adds a data key and makes it active, then re-encrypts every stored secret under it in the
/// background. Secrets under older keys stay readable throughout; follow the progress in
/// `reencryption`.
#[utoipa::path(
    post,
    path = "/v1/mgmt/keys/rotate",
    operation_id = "rotateKeys",
    tag = "Keys",
    security(("adminKey" = ["keys"])),
    responses(
        (status = 200, description = "The key ring, with the re-encryption running.", body = doc::KeyStatus),
        (status = 409, description = "Another rotation is under way (`rotation_contended`); try again shortly.", body = ErrorBody),
    )
)]
async fn rotate_keys(
    Admin(admin, _): Admin<need::Keys>,
    State(s): State<AppState>,
) -> Result<Json<KeyStatus>, ApiError> {
    let status = s.core.rotate_keys().await?;
    let after = Some(json!({ "activeKeyId": status.active_key_id }));
    record(
        &s,
        &admin,
        "data_key.rotate",
        "keys".into(),
        None::<()>,
        after,
    )
    .await;
    Ok(Json(status))
}

/// List the token-signing keys
///
/// Portcullis's own token-signing keys, oldest first: the `active` one signs; a `retired` one
/// stays in the published JWK set (`/.well-known/jwks.json`) until `publishedUntil`, when every
/// token it signed has expired. Private keys are sealed at rest and never shown.
#[utoipa::path(
    get,
    path = "/v1/mgmt/signing-keys",
    operation_id = "listSigningKeys",
    tag = "Keys",
    security(("adminKey" = ["read"]), ("adminKey" = ["keys"])),
    responses(
        (status = 200, description = "The signing keys, oldest first.", body = Vec<doc::SigningKeyView>),
    )
)]
async fn list_signing_keys(
    _: Admin<need::ReadKeys>,
    State(s): State<AppState>,
) -> Result<Json<Vec<SigningKeyView>>, ApiError> {
    Ok(Json(s.core.list_signing_keys().await?))
}

/// Rotate the token-signing key
///
/// Creates a signing key (of the configured algorithm, `ES256` by default) and makes it the one
/// that signs; the previous key stays published until the tokens it signed have expired (the
/// access-token lifetime plus 60 s of clock skew), and keys past that are deleted. Every node
/// signs with the new key within milliseconds.
#[utoipa::path(
    post,
    path = "/v1/mgmt/signing-keys/rotate",
    operation_id = "rotateSigningKey",
    tag = "Keys",
    security(("adminKey" = ["keys"])),
    responses(
        (status = 200, description = "The signing keys after the rotation, oldest first.", body = Vec<doc::SigningKeyView>),
    )
)]
async fn rotate_signing_key(
    Admin(admin, _): Admin<need::Keys>,
    State(s): State<AppState>,
) -> Result<Json<Vec<SigningKeyView>>, ApiError> {
    let before = s.core.list_signing_keys().await?;
    let after = s.core.rotate_signing_key().await?;
    let target = after.iter().find(|k| k.state == "active").map_or_else(
        || "signing_keys".to_owned(),
        |k| format!("signing_key:{}", k.kid),
    );
    record(
        &s,
        &admin,
        "signing_key.rotate",
        target,
        Some(&before),
        Some(&after),
    )
    .await;
    Ok(Json(after))
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_admin_keys,
    create_admin_key,
    delete_admin_key,
    list_issuers,
    create_issuer,
    get_issuer,
    update_issuer,
    delete_issuer,
    list_clients,
    create_client,
    get_client,
    update_client,
    delete_client,
    rotate_client_secret,
    key_status,
    rotate_keys,
    list_signing_keys,
    rotate_signing_key
))]
pub(super) struct Doc;
