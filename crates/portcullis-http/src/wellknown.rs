//! What Portcullis publishes about itself as an authorization server: its signing keys (the JWK
//! set verifiers fetch) and its RFC 8414 metadata. The metadata advertises only what is served.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use portcullis_core::TOKEN_EXCHANGE_GRANT;
use portcullis_core::authz::{
    GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS, GRANT_JWT_BEARER, GRANT_REFRESH_TOKEN,
    ID_JAG_PROFILE, OPENID_SCOPES,
};
use portcullis_core::manage::CLIENT_AUTH_METHODS;
use serde_json::json;

use crate::AppState;
use crate::openapi::schemas::{AuthorizationServerMetadata, JwkSet};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route(
            "/.well-known/openid-configuration",
            get(openid_configuration),
        )
}

/// A public document, cacheable for a short while: a rotation is seen within a minute.
fn public_json(body: serde_json::Value) -> Response {
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    resp
}

/// The signing keys (JWK set)
///
/// The public keys of the tokens Portcullis signs (RFC 7517): the active key and the retired keys
/// whose tokens may still be valid. A verifier that meets an unknown `kid` fetches this again.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    operation_id = "getJwks",
    tag = "Authorization server",
    responses(
        (status = 200, description = "The JWK set.", body = JwkSet,
            headers(("Cache-Control" = String, description = "`public, max-age=60`."))),
    )
)]
async fn jwks(State(s): State<AppState>) -> Response {
    public_json(s.core.jwks())
}

/// Authorization server metadata (RFC 8414)
///
/// What Portcullis serves as an authorization server: its issuer identifier, its JWK set, its
/// endpoints (authorization, token, revocation, introspection, userinfo), the grants, response
/// types and client authentication it accepts, PKCE S256 only, `iss` in authorization responses
/// (RFC 9207). Only what is served is advertised.
#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    operation_id = "getAuthorizationServerMetadata",
    tag = "Authorization server",
    responses(
        (status = 200, description = "The metadata.", body = AuthorizationServerMetadata,
            headers(("Cache-Control" = String, description = "`public, max-age=60`."))),
    )
)]
async fn metadata(State(s): State<AppState>) -> Response {
    public_json(metadata_document(&s))
}

/// OpenID Connect discovery
///
/// The same document as the RFC 8414 metadata, at the OpenID Connect Discovery 1.0 location: a
/// client that asks for `openid` gets an ID token from the token endpoint (`aud` the client, the
/// request's `nonce`, `at_hash`), signed with the key of the JWK set.
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    operation_id = "getOpenIdConfiguration",
    tag = "Authorization server",
    responses(
        (status = 200, description = "The metadata.", body = AuthorizationServerMetadata,
            headers(("Cache-Control" = String, description = "`public, max-age=60`."))),
    )
)]
async fn openid_configuration(State(s): State<AppState>) -> Response {
    public_json(metadata_document(&s))
}

fn metadata_document(s: &AppState) -> serde_json::Value {
    let issuer = s
        .core
        .settings()
        .public_url
        .trim_end_matches('/')
        .to_owned();
    let registration = s
        .core
        .settings()
        .dynamic_registration
        .then(|| format!("{issuer}/oauth2/register"));
    json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "authorization_endpoint": format!("{issuer}/oauth2/authorize"),
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "revocation_endpoint": format!("{issuer}/oauth2/revoke"),
        "introspection_endpoint": format!("{issuer}/oauth2/introspect"),
        "userinfo_endpoint": format!("{issuer}/oauth2/userinfo"),
        "grant_types_supported": [
            GRANT_AUTHORIZATION_CODE,
            GRANT_REFRESH_TOKEN,
            GRANT_CLIENT_CREDENTIALS,
            TOKEN_EXCHANGE_GRANT,
            GRANT_JWT_BEARER,
        ],
        "authorization_grant_profiles_supported": [ID_JAG_PROFILE],
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": true,
        "registration_endpoint": registration,
        "scopes_supported": OPENID_SCOPES,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [s.core.settings().signing_alg.as_str()],
        "claims_supported": ["iss", "sub", "aud", "azp", "exp", "iat", "auth_time", "nonce", "at_hash", "name", "email"],
    })
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(jwks, metadata, openid_configuration))]
pub(crate) struct Doc;
