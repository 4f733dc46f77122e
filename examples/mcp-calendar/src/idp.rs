//! A small OpenID provider standing in for the company's identity provider (Entra ID, Okta...),
//! under `/idp` of the example's listener: discovery, the authorization code flow with PKCE S256
//! only, exact redirect URIs, single-use codes, ES256 id_tokens carrying each person's `groups`,
//! and the JWKS. Its sign-in page lists the people it knows; choosing one signs them in. Portcullis
//! signs users in through it (single sign-on) and maps their groups to roles.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use portcullis_crypto::jws::{Algorithm, SigningKey};
use portcullis_crypto::{constant_time_eq, random_token};
use serde::Deserialize;
use serde_json::json;

use crate::{basic_auth, lock, oauth_error, redirect_back as back, registered_redirect};

/// Where the provider lives on the example's listener; its issuer is `{base_url}{PATH}`.
pub const PATH: &str = "/idp";
/// How long an id_token lives.
const ID_TOKEN_TTL: Duration = Duration::from_secs(300);
/// How long a code, or a sign-in waiting for its person, lives.
const FLOW_TTL: Duration = Duration::from_secs(300);

/// Someone the provider can sign in.
#[derive(Debug, Clone)]
pub struct Person {
    /// Their stable subject (`sub`).
    pub subject: String,
    /// Their e-mail address.
    pub email: String,
    /// Their name.
    pub name: String,
    /// The groups they are in (the `groups` claim).
    pub groups: Vec<String>,
}

/// The provider's one client (Portcullis) and the people it knows.
#[derive(Debug, Clone)]
pub struct Config {
    /// The client's id.
    pub client_id: String,
    /// Its secret (`client_secret_basic`).
    pub client_secret: String,
    /// The redirect URIs it may use, matched exactly.
    pub redirect_uris: Vec<String>,
    /// The people.
    pub people: Vec<Person>,
}

#[derive(Debug)]
pub(crate) struct Idp {
    issuer: String,
    config: Config,
    key: SigningKey,
    /// Sign-ins waiting for the person to be chosen, by their id.
    pending: Mutex<std::collections::HashMap<String, Pending>>,
    codes: Mutex<std::collections::HashMap<String, Issued>>,
}

#[derive(Debug, Clone)]
struct Pending {
    redirect_uri: String,
    state: Option<String>,
    nonce: Option<String>,
    challenge: String,
    started: Instant,
}

#[derive(Debug)]
struct Issued {
    subject: String,
    pending: Pending,
}

/// The provider's routes, for `issuer` (`{base_url}/idp`).
///
/// # Errors
/// When its signing key cannot be made.
pub(crate) fn router(issuer: String, config: Config) -> Result<Router, String> {
    let key = SigningKey::generate(Algorithm::ES256).map_err(|e| e.to_string())?;
    let idp = Arc::new(Idp {
        issuer,
        config,
        key,
        pending: Mutex::default(),
        codes: Mutex::default(),
    });
    Ok(Router::new()
        .route(
            &format!("{PATH}/.well-known/openid-configuration"),
            get(discovery),
        )
        .route(&format!("{PATH}/authorize"), get(authorize))
        .route(&format!("{PATH}/authorize/as"), post(sign_in_as))
        .route(&format!("{PATH}/token"), post(token))
        .route(&format!("{PATH}/jwks"), get(jwks))
        .with_state(idp))
}

async fn discovery(State(idp): State<Arc<Idp>>) -> Response {
    let i = &idp.issuer;
    Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "scopes_supported": ["openid", "email", "profile"],
        "claims_supported": ["sub", "email", "name", "groups"],
    }))
    .into_response()
}

async fn jwks(State(idp): State<Arc<Idp>>) -> Response {
    Json(json!({ "keys": [idp.key.public_jwk()] })).into_response()
}

#[derive(Deserialize)]
struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

async fn authorize(State(idp): State<Arc<Idp>>, Query(p): Query<AuthorizeParams>) -> Response {
    let redirect = match registered_redirect(
        p.client_id.as_deref(),
        p.redirect_uri,
        &idp.config.client_id,
        &idp.config.redirect_uris,
    ) {
        Ok(r) => r,
        Err(refused) => return *refused,
    };
    let state = p.state.as_deref();
    if p.response_type.as_deref() != Some("code") {
        return back(&redirect, state, &[("error", "unsupported_response_type")]);
    }
    if !p
        .scope
        .as_deref()
        .unwrap_or_default()
        .split(' ')
        .any(|s| s == "openid")
    {
        return back(
            &redirect,
            state,
            &[
                ("error", "invalid_scope"),
                ("error_description", "openid is required"),
            ],
        );
    }
    let (Some(challenge), Some("S256")) = (p.code_challenge, p.code_challenge_method.as_deref())
    else {
        return back(
            &redirect,
            state,
            &[
                ("error", "invalid_request"),
                ("error_description", "PKCE S256 is required"),
            ],
        );
    };
    let id = random_token(24);
    let mut pending = lock(&idp.pending);
    pending.retain(|_, f| f.started.elapsed() < FLOW_TTL);
    pending.insert(
        id.clone(),
        Pending {
            redirect_uri: redirect,
            state: p.state,
            nonce: p.nonce,
            challenge,
            started: Instant::now(),
        },
    );
    drop(pending);
    Html(chooser(&idp.config.people, &id)).into_response()
}

/// The sign-in page: one button per person.
fn chooser(people: &[Person], flow: &str) -> String {
    let buttons: String = people
        .iter()
        .map(|p| {
            format!(
                "<li><button name=\"person\" value=\"{sub}\">{name} &lt;{email}&gt; — groups: {groups}</button></li>",
                sub = html(&p.subject),
                name = html(&p.name),
                email = html(&p.email),
                groups = html(&p.groups.join(", ")),
            )
        })
        .collect();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in — demo identity provider</title></head>\
         <body><main><h1>Demo identity provider</h1><p>It stands in for your company's identity provider. Sign in as:</p>\
         <form method=\"post\" action=\"{PATH}/authorize/as\"><input type=\"hidden\" name=\"flow\" value=\"{flow}\"><ul>{buttons}</ul></form></main></body></html>"
    )
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[derive(Deserialize)]
struct Chosen {
    flow: String,
    person: String,
}

async fn sign_in_as(State(idp): State<Arc<Idp>>, Form(c): Form<Chosen>) -> Response {
    let pending = lock(&idp.pending).remove(&c.flow);
    let Some(pending) = pending.filter(|p| p.started.elapsed() < FLOW_TTL) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "this sign-in is unknown, used or expired; start again",
        );
    };
    if !idp.config.people.iter().any(|p| p.subject == c.person) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "no such person");
    }
    let code = random_token(24);
    let (redirect, state) = (pending.redirect_uri.clone(), pending.state.clone());
    lock(&idp.codes).insert(
        code.clone(),
        Issued {
            subject: c.person,
            pending,
        },
    );
    back(
        &redirect,
        state.as_deref(),
        &[("code", &code), ("iss", &idp.issuer)],
    )
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
}

async fn token(
    State(idp): State<Arc<Idp>>,
    headers: HeaderMap,
    Form(f): Form<TokenForm>,
) -> Response {
    let authenticated = basic_auth(&headers).is_some_and(|(id, secret)| {
        id == idp.config.client_id
            && constant_time_eq(secret.as_bytes(), idp.config.client_secret.as_bytes())
    });
    if !authenticated {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_secret_basic with the registered client",
        );
    }
    if f.grant_type.as_deref() != Some("authorization_code") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "authorization_code",
        );
    }
    let issued = lock(&idp.codes).remove(f.code.as_deref().unwrap_or_default());
    let Some(issued) = issued.filter(|i| i.pending.started.elapsed() < FLOW_TTL) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown, used or expired code",
        );
    };
    if f.redirect_uri.as_deref() != Some(issued.pending.redirect_uri.as_str())
        || !portcullis_crypto::pkce::verify_s256(
            f.code_verifier.as_deref().unwrap_or_default(),
            &issued.pending.challenge,
        )
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the redirect_uri or code_verifier does not match",
        );
    }
    let Some(person) = idp
        .config
        .people
        .iter()
        .find(|p| p.subject == issued.subject)
    else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "no such person");
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut claims = json!({
        "iss": idp.issuer, "sub": person.subject, "aud": idp.config.client_id,
        "iat": now, "exp": now + ID_TOKEN_TTL.as_secs(),
        "email": person.email, "name": person.name, "groups": person.groups,
    });
    if let Some(n) = &issued.pending.nonce {
        claims["nonce"] = json!(n);
    }
    let id_token = match idp.key.sign_jwt(&claims, Some("JWT")) {
        Ok(t) => t,
        Err(e) => {
            return oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                &e.to_string(),
            );
        }
    };
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(
            json!({"access_token": random_token(32), "token_type": "Bearer",
            "expires_in": ID_TOKEN_TTL.as_secs(), "id_token": id_token}),
        ),
    )
        .into_response()
}
