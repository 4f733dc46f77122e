//! The outbound surface MCP servers call with the user's inbound token: the token endpoint, the
//! connect flow, and the provider's callback.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use portcullis_core::{
    CallbackOutcome, CallbackParams, ConnectRequest, Refusal, Surface, TokenRequest,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Bearer;
use crate::error::{ApiError, JsonBody, PathParams, QueryParams};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/outbound/apps/{app_id}/token", post(token))
        .route("/v1/outbound/apps/{app_id}/connect", post(connect))
        .route("/v1/outbound/callback", get(callback))
}

/// The body of a token request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct TokenBody {
    /// The scopes wanted (empty or absent: the app's default scopes).
    #[serde(default)]
    scopes: Vec<String>,
    /// The tenant.
    #[serde(default)]
    tenant_id: Option<String>,
    /// Refresh even if the token is fresh.
    #[serde(default)]
    force_refresh: bool,
}

/// `POST /v1/outbound/apps/{appId}/token`: the decision, and the token when allowed.
async fn token(
    State(state): State<AppState>,
    Bearer(bearer): Bearer,
    PathParams(app_id): PathParams<String>,
    JsonBody(body): JsonBody<TokenBody>,
) -> Response {
    if body.scopes.len() > 256 || body.scopes.iter().any(|s| s.is_empty() || s.len() > 256) {
        return ApiError::bad_request(
            "invalid_request",
            "scopes: at most 256 scopes of 1 to 256 characters",
        )
        .into_response();
    }
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
        Err(refusal) => refusal_response(refusal, &state).into_response(),
    }
}

/// The wire form of every refusal of the outbound surface.
pub(crate) fn refusal_response(r: Refusal, state: &AppState) -> ApiError {
    match r {
        Refusal::InvalidToken { code, message } => {
            let mut e = ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", message.clone())
                .with_details(json!({"reason": code}));
            e.challenge = Some(if code == "missing_token" {
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
        Refusal::InvalidRequest { code, message } => ApiError::bad_request(code, message),
        Refusal::UnknownApp { app_id } => ApiError::new(
            StatusCode::NOT_FOUND,
            "app_not_found",
            format!("no outbound app {app_id}"),
        )
        .with_details(json!({"appId": app_id})),
        Refusal::Forbidden { code, message } => ApiError::new(StatusCode::FORBIDDEN, code, message),
        Refusal::Denied { reason, explanation } => ApiError::new(
            StatusCode::FORBIDDEN,
            "access_denied",
            denial_message(reason),
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
                match reason {
                    "missing_scopes" => "the user's connection lacks a requested scope; connect again to grant it",
                    "consent_required_by_provider" => "the provider no longer accepts the user's grant; the user must connect again",
                    "expired" => "the token expired and cannot be refreshed; the user must connect again",
                    _ => "the user has not connected this app",
                },
            )
            .with_details(json!({"reason": reason, "missingScopes": missing_scopes}));
            if let Some(u) = connect_url {
                e = e.with("connectUrl", Value::String(u));
            }
            e
        }
        Refusal::Unavailable { message } => {
            tracing::warn!(error = %message, "a token request could not be served");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "provider_unavailable",
                "the provider or the database is unavailable; try again shortly",
            )
        }
        Refusal::Internal { message } => {
            let _ = state;
            tracing::error!(error = %message, "a token request failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the server failed; the details are in its logs",
            )
        }
    }
}

fn denial_message(reason: &str) -> &'static str {
    match reason {
        "no_policy_matched" => "no access control policy of this app allows this user",
        "scopes_not_allowed" => "the access control policies do not allow every requested scope",
        "downscoping_unsupported" => {
            "the stored grant holds scopes the policies do not allow, and this provider cannot narrow a token; the user must connect again with fewer scopes"
        }
        _ => "the access control policies do not allow this request",
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

/// `POST /v1/outbound/apps/{appId}/connect`: the provider's authorization URL for the user.
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
        Err(r) => Err(refusal_response(r, &state)),
    }
}

/// `GET /v1/outbound/callback`: the provider sends the user's browser back here.
async fn callback(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<CallbackQuery>,
) -> Response {
    let params = CallbackParams {
        state: params.state,
        code: params.code,
        error: params.error,
        error_description: params.error_description,
    };
    match state.core.complete_connect(&params).await {
        CallbackOutcome::Redirect(url) => Redirect::to(&url).into_response(),
        CallbackOutcome::Page {
            status,
            title,
            message,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            let page = format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title></head>\
                 <body style=\"font-family:system-ui;max-width:36rem;margin:4rem auto\"><h1>{t}</h1><p>{m}</p></body></html>",
                t = escape(title),
                m = escape(&message)
            );
            let mut resp = (status, Html(page)).into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
    }
}

/// The callback's query (unknown parameters, such as RFC 9207 `iss` or a provider's extras, are
/// ignored).
#[derive(Debug, Deserialize)]
pub(crate) struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
