//! The outbound surface MCP servers call with the user's inbound token: the token endpoint, the
//! connect flow, and the provider's callback.

use crate::openapi::services as doc;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use portcullis_core::refusal::MISSING_TOKEN;
use portcullis_core::{
    CallbackOutcome, CallbackParams, ConnectRequest, Refusal, Surface, TokenRequest,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Bearer;
use crate::error::{ApiError, JsonBody, PathParams, QueryParams};
use crate::openapi::schemas::{ConnectLink, ErrorBody, OutboundError};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/outbound/apps/{app_id}/token", post(token))
        .route("/v1/outbound/apps/{app_id}/check", post(check))
        .route("/v1/outbound/apps/{app_id}/connect", post(connect))
        .route("/v1/outbound/callback", get(callback))
        .route("/v1/outbound/callback/{app_id}", get(app_callback))
}

/// The body of a token request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct TokenBody {
    /// The scopes wanted, each one the app offers (at most 256 of 1 to 256 characters). Empty or
    /// absent: the app's default scopes.
    #[serde(default)]
    #[schema(max_items = 256)]
    scopes: Vec<String>,
    /// The tenant whose token (or within which the user's token) is wanted; the user must be a
    /// member of it.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    tenant_id: Option<String>,
    /// Refresh the token at the provider even if it is still fresh (e.g. after the provider
    /// rejected it).
    #[serde(default)]
    force_refresh: bool,
}

/// Fetch the user's token for an outbound app
///
/// An MCP server calls this with the user's inbound token (the JWT it received) to get the user's
/// credential for a third-party app. Portcullis verifies the inbound token, evaluates the app's
/// access control policies on the caller's roles and claims, and hands out the stored credential
/// (refreshing it first when it is about to expire) only when they allow every requested scope.
/// Every call, allowed or not, is recorded in the audit log.
///
/// When the user has not connected the app (or the grant lacks a scope), the answer is a 404
/// `not_connected` with a `connectUrl` to send the user to; when the policies refuse, a 403
/// `access_denied` (or `consent_required`, for apps that ask for re-consent) with the decision's
/// explanation.
#[utoipa::path(
    post,
    path = "/v1/outbound/apps/{appId}/token",
    operation_id = "fetchToken",
    tag = "Outbound tokens",
    security(("inboundToken" = [])),
    params(("appId" = String, Path, description = "The outbound app's id.")),
    request_body(content = TokenBody, description = "The scopes wanted; the body may be `{}`."),
    responses(
        (status = 200, description = "The policies allow the request: the credential, and the decision that allowed it.", body = doc::Granted,
            headers(("Cache-Control" = String, description = "`no-store`: the answer holds a secret."))),
        (status = 400, description = "The request is malformed (`invalid_request`, `invalid_json`, `invalid_body`) or names a scope the app does not offer (`invalid_scope`).", body = OutboundError),
        (status = 401, description = "The inbound token is missing or not valid (`invalid_token`); `details.reason` says why (`missing_token`, `expired`, `bad_signature`, `unknown_issuer`, `wrong_audience`...).", body = OutboundError,
            headers(("WWW-Authenticate" = String, description = "A `Bearer` challenge (RFC 6750), with `error=\"invalid_token\"` when a token was presented."))),
        (status = 403, description = "The inbound token lacks the fetch scope (`insufficient_scope`), the user is disabled or not a member of the tenant (`user_disabled`, `not_a_tenant_member`), or the policies refuse (`access_denied`, or `consent_required` with a `connectUrl`; both with the `decision`).", body = OutboundError),
        (status = 404, description = "No app has this id (`app_not_found`), or the user has no usable connection to it (`not_connected`, with a `connectUrl` for OAuth apps and `details.missingScopes`).", body = OutboundError),
        (status = 503, description = "The provider or the database is unavailable (`provider_unavailable`); retry shortly.", body = OutboundError),
    )
)]
async fn token(
    State(state): State<AppState>,
    Bearer(bearer): Bearer,
    PathParams(app_id): PathParams<String>,
    JsonBody(body): JsonBody<TokenBody>,
) -> Response {
    let req = TokenRequest {
        app_id,
        scopes: body.scopes,
        tenant_id: body.tenant_id,
        force_refresh: body.force_refresh,
    };
    match state
        .core
        .fetch_token(bearer.as_deref(), &req, &Surface::TokenEndpoint)
        .await
    {
        Ok(granted) => {
            let mut resp = axum::Json(granted).into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(refusal) => refusal_response(refusal).into_response(),
    }
}

/// The body of a check.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CheckBody {
    /// The scopes a fetch would ask for (at most 256 of 1 to 256 characters). Empty or absent:
    /// the app's default scopes.
    #[serde(default)]
    #[schema(max_items = 256)]
    scopes: Vec<String>,
    /// The tenant a fetch would name; the user must be a member of it.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    tenant_id: Option<String>,
}

/// Check whether a token request would be allowed
///
/// Answers what `POST /v1/outbound/apps/{appId}/token` would answer with the same inbound token,
/// scopes and tenant — allowed, or the same refusal (`access_denied` and `consent_required` with
/// the decision's explanation, `not_connected` with a `connectUrl`) — without handing out,
/// opening or refreshing any credential. An MCP server calls it to list only the tools the user
/// may use. Every check is recorded in the audit log as the action `check`.
#[utoipa::path(
    post,
    path = "/v1/outbound/apps/{appId}/check",
    operation_id = "checkToken",
    tag = "Outbound tokens",
    security(("inboundToken" = [])),
    params(("appId" = String, Path, description = "The outbound app's id.")),
    request_body(content = CheckBody, description = "The scopes to check; the body may be `{}`."),
    responses(
        (status = 200, description = "A fetch would be answered with a credential: the scopes it would carry, and the decision.", body = doc::Checked),
        (status = 400, description = "The request is malformed (`invalid_request`, `invalid_json`, `invalid_body`) or names a scope the app does not offer (`invalid_scope`).", body = OutboundError),
        (status = 401, description = "The inbound token is missing or not valid (`invalid_token`); `details.reason` says why.", body = OutboundError,
            headers(("WWW-Authenticate" = String, description = "A `Bearer` challenge (RFC 6750)."))),
        (status = 403, description = "The inbound token lacks the fetch scope (`insufficient_scope`), the user is disabled or not a member of the tenant (`user_disabled`, `not_a_tenant_member`), or the policies refuse (`access_denied`, or `consent_required` with a `connectUrl`; both with the `decision`).", body = OutboundError),
        (status = 404, description = "No app has this id (`app_not_found`), or the user has no usable connection to it (`not_connected`, with a `connectUrl` for OAuth apps and `details.missingScopes`).", body = OutboundError),
        (status = 503, description = "The database is unavailable (`provider_unavailable`); retry shortly.", body = OutboundError),
    )
)]
async fn check(
    State(state): State<AppState>,
    Bearer(bearer): Bearer,
    PathParams(app_id): PathParams<String>,
    JsonBody(body): JsonBody<CheckBody>,
) -> Response {
    let req = TokenRequest {
        app_id,
        scopes: body.scopes,
        tenant_id: body.tenant_id,
        force_refresh: false,
    };
    match state.core.check_token(bearer.as_deref(), &req).await {
        Ok(checked) => axum::Json(checked).into_response(),
        Err(refusal) => refusal_response(refusal).into_response(),
    }
}

/// The wire form of every refusal of the outbound surface.
pub(crate) fn refusal_response(r: Refusal) -> ApiError {
    match r {
        Refusal::InvalidToken { code, message } => {
            let mut e = ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", message.clone())
                .with_details(json!({"reason": code.unwrap_or(MISSING_TOKEN)}));
            e.challenge = Some(if code.is_none() {
                "Bearer".to_owned()
            } else {
                format!("Bearer error=\"invalid_token\", error_description=\"{}\"", challenge_safe(&message))
            });
            e
        }
        Refusal::InsufficientScope { scope } => {
            let mut e = ApiError::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("the inbound token lacks the scope {scope}"),
            )
            .with_details(json!({"requiredScope": scope}));
            e.challenge = Some(format!("Bearer error=\"insufficient_scope\", scope=\"{}\"", challenge_safe(&scope)));
            e
        }
        Refusal::InvalidRequest { problem, message } => ApiError::bad_request(problem.as_str(), message),
        Refusal::UnknownApp { app_id } => ApiError::new(
            StatusCode::NOT_FOUND,
            "app_not_found",
            format!("no outbound app {app_id}"),
        )
        .with_details(json!({"appId": app_id})),
        Refusal::Forbidden { reason, message } => ApiError::new(StatusCode::FORBIDDEN, reason.as_str(), message),
        Refusal::Denied { reason, explanation } => ApiError::new(
            StatusCode::FORBIDDEN,
            "access_denied",
            reason.message(),
        )
        .with_details(json!({"reason": reason}))
        .with("decision", serde_json::to_value(&*explanation).unwrap_or(Value::Null)),
        Refusal::ConsentRequired { reason, connect_url, explanation } => ApiError::new(
            StatusCode::FORBIDDEN,
            "consent_required",
            "the access control policies do not allow this request; the user can consent again to what they allow",
        )
        .with_details(json!({"reason": reason}))
        .with("connectUrl", Value::String(connect_url))
        .with("decision", serde_json::to_value(&*explanation).unwrap_or(Value::Null)),
        Refusal::NotConnected { reason, connect_url, missing_scopes } => {
            let mut e = ApiError::new(
                StatusCode::NOT_FOUND,
                "not_connected",
                reason.message(),
            )
            .with_details(json!({"reason": reason, "missingScopes": missing_scopes}));
            if let Some(u) = connect_url {
                e = e.with("connectUrl", Value::String(u));
            }
            e
        }
        Refusal::RateLimited { retry_after } => ApiError::rate_limited("subject", retry_after),
        Refusal::Unavailable { message } => {
            tracing::warn!(error = %message, "a token request could not be served");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "provider_unavailable",
                "the provider or the database is unavailable; try again shortly",
            )
        }
        Refusal::Internal { message } => {
            tracing::error!(error = %message, "a token request failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the server failed; the details are in its logs",
            )
        }
    }
}

/// A string safe inside a quoted `WWW-Authenticate` parameter (RFC 6750 §3: printable ASCII, no
/// quote or backslash).
fn challenge_safe(s: &str) -> String {
    s.chars()
        .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
        .take(200)
        .collect()
}

/// Start connecting an outbound app
///
/// Returns a connect link for the user named by the inbound token: a page of Portcullis
/// (`/v1/outbound/connect/{ticket}`), bound to that user, to open in the user's browser. The page
/// requires the browser to be signed in as that user (or, for a user Portcullis cannot sign in,
/// to be the first browser to open it), shows what is connected, and on "Continue" sends the
/// browser to the provider; after the user consents, the provider sends it back to the app's
/// callback, where Portcullis stores the tokens — only in that browser — then on to `returnUrl`
/// when one was given. With an existing connection, the requested scopes are added to the grant
/// (incremental consent).
#[utoipa::path(
    post,
    path = "/v1/outbound/apps/{appId}/connect",
    operation_id = "startConnect",
    tag = "Outbound tokens",
    security(("inboundToken" = [])),
    params(("appId" = String, Path, description = "The outbound app's id.")),
    request_body(content = doc::ConnectRequest, description = "What to connect; the body may be `{}`."),
    responses(
        (status = 200, description = "The link to open in the user's browser.", body = ConnectLink),
        (status = 400, description = "The request is malformed, names a scope the app does not offer, or a return URL that is not allowed (`invalid_return_url`), or the app uses API keys (`not_an_oauth_app`).", body = OutboundError),
        (status = 401, description = "The inbound token is missing or not valid (`invalid_token`).", body = OutboundError,
            headers(("WWW-Authenticate" = String, description = "A `Bearer` challenge (RFC 6750)."))),
        (status = 403, description = "The inbound token lacks the fetch scope, the user is not a member of the tenant, or asks for a tenant-level connection without being a tenant admin (`not_a_tenant_admin`).", body = OutboundError),
        (status = 404, description = "No app has this id (`app_not_found`).", body = OutboundError),
        (status = 503, description = "The database is unavailable; retry shortly.", body = OutboundError),
    )
)]
async fn connect(
    State(state): State<AppState>,
    Bearer(bearer): Bearer,
    PathParams(app_id): PathParams<String>,
    JsonBody(body): JsonBody<ConnectRequest>,
) -> Result<Response, ApiError> {
    match state
        .core
        .start_connect(bearer.as_deref(), &app_id, &body)
        .await
    {
        Ok(url) => Ok(axum::Json(json!({"url": url})).into_response()),
        Err(r) => Err(refusal_response(r)),
    }
}

pub(crate) fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// A short HTML page for the user's browser.
pub(crate) fn html_page(status: StatusCode, title: &str, message: &str) -> Response {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body style=\"font-family:system-ui;max-width:36rem;margin:4rem auto\"><h1>{t}</h1><p>{m}</p></body></html>",
        t = escape(title),
        m = escape(message)
    );
    let mut resp = (status, Html(page)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Complete a connection (the provider's redirect, shared callback)
///
/// The shared callback, the `redirect_uri` of apps that keep it (`sharedCallback`); other apps
/// use their own, `/v1/outbound/callback/{appId}`. A provider's answer is accepted only at the
/// callback its connect link named, and with the provider's RFC 9207 `iss` when the app names
/// its `issuer` (mix-up defence). The provider sends the user's browser here after the consent
/// page. Portcullis exchanges the authorization code for
/// tokens and stores them sealed. When the connect call named a `returnUrl`, the browser is sent
/// there with `connected=<appId>`, or `error=<code>&app=<appId>` on failure; otherwise a short
/// HTML page says what happened. Each link works once.
#[utoipa::path(
    get,
    path = "/v1/outbound/callback",
    operation_id = "completeConnect",
    tag = "Outbound tokens",
    params(CallbackQuery),
    responses(
        (status = 200, description = "Connected: a page telling the user they can close the window.", body = String, content_type = "text/html"),
        (status = 303, description = "Sent back to the connect call's `returnUrl`, with `connected=<appId>` or `error`, `error_description` and `app` in the query.",
            headers(("Location" = String, description = "The return URL with the outcome in its query."))),
        (status = 400, description = "The link has expired, the answer came to another callback than its link's or without the app's `iss`, the provider answered an error, or the request has no `state` or no `code`: a page saying so.", body = String, content_type = "text/html"),
        (status = 404, description = "No pending flow has this `state`: the link was already used, or is unknown: a page saying so; a path that names no app (one with a control character, say) is answered in the API's JSON error shape.", content(
            (String = "text/html"),
            (ErrorBody = "application/json"),
        )),
        (status = 403, description = "The answer reached another browser than the one that continued the connect link (no binding cookie for this `state`), or the user was disabled after the link was made: a page saying so; nothing was changed.", body = String, content_type = "text/html"),
        (status = 502, description = "The provider did not complete the code exchange: a page saying so; nothing was changed.", body = String, content_type = "text/html"),
        (status = 503, description = "The database is unavailable: a page asking to try again.", body = String, content_type = "text/html"),
    )
)]
async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(params): QueryParams<CallbackQuery>,
) -> Response {
    complete(&state, &headers, params, None).await
}

/// Complete a connection (the provider's redirect)
///
/// The provider sends the user's browser here after the consent page: this is an app's
/// `redirect_uri` to register with its provider (unless the app keeps the shared callback).
/// Portcullis checks that the answer came to the callback its connect link named (and carries
/// the app's `issuer` as RFC 9207 `iss` when the app names one), exchanges the authorization code
/// for tokens and stores them sealed. When the connect call named a `returnUrl`, the browser is
/// sent there with `connected=<appId>`, or `error=<code>&app=<appId>` on failure; otherwise a
/// short HTML page says what happened. Each link works once.
#[utoipa::path(
    get,
    path = "/v1/outbound/callback/{appId}",
    operation_id = "completeAppConnect",
    tag = "Outbound tokens",
    params(("appId" = String, Path, description = "The outbound app's id."), CallbackQuery),
    responses(
        (status = 200, description = "Connected: a page telling the user they can close the window.", body = String, content_type = "text/html"),
        (status = 303, description = "Sent back to the connect call's `returnUrl`, with `connected=<appId>` or `error`, `error_description` and `app` in the query.",
            headers(("Location" = String, description = "The return URL with the outcome in its query."))),
        (status = 400, description = "The link has expired, the answer came to another callback than its link's or without the app's `iss`, the provider answered an error, or the request has no `state` or no `code`: a page saying so.", body = String, content_type = "text/html"),
        (status = 404, description = "No pending flow has this `state`: the link was already used, or is unknown: a page saying so; a path that names no app (one with a control character, say) is answered in the API's JSON error shape.", content(
            (String = "text/html"),
            (ErrorBody = "application/json"),
        )),
        (status = 403, description = "The answer reached another browser than the one that continued the connect link (no binding cookie for this `state`), or the user was disabled after the link was made: a page saying so; nothing was changed.", body = String, content_type = "text/html"),
        (status = 502, description = "The provider did not complete the code exchange: a page saying so; nothing was changed.", body = String, content_type = "text/html"),
        (status = 503, description = "The database is unavailable: a page asking to try again.", body = String, content_type = "text/html"),
    )
)]
async fn app_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    PathParams(app_id): PathParams<String>,
    QueryParams(params): QueryParams<CallbackQuery>,
) -> Response {
    complete(&state, &headers, params, Some(&app_id)).await
}

async fn complete(
    state: &AppState,
    headers: &HeaderMap,
    params: CallbackQuery,
    via_app: Option<&str>,
) -> Response {
    // The binding cookie of this flow, named after its state. It is left to expire with the
    // flow: a replay in the same browser then finds the flow used (404), not a stranger (403).
    let binding = params
        .state
        .as_deref()
        .map(portcullis_core::binding_cookie_name)
        .and_then(|n| crate::authorize::cookie(headers, &n));
    complete_flow(state, params, binding, via_app).await
}

async fn complete_flow(
    state: &AppState,
    params: CallbackQuery,
    binding: Option<String>,
    via_app: Option<&str>,
) -> Response {
    let params = CallbackParams {
        binding: binding.map(portcullis_crypto::SecretString::from),
        state: params.state.map(portcullis_crypto::SecretString::from),
        code: params.code.map(portcullis_crypto::SecretString::from),
        error: params.error,
        error_description: params.error_description,
        iss: params.iss,
    };
    match state.core.complete_connect(&params, via_app).await {
        CallbackOutcome::Redirect(url) => Redirect::to(&url).into_response(),
        CallbackOutcome::Page {
            status,
            title,
            message,
        } => html_page(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            title,
            &message,
        ),
    }
}

/// The callback's query (a provider's other parameters are ignored).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CallbackQuery {
    /// The `state` Portcullis sent to the provider (identifies the pending consent, and is the
    /// hash of the binding cookie only the browser that continued the link holds). Without it the
    /// answer is a 400 page; without that cookie, a 403 page; with one no pending flow has, a 404
    /// page.
    #[param(required = true, value_type = String, min_length = 1, max_length = 512)]
    state: Option<String>,
    /// The authorization code, when the user consented.
    code: Option<String>,
    /// The provider's error code, when the user did not consent (RFC 6749 §4.1.2.1).
    error: Option<String>,
    /// The provider's description of the error.
    error_description: Option<String>,
    /// The provider's issuer identifier (RFC 9207), checked when the app names its `issuer`.
    iss: Option<String>,
}

/// The outbound surface's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(token, check, connect, callback, app_callback))]
pub(crate) struct Doc;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use portcullis_core::{DenialReason, ForbiddenReason, NotConnectedReason, RequestProblem};

    use super::*;

    /// Every typed reason reaches the wire as its string, with its message.
    #[test]
    fn every_reason_has_its_wire_string_and_message() {
        for &reason in DenialReason::ALL {
            let e = refusal_response(Refusal::Denied {
                reason,
                explanation: Box::new(Value::Null),
            });
            assert_eq!((e.status, e.code), (StatusCode::FORBIDDEN, "access_denied"));
            assert_eq!(e.details, Some(json!({"reason": reason.as_str()})));
            assert_eq!(e.message, reason.message());
            let e = refusal_response(Refusal::ConsentRequired {
                reason,
                connect_url: "https://portcullis.example/c".into(),
                explanation: Box::new(Value::Null),
            });
            assert_eq!(e.code, "consent_required");
            assert_eq!(e.details, Some(json!({"reason": reason.as_str()})));
        }
        for &reason in NotConnectedReason::ALL {
            let e = refusal_response(Refusal::NotConnected {
                reason,
                connect_url: None,
                missing_scopes: vec!["repo".into()],
            });
            assert_eq!((e.status, e.code), (StatusCode::NOT_FOUND, "not_connected"));
            assert_eq!(
                e.details,
                Some(json!({"reason": reason.as_str(), "missingScopes": ["repo"]}))
            );
            assert_eq!(e.message, reason.message());
        }
        for &reason in ForbiddenReason::ALL {
            let e = refusal_response(Refusal::Forbidden {
                reason,
                message: reason.message().into(),
            });
            assert_eq!((e.status, e.code), (StatusCode::FORBIDDEN, reason.as_str()));
        }
        for &problem in RequestProblem::ALL {
            let e = refusal_response(Refusal::invalid(problem, problem.message()));
            assert_eq!(
                (e.status, e.code),
                (StatusCode::BAD_REQUEST, problem.as_str())
            );
        }
        let e = refusal_response(Refusal::InvalidToken {
            code: None,
            message: "an inbound access token is required".into(),
        });
        assert_eq!(e.details, Some(json!({"reason": MISSING_TOKEN})));
        assert_eq!(e.challenge.as_deref(), Some("Bearer"));
    }
}
