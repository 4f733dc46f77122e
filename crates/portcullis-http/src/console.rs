//! The admin console at `/console`: a static single-page app (one HTML page, one script, one
//! style sheet, embedded in the binary and served under a strict Content-Security-Policy) that
//! calls the management API with `fetch`, so every validation, scope check and audit record is the
//! API's own.
//!
//! An admin signs in one of two ways. With a key, pasted once: `POST /console/session` verifies it
//! as a management call's bearer key is. Or as a Portcullis user holding an admin role
//! (`portcullis.{scope}`, see [`portcullis_core::console::ADMIN_ROLE_PREFIX`]): `/console/sign-in`
//! is Portcullis's own sign-in page (password or single sign-on), and lands on the console. Either
//! way the browser gets a sealed `HttpOnly`, `SameSite=Strict` cookie naming the key's id or the
//! user's id, and the page a CSRF token it keeps in memory. The [`Admin`](crate::auth::Admin)
//! extractor then accepts that cookie instead of a bearer key, looking the key or the user up on
//! every request, and requires the CSRF token in `X-CSRF-Token` on every request that is not a
//! `GET` or a `HEAD`.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use portcullis_core::authz::Session;
use portcullis_core::console::{ConsoleActor, ConsoleSession, NewConsoleSession};
use portcullis_core::{AdminIdentity, ServiceError};
use portcullis_domain::Timestamp;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::authorize::{
    cookie, cookie_attrs, csrf, error_page, read_form, redirect, session, sign_in_cookie,
    sign_in_returning,
};
use crate::error::{ApiError, JsonBody};
use crate::openapi::schemas::ErrorBody;

/// The console session's cookie.
pub(crate) const CONSOLE_COOKIE: &str = "portcullis_console";
/// The header carrying the session's CSRF token.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// Where a Portcullis user signs in to the console.
const SIGN_IN_PATH: &str = "/console/sign-in";
/// The largest sign-in form read, in bytes.
const MAX_FORM: usize = 4 * 1024;

/// The console's page.
const INDEX_HTML: &str = include_str!("console/index.html");

/// The console's other files, served at `/console/{name}`: name, content, media type.
const FILES: [(&str, &str, &str); 5] = [
    ("app.js", include_str!("console/app.js"), JS),
    ("ui.js", include_str!("console/ui.js"), JS),
    ("directory.js", include_str!("console/directory.js"), JS),
    ("servers.js", include_str!("console/servers.js"), JS),
    (
        "console.css",
        include_str!("console/console.css"),
        "text/css; charset=utf-8",
    ),
];
const JS: &str = "text/javascript; charset=utf-8";

/// What the console's answers may load: only this origin's script, style and API; no inline
/// script or style, no frame.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(page))
        .route("/console/{file}", get(file))
        .route(
            "/console/session",
            get(current_session).post(start_session).delete(end_session),
        )
        .route(
            "/console/sign-in",
            get(user_sign_in).post(user_sign_in_form),
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

/// The console's scripts and style sheet
///
/// One of the console's files: its ES modules (`app.js`, `ui.js` and one per section; no build
/// step, no dependency) and its style sheet (`console.css`).
#[utoipa::path(
    get,
    path = "/console/{file}",
    operation_id = "consoleFile",
    tag = "Console",
    params(("file" = String, Path, description = "The file's name, such as `app.js` or `console.css`.")),
    responses(
        (status = 200, description = "The file.",
            content((String = "text/javascript"), (String = "text/css")),
            headers(("Content-Security-Policy" = String, description = "Only this origin's script, style and API."))),
        (status = 404, description = "The console has no such file.", body = ErrorBody),
    )
)]
async fn file(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, body, media)) => asset(body, media),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the console has no such file",
        )
        .into_response(),
    }
}

/// What the sign-in screen sends.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ConsoleSignIn {
    /// An admin key (`pca_...`), as a management call's bearer would carry it. It is verified
    /// and forgotten: the session holds the key's id, never the key.
    admin_key: String,
}

/// A console session: the admin key or user it acts as, and the CSRF token of its changing
/// requests.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConsoleSessionView {
    /// `key` (signed in with an admin key) or `user` (a Portcullis user with an admin role).
    kind: &'static str,
    /// Who acts, as the management audit records it: the key's id, or `user:{id}`.
    actor_id: String,
    /// The admin key's name, or the user's name.
    name: String,
    /// What the key or user may do (a user: the scopes their `portcullis.{scope}` roles grant).
    scopes: Vec<String>,
    /// Send it as `X-CSRF-Token` with every management request that is not a `GET` or a `HEAD`.
    /// Keep it in memory only.
    csrf_token: String,
    /// When the session ends: eight hours after sign-in, or when the key expires or the user's
    /// sign-in ends, if sooner.
    #[schema(format = DateTime)]
    expires_at: String,
}

impl ConsoleSessionView {
    fn new(admin: &AdminIdentity, session: &ConsoleSession) -> Self {
        Self {
            kind: match session.actor {
                ConsoleActor::Key(_) => "key",
                ConsoleActor::User(_) => "user",
            },
            actor_id: admin.actor_id.clone(),
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
    let set = console_cookie(&state, &started);
    let view = ConsoleSessionView::new(&started.admin, &started.session);
    Ok(private_json(StatusCode::OK, &view, &[set]))
}

/// The `Set-Cookie` value of a new console session.
fn console_cookie(state: &AppState, started: &NewConsoleSession) -> String {
    format!(
        "{CONSOLE_COOKIE}={}{}",
        started.cookie,
        cookie_attrs(state, "Strict", started.max_age_secs)
    )
}

/// Sign in to the console as a Portcullis user
///
/// Portcullis's sign-in page (password, or a single sign-on connection's button), which lands on
/// the console: a browser already signed in to Portcullis goes straight there. The user must hold
/// an admin role: a global role named `portcullis.{scope}` (`portcullis.admin`,
/// `portcullis.read`, `portcullis.policies`...), each granting that admin scope. The console
/// session then acts as `user:{id}` in the management audit, with the scopes the user's roles
/// grant at each request (taking the role away, or disabling the user, signs them out at once).
#[utoipa::path(
    get,
    path = "/console/sign-in",
    operation_id = "consoleUserSignIn",
    tag = "Console",
    responses(
        (status = 200, description = "The sign-in page.", content_type = "text/html", body = String,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        (status = 303, description = "Signed in to Portcullis with an admin role: on to the console, with its session cookie.",
            headers(("Location" = String, description = "`/console`."),
                    ("Set-Cookie" = String, description = "The sealed console session cookie."))),
        (status = 403, description = "Signed in as a user who holds no admin role: a page that says so.", content_type = "text/html", body = String),
        (status = 503, description = "The database is unavailable.", body = ErrorBody),
    )
)]
async fn user_sign_in(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (token, set) = csrf(&state, &headers);
    let cookies: Vec<String> = set.into_iter().collect();
    match session(&state, &headers).await {
        Ok(Some(s)) => console_for_user(&state, &s, cookies).await,
        Ok(None) => sign_in_returning(&state, SIGN_IN_PATH, &token, None, cookies).await,
        Err(resp) => resp,
    }
}

/// Sign in to the console with a password
///
/// What the console's sign-in page sends: `action=sign_in`, `login`, `password` and the page's
/// `csrf` token (this browser's CSRF cookie). Signed in, a user holding an admin role goes on to
/// the console; the others see why not.
#[utoipa::path(
    post,
    path = "/console/sign-in",
    operation_id = "consoleUserSignInForm",
    tag = "Console",
    request_body(content = ConsoleSignInForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in with an admin role: on to the console, with the Portcullis session and console session cookies.",
            headers(("Location" = String, description = "`/console`."),
                    ("Set-Cookie" = String, description = "The session cookies."))),
        (status = 400, description = "A field is repeated or the action is unknown.", content_type = "text/html", body = String),
        (status = 401, description = "Wrong user id, email or password.", content_type = "text/html", body = String),
        (status = 403, description = "The CSRF token is not this browser's, the user is locked out, or holds no admin role.", content_type = "text/html", body = String),
        (status = 413, description = "The form is larger than 4 KiB.", content_type = "text/html", body = String),
        (status = 429, description = "Too many sign-in attempts from this address.", content_type = "text/html", body = String),
        (status = 503, description = "The database is unavailable.", content_type = "text/html", body = String),
    )
)]
async fn user_sign_in_form(State(state): State<AppState>, parts: Parts, body: Bytes) -> Response {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().copied();
    let form = match read_form(&parts.headers, &body, MAX_FORM) {
        Ok(f) => f,
        Err((status, message)) => return error_page(status, message),
    };
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    if field("action") != "sign_in" {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The form's action is not one of this page's.",
        );
    }
    let from = peer.map(|ConnectInfo(a)| a.ip());
    match sign_in_cookie(&state, field("login"), field("password"), from).await {
        Ok((s, set)) => console_for_user(&state, &s, vec![set]).await,
        Err((status, message)) => {
            sign_in_returning(
                &state,
                SIGN_IN_PATH,
                field("csrf"),
                Some((status, &message)),
                Vec::new(),
            )
            .await
        }
    }
}

/// A signed-in user on their way to the console: a console session when they hold an admin
/// role, else a page that says why not.
async fn console_for_user(state: &AppState, s: &Session, mut cookies: Vec<String>) -> Response {
    let until = Timestamp::from_secs(s.expires_at);
    match state
        .core
        .start_console_session_for_user(&s.user_id, until)
        .await
    {
        Ok(started) => {
            cookies.push(console_cookie(state, &started));
            redirect("/console", cookies)
        }
        Err(ServiceError::Forbidden(message) | ServiceError::Unauthorized(message)) => error_page(
            StatusCode::FORBIDDEN,
            &format!(
                "You are signed in to Portcullis, but cannot use the console: {message}. \
An admin can grant you such a role; or sign in to the console with an admin key."
            ),
        ),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// What the console's sign-in page sends (no other field).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "documentation only")]
struct ConsoleSignInForm {
    /// The page's CSRF token (this browser's CSRF cookie).
    csrf: String,
    /// What the form does: sign in.
    action: ConsoleSignInAction,
    /// The user's id or email.
    login: String,
    /// The password.
    #[schema(write_only)]
    password: String,
}

/// The console's sign-in form's only action.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code, reason = "documentation only")]
enum ConsoleSignInAction {
    /// Sign in with `login` and `password`.
    SignIn,
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
    let admin = state.core.authenticate_console(&session).await?;
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
    Ok(state.core.authenticate_console(&session).await?)
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
    paths(
        page,
        file,
        start_session,
        current_session,
        end_session,
        user_sign_in,
        user_sign_in_form
    ),
    components(schemas(
        ConsoleSignIn,
        ConsoleSessionView,
        ConsoleSignInForm,
        ConsoleSignInAction
    ))
)]
pub(crate) struct Doc;
