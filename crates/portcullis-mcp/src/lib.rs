//! Portcullis for MCP servers: a tower layer that protects a streamable-HTTP MCP endpoint with
//! Portcullis access tokens, as the MCP authorization specification (revision 2026-07-28) asks of
//! a resource server.
//!
//! - Every request must carry a Portcullis access token (RFC 9068, `typ: at+jwt`) whose issuer is
//!   Portcullis and whose audience is this server's resource URI; the signature is checked with
//!   Portcullis's JWKS, fetched once and again only for a key id it has not seen (at most every
//!   30 s).
//! - Without a valid token: 401 with `WWW-Authenticate: Bearer resource_metadata="..."` (and
//!   `error="invalid_token"` when a token was presented), so that the client discovers where to
//!   sign the user in.
//! - A `tools/call` for a tool that needs scopes the token lacks: 403 with
//!   `error="insufficient_scope"`, `scope` naming every scope the call needs, and
//!   `resource_metadata` (step-up authorization).
//! - [`McpAuth::metadata_router`] serves the RFC 9728 protected-resource metadata.
//! - The verified caller ([`Caller`]) is put in the request's extensions; on `rmcp`, a tool reads
//!   it from the `http::request::Parts` the transport puts in its context. Its token is meant for
//!   this server and Portcullis only: fetch third-party tokens with it through Portcullis
//!   (`portcullis-client`), never forward it.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, header};
use axum::routing::get;
use portcullis_crypto::SecretString;
use portcullis_crypto::jws::{Algorithm, JwkSet, KeySet, Unverified, Validation};
use serde_json::{Map, Value, json};
use tokio::sync::RwLock;

/// The largest access token read.
const MAX_TOKEN: usize = 16 * 1024;
/// The largest JSON-RPC body read to find the tool a call names.
const MAX_BODY: usize = 4 * 1024 * 1024;
/// How long a JWKS fetched for an unknown key id is trusted to be the newest.
const JWKS_REFETCH: Duration = Duration::from_secs(30);
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 60;

/// Why the layer could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A URL is not valid.
    #[error("invalid URL: {0}")]
    Url(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// The caller of an MCP request, verified: put in the request's extensions by the layer.
#[derive(Clone)]
pub struct Caller {
    /// The token's issuer (Portcullis).
    pub issuer: String,
    /// The user (or, for a client-credentials token, the client).
    pub subject: String,
    /// The OAuth client the user signed in with.
    pub client_id: Option<String>,
    /// The token's scopes.
    pub scopes: BTreeSet<String>,
    /// Every claim of the token.
    pub claims: Map<String, Value>,
    /// The access token itself: present it to Portcullis to fetch the user's third-party tokens.
    pub token: SecretString,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// A protected MCP endpoint's settings, and the layer that enforces them. Cheap to clone.
#[derive(Clone)]
pub struct McpAuth {
    inner: Arc<Inner>,
}

impl fmt::Debug for McpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpAuth")
            .field("issuer", &self.inner.issuer)
            .field("resource", &self.inner.resource)
            .field("tool_scopes", &self.inner.tool_scopes)
            .finish_non_exhaustive()
    }
}

struct Inner {
    issuer: String,
    resource: String,
    /// Portcullis's authorization-server metadata (RFC 8414), which names its JWKS.
    discovery_url: String,
    metadata_url: String,
    metadata_path: String,
    name: Option<String>,
    tool_scopes: BTreeMap<String, Vec<String>>,
    required: Vec<String>,
    http: reqwest::Client,
    keys: RwLock<Keys>,
}

#[derive(Default)]
struct Keys {
    set: Arc<KeySet>,
    fetched: Option<Instant>,
}

/// Builds an [`McpAuth`].
#[derive(Debug, Clone)]
pub struct McpAuthBuilder {
    issuer: String,
    resource: String,
    name: Option<String>,
    tool_scopes: BTreeMap<String, Vec<String>>,
    required: Vec<String>,
}

impl McpAuthBuilder {
    /// The scopes a tool's calls need in the token: a call without them is answered 403
    /// `insufficient_scope`, naming them.
    #[must_use]
    pub fn tool(mut self, name: &str, scopes: &[&str]) -> Self {
        self.tool_scopes.insert(
            name.to_owned(),
            scopes.iter().map(|s| (*s).to_owned()).collect(),
        );
        self
    }

    /// Scopes every request needs (such as `outbound.token.fetch`, for a server that fetches
    /// third-party tokens with its caller's token).
    #[must_use]
    pub fn require(mut self, scopes: &[&str]) -> Self {
        self.required = scopes.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// The name shown in the protected-resource metadata (`resource_name`).
    #[must_use]
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// The settings, checked.
    ///
    /// # Errors
    /// [`SetupError`] when the issuer or the resource is not an absolute URL.
    pub fn build(self) -> Result<McpAuth, SetupError> {
        let issuer_url =
            url::Url::parse(&self.issuer).map_err(|e| SetupError::Url(format!("issuer: {e}")))?;
        let resource_url = url::Url::parse(&self.resource)
            .map_err(|e| SetupError::Url(format!("resource: {e}")))?;
        // RFC 9728 §3.1 and RFC 8414 §3.1: the well-known segment goes between the host and the
        // path.
        let well_known = |u: &url::Url, name: &str| {
            let mut at = u.clone();
            at.set_path(&format!(
                "/.well-known/{name}{}",
                u.path().trim_end_matches('/')
            ));
            at.set_query(None);
            at
        };
        let metadata_url = well_known(&resource_url, "oauth-protected-resource");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SetupError::Http(e.to_string()))?;
        Ok(McpAuth {
            inner: Arc::new(Inner {
                discovery_url: well_known(&issuer_url, "oauth-authorization-server").to_string(),
                metadata_path: metadata_url.path().to_owned(),
                metadata_url: metadata_url.to_string(),
                issuer: self.issuer,
                resource: self.resource,
                name: self.name,
                tool_scopes: self.tool_scopes,
                required: self.required,
                http,
                keys: RwLock::new(Keys::default()),
            }),
        })
    }
}

impl McpAuth {
    /// Protects the MCP endpoint at `resource` (its canonical URI, the audience of its tokens)
    /// with access tokens issued by the Portcullis whose issuer identifier is `issuer`.
    #[must_use]
    pub fn builder(issuer: &str, resource: &str) -> McpAuthBuilder {
        McpAuthBuilder {
            issuer: issuer.to_owned(),
            resource: resource.to_owned(),
            name: None,
            tool_scopes: BTreeMap::new(),
            required: Vec::new(),
        }
    }

    /// The layer: put it on the router (or service) that serves the MCP endpoint.
    #[must_use]
    pub fn layer(&self) -> McpAuthLayer {
        McpAuthLayer { auth: self.clone() }
    }

    /// The protected-resource metadata document (RFC 9728).
    #[must_use]
    pub fn metadata(&self) -> Value {
        let i = &self.inner;
        let mut scopes: BTreeSet<&str> = i.required.iter().map(String::as_str).collect();
        for s in i.tool_scopes.values().flatten() {
            scopes.insert(s);
        }
        let mut doc = json!({
            "resource": i.resource,
            "authorization_servers": [i.issuer],
            "scopes_supported": scopes,
            "bearer_methods_supported": ["header"],
        });
        if let Some(n) = &i.name {
            doc["resource_name"] = json!(n);
        }
        doc
    }

    /// A router serving the protected-resource metadata at its well-known path (merge it into
    /// the server's router, outside the layer).
    pub fn metadata_router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let doc = self.metadata();
        Router::new().route(
            &self.inner.metadata_path,
            get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc) }
            }),
        )
    }

    /// The URL of the protected-resource metadata.
    #[must_use]
    pub fn metadata_url(&self) -> &str {
        &self.inner.metadata_url
    }

    /// Checks a request: the verified caller, or the answer that refuses it.
    async fn admit(&self, req: Request<Body>) -> Result<Request<Body>, Response<Body>> {
        let (mut parts, body) = req.into_parts();
        let Some(token) = bearer(&parts.headers) else {
            return Err(self.unauthorized(None));
        };
        let caller = match self.verify(&token).await {
            Ok(c) => c,
            Err(why) => return Err(self.unauthorized(Some(why))),
        };
        let mut needed: BTreeSet<String> = self.inner.required.iter().cloned().collect();
        let body = if parts.method == Method::POST && !self.inner.tool_scopes.is_empty() {
            let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
                return Err(plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the request is too large",
                ));
            };
            for tool in called_tools(&bytes) {
                if let Some(scopes) = self.inner.tool_scopes.get(&tool) {
                    needed.extend(scopes.iter().cloned());
                }
            }
            Body::from(bytes)
        } else {
            body
        };
        if needed.iter().any(|s| !caller.scopes.contains(s)) {
            return Err(self.insufficient_scope(&needed));
        }
        parts.extensions.insert(caller);
        Ok(Request::from_parts(parts, body))
    }

    async fn verify(&self, token: &str) -> Result<Caller, &'static str> {
        let jwt = Unverified::parse(token, MAX_TOKEN).map_err(|_| "the token is malformed")?;
        // RFC 9068 §4: an access token says so (an ID token must not pass for one).
        let typ = jwt.header().typ().unwrap_or_default().to_ascii_lowercase();
        if typ != "at+jwt" && typ != "application/at+jwt" {
            return Err("the token is not an access token");
        }
        let audiences = [self.inner.resource.clone()];
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        jwt.validate(&Validation {
            issuer: &self.inner.issuer,
            audiences: &audiences,
            algorithms: &[Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA],
            leeway_secs: LEEWAY_SECS,
            now,
            require_sub: true,
        })
        .map_err(|_| "the token is expired, or not for this server")?;
        let keys = self.keys(jwt.header().kid()).await;
        jwt.verify_with(&keys)
            .map_err(|_| "the token's signature is not valid")?;
        let claims = jwt.into_claims();
        let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
        Ok(Caller {
            issuer: text("iss").unwrap_or_default(),
            subject: text("sub").unwrap_or_default(),
            client_id: text("client_id"),
            scopes: text("scope")
                .unwrap_or_default()
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            token: SecretString::new(token.to_owned()),
            claims,
        })
    }

    /// The issuer's keys: those held, or fetched again when a key id is new to them (at most
    /// every 30 s, so that tokens naming made-up keys cannot hammer the issuer).
    async fn keys(&self, kid: Option<&str>) -> Arc<KeySet> {
        {
            let held = self.inner.keys.read().await;
            let known = kid.is_none_or(|k| held.set.kids().any(|h| h == k));
            let fresh = held.fetched.is_some_and(|t| t.elapsed() < JWKS_REFETCH);
            if held.fetched.is_some() && (known || fresh) {
                return held.set.clone();
            }
        }
        let mut held = self.inner.keys.write().await;
        if held.fetched.is_some_and(|t| t.elapsed() < JWKS_REFETCH) {
            return held.set.clone();
        }
        match self.fetch_keys().await {
            Ok(set) => {
                held.set = Arc::new(set);
                held.fetched = Some(Instant::now());
            }
            Err(e) => {
                tracing::warn!(error = %e, issuer = %self.inner.issuer, "cannot fetch Portcullis's keys")
            }
        }
        held.set.clone()
    }

    async fn fetch_keys(&self) -> Result<KeySet, String> {
        let meta = self.get_json(&self.inner.discovery_url).await?;
        if meta.get("issuer").and_then(Value::as_str) != Some(self.inner.issuer.as_str()) {
            return Err("the metadata names another issuer".into());
        }
        let jwks_uri = meta
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or("the metadata names no jwks_uri")?;
        let set: JwkSet = serde_json::from_value(self.get_json(jwks_uri).await?)
            .map_err(|e| format!("the JWKS is not valid: {e}"))?;
        Ok(KeySet::from_jwks(&set).0)
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let resp = self
            .inner
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("{url} answered {}", resp.status()));
        }
        resp.json().await.map_err(|e| e.to_string())
    }

    fn unauthorized(&self, why: Option<&str>) -> Response<Body> {
        let meta = &self.inner.metadata_url;
        let (challenge, body) = match why {
            None => (
                format!("Bearer resource_metadata=\"{meta}\""),
                json!({"error": "invalid_token", "error_description": "an access token is required"}),
            ),
            Some(why) => (
                format!(
                    "Bearer error=\"invalid_token\", error_description=\"{why}\", resource_metadata=\"{meta}\""
                ),
                json!({"error": "invalid_token", "error_description": why}),
            ),
        };
        challenge_response(StatusCode::UNAUTHORIZED, &challenge, &body)
    }

    fn insufficient_scope(&self, needed: &BTreeSet<String>) -> Response<Body> {
        let scope = needed.iter().cloned().collect::<Vec<_>>().join(" ");
        let challenge = format!(
            "Bearer error=\"insufficient_scope\", scope=\"{scope}\", resource_metadata=\"{}\"",
            self.inner.metadata_url
        );
        challenge_response(
            StatusCode::FORBIDDEN,
            &challenge,
            &json!({"error": "insufficient_scope", "error_description": format!("this call needs the scopes {scope}"), "scope": scope}),
        )
    }
}

/// The tools a JSON-RPC message (or batch) calls.
fn called_tools(body: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let messages = match v {
        Value::Array(list) => list,
        one => vec![one],
    };
    messages
        .iter()
        .filter(|m| m.get("method").and_then(Value::as_str) == Some("tools/call"))
        .filter_map(|m| m.pointer("/params/name").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

fn bearer(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

fn challenge_response(status: StatusCode, challenge: &str, body: &Value) -> Response<Body> {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(challenge) {
        h.insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

fn plain(status: StatusCode, message: &str) -> Response<Body> {
    let mut resp = Response::new(Body::from(message.to_owned()));
    *resp.status_mut() = status;
    resp
}

/// The tower layer of [`McpAuth`].
#[derive(Debug, Clone)]
pub struct McpAuthLayer {
    auth: McpAuth,
}

impl<S> tower_layer::Layer<S> for McpAuthLayer {
    type Service = McpAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        McpAuthService {
            auth: self.auth.clone(),
            inner,
        }
    }
}

/// The service [`McpAuthLayer`] wraps around the MCP endpoint.
#[derive(Debug, Clone)]
pub struct McpAuthService<S> {
    auth: McpAuth,
    inner: S,
}

impl<S> tower_service::Service<Request<Body>> for McpAuthService<S>
where
    S: tower_service::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // The ready service serves this call; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            match auth.admit(req).await {
                Ok(req) => inner.call(req).await,
                Err(refusal) => Ok(refusal),
            }
        })
    }
}
