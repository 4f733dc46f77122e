//! The third-party side of Portcullis's calendar example, small enough to read and run offline,
//! all in memory on one listener:
//!
//! - `/oauth/authorize`, `/oauth/token`: an OAuth 2.0 provider for the calendar API. Code flow
//!   with PKCE S256 only, exact redirect URIs, single-use codes; refresh tokens that may ask for
//!   fewer scopes (RFC 6749 §6). Consent is given at once, as the user named by `login_hint`
//!   (`demo` without one): the example stands in for Google's consent screen.
//! - `/calendar/events`: the calendar API. `GET` needs `calendar.readonly` or `calendar.events`,
//!   `POST` needs `calendar.events`; it takes only this provider's bearer tokens.
//! - `/crm/customers/{name}`: a CRM that takes API keys (`Authorization: Bearer <key>`).
//! - `/idp/...`: when configured, an OpenID provider standing in for the company's identity
//!   provider, whose id_tokens carry the users' `groups` ([`idp`]).
//!
//! [`mcp`] is the MCP server on top: its tools reach these services with the credentials
//! Portcullis hands out.

pub mod browser;
pub mod demo;
pub mod idp;
pub mod mcp;
pub mod story;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use portcullis_crypto::{constant_time_eq, random_token, sha256};
use serde::Deserialize;
use serde_json::{Value, json};

/// The scope that reads events.
pub const READ: &str = "calendar.readonly";
/// The scope that creates events.
pub const WRITE: &str = "calendar.events";
/// How long an access token lives.
const ACCESS_TTL: Duration = Duration::from_secs(3600);
/// How long a code lives.
const CODE_TTL: Duration = Duration::from_secs(60);

/// Who may use the provider, and the CRM's keys.
#[derive(Debug, Clone)]
pub struct Config {
    /// The OAuth client (Portcullis) and its secret.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// The redirect URIs it may use, matched exactly.
    pub redirect_uris: Vec<String>,
    /// The CRM's API keys.
    pub crm_keys: Vec<String>,
    /// The OpenID provider under `/idp`, if any.
    pub idp: Option<idp::Config>,
}

/// The services, running.
#[derive(Debug)]
pub struct Running {
    /// Where they listen: `http://127.0.0.1:<port>`.
    pub base_url: String,
    state: Arc<Shared>,
}

impl Running {
    /// The OpenID provider's issuer (`{base_url}/idp`), when it is configured.
    pub fn issuer(&self) -> Option<String> {
        self.state
            .config
            .idp
            .is_some()
            .then(|| format!("{}{}", self.base_url, idp::PATH))
    }

    /// The events stored for `user`, oldest first (for tests and the demo's narration).
    pub fn events_of(&self, user: &str) -> Vec<Value> {
        lock(&self.state.events)
            .get(user)
            .cloned()
            .unwrap_or_default()
    }

    /// How many refresh grants the provider has served.
    pub fn refreshes(&self) -> usize {
        *lock(&self.state.refreshes)
    }
}

#[derive(Debug)]
struct Shared {
    config: Config,
    codes: Mutex<HashMap<String, Code>>,
    access: Mutex<HashMap<[u8; 32], Grant>>,
    refresh: Mutex<HashMap<[u8; 32], Grant>>,
    events: Mutex<HashMap<String, Vec<Value>>>,
    refreshes: Mutex<usize>,
}

#[derive(Debug, Clone)]
struct Code {
    grant: Grant,
    redirect_uri: String,
    challenge: String,
    issued: Instant,
}

#[derive(Debug, Clone)]
struct Grant {
    user: String,
    scopes: Vec<String>,
    expires: Option<Instant>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts the services on `addr` (port 0: any free port).
///
/// # Errors
/// When the address cannot be bound.
pub async fn start(addr: SocketAddr, config: Config) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let idp = match &config.idp {
        Some(c) => Some(
            idp::router(format!("{base_url}{}", idp::PATH), c.clone())
                .map_err(std::io::Error::other)?,
        ),
        None => None,
    };
    let state = Arc::new(Shared {
        config,
        codes: Mutex::default(),
        access: Mutex::default(),
        refresh: Mutex::default(),
        events: Mutex::default(),
        refreshes: Mutex::default(),
    });
    let app = Router::new()
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/token", post(token))
        .route("/calendar/events", get(list_events).post(create_event))
        .route("/crm/customers/{name}", get(customer))
        .with_state(state.clone());
    let app = match idp {
        Some(idp) => app.merge(idp),
        None => app,
    };
    tokio::spawn(serve(listener, app));
    Ok(Running { base_url, state })
}

/// Serves `app` on `listener` with `TCP_NODELAY` on every connection: an answer written in
/// parts (an event stream's) is not held back by Nagle's algorithm waiting for a delayed ACK
/// (measured: 40 ms a call without it).
pub async fn serve(listener: tokio::net::TcpListener, app: Router) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}

#[derive(Deserialize)]
struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    login_hint: Option<String>,
}

/// The redirect URI of an authorization request when its client and redirect URI are the
/// registered ones; otherwise the error page (an unknown client or redirect URI is never
/// redirected to, RFC 6749 §4.1.2.1).
pub(crate) fn registered_redirect(
    client_id: Option<&str>,
    redirect_uri: Option<String>,
    registered_client: &str,
    registered_uris: &[String],
) -> Result<String, Box<Response>> {
    if client_id != Some(registered_client) {
        return Err(Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "unknown client",
        )));
    }
    redirect_uri
        .filter(|r| registered_uris.contains(r))
        .ok_or_else(|| {
            Box::new(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the redirect_uri is not registered",
            ))
        })
}

/// The answer to an authorization request: back to the redirect URI with `query` and the
/// `state`.
pub(crate) fn redirect_back(
    redirect: &str,
    state: Option<&str>,
    query: &[(&str, &str)],
) -> Response {
    let mut url = redirect.to_owned();
    let mut sep = if url.contains('?') { '&' } else { '?' };
    for (k, v) in query.iter().chain(state.map(|s| ("state", s)).iter()) {
        url.push(sep);
        url.push_str(k);
        url.push('=');
        url.push_str(&encode(v));
        sep = '&';
    }
    Redirect::to(&url).into_response()
}

pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn authorize(State(s): State<Arc<Shared>>, Query(p): Query<AuthorizeParams>) -> Response {
    let redirect = match registered_redirect(
        p.client_id.as_deref(),
        p.redirect_uri,
        &s.config.client_id,
        &s.config.redirect_uris,
    ) {
        Ok(r) => r,
        Err(refused) => return *refused,
    };
    let back = |query: &[(&str, &str)]| redirect_back(&redirect, p.state.as_deref(), query);
    if p.response_type.as_deref() != Some("code") {
        return back(&[("error", "unsupported_response_type")]);
    }
    let (Some(challenge), Some("S256")) = (p.code_challenge, p.code_challenge_method.as_deref())
    else {
        return back(&[
            ("error", "invalid_request"),
            ("error_description", "PKCE S256 is required"),
        ]);
    };
    let scopes = split(p.scope.as_deref());
    if scopes.is_empty() || scopes.iter().any(|s| s != READ && s != WRITE) {
        return back(&[("error", "invalid_scope")]);
    }
    let code = random_token(24);
    lock(&s.codes).insert(
        code.clone(),
        Code {
            grant: Grant {
                user: p.login_hint.unwrap_or_else(|| "demo".into()),
                scopes,
                expires: None,
            },
            redirect_uri: redirect.clone(),
            challenge,
            issued: Instant::now(),
        },
    );
    back(&[("code", &code)])
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

async fn token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(f): Form<TokenForm>,
) -> Response {
    let (id, secret) = basic_auth(&headers).unwrap_or_else(|| {
        (
            f.client_id.clone().unwrap_or_default(),
            f.client_secret.clone().unwrap_or_default(),
        )
    });
    if id != s.config.client_id
        || !constant_time_eq(secret.as_bytes(), s.config.client_secret.as_bytes())
    {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "bad client credentials",
        );
    }
    match f.grant_type.as_deref() {
        Some("authorization_code") => {
            let code = lock(&s.codes).remove(f.code.as_deref().unwrap_or_default());
            let Some(code) = code.filter(|c| c.issued.elapsed() < CODE_TTL) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "unknown, used or expired code",
                );
            };
            let verifier = f.code_verifier.unwrap_or_default();
            if f.redirect_uri.as_deref() != Some(code.redirect_uri.as_str())
                || !portcullis_crypto::pkce::verify_s256(&verifier, &code.challenge)
            {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "the redirect_uri or code_verifier does not match",
                );
            }
            let refresh = random_token(32);
            lock(&s.refresh).insert(sha256(refresh.as_bytes()), code.grant.clone());
            issue(&s, code.grant, Some(refresh))
        }
        Some("refresh_token") => {
            let presented = f.refresh_token.unwrap_or_default();
            let grant = lock(&s.refresh).get(&sha256(presented.as_bytes())).cloned();
            let Some(grant) = grant else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "unknown refresh token",
                );
            };
            let asked = split(f.scope.as_deref());
            if asked.iter().any(|a| !grant.scopes.contains(a)) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    "more than was granted",
                );
            }
            *lock(&s.refreshes) += 1;
            let scopes = if asked.is_empty() {
                grant.scopes.clone()
            } else {
                asked
            };
            issue(&s, Grant { scopes, ..grant }, None)
        }
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "authorization_code or refresh_token",
        ),
    }
}

fn issue(s: &Shared, grant: Grant, refresh: Option<String>) -> Response {
    let access = random_token(32);
    let scope = grant.scopes.join(" ");
    lock(&s.access).insert(
        sha256(access.as_bytes()),
        Grant {
            expires: Some(Instant::now() + ACCESS_TTL),
            ..grant
        },
    );
    let mut body = json!({"access_token": access, "token_type": "Bearer",
        "expires_in": ACCESS_TTL.as_secs(), "scope": scope});
    if let Some(r) = refresh {
        body["refresh_token"] = json!(r);
    }
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// Why the calendar API refused a request.
enum Refused {
    NoToken,
    BadToken,
    Scope(String),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let (status, challenge, error) = match self {
            Self::NoToken => (
                StatusCode::UNAUTHORIZED,
                "Bearer".to_owned(),
                "invalid_request",
            ),
            Self::BadToken => (
                StatusCode::UNAUTHORIZED,
                "Bearer error=\"invalid_token\"".to_owned(),
                "invalid_token",
            ),
            Self::Scope(needed) => (
                StatusCode::FORBIDDEN,
                format!("Bearer error=\"insufficient_scope\", scope=\"{needed}\""),
                "insufficient_scope",
            ),
        };
        (
            status,
            [(header::WWW_AUTHENTICATE, challenge)],
            Json(json!({"error": error})),
        )
            .into_response()
    }
}

/// The grant behind a bearer token of the provider, if it is live and holds one of `any_of`.
fn authorized(s: &Shared, headers: &HeaderMap, any_of: &[&str]) -> Result<Grant, Refused> {
    let token = bearer(headers).ok_or(Refused::NoToken)?;
    let grant = lock(&s.access).get(&sha256(token.as_bytes())).cloned();
    let grant = grant
        .filter(|g| g.expires.is_some_and(|e| e > Instant::now()))
        .ok_or(Refused::BadToken)?;
    if !any_of.iter().any(|a| grant.scopes.iter().any(|g| g == a)) {
        return Err(Refused::Scope(any_of.join(" ")));
    }
    Ok(grant)
}

async fn list_events(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    match authorized(&s, &headers, &[READ, WRITE]) {
        Ok(g) => Json(json!({"items": lock(&s.events).get(&g.user).cloned().unwrap_or_default()}))
            .into_response(),
        Err(r) => r.into_response(),
    }
}

#[derive(Deserialize)]
struct NewEvent {
    title: String,
    start: String,
}

async fn create_event(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(e): Json<NewEvent>,
) -> Response {
    let g = match authorized(&s, &headers, &[WRITE]) {
        Ok(g) => g,
        Err(r) => return r.into_response(),
    };
    if e.title.is_empty() || e.title.len() > 200 || e.start.len() > 64 {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_event"})),
        )
            .into_response();
    }
    let event = json!({"id": random_token(8), "title": e.title, "start": e.start});
    lock(&s.events)
        .entry(g.user)
        .or_default()
        .push(event.clone());
    (StatusCode::CREATED, Json(event)).into_response()
}

async fn customer(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let known = bearer(&headers).is_some_and(|k| {
        s.config
            .crm_keys
            .iter()
            .any(|c| constant_time_eq(c.as_bytes(), k.as_bytes()))
    });
    if !known {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_api_key"})),
        )
            .into_response();
    }
    Json(json!({"name": name, "account": format!("{name} Inc."), "tier": "gold"})).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

pub(crate) fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    // RFC 6749 §2.3.1: each part is form-encoded before it is joined.
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((decode(id)?, decode(secret)?))
}

pub(crate) fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn split(scope: Option<&str>) -> Vec<String> {
    scope
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}
