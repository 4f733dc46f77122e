//! The OAuth token endpoint. For now it serves RFC 8693 token exchange for admin-registered
//! confidential clients; errors follow RFC 6749 §5.2 (`error`, `error_description`).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use std::collections::HashMap;

use portcullis_core::authz::{
    GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS, GRANT_JWT_BEARER, GRANT_REFRESH_TOKEN,
    OAuthError, RegistrationError, RegistrationRequest, TokenParams,
};
use portcullis_core::{
    ClientIdentity, ExchangeFailure, ExchangeRequest, Refusal, RequestProblem, TOKEN_EXCHANGE_GRANT,
};
use portcullis_crypto::SecretString;
use serde_json::{Value, json};

use crate::AppState;
use crate::openapi::schemas::{
    Introspection, IntrospectionForm, OAuthError as OAuthErrorBody, RegisteredClient,
    RegistrationRequest as RegistrationRequestDoc, RevocationForm, Revoked, TokenForm,
    TokenResponse, Userinfo,
};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/oauth2/token", post(token))
        .route("/oauth2/revoke", post(revoke))
        .route("/oauth2/introspect", post(introspect))
        .route("/oauth2/userinfo", get(userinfo))
        .route("/oauth2/register", post(register))
}

/// An RFC 6749 §5.2 / RFC 8693 §2.2.2 error: a status, the OAuth `error`, its description and
/// Portcullis's extensions (the decision, a connect URL, a reason).
#[derive(Debug, Clone)]
pub(crate) struct ExchangeError {
    /// HTTP status (400, 401, 403, 503...).
    pub(crate) status: u16,
    /// The OAuth `error`.
    pub(crate) error: &'static str,
    /// `error_description`.
    pub(crate) description: String,
    /// Portcullis extensions: the decision's explanation, a connect URL.
    pub(crate) extra: serde_json::Map<String, Value>,
}

impl ExchangeError {
    /// An error with a status, an OAuth error code and a description.
    pub(crate) fn new(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            extra: serde_json::Map::new(),
        }
    }

    /// `invalid_request`.
    pub(crate) fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", d)
    }

    /// `invalid_client` (401: the client must authenticate).
    pub(crate) fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(401, "invalid_client", d)
    }
}

impl From<OAuthError> for ExchangeError {
    fn from(e: OAuthError) -> Self {
        Self::new(e.code.status(), e.code.as_str(), e.description)
    }
}

impl From<ExchangeFailure> for ExchangeError {
    fn from(f: ExchangeFailure) -> Self {
        match f {
            ExchangeFailure::InvalidRequest(d) => Self::invalid_request(d),
            ExchangeFailure::InvalidTarget(d) => Self::new(400, "invalid_target", d),
            ExchangeFailure::InvalidClient => Self::invalid_client("client authentication failed"),
            ExchangeFailure::UnauthorizedClient => Self::new(
                400,
                "unauthorized_client",
                "the client may not use token exchange",
            ),
            ExchangeFailure::Unavailable => Self::new(
                503,
                "temporarily_unavailable",
                "the server cannot reach its database; try again shortly",
            ),
            ExchangeFailure::Refused(r) => exchange_error(r),
        }
    }
}

pub(crate) fn oauth_error(e: ExchangeError) -> Response {
    let retry_after = e.extra.get("retry_after").and_then(Value::as_u64);
    let mut body = serde_json::Map::new();
    body.insert("error".into(), Value::String(e.error.into()));
    body.insert("error_description".into(), Value::String(e.description));
    body.extend(e.extra);
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = (status, axum::Json(Value::Object(body))).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if let Some(secs) = retry_after {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if status == StatusCode::UNAUTHORIZED {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"portcullis\""),
        );
    }
    resp
}

/// The token endpoint's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(token, revoke, introspect, userinfo, register))]
pub(crate) struct Doc;

/// Parameters that may appear more than once.
const REPEATABLE: [&str; 2] = ["resource", "audience"];

/// The token endpoint: token exchange (RFC 8693) and Portcullis's own grants
///
/// **Token exchange**: the same decision as `POST /v1/outbound/apps/{appId}/token`, for MCP
/// servers that would rather use a standard OAuth client library: the server authenticates as a
/// confidential client registered under `/v1/mgmt/clients`, presents the user's inbound token as
/// `subject_token`, and names the outbound app with `resource` or `audience`.
///
/// **Portcullis as the MCP servers' authorization server**: `authorization_code` (a code from
/// `/oauth2/authorize`, its PKCE verifier, the redirect URI if the request sent one; a code is
/// redeemed once), `refresh_token` (rotated: each use returns a new one; presenting a used one
/// revokes every token of the grant), `client_credentials` (confidential clients; a `resource` is
/// required), and `urn:ietf:params:oauth:grant-type:jwt-bearer` with an Identity Assertion JWT
/// Authorization Grant (ID-JAG) from a trusted enterprise issuer (`assertion`; confidential
/// clients). The access tokens are RFC 9068 JWTs whose audience is the resource.
///
/// Errors follow RFC 6749 §5.2, with, for token exchange, the policy decision and a connect URL
/// as extensions.
#[utoipa::path(
    post,
    path = "/oauth2/token",
    operation_id = "exchangeToken",
    tag = "Token exchange",
    security(("clientBasic" = []), ()),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded",
        description = "The grant's parameters; with `client_secret_post`, the client's credentials too."),
    responses(
        (status = 200, description = "The token.", body = TokenResponse,
            headers(
                ("Cache-Control" = String, description = "`no-store`."),
                ("Pragma" = String, description = "`no-cache`."),
            )),
        (status = 400, description = "The request is malformed or its grant type unknown (`invalid_request`, `unsupported_grant_type`), the code, refresh token or subject token is not valid (`invalid_grant`; for a subject token with `reason`), the client may not use the grant (`unauthorized_client`), the target is wrong (`invalid_target`, `invalid_scope`), or the user has not connected the app (`consent_required` with `connect_url` and `missing_scopes`).", body = OAuthErrorBody),
        (status = 401, description = "The client did not authenticate, or its credentials are wrong (`invalid_client`).", body = OAuthErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"portcullis\"`."))),
        (status = 403, description = "The policies or the directory refuse the request (`access_denied`, with `reason` and the `decision`), or the app asks the user to consent again (`consent_required`, with `connect_url` and the `decision`).", body = OAuthErrorBody),
        (status = 500, description = "The server failed (`server_error`).", body = OAuthErrorBody),
        (status = 503, description = "The provider or the database is unavailable (`temporarily_unavailable`); retry shortly.", body = OAuthErrorBody),
    )
)]
async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match token_inner(&state, &headers, &body).await {
        Ok(resp) => resp,
        Err(e) => oauth_error(e),
    }
}

/// A token-endpoint form: single parameters, and the repeatable `resource` and `audience`.
pub(crate) struct Form {
    single: HashMap<String, String>,
    resources: Vec<String>,
    audiences: Vec<String>,
}

/// Parses an `application/x-www-form-urlencoded` body; a parameter other than `resource` and
/// `audience` may appear once.
pub(crate) fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<Form, ExchangeError> {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
        .unwrap_or(false);
    if !form_type {
        return Err(ExchangeError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let mut form = Form {
        single: HashMap::new(),
        resources: Vec::new(),
        audiences: Vec::new(),
    };
    for (k, v) in url::form_urlencoded::parse(body) {
        // RFC 6749 §3.1: a parameter sent without a value is treated as omitted.
        if v.is_empty() {
            continue;
        }
        match k.as_ref() {
            "resource" => form.resources.push(v.into_owned()),
            "audience" => form.audiences.push(v.into_owned()),
            key => {
                if form.single.insert(key.to_owned(), v.into_owned()).is_some()
                    && !REPEATABLE.contains(&key)
                {
                    // The name is the client's: echo a bounded part of it.
                    let shown: String = key.chars().take(64).collect();
                    return Err(ExchangeError::invalid_request(format!(
                        "parameter {shown} appears more than once"
                    )));
                }
            }
        }
    }
    Ok(form)
}

/// Authenticates the client of a form: HTTP Basic, `client_secret_post`, or a public client's
/// `client_id` alone.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    form: &Form,
) -> Result<ClientIdentity, ExchangeError> {
    let (client_id, secret) = client_credentials(headers, &form.single)?;
    Ok(state
        .core
        .authenticate_client(&client_id, secret.as_deref())
        .await?)
}

fn no_store(mut out: Response) -> Response {
    let h = out.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    out
}

async fn token_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ExchangeError> {
    let form = parse_form(headers, body)?;
    let grant = match form.single.get("grant_type").map(String::as_str) {
        Some(
            g @ (TOKEN_EXCHANGE_GRANT
            | GRANT_AUTHORIZATION_CODE
            | GRANT_REFRESH_TOKEN
            | GRANT_CLIENT_CREDENTIALS
            | GRANT_JWT_BEARER),
        ) => g.to_owned(),
        Some(other) => {
            let shown: String = other.chars().take(64).collect();
            return Err(ExchangeError::new(
                400,
                "unsupported_grant_type",
                format!("grant_type {shown} is not supported"),
            ));
        }
        None => return Err(ExchangeError::invalid_request("grant_type is required")),
    };
    let client = authenticate(state, headers, &form).await?;
    let Form {
        mut single,
        resources,
        audiences,
    } = form;
    if grant != TOKEN_EXCHANGE_GRANT {
        let params = TokenParams {
            code: single.remove("code").map(SecretString::from),
            redirect_uri: single.remove("redirect_uri"),
            code_verifier: single.remove("code_verifier").map(SecretString::from),
            refresh_token: single.remove("refresh_token").map(SecretString::from),
            scope: single.remove("scope"),
            resources,
            assertion: single.remove("assertion").map(SecretString::from),
        };
        let core = &state.core;
        let resp = match grant.as_str() {
            GRANT_AUTHORIZATION_CODE => core.grant_authorization_code(&client, &params).await,
            GRANT_REFRESH_TOKEN => core.grant_refresh_token(&client, &params).await,
            GRANT_JWT_BEARER => core.grant_jwt_bearer(&client, &params).await,
            _ => core.grant_client_credentials(&client, &params).await,
        }?;
        return Ok(no_store(axum::Json(json!(resp)).into_response()));
    }
    let req = ExchangeRequest {
        subject_token: single.remove("subject_token").map(SecretString::from),
        subject_token_type: single.remove("subject_token_type"),
        resources,
        audiences,
        scope: single.remove("scope"),
        requested_token_type: single.remove("requested_token_type"),
        actor_token: single.remove("actor_token").map(SecretString::from),
        tenant_id: single.remove("tenant_id"),
    };
    let resp = state.core.token_exchange(&client, &req).await?;
    Ok(no_store(axum::Json(json!(resp)).into_response()))
}

/// Revoke a refresh token (RFC 7009)
///
/// The client (authenticated as at the token endpoint; a public client by its `client_id`)
/// revokes one of its refresh tokens: every token of that grant stops working. The answer is the
/// same for a token that is unknown, already revoked, another client's, or an access token
/// (access tokens expire within minutes and are not revoked one by one).
#[utoipa::path(
    post,
    path = "/oauth2/revoke",
    operation_id = "revokeToken",
    tag = "Authorization server",
    security(("clientBasic" = []), ()),
    request_body(content = RevocationForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Done (or nothing to do).", body = Revoked,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        (status = 400, description = "The request is malformed (`invalid_request`).", body = OAuthErrorBody),
        (status = 401, description = "The client did not authenticate (`invalid_client`).", body = OAuthErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"portcullis\"`."))),
        (status = 503, description = "The database is unavailable (`temporarily_unavailable`).", body = OAuthErrorBody),
    )
)]
async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let run = async {
        let form = parse_form(&headers, &body)?;
        let client = authenticate(&state, &headers, &form).await?;
        let token = form
            .single
            .get("token")
            .ok_or_else(|| ExchangeError::invalid_request("token is required"))?;
        state.core.revoke_token(&client, token).await?;
        Ok::<_, ExchangeError>(no_store(axum::Json(json!({})).into_response()))
    };
    run.await.unwrap_or_else(oauth_error)
}

/// Introspect a token (RFC 7662)
///
/// A confidential client (a resource server) asks whether a token is active: Portcullis's
/// access tokens (signature, expiry, audience, the user still enabled) and refresh tokens. Any
/// other token is `{"active": false}`.
#[utoipa::path(
    post,
    path = "/oauth2/introspect",
    operation_id = "introspectToken",
    tag = "Authorization server",
    security(("clientBasic" = []), ()),
    request_body(content = IntrospectionForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Whether the token is active, and its claims when it is.", body = Introspection),
        (status = 400, description = "The request is malformed (`invalid_request`).", body = OAuthErrorBody),
        (status = 401, description = "The client did not authenticate, or is public (`invalid_client`).", body = OAuthErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"portcullis\"`."))),
        (status = 503, description = "The database is unavailable (`temporarily_unavailable`).", body = OAuthErrorBody),
    )
)]
async fn introspect(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let run = async {
        let form = parse_form(&headers, &body)?;
        let client = authenticate(&state, &headers, &form).await?;
        if client.public {
            return Err(ExchangeError::invalid_client(
                "a public client may not introspect tokens",
            ));
        }
        let token = form
            .single
            .get("token")
            .ok_or_else(|| ExchangeError::invalid_request("token is required"))?;
        let answer = state.core.introspect(token).await?;
        Ok::<_, ExchangeError>(no_store(axum::Json(answer).into_response()))
    };
    run.await.unwrap_or_else(oauth_error)
}

/// The signed-in user (OpenID Connect userinfo)
///
/// Who the user of a Portcullis access token is: `sub`, `email`, `name`, `roles` (the
/// directory's, now).
#[utoipa::path(
    get,
    path = "/oauth2/userinfo",
    operation_id = "getUserinfo",
    tag = "Authorization server",
    security(("accessToken" = [])),
    responses(
        (status = 200, description = "The user.", body = Userinfo),
        (status = 401, description = "No valid access token of Portcullis (`invalid_token`).", body = OAuthErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer error=\"invalid_token\"`."))),
        (status = 503, description = "The database is unavailable (`temporarily_unavailable`).", body = OAuthErrorBody),
    )
)]
async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned())
        .unwrap_or_default();
    match state.core.userinfo(&token).await {
        Ok(Some(info)) => no_store(axum::Json(info).into_response()),
        Ok(None) => {
            let mut resp = oauth_error(ExchangeError::new(
                401,
                "invalid_token",
                "a valid access token of Portcullis is required",
            ));
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            resp
        }
        Err(e) => oauth_error(e.into()),
    }
}

/// Register a client (RFC 7591)
///
/// An MCP client registers itself: a public client (`token_endpoint_auth_method` `none`; PKCE is
/// its proof) for the authorization code flow, optionally with refresh tokens. `redirect_uris`
/// are required: for `application_type` `native`, loopback `http` or a private-use scheme; for
/// `web` (the default), `https` (or loopback `http`). Other metadata is ignored. When the server
/// requires an initial access token, send it as a bearer token. A registration never used within a
/// day, or unused for the configured period (30 days by default), is removed, after which the
/// client gets `invalid_client`. Limited per client address.
#[utoipa::path(
    post,
    path = "/oauth2/register",
    operation_id = "registerClient",
    tag = "Authorization server",
    security((), ("registrationToken" = [])),
    request_body(content = RegistrationRequestDoc, content_type = "application/json"),
    responses(
        (status = 201, description = "The client is registered.", body = RegisteredClient,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        (status = 400, description = "A redirect URI (`invalid_redirect_uri`) or other metadata (`invalid_client_metadata`) is not acceptable, or the body is not a JSON object.", body = OAuthErrorBody),
        (status = 401, description = "The server requires an initial access token and none, or a wrong one, was sent (`invalid_token`).", body = OAuthErrorBody),
        (status = 403, description = "Registration is turned off (`access_denied`).", body = OAuthErrorBody),
        (status = 429, description = "Too many registrations from this address (`rate_limited`, with `Retry-After`).", body = OAuthErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
        (status = 503, description = "The database is unavailable (`temporarily_unavailable`).", body = OAuthErrorBody),
    )
)]
async fn register(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
    body: Bytes,
) -> Response {
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned());
    let req: RegistrationRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return oauth_error(ExchangeError::new(
                400,
                "invalid_client_metadata",
                format!("the body must be a JSON object of client metadata: {e}"),
            ));
        }
    };
    match state
        .core
        .register_client(&req, bearer.as_deref(), peer)
        .await
    {
        Ok(client) => no_store((StatusCode::CREATED, axum::Json(client)).into_response()),
        Err(e) => {
            let err = match e {
                RegistrationError::InvalidRedirectUri(d) => {
                    ExchangeError::new(400, "invalid_redirect_uri", d)
                }
                RegistrationError::InvalidClientMetadata(d) => {
                    ExchangeError::new(400, "invalid_client_metadata", d)
                }
                RegistrationError::InvalidToken => ExchangeError::new(
                    401,
                    "invalid_token",
                    "registration requires the initial access token as a bearer token",
                ),
                RegistrationError::Disabled => ExchangeError::new(
                    403,
                    "access_denied",
                    "clients cannot register themselves here; ask an administrator",
                ),
                RegistrationError::RateLimited(secs) => {
                    let mut e = ExchangeError::new(
                        429,
                        "rate_limited",
                        format!("too many registrations; retry in {secs} s"),
                    );
                    e.extra.insert("retry_after".into(), secs.into());
                    e
                }
                RegistrationError::Service(m) => {
                    tracing::warn!(error = %m, "a registration could not be stored");
                    ExchangeError::new(
                        503,
                        "temporarily_unavailable",
                        "the server cannot reach its database; try again shortly",
                    )
                }
            };
            let invalid_token = err.error == "invalid_token";
            let mut resp = oauth_error(err);
            if invalid_token {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            resp
        }
    }
}

/// The client's credentials: HTTP Basic (RFC 6749 §2.3.1, form-urlencoded parts) or the
/// `client_id`/`client_secret` body parameters — not both.
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<(String, Option<String>), ExchangeError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, creds)| creds.trim().to_owned());
    let body_secret = form.get("client_secret");
    match (basic, body_secret) {
        (Some(_), Some(_)) => Err(ExchangeError::invalid_request(
            "use one client authentication method, not two",
        )),
        (Some(creds), None) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(creds)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ExchangeError::invalid_client("malformed Basic credentials"))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| ExchangeError::invalid_client("malformed Basic credentials"))?;
            let decode = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            let (id, secret) = (decode(id), decode(secret));
            if let Some(body_id) = form.get("client_id")
                && body_id != &id
            {
                return Err(ExchangeError::invalid_request(
                    "client_id does not match the Basic credentials",
                ));
            }
            Ok((id, Some(secret)))
        }
        (None, Some(secret)) => {
            let id = form
                .get("client_id")
                .ok_or_else(|| ExchangeError::invalid_client("client_id is required"))?;
            Ok((id.clone(), Some(secret.clone())))
        }
        // A public client names itself and proves nothing else (PKCE does the rest).
        (None, None) => match form.get("client_id") {
            Some(id) => Ok((id.clone(), None)),
            None => Err(ExchangeError::invalid_client(
                "the client must authenticate (client_secret_basic, client_secret_post, or client_id for a public client)",
            )),
        },
    }
}

/// A refusal of the access control plane, in OAuth's words.
fn exchange_error(r: Refusal) -> ExchangeError {
    match r {
        Refusal::InvalidToken { message, code } => {
            let mut e = ExchangeError::new(
                400,
                "invalid_grant",
                format!("the subject token is not valid: {message}"),
            );
            e.extra.insert(
                "reason".into(),
                code.unwrap_or(portcullis_core::refusal::MISSING_TOKEN)
                    .into(),
            );
            e
        }
        Refusal::InsufficientScope { scope } => ExchangeError::new(
            400,
            "invalid_grant",
            format!("the subject token lacks the scope {scope}"),
        ),
        Refusal::InvalidRequest {
            problem: RequestProblem::InvalidScope,
            message,
        } => ExchangeError::new(400, "invalid_scope", message),
        Refusal::InvalidRequest { message, .. } => ExchangeError::invalid_request(message),
        Refusal::UnknownApp { app_id } => {
            ExchangeError::new(400, "invalid_target", format!("no outbound app {app_id}"))
        }
        Refusal::Forbidden { reason, message } => {
            let mut e = ExchangeError::new(403, "access_denied", message);
            e.extra.insert("reason".into(), reason.as_str().into());
            e
        }
        Refusal::Denied {
            reason,
            explanation,
        } => {
            let mut e = ExchangeError::new(
                403,
                "access_denied",
                "the access control policies do not allow this request",
            );
            e.extra.insert("reason".into(), reason.as_str().into());
            e.extra.insert(
                "decision".into(),
                serde_json::to_value(&*explanation).unwrap_or_default(),
            );
            e
        }
        Refusal::ConsentRequired {
            reason,
            connect_url,
            explanation,
        } => {
            let mut e = ExchangeError::new(
                403,
                "consent_required",
                "the user must consent again to what the policies allow",
            );
            e.extra.insert("reason".into(), reason.as_str().into());
            e.extra.insert("connect_url".into(), connect_url.into());
            e.extra.insert(
                "decision".into(),
                serde_json::to_value(&*explanation).unwrap_or_default(),
            );
            e
        }
        Refusal::NotConnected {
            reason,
            connect_url,
            missing_scopes,
        } => {
            let mut e = ExchangeError::new(
                400,
                "consent_required",
                "the user has not connected this app (or the grant lacks a requested scope)",
            );
            e.extra.insert("reason".into(), reason.as_str().into());
            if let Some(u) = connect_url {
                e.extra.insert("connect_url".into(), u.into());
            }
            e.extra
                .insert("missing_scopes".into(), missing_scopes.into());
            e
        }
        Refusal::RateLimited { retry_after } => {
            let secs = portcullis_core::limits::retry_after_secs(retry_after);
            let mut e = ExchangeError::new(
                429,
                "rate_limited",
                format!("too many requests for this subject; retry in {secs} s"),
            );
            e.extra.insert("retry_after".into(), secs.into());
            e
        }
        Refusal::Unavailable { message } => {
            tracing::warn!(error = %message, "a token exchange could not be served");
            ExchangeError::new(
                503,
                "temporarily_unavailable",
                "the provider or the database is unavailable; try again shortly",
            )
        }
        Refusal::Internal { message } => {
            tracing::error!(error = %message, "token exchange failed");
            ExchangeError::new(500, "server_error", "the server failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use portcullis_core::{DenialReason, ForbiddenReason, NotConnectedReason};

    use super::*;

    /// Token exchange says every refusal in OAuth's words, with the typed reason as `reason`.
    #[test]
    fn refusals_become_oauth_errors() {
        for &reason in DenialReason::ALL {
            let e = ExchangeError::from(ExchangeFailure::Refused(Refusal::Denied {
                reason,
                explanation: Box::new(Value::Null),
            }));
            assert_eq!((e.status, e.error), (403, "access_denied"));
            assert_eq!(e.extra["reason"], reason.as_str());
        }
        for &reason in NotConnectedReason::ALL {
            let e = ExchangeError::from(ExchangeFailure::Refused(Refusal::NotConnected {
                reason,
                connect_url: Some("https://portcullis.example/c".into()),
                missing_scopes: Vec::new(),
            }));
            assert_eq!((e.status, e.error), (400, "consent_required"));
            assert_eq!(e.extra["reason"], reason.as_str());
            assert_eq!(e.extra["connect_url"], "https://portcullis.example/c");
        }
        for &reason in ForbiddenReason::ALL {
            let e = ExchangeError::from(ExchangeFailure::Refused(Refusal::Forbidden {
                reason,
                message: reason.message().into(),
            }));
            assert_eq!((e.status, e.error), (403, "access_denied"));
            assert_eq!(e.extra["reason"], reason.as_str());
        }
        let scope = ExchangeError::from(ExchangeFailure::Refused(Refusal::invalid(
            RequestProblem::InvalidScope,
            "app gh does not offer the scope x",
        )));
        assert_eq!((scope.status, scope.error), (400, "invalid_scope"));
        let client = ExchangeError::from(ExchangeFailure::InvalidClient);
        assert_eq!((client.status, client.error), (401, "invalid_client"));
        let target = ExchangeError::from(ExchangeFailure::InvalidTarget("name one app".into()));
        assert_eq!((target.status, target.error), (400, "invalid_target"));
    }
}
