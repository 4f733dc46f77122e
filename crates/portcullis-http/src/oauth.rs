//! The OAuth token endpoint. For now it serves RFC 8693 token exchange for admin-registered
//! confidential clients; errors follow RFC 6749 §5.2 (`error`, `error_description`).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use portcullis_core::{
    ExchangeFailure, ExchangeRequest, Refusal, RequestProblem, TOKEN_EXCHANGE_GRANT,
};
use portcullis_crypto::SecretString;
use serde_json::{Value, json};

use crate::AppState;
use crate::openapi::schemas::{OAuthError, TokenExchangeForm, TokenExchangeResponse};

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/oauth2/token", post(token))
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
#[openapi(paths(token))]
pub(crate) struct Doc;

/// Parameters that may appear more than once.
const REPEATABLE: [&str; 2] = ["resource", "audience"];

/// Exchange a user's token for an outbound credential (RFC 8693)
///
/// The same decision as `POST /v1/outbound/apps/{appId}/token`, for MCP servers that would rather
/// use a standard OAuth client library: the server authenticates as a confidential client
/// registered under `/v1/mgmt/clients`, presents the user's inbound token as `subject_token`, and
/// names the outbound app with `resource` or `audience`. Errors follow RFC 6749 §5.2, with the
/// policy decision and a connect URL as extensions.
#[utoipa::path(
    post,
    path = "/oauth2/token",
    operation_id = "exchangeToken",
    tag = "Token exchange",
    security(("clientBasic" = []), ()),
    request_body(content = TokenExchangeForm, content_type = "application/x-www-form-urlencoded",
        description = "The token exchange parameters; with `client_secret_post`, the client's credentials too."),
    responses(
        (status = 200, description = "The user's credential for the app.", body = TokenExchangeResponse,
            headers(
                ("Cache-Control" = String, description = "`no-store`."),
                ("Pragma" = String, description = "`no-cache`."),
            )),
        (status = 400, description = "The request is malformed or not a token exchange (`invalid_request`, `unsupported_grant_type`), the subject token is not valid (`invalid_grant`, with `reason`), the client may not use token exchange (`unauthorized_client`), the target is wrong (`invalid_target`, `invalid_scope`), or the user has not connected the app (`consent_required` with `connect_url` and `missing_scopes`).", body = OAuthError),
        (status = 401, description = "The client did not authenticate, or its credentials are wrong (`invalid_client`).", body = OAuthError,
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"portcullis\"`."))),
        (status = 403, description = "The policies or the directory refuse the request (`access_denied`, with `reason` and the `decision`), or the app asks the user to consent again (`consent_required`, with `connect_url` and the `decision`).", body = OAuthError),
        (status = 500, description = "The server failed (`server_error`).", body = OAuthError),
        (status = 503, description = "The provider or the database is unavailable (`temporarily_unavailable`); retry shortly.", body = OAuthError),
    )
)]
async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match token_inner(&state, &headers, &body).await {
        Ok(resp) => resp,
        Err(e) => oauth_error(e),
    }
}

async fn token_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ExchangeError> {
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
    let mut single: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut resources = Vec::new();
    let mut audiences = Vec::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        match k.as_ref() {
            "resource" => resources.push(v.into_owned()),
            "audience" => audiences.push(v.into_owned()),
            key => {
                if single.insert(key.to_owned(), v.into_owned()).is_some()
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
    let grant = single.get("grant_type").map(String::as_str);
    match grant {
        Some(TOKEN_EXCHANGE_GRANT) => {}
        Some(other) => {
            return Err(ExchangeError {
                status: 400,
                error: "unsupported_grant_type",
                description: format!("grant_type {other} is not supported here"),
                extra: serde_json::Map::new(),
            });
        }
        None => return Err(ExchangeError::invalid_request("grant_type is required")),
    }
    let (client_id, secret) = client_credentials(headers, &single)?;
    let client = state.core.authenticate_client(&client_id, &secret).await?;
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
    let mut out = axum::Json(json!(resp)).into_response();
    let h = out.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(out)
}

/// The client's credentials: HTTP Basic (RFC 6749 §2.3.1, form-urlencoded parts) or the
/// `client_id`/`client_secret` body parameters — not both.
fn client_credentials(
    headers: &HeaderMap,
    form: &std::collections::HashMap<String, String>,
) -> Result<(String, String), ExchangeError> {
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
            Ok((id, secret))
        }
        (None, Some(secret)) => {
            let id = form
                .get("client_id")
                .ok_or_else(|| ExchangeError::invalid_client("client_id is required"))?;
            Ok((id.clone(), secret.clone()))
        }
        (None, None) => Err(ExchangeError::invalid_client(
            "the client must authenticate (client_secret_basic or client_secret_post)",
        )),
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
