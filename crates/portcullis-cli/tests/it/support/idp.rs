//! A real identity provider for inbound tokens: signs JWTs with ES256, RS256 and EdDSA keys and
//! publishes them as a JWKS (and an OpenID discovery document) over HTTP, counting fetches.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use portcullis_crypto::jws::{Algorithm, SigningKey};
use serde_json::{Value, json};

struct Shared {
    keys: Mutex<Vec<SigningKey>>,
    published: Mutex<Vec<Value>>,
    fetches: AtomicUsize,
    issuer: Mutex<String>,
}

/// A running IdP.
pub struct Idp {
    /// Its `iss`.
    pub issuer: String,
    /// Its JWKS URL.
    pub jwks_url: String,
    /// The audience its tokens carry by default.
    pub audience: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn jwks(State(s): State<Arc<Shared>>) -> axum::Json<Value> {
    s.fetches.fetch_add(1, Ordering::SeqCst);
    axum::Json(json!({ "keys": *s.published.lock().unwrap() }))
}

async fn discovery(State(s): State<Arc<Shared>>) -> axum::Json<Value> {
    let iss = s.issuer.lock().unwrap().clone();
    axum::Json(json!({ "issuer": iss, "jwks_uri": format!("{iss}/jwks.json") }))
}

impl Idp {
    /// The identity links that make `sub` at this IdP a directory user (`identities` of a user).
    pub fn identity(&self, sub: &str) -> Value {
        json!([{ "issuer": self.issuer, "subject": sub }])
    }

    /// The principal id of `sub` at this IdP when no directory user is linked to it.
    pub fn principal(&self, sub: &str) -> String {
        portcullis_core::external_principal(&self.issuer, sub)
    }

    /// Starts an IdP with one key per algorithm (ES256, RS256, EdDSA), all published.
    pub async fn start() -> Self {
        let keys: Vec<SigningKey> = [Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA]
            .into_iter()
            .map(|a| SigningKey::generate(a).unwrap())
            .collect();
        let published = keys
            .iter()
            .map(|k| serde_json::to_value(k.public_jwk()).unwrap())
            .collect();
        let shared = Arc::new(Shared {
            keys: Mutex::new(keys),
            published: Mutex::new(published),
            fetches: AtomicUsize::new(0),
            issuer: Mutex::new(String::new()),
        });
        let app = Router::new()
            .route("/jwks.json", get(jwks))
            .route("/.well-known/openid-configuration", get(discovery))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        *shared.issuer.lock().unwrap() = issuer.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            jwks_url: format!("{issuer}/jwks.json"),
            issuer,
            audience: "https://mcp.example.test/mcp".into(),
            shared,
            task,
        }
    }

    /// How many times the JWKS was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.shared.fetches.load(Ordering::SeqCst)
    }

    /// Adds a signing key; published in the JWKS only when `publish` is set.
    pub fn add_key(&self, alg: Algorithm, publish: bool) -> String {
        let key = SigningKey::generate(alg).unwrap();
        let kid = key.kid().to_owned();
        if publish {
            self.shared
                .published
                .lock()
                .unwrap()
                .push(serde_json::to_value(key.public_jwk()).unwrap());
        }
        self.shared.keys.lock().unwrap().push(key);
        kid
    }

    /// Takes a key out of the published JWKS (it still signs).
    pub fn unpublish(&self, kid: &str) {
        self.shared
            .published
            .lock()
            .unwrap()
            .retain(|k| k["kid"] != kid);
    }

    /// The kid of the default key of `alg`.
    pub fn kid_of(&self, alg: Algorithm) -> String {
        let keys = self.shared.keys.lock().unwrap();
        keys.iter()
            .find(|k| k.algorithm() == alg)
            .unwrap()
            .kid()
            .to_owned()
    }

    /// Publishes a key added earlier unpublished.
    pub fn publish(&self, kid: &str) {
        let keys = self.shared.keys.lock().unwrap();
        let key = keys.iter().find(|k| k.kid() == kid).unwrap();
        self.shared
            .published
            .lock()
            .unwrap()
            .push(serde_json::to_value(key.public_jwk()).unwrap());
    }

    /// Default claims for `sub`: issuer, audience, five minutes of validity, the fetch scope.
    pub fn claims(&self, sub: &str) -> Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "iat": now,
            "exp": now + 300,
            "scope": "openid outbound.token.fetch",
            "azp": "mcp-client",
        })
    }

    /// A token for `sub` signed with the key of `alg`, with `extra` claims merged over the
    /// defaults (a `null` removes a claim).
    pub fn token_with(&self, alg: Algorithm, sub: &str, extra: Value) -> String {
        let mut claims = self.claims(sub);
        if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                if v.is_null() {
                    c.remove(k);
                } else {
                    c.insert(k.clone(), v.clone());
                }
            }
        }
        self.sign(alg, &claims)
    }

    /// A default ES256 token for `sub`.
    pub fn token(&self, sub: &str) -> String {
        self.token_with(Algorithm::ES256, sub, json!({}))
    }

    /// Signs claims with the first key of `alg`.
    pub fn sign(&self, alg: Algorithm, claims: &Value) -> String {
        let keys = self.shared.keys.lock().unwrap();
        let key = keys.iter().find(|k| k.algorithm() == alg).unwrap();
        key.sign_jwt(claims, Some("at+jwt")).unwrap()
    }

    /// Signs claims with an ES256 key and the header `typ` given (none: no `typ`).
    pub fn sign_typed(&self, typ: Option<&str>, claims: &Value) -> String {
        let keys = self.shared.keys.lock().unwrap();
        let key = keys
            .iter()
            .find(|k| k.algorithm() == Algorithm::ES256)
            .unwrap();
        key.sign_jwt(claims, typ).unwrap()
    }

    /// Signs claims with the key `kid`.
    pub fn sign_with_kid(&self, kid: &str, claims: &Value) -> String {
        let keys = self.shared.keys.lock().unwrap();
        let key = keys.iter().find(|k| k.kid() == kid).unwrap();
        key.sign_jwt(claims, Some("at+jwt")).unwrap()
    }

    /// The issuer registration body for `/v1/mgmt/issuers`.
    pub fn registration(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwksUrl": self.jwks_url,
            "audiences": [self.audience],
            "algorithms": ["ES256", "RS256", "EdDSA"],
            "rolesClaim": "roles",
            "tenantClaim": "org_id",
            "clockSkewSeconds": 5,
        })
    }
}
