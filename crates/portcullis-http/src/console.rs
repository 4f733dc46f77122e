//! The admin console at `/console`: a static single-page app (one HTML page, one script, one
//! style sheet, embedded in the binary and served under a strict Content-Security-Policy) that
//! calls the management API with `fetch`, so every validation, scope check and audit record is the
//! API's own.
//!
//! The admin pastes a key once: `POST /console/session` verifies it as a management call's bearer
//! key is and answers with a sealed `HttpOnly`, `SameSite=Strict` cookie naming the key's id, and a
//! CSRF token the page keeps in memory. The [`Admin`](crate::auth::Admin) extractor then accepts
//! that cookie instead of a bearer key, looking the key up by id on every request, and requires the
//! CSRF token in `X-CSRF-Token` on every request that is not a `GET` or a `HEAD`.

use axum::Router;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use portcullis_core::AdminIdentity;
use portcullis_core::console::ConsoleSession;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::authorize::{cookie, cookie_attrs};
use crate::error::{ApiError, JsonBody};
use crate::openapi::schemas::ErrorBody;

/// The console session's cookie.
pub(crate) const CONSOLE_COOKIE: &str = "portcullis_console";
/// The header carrying the session's CSRF token.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// The console's page, script and style sheet.
const INDEX_HTML: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const CONSOLE_CSS: &str = include_str!("console/console.css");

/// What the console's answers may load: only this origin's script, style and API; no inline
/// script or style, no frame.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(page))
        .route("/console/app.js", get(script))
        .route("/console/console.css", get(style))
        .route(
            "/console/session",
            get(current_session).post(start_session).delete(end_session),
        )
}

/// One of the console's static files, with its media type and the console's security headers.
fn asset(body: &'static str, media: &'static str) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Revalidated on every load, so that an upgraded server serves its own console at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// The admin console
///
/// The console's single page: sign in with an admin key, then manage outbound apps, their
/// policies (with a replay preview before saving), connections and the audit log. Its script and
/// style sheet are the only resources it loads (a strict Content-Security-Policy says so).
#[utoipa::path(
    get,
    path = "/console",
    operation_id = "consolePage",
    tag = "Console",
    responses(
        (status = 200, description = "The console's page.", content_type = "text/html", body = String,
            headers(("Content-Security-Policy" = String, description = "Only this origin's script, style and API."))),
    )
)]
async fn page() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8")
}

/// The console's script
///
/// The console's script (an ES module, no build step, no dependency).
#[utoipa::path(
    get,
    path = "/console/app.js",
    operation_id = "consoleScript",
    tag = "Console",
    responses(
        (status = 200, description = "The script.", content_type = "text/javascript", body = String,
            headers(("Content-Security-Policy" = String, description = "Only this origin's script, style and API."))),
    )
)]
async fn script() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

/// The console's style sheet
///
/// The console's style sheet.
#[utoipa::path(
    get,
    path = "/console/console.css",
    operation_id = "consoleStyle",
    tag = "Console",
    responses(
        (status = 200, description = "The style sheet.", content_type = "text/css", body = String,
            headers(("Content-Security-Policy" = String, description = "Only this origin's script, style and API."))),
    )
)]
async fn style() -> Response {
    asset(CONSOLE_CSS, "text/css; charset=utf-8")
}

/// What the sign-in screen sends.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ConsoleSignIn {
    /// An admin key (`pca_...`), as a management call's bearer would carry it. It is verified
    /// and forgotten: the session holds the key's id, never the key.
    admin_key: String,
}

/// A console session: the admin key it acts as, and the CSRF token of its changing requests.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConsoleSessionView {
    /// The admin key's id.
    key_id: String,
    /// The admin key's name.
    name: String,
    /// What the key may do.
    scopes: Vec<String>,
    /// Send it as `X-CSRF-Token` with every management request that is not a `GET` or a `HEAD`.
    /// Keep it in memory only.
    csrf_token: String,
    /// When the session ends (eight hours after sign-in, or when the key expires if sooner).
    #[schema(format = DateTime)]
    expires_at: String,
}

impl ConsoleSessionView {
    fn new(admin: &AdminIdentity, session: &ConsoleSession) -> Self {
        Self {
            key_id: admin.key_id.clone(),
            name: admin.name.clone(),
            scopes: admin.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            csrf_token: session.csrf_token.clone(),
            expires_at: session.expires_at.to_rfc3339(),
        }
    }
}

/// A JSON answer that no cache keeps, with `cookies` set.
fn private_json<T: Serialize>(status: StatusCode, body: &T, cookies: &[String]) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// Sign in to the console
///
/// Exchanges an admin key for a console session: the key is verified as a management call's
/// bearer key is, and the answer sets a sealed cookie (`HttpOnly`, `SameSite=Strict`, `Secure`
/// when Portcullis is served over https, eight hours) naming the key's id — never the key. The
/// management API then accepts that cookie instead of a bearer key, with the body's `csrfToken` in
/// `X-CSRF-Token` on every request that is not a `GET` or a `HEAD`. Revoking the key ends its
/// sessions at once.
#[utoipa::path(
    post,
    path = "/console/session",
    operation_id = "startConsoleSession",
    tag = "Console",
    request_body(content = ConsoleSignIn, description = "The admin key."),
    responses(
        (status = 200, description = "Signed in.", body = ConsoleSessionView,
            headers(("Set-Cookie" = String, description = "The sealed session cookie."),
                    ("Cache-Control" = String, description = "`no-store`."))),
        (status = 401, description = "The admin key is not valid, or has expired.", body = ErrorBody),
        (status = 500, description = "The server failed.", body = ErrorBody),
        (status = 503, description = "The database is unavailable.", body = ErrorBody),
    )
)]
async fn start_session(
    State(state): State<AppState>,
    JsonBody(input): JsonBody<ConsoleSignIn>,
) -> Result<Response, ApiError> {
    let started = state
        .core
        .start_console_session(input.admin_key.trim())
        .await?;
    let set = format!(
        "{CONSOLE_COOKIE}={}{}",
        started.cookie,
        cookie_attrs(&state, "Strict", started.max_age_secs)
    );
    let view = ConsoleSessionView::new(&started.admin, &started.session);
    Ok(private_json(StatusCode::OK, &view, &[set]))
}

/// The current console session
///
/// The session this browser's console cookie holds, with its CSRF token again (the page asks for
/// it when it is reloaded). 401 when there is none, it has expired, or its key was revoked.
#[utoipa::path(
    get,
    path = "/console/session",
    operation_id = "getConsoleSession",
    tag = "Console",
    responses(
        (status = 200, description = "Signed in.", body = ConsoleSessionView,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        (status = 401, description = "Not signed in: no session, an expired or tampered one, or its key was revoked.", body = ErrorBody),
        (status = 500, description = "The server failed.", body = ErrorBody),
        (status = 503, description = "The database is unavailable.", body = ErrorBody),
    )
)]
async fn current_session(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let session = open(&state, &headers).await?;
    let admin = state.core.authenticate_admin_by_id(&session.key_id).await?;
    let view = ConsoleSessionView::new(&admin, &session);
    Ok(private_json(StatusCode::OK, &view, &[]))
}

/// Sign out of the console
///
/// Clears this browser's console cookie. The session is not recorded server-side: a copy of the
/// cookie taken before stays valid until it expires or its admin key is revoked.
#[utoipa::path(
    delete,
    path = "/console/session",
    operation_id = "endConsoleSession",
    tag = "Console",
    responses(
        (status = 204, description = "Signed out.",
            headers(("Set-Cookie" = String, description = "Clears the session cookie."))),
    )
)]
async fn end_session(State(state): State<AppState>) -> Response {
    let clear = format!("{CONSOLE_COOKIE}={}", cookie_attrs(&state, "Strict", 0));
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&clear) {
        h.append(header::SET_COOKIE, v);
    }
    resp
}

/// The console session of a request's cookie: 401 without one, or with one that is not valid.
async fn open(state: &AppState, headers: &HeaderMap) -> Result<ConsoleSession, ApiError> {
    let Some(value) = cookie(headers, CONSOLE_COOKIE) else {
        return Err(portcullis_core::ServiceError::Unauthorized(
            "no console session; sign in to the console".into(),
        )
        .into());
    };
    Ok(state.core.open_console_session(&value).await?)
}

/// Whether a request carries a console cookie (the [`Admin`](crate::auth::Admin) extractor then
/// authenticates it with [`authenticate`]).
pub(crate) fn has_session(parts: &Parts) -> bool {
    cookie(&parts.headers, CONSOLE_COOKIE).is_some()
}

/// Authenticates a management request by its console cookie: the session must be valid and
/// unexpired, a request that is not a `GET` or a `HEAD` must carry the session's CSRF token in
/// `X-CSRF-Token` (otherwise 403 `csrf_mismatch`), and the key it names must still exist.
pub(crate) async fn authenticate(
    state: &AppState,
    parts: &Parts,
) -> Result<AdminIdentity, ApiError> {
    let session = open(state, &parts.headers).await?;
    let changes = parts.method != Method::GET && parts.method != Method::HEAD;
    if changes && !csrf_ok(&session, &parts.headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf_mismatch",
            "a console request that changes something must carry the session's CSRF token in X-CSRF-Token",
        ));
    }
    Ok(state.core.authenticate_admin_by_id(&session.key_id).await?)
}

/// Whether a changing request's `X-CSRF-Token` is the session's (missing or repeated: no).
fn csrf_ok(session: &ConsoleSession, headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(CSRF_HEADER).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => session.csrf_matches(v.to_str().unwrap_or("")),
        _ => false,
    }
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(page, script, style, start_session, current_session, end_session),
    components(schemas(ConsoleSignIn, ConsoleSessionView))
)]
pub(crate) struct Doc;
