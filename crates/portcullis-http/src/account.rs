//! The signed-in user's own page: the consents they remembered, each revocable (which also
//! revokes the refresh tokens that client holds for them). The same page rules as the
//! authorization endpoint's: server-rendered, CSRF-bound forms, the sealed session cookie.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;
use crate::authorize::{
    Page, csrf, csrf_field, error_page, esc, read_form, redirect, session, sign_in_cookie,
    sign_in_returning,
};

const PATH: &str = "/oauth2/consents";
/// The largest form read, in bytes.
const MAX_FORM: usize = 4 * 1024;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/oauth2/consents", get(show).post(act))
}

/// Your consents
///
/// The signed-in user's remembered consents, each with a button that revokes it (and the refresh
/// tokens that client holds for them). A browser that is not signed in sees the sign-in form.
#[utoipa::path(
    get,
    path = "/oauth2/consents",
    operation_id = "showOwnConsents",
    tag = "Authorization server",
    responses(
        (status = 200, description = "The consents page, or the sign-in page.", content_type = "text/html", body = String,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        (status = 503, description = "The database is unavailable.", body = crate::openapi::schemas::ErrorBody),
    )
)]
async fn show(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (token, set) = csrf(&state, &headers);
    let cookies: Vec<String> = set.into_iter().collect();
    let s = match session(&state, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return sign_in_returning(&state, PATH, &token, None, cookies).await,
        Err(resp) => return resp,
    };
    let list = match state.core.list_consents(&s.user_id).await {
        Ok(l) => l,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let mut rows = String::new();
    for c in &list.items {
        rows.push_str(&format!(
            "<li><p><code>{client}</code> may act for you on <code>{resource}</code>: {scopes}</p>\
<form method=\"post\" action=\"{PATH}\">{csrf}<input type=\"hidden\" name=\"client_id\" value=\"{client}\">\
<button type=\"submit\" name=\"action\" value=\"revoke\">Revoke</button></form></li>",
            client = esc(&c.client_id),
            resource = esc(&c.resource),
            scopes = esc(&c.scopes.join(", ")),
            csrf = csrf_field(&token),
        ));
    }
    let body = if rows.is_empty() {
        format!(
            "<p>Signed in as <code>{}</code>. You have not allowed any application.</p>",
            esc(&s.user_id)
        )
    } else {
        format!(
            "<p>Signed in as <code>{}</code>.</p><ul>{rows}</ul>",
            esc(&s.user_id)
        )
    };
    Page {
        status: StatusCode::OK,
        title: "Applications you allowed",
        body,
        cookies,
    }
    .into_response()
}

/// Sign in, or revoke a consent
///
/// What the consents page's forms send: `action` `sign_in` (with `login` and `password`) or
/// `revoke` (with `client_id`), each with the page's `csrf` token, which must be this browser's
/// CSRF cookie.
#[utoipa::path(
    post,
    path = "/oauth2/consents",
    operation_id = "changeOwnConsents",
    tag = "Authorization server",
    request_body(content = ConsentsForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Done: back to the consents page.",
            headers(("Location" = String, description = "`/oauth2/consents`."),
                    ("Cache-Control" = String, description = "`no-store`."))),
        (status = 400, description = "A field is repeated or the action is unknown.", content_type = "text/html", body = String,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        (status = 401, description = "Wrong user id, email or password, or (to revoke) not signed in.", content_type = "text/html", body = String,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        (status = 403, description = "The CSRF token is not this browser's, or the user is locked out.", content_type = "text/html", body = String,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        (status = 413, description = "The form is larger than 4 KiB.", content_type = "text/html", body = String,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        (status = 429, description = "Too many sign-in attempts from this address.", content_type = "text/html", body = String,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        (status = 503, description = "The database is unavailable.", content_type = "text/html", body = String,
            headers(("Cache-Control" = String, description = "`no-store`."))),
    )
)]
async fn act(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
    body: Bytes,
) -> Response {
    let headers = parts.headers;
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().copied();
    let form = match read_form(&headers, &body, MAX_FORM) {
        Ok(f) => f,
        Err((status, message)) => return error_page(status, message),
    };
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    match field("action") {
        "sign_in" => {
            let from = peer.map(|ConnectInfo(a)| a.ip());
            match sign_in_cookie(&state, field("login"), field("password"), from).await {
                Ok((_, set)) => redirect(PATH, vec![set]),
                Err((status, message)) => {
                    sign_in_returning(
                        &state,
                        PATH,
                        field("csrf"),
                        Some((status, &message)),
                        Vec::new(),
                    )
                    .await
                }
            }
        }
        "revoke" => match session(&state, &headers).await {
            Ok(Some(s)) => {
                let client = field("client_id");
                if client.is_empty() {
                    return error_page(StatusCode::BAD_REQUEST, "Name the application to revoke.");
                }
                match state.core.revoke_consents(&s.user_id, Some(client)).await {
                    Ok(()) => redirect(PATH, Vec::new()),
                    Err(e) => crate::error::ApiError::from(e).into_response(),
                }
            }
            Ok(None) => error_page(StatusCode::UNAUTHORIZED, "Sign in first."),
            Err(resp) => resp,
        },
        _ => error_page(
            StatusCode::BAD_REQUEST,
            "The form's action is not one of this page's.",
        ),
    }
}

/// What the consents page's forms send.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only")]
struct ConsentsForm {
    /// The page's CSRF token (this browser's CSRF cookie).
    csrf: String,
    /// `sign_in` or `revoke`.
    action: String,
    /// `sign_in`: the user's id or email.
    login: Option<String>,
    /// `sign_in`: the password.
    #[schema(write_only)]
    password: Option<String>,
    /// `revoke`: the application's client id.
    client_id: Option<String>,
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(show, act), components(schemas(ConsentsForm)))]
pub(crate) struct Doc;
