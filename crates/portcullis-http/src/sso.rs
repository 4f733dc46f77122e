//! Single sign-on pages: the sign-in page's "Sign in with …" buttons post here, the browser goes
//! to the upstream provider carrying a sealed flow cookie, and comes back to the callback, which
//! signs it in and continues where it was (the authorization request, or a page of Portcullis).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use portcullis_core::authz::{SSO_FLOW_TTL_SECS, SsoButton, SsoError, SsoThen};

use crate::AppState;
use crate::authorize::{
    after_sign_in, cookie, cookie_attrs, error_page, esc, read_form, redirect, session_cookie,
};

pub(crate) const FLOW_COOKIE: &str = "portcullis_sso";
/// The largest form read, in bytes.
const MAX_FORM: usize = 16 * 1024;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/oauth2/sso/start", post(start))
        .route("/oauth2/sso/callback", get(callback))
}

/// The sign-in page's single sign-on buttons: a form posting `connection` with `hidden` (the CSRF
/// token and where to go next) to the start endpoint. Empty when no connection exists.
pub(crate) fn sso_form(buttons: &[SsoButton], hidden: &str) -> String {
    if buttons.is_empty() {
        return String::new();
    }
    let list: String = buttons
        .iter()
        .map(|b| {
            format!(
                "<button type=\"submit\" name=\"connection\" value=\"{}\">Sign in with {}</button>",
                esc(&b.id),
                esc(&b.name)
            )
        })
        .collect();
    format!(
        "<form method=\"post\" action=\"/oauth2/sso/start\">{hidden}<p>Or use your organization's account:</p>{list}</form>"
    )
}

/// The connections to offer (none when they cannot be read: the password form still works).
pub(crate) async fn buttons(state: &AppState) -> Vec<SsoButton> {
    state.core.sso_buttons().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "listing the SSO connections failed");
        Vec::new()
    })
}

fn sso_error_page(e: &SsoError) -> Response {
    let status = match e {
        SsoError::UnknownConnection => StatusCode::NOT_FOUND,
        SsoError::Flow(_) | SsoError::IdToken(_) => StatusCode::BAD_REQUEST,
        SsoError::Provider(_) => StatusCode::BAD_GATEWAY,
        SsoError::NoAccount | SsoError::Disabled | SsoError::Mapping(_) => StatusCode::FORBIDDEN,
        SsoError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    if status.is_server_error() {
        tracing::warn!(error = %e, "a single sign-on failed");
    } else {
        tracing::info!(error = %e, "a single sign-on was refused");
    }
    error_page(status, &format!("Single sign-on failed: {e}."))
}

/// Start a single sign-on
///
/// What the sign-in page's "Sign in with …" buttons send: the `connection`, the page's `csrf`
/// token (this browser's CSRF cookie), and where to go once signed in — the page's sealed
/// authorization `request`, or a `return` path on Portcullis. Answers with a redirect to the
/// identity provider (OpenID Connect code flow with PKCE S256, `state` and `nonce`) and a sealed,
/// `HttpOnly` flow cookie that the callback checks. Not for API clients: a browser posts it.
#[utoipa::path(
    post,
    path = "/oauth2/sso/start",
    operation_id = "startSingleSignOn",
    tag = "Authorization server",
    request_body(content = SsoStartForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "To the identity provider.",
            headers(("Location" = String, description = "The provider's authorization URL."),
                    ("Cache-Control" = String, description = "`no-store`."))),
        (status = 400, description = "The form is not valid (a repeated field, no place to return to).", content_type = "text/html", body = String),
        (status = 403, description = "The CSRF token is not this browser's.", content_type = "text/html", body = String),
        (status = 404, description = "No such SSO connection.", content_type = "text/html", body = String),
        (status = 413, description = "The form is larger than 16 KiB.", content_type = "text/html", body = String),
        (status = 502, description = "The identity provider's discovery document or keys cannot be read.", content_type = "text/html", body = String),
        (status = 503, description = "The database is unavailable.", content_type = "text/html", body = String),
    )
)]
async fn start(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = match read_form(&headers, &body, MAX_FORM) {
        Ok(f) => f,
        Err((status, message)) => return error_page(status, message),
    };
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    let then = match (field("request"), field("return")) {
        (r, "") if !r.is_empty() => SsoThen::Authorize(r.to_owned()),
        ("", path) => match SsoThen::return_to(path) {
            Some(t) => t,
            None => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "The form names no page of this server to return to.",
                );
            }
        },
        _ => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "The form names both a request and a page to return to.",
            );
        }
    };
    match state.core.start_sso(field("connection"), then).await {
        Ok(start) => {
            let set = format!(
                "{FLOW_COOKIE}={}{}",
                start.cookie,
                cookie_attrs(&state, "Lax", SSO_FLOW_TTL_SECS)
            );
            redirect(&start.location, vec![set])
        }
        Err(e) => sso_error_page(&e),
    }
}

/// The single sign-on callback
///
/// Where identity providers send the browser back (the redirect URI to register at each one:
/// `{publicUrl}/oauth2/sso/callback`). Completes only in the browser that started the sign-in
/// (its flow cookie, `state` compared), exchanges the code with the PKCE verifier, validates the
/// id_token (signature, `iss`, `aud`, `azp`, `exp`, `iat`, `nonce`), finds or creates the user
/// linked to the provider's issuer and subject, applies the connection's role and tenant mappings,
/// signs the browser in, and continues: the consent screen or the client's redirect URI, or the
/// page it came from.
#[utoipa::path(
    get,
    path = "/oauth2/sso/callback",
    operation_id = "singleSignOnCallback",
    tag = "Authorization server",
    params(SsoCallbackQuery),
    responses(
        (status = 200, description = "Signed in: the consent screen.", content_type = "text/html", body = String),
        (status = 303, description = "Signed in: back to the client with the code, or to the page the sign-in started from.",
            headers(("Location" = String, description = "Where to go next."),
                    ("Cache-Control" = String, description = "`no-store`."))),
        (status = 400, description = "No sign-in was started in this browser, it expired, the state does not match, the provider sent an error, or the id_token is not valid.", content_type = "text/html", body = String),
        (status = 403, description = "No account is linked to this identity (and the connection does not create users), the user is disabled, or a mapping names a role that no longer exists.", content_type = "text/html", body = String),
        (status = 404, description = "The connection was deleted meanwhile.", content_type = "text/html", body = String),
        (status = 502, description = "The identity provider refused the code or failed.", content_type = "text/html", body = String),
        (status = 503, description = "The database is unavailable.", content_type = "text/html", body = String),
    )
)]
async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let mut params = std::collections::HashMap::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if params.insert(k.into_owned(), v.into_owned()).is_some() {
            return error_page(
                StatusCode::BAD_REQUEST,
                "A parameter appears more than once in the callback.",
            );
        }
    }
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    // The flow cookie is spent whatever happens next.
    let clear = format!("{FLOW_COOKIE}={}", cookie_attrs(&state, "Lax", 0));
    let with_clear = |mut resp: Response| {
        if let Ok(v) = axum::http::HeaderValue::from_str(&clear) {
            resp.headers_mut().append(axum::http::header::SET_COOKIE, v);
        }
        resp
    };
    if !get("error").is_empty() {
        let detail = get("error_description");
        let message = if detail.is_empty() {
            format!(
                "Single sign-on failed: the identity provider answered {}.",
                get("error")
            )
        } else {
            format!(
                "Single sign-on failed: the identity provider answered {} ({detail}).",
                get("error")
            )
        };
        return with_clear(error_page(StatusCode::BAD_REQUEST, &message));
    }
    let flow = cookie(&headers, FLOW_COOKIE);
    let (session, then) = match state
        .core
        .finish_sso(
            flow.as_deref(),
            get("state"),
            get("code"),
            params.get("iss").map(String::as_str),
        )
        .await
    {
        Ok(done) => done,
        Err(e) => return with_clear(sso_error_page(&e)),
    };
    let Some(set) = session_cookie(&state, &session) else {
        return with_clear(error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server failed.",
        ));
    };
    with_clear(match then {
        SsoThen::Return(path) => redirect(&path, vec![set]),
        SsoThen::Authorize(sealed) => match state.core.open_authorization(&sealed).await {
            Ok(pending) => after_sign_in(&state, &headers, &session, &pending, vec![set]).await,
            Err(e) => error_page(StatusCode::BAD_REQUEST, &e.to_string()),
        },
    })
}

/// What the single sign-on buttons send.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only")]
struct SsoStartForm {
    /// The page's CSRF token (this browser's CSRF cookie).
    csrf: String,
    /// The SSO connection's id.
    connection: String,
    /// The sealed authorization request the page carried (when signing in to authorize a client).
    request: Option<String>,
    /// A path on Portcullis to return to (otherwise).
    #[serde(rename = "return")]
    return_to: Option<String>,
}

/// The callback's parameters (OpenID Connect Core §3.1.2.5 and §3.1.2.6).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "documentation only")]
struct SsoCallbackQuery {
    /// The authorization code.
    code: Option<String>,
    /// The state this browser's sign-in sent.
    state: Option<String>,
    /// The provider's error code, when it refused.
    error: Option<String>,
    /// Its description.
    error_description: Option<String>,
    /// The provider's issuer (RFC 9207), when it sends one.
    iss: Option<String>,
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(start, callback), components(schemas(SsoStartForm)))]
pub(crate) struct Doc;
