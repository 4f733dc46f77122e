//! Connect-link pages: a connect link opens here, never at the provider. The browser must be
//! signed in as the user the link was made for (signing in, or single sign-on, happens on this
//! page), or — for a user Portcullis cannot sign in — be the first browser to open the link. The
//! page says who connects which app with which scopes; "Continue" starts the flow, binds it to
//! this browser and sends it to the provider (see `portcullis_core::tickets`).

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use portcullis_core::{ConnectLinkPage, ServiceError};

use crate::AppState;
use crate::authorize::{
    Page, cookie, cookie_attrs, csrf, csrf_field, esc, read_form, redirect, session,
    sign_in_cookie, sign_in_returning,
};
use crate::error::PathParams;
use crate::outbound::{capitalize, html_page};

/// The largest form read, in bytes.
const MAX_FORM: usize = 16 * 1024;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/outbound/connect/{ticket}", get(show).post(act))
}

fn link_error(e: &ServiceError) -> Response {
    let (status, message) = match e {
        ServiceError::NotFound { .. } => (
            StatusCode::NOT_FOUND,
            "This app no longer exists.".to_owned(),
        ),
        ServiceError::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Portcullis cannot reach its database right now; try again.".to_owned(),
        ),
        // A link that was never issued is not found; one that was, but is used up, claimed by
        // another browser or expired, is gone.
        ServiceError::Invalid { code, message, .. } => (
            if *code == "invalid_ticket" {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::GONE
            },
            format!("{}.", capitalize(message)),
        ),
        _ => {
            tracing::error!(error = %e, "opening a connect link failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "Portcullis could not start the connection; try again.".to_owned(),
            )
        }
    };
    html_page(status, "Not connected", &message)
}

/// The page asking to continue: who, which app, which scopes.
fn confirm_page(path: &str, page: &ConnectLinkPage, token: &str, cookies: Vec<String>) -> Response {
    let scopes: String = page
        .scopes
        .iter()
        .map(|s| format!("<li><code>{}</code></li>", esc(s)))
        .collect();
    let tenant = page
        .tenant_id
        .as_deref()
        .map(|t| format!(" for the tenant <strong>{}</strong>", esc(t)))
        .unwrap_or_default();
    let claimed = if page.sign_in_as.is_none() {
        "<p>This link now belongs to this browser: it cannot be opened in any other.</p>"
    } else {
        ""
    };
    Page {
        status: StatusCode::OK,
        title: "Connect an app",
        body: format!(
            "<p><strong>{who}</strong> is connecting <strong>{app}</strong> (<code>{app_id}</code>){tenant}, \
asking it for:</p><ul>{scopes}</ul>{claimed}\
<p>If you did not start this from an application you use, close this page.</p>\
<form method=\"post\" action=\"{path}\">{csrf}\
<button type=\"submit\" name=\"action\" value=\"continue\">Continue to {app}</button></form>",
            who = esc(&page.who),
            app = esc(&page.app_name),
            app_id = esc(&page.app_id),
            path = esc(path),
            csrf = csrf_field(token),
        ),
        cookies,
    }
    .into_response()
}

fn wrong_user() -> Response {
    crate::authorize::error_page(
        StatusCode::FORBIDDEN,
        "This connect link was made for another account than the one signed in here. Open it in the browser where that account is signed in, or start again from the application.",
    )
}

/// Open a connect link
///
/// A connect link — what `POST /v1/outbound/apps/{appId}/connect` answers, and the `connectUrl`
/// of a `not_connected` or `consent_required` refusal — is a sealed ticket naming the app, the
/// user and the scopes; it stores nothing until used. It opens this page, never the provider.
/// For a directory user Portcullis can sign in (a password, or an identity at an SSO
/// connection's provider), the browser must be signed in as that user: the sign-in page is shown
/// (200) until it is, and a browser signed in as someone else is refused (403). For anyone else,
/// the first browser to open the link claims it (a one-time, `HttpOnly` cookie); every other
/// browser is refused (410). The page then shows who connects which app with which scopes, and
/// asks to continue.
#[utoipa::path(
    get,
    path = "/v1/outbound/connect/{ticket}",
    operation_id = "openConnectLink",
    tag = "Outbound tokens",
    params(("ticket" = String, Path, description = "The sealed ticket of a connect link.", max_length = 4096)),
    responses(
        (status = 200, description = "The page asking to continue, or the sign-in page.", body = String, content_type = "text/html",
            headers(("Cache-Control" = String, description = "`no-store`."))),
        (status = 403, description = "The browser is signed in as another user than the link's: a page saying so.", body = String, content_type = "text/html"),
        (status = 404, description = "The link is not one Portcullis made, or its app no longer exists: a page saying so; a path with a control character is answered in the API's JSON error shape.", content(
            (String = "text/html"),
            (crate::openapi::schemas::ErrorBody = "application/json"),
        )),
        (status = 410, description = "The link was already used, opened in another browser, or has expired: a page saying so.", body = String, content_type = "text/html"),
        (status = 503, description = "The database is unavailable: a page asking to try again.", body = String, content_type = "text/html"),
    )
)]
async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    PathParams(ticket): PathParams<String>,
) -> Response {
    let path = format!("/v1/outbound/connect/{ticket}");
    let page = match state.core.read_connect_link(&ticket).await {
        Ok(p) => p,
        Err(e) => return link_error(&e),
    };
    let (token, set) = csrf(&state, &headers);
    let mut cookies: Vec<String> = set.into_iter().collect();
    match &page.sign_in_as {
        Some(user) => match session(&state, &headers).await {
            Ok(Some(s)) if &s.user_id == user => confirm_page(&path, &page, &token, cookies),
            Ok(Some(_)) => wrong_user(),
            Ok(None) => sign_in_returning(&state, &path, &token, None, cookies).await,
            Err(resp) => resp,
        },
        None => {
            // Reopened in the browser that claimed it: the page again.
            let claim_cookie = portcullis_core::claim_cookie_name(&ticket);
            let claim = cookie(&headers, &claim_cookie);
            if state
                .core
                .holds_connect_claim(&page, claim.as_deref())
                .await
            {
                return confirm_page(&path, &page, &token, cookies);
            }
            match state.core.claim_connect_link(&page).await {
                Ok(value) => {
                    let ttl = state.core.settings().consent_ttl_secs;
                    cookies.push(format!(
                        "{claim_cookie}={value}{}",
                        cookie_attrs(&state, "Strict", ttl)
                    ));
                    confirm_page(&path, &page, &token, cookies)
                }
                Err(e) => link_error(&e),
            }
        }
    }
}

/// Continue a connect link
///
/// What the connect-link page's forms send, with the page's `csrf` token (this browser's CSRF
/// cookie): `action` `sign_in` (with `login` and `password`; back to the page, signed in) or
/// `continue`, which — for the browser signed in as the link's user, or holding its claim —
/// starts the flow (once per link), binds it to this browser (an `HttpOnly` cookie whose hash is
/// the provider's `state`: the callback completes only here) and sends the browser to the
/// provider. Not for API clients: a browser posts it.
#[utoipa::path(
    post,
    path = "/v1/outbound/connect/{ticket}",
    operation_id = "continueConnectLink",
    tag = "Outbound tokens",
    params(("ticket" = String, Path, description = "The sealed ticket of a connect link.", max_length = 4096)),
    request_body(content = ConnectLinkForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "\"Continue\" from a browser signed in as no one, for a link whose user signs in here: the sign-in page.", body = String, content_type = "text/html"),
        (status = 303, description = "Signed in: back to the page; or continued: to the provider's consent page.",
            headers(("Location" = String, description = "The page, or the provider's authorization URL."),
                    ("Cache-Control" = String, description = "`no-store`."))),
        (status = 400, description = "The form's action is unknown or a field is repeated.", body = String, content_type = "text/html"),
        (status = 401, description = "Wrong user id, email or password: the sign-in page again.", body = String, content_type = "text/html"),
        (status = 403, description = "The CSRF token is not this browser's; the browser is signed in as another user than the link's, or does not hold its claim; or the user is locked out.", body = String, content_type = "text/html"),
        (status = 404, description = "The link is not one Portcullis made, or its app no longer exists; a path with a control character is answered in the API's JSON error shape.", content(
            (String = "text/html"),
            (crate::openapi::schemas::ErrorBody = "application/json"),
        )),
        (status = 410, description = "The link was already used, or has expired.", body = String, content_type = "text/html"),
        (status = 413, description = "The form is larger than 16 KiB.", body = String, content_type = "text/html"),
        (status = 429, description = "Too many sign-in attempts from this address.", body = String, content_type = "text/html"),
        (status = 503, description = "The database is unavailable.", body = String, content_type = "text/html"),
    )
)]
async fn act(
    State(state): State<AppState>,
    PathParams(ticket): PathParams<String>,
    parts: axum::http::request::Parts,
    body: Bytes,
) -> Response {
    let headers = parts.headers;
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().copied();
    let path = format!("/v1/outbound/connect/{ticket}");
    let form = match read_form(&headers, &body, MAX_FORM) {
        Ok(f) => f,
        Err((status, message)) => return crate::authorize::error_page(status, message),
    };
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    let page = match state.core.read_connect_link(&ticket).await {
        Ok(p) => p,
        Err(e) => return link_error(&e),
    };
    match field("action") {
        "sign_in" => {
            let from = peer.map(|ConnectInfo(a)| a.ip());
            match sign_in_cookie(&state, field("login"), field("password"), from).await {
                Ok((_, set)) => redirect(&path, vec![set]),
                Err((status, message)) => {
                    sign_in_returning(
                        &state,
                        &path,
                        field("csrf"),
                        Some((status, &message)),
                        Vec::new(),
                    )
                    .await
                }
            }
        }
        "continue" => {
            let allowed = match &page.sign_in_as {
                Some(user) => match session(&state, &headers).await {
                    Ok(Some(s)) => &s.user_id == user,
                    // Not signed in (or the session ended): sign in first, then continue.
                    Ok(None) => {
                        return sign_in_returning(&state, &path, field("csrf"), None, Vec::new())
                            .await;
                    }
                    Err(resp) => return resp,
                },
                None => {
                    let claim = cookie(&headers, &portcullis_core::claim_cookie_name(&ticket));
                    state
                        .core
                        .holds_connect_claim(&page, claim.as_deref())
                        .await
                }
            };
            if !allowed {
                return if page.sign_in_as.is_some() {
                    wrong_user()
                } else {
                    crate::authorize::error_page(
                        StatusCode::FORBIDDEN,
                        "This connect link belongs to another browser: the first one that opened it.",
                    )
                };
            }
            match state.core.continue_connect_link(&ticket).await {
                Ok(start) => {
                    let ttl = state.core.settings().consent_ttl_secs;
                    let binding = format!(
                        "{}={}{}",
                        start.cookie_name,
                        start.cookie_value.expose(),
                        cookie_attrs(&state, "Lax", ttl)
                    );
                    redirect(&start.location, vec![binding])
                }
                Err(e) => link_error(&e),
            }
        }
        _ => crate::authorize::error_page(
            StatusCode::BAD_REQUEST,
            "The form's action is not one of this page's.",
        ),
    }
}

/// What the connect-link page's forms send.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only")]
struct ConnectLinkForm {
    /// The page's CSRF token (this browser's CSRF cookie).
    csrf: String,
    /// `sign_in` or `continue`.
    action: String,
    /// `sign_in`: the user's id or email.
    login: Option<String>,
    /// `sign_in`: the password.
    #[schema(write_only)]
    password: Option<String>,
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(show, act), components(schemas(ConnectLinkForm)))]
pub(crate) struct Doc;
