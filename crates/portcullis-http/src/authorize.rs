//! The authorization endpoint's pages: sign-in, consent, errors. Server-rendered, small, with no
//! external asset (a strict Content-Security-Policy says so), every form bound to a CSRF cookie
//! (double submit, `SameSite=Strict`). The pending request travels sealed in the forms; the
//! session is a sealed `HttpOnly` cookie.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use portcullis_core::authz::{
    AuthorizeOutcome, AuthorizeParams, ConsentScreen, PendingAuthorization, Session, SignInError,
};
use portcullis_crypto::{constant_time_eq, random_token};

use crate::AppState;

pub(crate) const SESSION_COOKIE: &str = "portcullis_session";
pub(crate) const CSRF_COOKIE: &str = "portcullis_csrf";
/// The largest form read, in bytes.
const MAX_FORM: usize = 16 * 1024;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/oauth2/authorize", get(authorize).post(submit))
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A cookie's value from the request.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// What a page answer carries besides its body.
pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) title: &'static str,
    pub(crate) body: String,
    pub(crate) cookies: Vec<String>,
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let html = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · Portcullis</title><style>{STYLE}</style></head>\
<body><main><h1>{title}</h1>{body}</main></body></html>\n",
            title = esc(self.title),
            body = self.body,
        );
        let mut resp = (self.status, html).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        for c in self.cookies {
            if let Ok(v) = HeaderValue::from_str(&c) {
                h.append(header::SET_COOKIE, v);
            }
        }
        resp
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f6f7f9;color:#1b1f24;margin:0}\
main{max-width:26rem;margin:3rem auto;background:#fff;padding:1.5rem 2rem;border-radius:8px;box-shadow:0 1px 3px #0002}\
h1{font-size:1.3rem}label{display:block;margin:.8rem 0 .2rem}\
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem}\
button{margin:1rem .5rem 0 0;padding:.5rem 1rem;font-size:1rem}\
.error{color:#a00;font-weight:600}ul{padding-left:1.2rem}code{word-break:break-all}";

pub(crate) fn redirect(to: &str, cookies: Vec<String>) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(to) {
        h.insert(header::LOCATION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    resp
}

pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    Page {
        status,
        title: "This request cannot continue",
        body: format!(
            "<p role=\"alert\" class=\"error\">{}</p><p>Go back to the application and start again.</p>",
            esc(message)
        ),
        cookies: Vec::new(),
    }
    .into_response()
}

/// The cookie attributes: `Secure` when Portcullis is served over https.
pub(crate) fn cookie_attrs(state: &AppState, same_site: &str, max_age: i64) -> String {
    let secure = if state.core.settings().public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!("; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}")
}

/// Reads a page's form: at most `max` bytes, each field once, its `csrf` field this browser's
/// CSRF cookie. Otherwise the status and message of the error page that says which.
pub(crate) fn read_form(
    headers: &HeaderMap,
    body: &[u8],
    max: usize,
) -> Result<std::collections::HashMap<String, String>, (StatusCode, &'static str)> {
    if body.len() > max {
        return Err((StatusCode::PAYLOAD_TOO_LARGE, "The form is too large."));
    }
    let mut form = std::collections::HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if form.insert(k.into_owned(), v.into_owned()).is_some() {
            return Err((
                StatusCode::BAD_REQUEST,
                "A field appears more than once in the form.",
            ));
        }
    }
    let sent = form.get("csrf").map(String::as_str).unwrap_or("");
    let csrf_ok = cookie(headers, CSRF_COOKIE)
        .is_some_and(|c| !c.is_empty() && constant_time_eq(c.as_bytes(), sent.as_bytes()));
    if !csrf_ok {
        return Err((
            StatusCode::FORBIDDEN,
            "This form was not sent from this browser's page (its CSRF token does not match).",
        ));
    }
    Ok(form)
}

/// The CSRF token of this browser, and the cookie to set when it is new.
pub(crate) fn csrf(state: &AppState, headers: &HeaderMap) -> (String, Option<String>) {
    match cookie(headers, CSRF_COOKIE).filter(|c| c.len() == 43) {
        Some(c) => (c, None),
        None => {
            let token = random_token(32);
            let set = format!(
                "{CSRF_COOKIE}={token}{}",
                cookie_attrs(state, "Strict", 3600)
            );
            (token, Some(set))
        }
    }
}

fn hidden(sealed: &str, csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"request\" value=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(sealed),
        esc(csrf)
    )
}

async fn sign_in_page(
    state: &AppState,
    headers: &HeaderMap,
    pending: &PendingAuthorization,
    problem: Option<(StatusCode, &str)>,
) -> Response {
    let sealed = match state.core.seal_authorization(pending) {
        Ok(s) => s,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let (token, set) = csrf(state, headers);
    let fields = hidden(&sealed, &token);
    let sso = crate::sso::sso_form(&crate::sso::buttons(state).await, &fields);
    sign_in_form(
        "/oauth2/authorize",
        &fields,
        &sso,
        problem,
        set.into_iter().collect(),
    )
}

/// The sign-in page: a form posting `action=sign_in`, `login` and `password` (with `hidden`) to
/// `target`, then `sso` (the single sign-on buttons' form, if any).
pub(crate) fn sign_in_form(
    target: &str,
    hidden: &str,
    sso: &str,
    problem: Option<(StatusCode, &str)>,
    cookies: Vec<String>,
) -> Response {
    let alert = problem
        .map(|(_, m)| format!("<p role=\"alert\" class=\"error\">{}</p>", esc(m)))
        .unwrap_or_default();
    Page {
        status: problem.map_or(StatusCode::OK, |(s, _)| s),
        title: "Sign in",
        body: format!(
            "{alert}<form method=\"post\" action=\"{target}\">{hidden}\
<label for=\"login\">User id or email</label>\
<input type=\"text\" id=\"login\" name=\"login\" autocomplete=\"username\" required>\
<label for=\"password\">Password</label>\
<input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
<button type=\"submit\" name=\"action\" value=\"sign_in\">Sign in</button></form>{sso}"
        ),
        cookies,
    }
    .into_response()
}

/// The session cookie of a signed-in browser (`SameSite=Lax`: it must reach the authorization
/// endpoint when a client's link opens it); `None` when it cannot be sealed (logged).
pub(crate) fn session_cookie(state: &AppState, s: &Session) -> Option<String> {
    let sealed = state
        .core
        .seal_session(s)
        .map_err(|e| tracing::error!(error = %e, "sealing a session failed"))
        .ok()?;
    let ttl = s.expires_at - s.auth_time;
    Some(format!(
        "{SESSION_COOKIE}={sealed}{}",
        cookie_attrs(state, "Lax", ttl)
    ))
}

/// The hidden field carrying a page's CSRF token.
pub(crate) fn csrf_field(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(token)
    )
}

/// The sign-in page of a page of Portcullis at `path` (the consents page, a connect link): the
/// password form posts there, and the single sign-on buttons come back there once signed in.
pub(crate) async fn sign_in_returning(
    state: &AppState,
    path: &str,
    token: &str,
    problem: Option<(StatusCode, &str)>,
    cookies: Vec<String>,
) -> Response {
    let hidden = format!(
        "{}<input type=\"hidden\" name=\"return\" value=\"{}\">",
        csrf_field(token),
        esc(path)
    );
    let sso = crate::sso::sso_form(&crate::sso::buttons(state).await, &hidden);
    sign_in_form(path, &csrf_field(token), &sso, problem, cookies)
}

/// Signs in from a form; the session cookie to set, or the page that says why not.
pub(crate) async fn sign_in_cookie(
    state: &AppState,
    login: &str,
    password: &str,
    from: Option<std::net::IpAddr>,
) -> Result<(Session, String), (StatusCode, String)> {
    match state.core.sign_in(login, password, from).await {
        Ok(s) => match session_cookie(state, &s) {
            Some(set) => Ok((s, set)),
            None => Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server failed.".to_owned(),
            )),
        },
        Err(SignInError::Invalid) => Err((
            StatusCode::UNAUTHORIZED,
            "Wrong user id, email or password.".into(),
        )),
        Err(SignInError::Locked) => Err((
            StatusCode::FORBIDDEN,
            "Too many failed sign-ins: this account is locked for a while.".into(),
        )),
        Err(SignInError::RateLimited(secs)) => Err((
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many sign-in attempts; try again in {secs} s."),
        )),
        Err(SignInError::Unavailable(m)) => {
            tracing::warn!(error = %m, "a sign-in could not be checked");
            Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable right now; try again shortly.".into(),
            ))
        }
    }
}

fn consent_page(
    state: &AppState,
    headers: &HeaderMap,
    pending: &PendingAuthorization,
    screen: &ConsentScreen,
    mut cookies: Vec<String>,
) -> Response {
    let sealed = match state.core.seal_authorization(pending) {
        Ok(s) => s,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let (token, set) = csrf(state, headers);
    cookies.extend(set);
    let scopes: String = screen
        .scopes
        .iter()
        .map(|s| match &s.description {
            Some(d) => format!("<li><code>{}</code>: {}</li>", esc(&s.name), esc(d)),
            None => format!("<li><code>{}</code></li>", esc(&s.name)),
        })
        .collect();
    Page {
        status: StatusCode::OK,
        title: "Allow access?",
        body: format!(
            "<p><strong>{client}</strong> (<code>{client_id}</code>) asks to act for you on \
<strong>{resource}</strong> (<code>{resource_uri}</code>).</p>\
<p>It will be sent back to <strong>{host}</strong>.</p><p>It asks to:</p><ul>{scopes}</ul>\
<form method=\"post\" action=\"/oauth2/authorize\">{hidden}\
<label><input type=\"checkbox\" name=\"remember\" value=\"1\" checked> Remember this decision</label>\
<button type=\"submit\" name=\"action\" value=\"allow\">Allow</button>\
<button type=\"submit\" name=\"action\" value=\"deny\">Deny</button></form>",
            client = esc(&screen.client_name),
            client_id = esc(&screen.client_id),
            resource = esc(&screen.resource_name),
            resource_uri = esc(&screen.resource_uri),
            host = esc(&screen.redirect_host),
            hidden = hidden(&sealed, &token),
        ),
        cookies,
    }
    .into_response()
}

/// The signed-in session of this browser, if any.
pub(crate) async fn session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Session>, Response> {
    match cookie(headers, SESSION_COOKIE) {
        Some(c) => state
            .core
            .open_session(&c)
            .await
            .map_err(|e| crate::error::ApiError::from(e).into_response()),
        None => Ok(None),
    }
}

/// Signed in: answer at once if the user consented before, else ask.
pub(crate) async fn after_sign_in(
    state: &AppState,
    headers: &HeaderMap,
    session: &Session,
    pending: &PendingAuthorization,
    cookies: Vec<String>,
) -> Response {
    let core = &state.core;
    match core.consented(&session.user_id, pending).await {
        Ok(true) => match core.approve_authorization(session, pending, false).await {
            Ok(to) => redirect(&to, cookies),
            Err(e) => error_page(StatusCode::BAD_REQUEST, &e.to_string()),
        },
        Ok(false) => match core.consent_screen(pending).await {
            Ok(screen) => consent_page(state, headers, pending, &screen, cookies),
            Err(e) => error_page(StatusCode::BAD_REQUEST, &e.to_string()),
        },
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

/// The authorization endpoint (the code flow)
///
/// Where an MCP client sends the user's browser (RFC 6749 §4.1.1 with PKCE, RFC 8707 `resource`).
/// The request is checked whole: an unknown client or a redirect URI that is not the client's is
/// shown an error page (400) and never redirected to; any other error goes back to the client's
/// redirect URI with `error`, `state` and `iss` (303). A valid request shows the sign-in page, or,
/// for a signed-in browser, the consent screen (200) — or, when the user consented to as much
/// before, goes back at once with the code (303).
#[utoipa::path(
    get,
    path = "/oauth2/authorize",
    operation_id = "authorize",
    tag = "Authorization server",
    params(AuthorizeQuery),
    responses(
        (status = 200, description = "The sign-in page or the consent screen.", content_type = "text/html", body = String,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        (status = 303, description = "Back to the client: `code`, `state` and `iss`, or `error`, `error_description`, `state` and `iss`.",
            headers(("Location" = String, description = "The client's redirect URI with the answer."),
                    ("Cache-Control" = String, description = "`no-store`."))),
        (status = 400, description = "The request cannot be answered at a redirect URI (unknown client, a redirect URI that is not the client's, a repeated parameter): an error page.", content_type = "text/html", body = String,
            headers(("Cache-Control" = String, description = "`no-store`."))),
    )
)]
async fn authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let mut p = AuthorizeParams::default();
    let mut seen = std::collections::HashSet::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let v = v.into_owned();
        // RFC 6749 §3.1: a parameter sent without a value is treated as omitted.
        if v.is_empty() {
            continue;
        }
        if k != "resource" && !seen.insert(k.clone().into_owned()) {
            return error_page(
                StatusCode::BAD_REQUEST,
                "A parameter appears more than once in the request.",
            );
        }
        match k.as_ref() {
            "response_type" => p.response_type = Some(v),
            "client_id" => p.client_id = Some(v),
            "redirect_uri" => p.redirect_uri = Some(v),
            "scope" => p.scope = Some(v),
            "state" => p.state = Some(v),
            "code_challenge" => p.code_challenge = Some(v),
            "code_challenge_method" => p.code_challenge_method = Some(v),
            "resource" => p.resources.push(v),
            "nonce" => p.nonce = Some(v),
            _ => {}
        }
    }
    let pending = match state.core.check_authorization(&p).await {
        Ok(AuthorizeOutcome::Pending(p)) => p,
        Ok(AuthorizeOutcome::Redirect(to)) => return redirect(&to, Vec::new()),
        Ok(AuthorizeOutcome::ErrorPage(m)) => return error_page(StatusCode::BAD_REQUEST, &m),
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    match session(&state, &headers).await {
        Ok(Some(s)) => after_sign_in(&state, &headers, &s, &pending, Vec::new()).await,
        Ok(None) => sign_in_page(&state, &headers, &pending, None).await,
        Err(resp) => resp,
    }
}

/// The sign-in and consent forms
///
/// What the authorization endpoint's pages send: `action` `sign_in` (with `login` and
/// `password`), `allow` (with `remember`) or `deny`, each with the page's sealed `request` and its
/// `csrf` token, which must be this browser's CSRF cookie. Not for API clients: a browser posts
/// it.
#[utoipa::path(
    post,
    path = "/oauth2/authorize",
    operation_id = "submitAuthorization",
    tag = "Authorization server",
    request_body(content = AuthorizeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The consent screen (after signing in), or the sign-in page again.", content_type = "text/html", body = String,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        (status = 303, description = "Back to the client with the code (allowed) or `access_denied` (denied), `state` and `iss`.",
            headers(("Location" = String, description = "The client's redirect URI with the answer."),
                    ("Cache-Control" = String, description = "`no-store`."))),
        (status = 400, description = "The page's request is not valid or has expired, a field is repeated, or the action is unknown.", content_type = "text/html", body = String,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        (status = 401, description = "Wrong user id, email or password: the sign-in page again.", content_type = "text/html", body = String,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        (status = 403, description = "The CSRF token is not this browser's, or the user is locked out.", content_type = "text/html", body = String,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        (status = 413, description = "The form is larger than 16 KiB.", content_type = "text/html", body = String,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        (status = 429, description = "Too many sign-in attempts from this address.", content_type = "text/html", body = String,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        (status = 503, description = "The database is unavailable.", content_type = "text/html", body = String,
            headers(("Cache-Control" = String, description = "`no-store`."))),
    )
)]
async fn submit(
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
    let pending = match state.core.open_authorization(field("request")).await {
        Ok(p) => p,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match field("action") {
        "sign_in" => {
            let from = peer.map(|ConnectInfo(a)| a.ip());
            match sign_in_cookie(&state, field("login"), field("password"), from).await {
                Ok((s, set)) => after_sign_in(&state, &headers, &s, &pending, vec![set]).await,
                Err((status, message))
                    if status == StatusCode::SERVICE_UNAVAILABLE
                        || status == StatusCode::INTERNAL_SERVER_ERROR =>
                {
                    error_page(status, &message)
                }
                Err((status, message)) => {
                    sign_in_page(&state, &headers, &pending, Some((status, &message))).await
                }
            }
        }
        "allow" => match session(&state, &headers).await {
            Ok(Some(s)) => match state
                .core
                .approve_authorization(&s, &pending, field("remember") == "1")
                .await
            {
                Ok(to) => redirect(&to, Vec::new()),
                Err(e) => error_page(StatusCode::BAD_REQUEST, &e.to_string()),
            },
            Ok(None) => sign_in_page(&state, &headers, &pending, None).await,
            Err(resp) => resp,
        },
        "deny" => redirect(&state.core.deny_authorization(&pending), Vec::new()),
        _ => error_page(
            StatusCode::BAD_REQUEST,
            "The form's action is not one of this page's.",
        ),
    }
}

/// The authorization request's parameters (RFC 6749 §4.1.1, RFC 7636, RFC 8707). Each may appear
/// once, `resource` excepted; a parameter without a value counts as absent.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "documentation only")]
struct AuthorizeQuery {
    /// `code`.
    response_type: Option<String>,
    /// The client's id.
    client_id: Option<String>,
    /// One of the client's redirect URIs (a loopback one on any port); required when it has
    /// several.
    redirect_uri: Option<String>,
    /// The scopes wanted, space-separated: among the resource's, and the OpenID Connect scopes
    /// `openid` (an ID token), `profile` and `email` (absent: all of the resource's).
    scope: Option<String>,
    /// Returned as given (at most 1024 characters).
    state: Option<String>,
    /// The PKCE challenge: the base64url SHA-256 of the verifier (43 characters).
    code_challenge: Option<String>,
    /// `S256`.
    code_challenge_method: Option<String>,
    /// The MCP server's canonical URI: the token's audience (exactly one).
    resource: Option<Vec<String>>,
    /// OpenID Connect: returned in the ID token (at most 512 characters, no control character).
    nonce: Option<String>,
}

/// What the pages' forms send.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only")]
struct AuthorizeForm {
    /// The sealed authorization request the page carried.
    request: String,
    /// The page's CSRF token (this browser's CSRF cookie).
    csrf: String,
    /// `sign_in`, `allow` or `deny`.
    action: String,
    /// `sign_in`: the user's id or email.
    login: Option<String>,
    /// `sign_in`: the password.
    #[schema(write_only)]
    password: Option<String>,
    /// `allow`: `1` to remember the consent.
    remember: Option<String>,
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(authorize, submit), components(schemas(AuthorizeForm)))]
pub(crate) struct Doc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a_portcullis_csrf=1; portcullis_csrf=2; x=3"),
        );
        assert_eq!(cookie(&h, CSRF_COOKIE).as_deref(), Some("2"));
        assert_eq!(cookie(&h, "missing"), None);
    }
}
