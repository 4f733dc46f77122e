//! Inbound tokens: which issuers are trusted, their keys (JWKS, cached, refetched at most once per
//! interval on an unknown `kid`), and verification of the token an MCP server presents.
//!
//! Verification does no database IO: issuers are held in memory (reloaded when they change) and a
//! token already verified is remembered by the SHA-256 of its text until it expires.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use portcullis_crypto::jws::{Algorithm, JwkSet, JwtError, KeySet, Unverified, Validation};
use portcullis_domain::{Clock, IssuerRecord, IssuerStore, Timestamp};
use portcullis_policy::ClaimPath;
use serde_json::{Map, Value};

use crate::{ServiceError, Settings};

/// A trusted issuer, as configured (config file or API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerSpec {
    /// `config:<n>` for config-file issuers, the stored id otherwise.
    pub id: String,
    /// The exact `iss`.
    pub issuer: String,
    /// Where its keys are.
    pub keys: KeySource,
    /// Accepted audiences (at least one).
    pub audiences: Vec<String>,
    /// Accepted algorithms (at least one).
    pub algorithms: Vec<Algorithm>,
    /// Claim holding the user's roles.
    pub roles_claim: Option<String>,
    /// Claim holding the user's tenant(s).
    pub tenant_claim: Option<String>,
    /// Leeway on `exp`/`nbf`/`iat`.
    pub clock_skew_seconds: u32,
    /// The `typ` header its tokens must carry (RFC 8725 §3.11), if any.
    pub required_typ: Option<String>,
}

/// Where an issuer's verification keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A JWKS URL.
    Jwks(String),
    /// An OpenID Connect discovery document naming the JWKS.
    Discovery(String),
    /// Keys held by this process (Portcullis's own authorization server).
    Local,
}

impl IssuerSpec {
    /// Checks a stored issuer and turns it into a spec. Its errors are placed at the fields of
    /// the management API's issuer (`jwksUrl`, `audiences`, ...).
    pub fn from_record(r: &IssuerRecord, settings: &Settings) -> Result<Self, ServiceError> {
        let url = |u: &str, field: &str| crate::urls::check_body_url(u, field, settings);
        let discovery = r
            .discovery_url
            .as_deref()
            .map(|u| url(u, "discoveryUrl"))
            .transpose()?;
        let keys = match (&r.jwks_url, discovery) {
            (Some(u), _) => KeySource::Jwks(url(u, "jwksUrl")?),
            (None, Some(u)) => KeySource::Discovery(u),
            (None, None) => {
                return Err(ServiceError::invalid_at(
                    "invalid_issuer",
                    "jwksUrl",
                    "an issuer needs a jwksUrl or a discoveryUrl",
                ));
            }
        };
        if r.issuer.is_empty()
            || r.issuer.chars().count() > 1024
            || r.issuer
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ServiceError::invalid_at(
                "invalid_issuer",
                "issuer",
                "issuer must be 1 to 1024 characters, without spaces or control characters",
            ));
        }
        if r.audiences.is_empty() || r.audiences.iter().any(|a| a.is_empty()) {
            return Err(ServiceError::invalid_at(
                "invalid_issuer",
                r.audiences
                    .iter()
                    .position(String::is_empty)
                    .map_or_else(|| "audiences".to_owned(), |i| format!("audiences[{i}]")),
                "audiences must list at least one non-empty audience: audience validation is mandatory",
            ));
        }
        let mut algorithms = Vec::new();
        for (i, a) in r.algorithms.iter().enumerate() {
            let alg = a.parse::<Algorithm>().map_err(|_| {
                ServiceError::invalid_at(
                    "invalid_issuer",
                    format!("algorithms[{i}]"),
                    format!(
                        "algorithm {a:?} is not supported; use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA"
                    ),
                )
            })?;
            algorithms.push(alg);
        }
        if algorithms.is_empty() {
            return Err(ServiceError::invalid_at(
                "invalid_issuer",
                "algorithms",
                "algorithms must list at least one algorithm",
            ));
        }
        for (field, claim) in [
            ("rolesClaim", &r.roles_claim),
            ("tenantClaim", &r.tenant_claim),
        ] {
            if let Some(c) = claim {
                ClaimPath::parse(c).map_err(|e| {
                    ServiceError::invalid_at("invalid_issuer", field, format!("{field}: {e}"))
                })?;
            }
        }
        if let Some(t) = &r.required_typ
            && (t.is_empty() || t.len() > 64 || !t.chars().all(|c| c.is_ascii_graphic()))
        {
            return Err(ServiceError::invalid_at(
                "invalid_issuer",
                "requiredTyp",
                "requiredTyp must be 1 to 64 printable ASCII characters, such as at+jwt",
            ));
        }
        if r.clock_skew_seconds > 600 {
            return Err(ServiceError::invalid_at(
                "invalid_issuer",
                "clockSkewSeconds",
                "clockSkewSeconds must be at most 600",
            ));
        }
        Ok(Self {
            id: r.id.clone(),
            issuer: r.issuer.clone(),
            keys,
            audiences: r.audiences.clone(),
            algorithms,
            roles_claim: r.roles_claim.clone(),
            tenant_claim: r.tenant_claim.clone(),
            clock_skew_seconds: r.clock_skew_seconds,
            required_typ: r.required_typ.clone(),
        })
    }
}

/// A verified inbound token.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    /// The issuer's `iss`.
    pub issuer: String,
    /// `sub`: the user's id.
    pub subject: String,
    /// Every claim, for `jwtClaims` conditions.
    pub claims: Map<String, Value>,
    /// The scopes granted to the token (`scope`, space-separated, or `scp`).
    pub scopes: Vec<String>,
    /// Roles read from the issuer's roles claim (used when the user is not in the directory).
    pub token_roles: Vec<String>,
    /// Tenants read from the issuer's tenant claim.
    pub tenants: Vec<String>,
    /// The client the token was issued to (`azp` or `client_id`).
    pub client_id: Option<String>,
    /// `exp`, in seconds.
    pub expires_at: i64,
    /// What reading this token's identity first found: the directory user it links, or none
    /// (an external principal). A hint, never trusted for who is asking, naming the connection
    /// the token path reads beside the identity when it reads the identity again (see
    /// `plane::caller::Wanted`).
    pub(crate) found: std::sync::OnceLock<Option<String>>,
}

impl VerifiedToken {
    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// Why an inbound token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    /// The token failed parsing, its signature, or its claims.
    #[error("{0}")]
    Token(#[from] JwtError),
    /// No trusted issuer has this `iss`.
    #[error("the token's issuer is not trusted")]
    UnknownIssuer,
    /// The issuer's keys could not be fetched. What failed (a URL, a status) is logged, never
    /// told to the caller.
    #[error("the issuer's keys are unavailable")]
    KeysUnavailable(String),
}

impl InboundError {
    /// A stable code for audit records and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Token(e) => e.code(),
            Self::UnknownIssuer => "unknown_issuer",
            Self::KeysUnavailable(_) => "keys_unavailable",
        }
    }
}

struct IssuerState {
    spec: IssuerSpec,
    roles_path: Option<ClaimPath>,
    tenant_path: Option<ClaimPath>,
    keys: RwLock<Arc<KeySet>>,
    /// When the keys were last fetched (or a fetch last failed), on the services' clock.
    fetched_at: Mutex<Option<Timestamp>>,
    fetching: tokio::sync::Mutex<()>,
}

impl IssuerState {
    fn new(spec: IssuerSpec, keys: Arc<KeySet>) -> Self {
        Self {
            roles_path: spec
                .roles_claim
                .as_deref()
                .and_then(|c| ClaimPath::parse(c).ok()),
            tenant_path: spec
                .tenant_claim
                .as_deref()
                .and_then(|c| ClaimPath::parse(c).ok()),
            spec,
            keys: RwLock::new(keys),
            fetched_at: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn keys(&self) -> Arc<KeySet> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn fetched_at(&self) -> Option<Timestamp> {
        *self
            .fetched_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

type IssuerMap = HashMap<String, Arc<IssuerState>>;

/// Verifies inbound tokens.
pub struct Inbound {
    config_issuers: Vec<IssuerSpec>,
    local: RwLock<Option<(IssuerSpec, Arc<KeySet>)>>,
    issuers: RwLock<Arc<IssuerMap>>,
    /// Bumped by every change of the issuers; the list is current when `installed` caught up.
    wanted: AtomicU64,
    installed: AtomicU64,
    reloading: tokio::sync::Mutex<()>,
    store: Arc<dyn IssuerStore>,
    feed: Arc<dyn portcullis_domain::ChangeFeed>,
    http: reqwest::Client,
    cache: quick_cache::sync::Cache<[u8; 32], Arc<VerifiedToken>>,
    clock: Arc<dyn Clock>,
    settings: Arc<Settings>,
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("issuers", &self.map().len())
            .finish_non_exhaustive()
    }
}

impl Inbound {
    /// A verifier trusting `config_issuers` plus the issuers stored through the API.
    pub fn new(
        config_issuers: Vec<IssuerSpec>,
        store: Arc<dyn IssuerStore>,
        feed: Arc<dyn portcullis_domain::ChangeFeed>,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
        settings: Arc<Settings>,
    ) -> Self {
        Self {
            config_issuers,
            local: RwLock::new(None),
            issuers: RwLock::new(Arc::new(HashMap::new())),
            wanted: AtomicU64::new(1),
            installed: AtomicU64::new(0),
            reloading: tokio::sync::Mutex::new(()),
            store,
            feed,
            http,
            cache: quick_cache::sync::Cache::new(settings.token_cache_capacity.max(16)),
            clock,
            settings,
        }
    }

    /// Trusts tokens signed by keys held in this process (Portcullis's own authorization server
    /// plugs in here as one more issuer).
    pub fn set_local_issuer(&self, spec: IssuerSpec, keys: Arc<KeySet>) {
        *self
            .local
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((spec, keys));
        self.issuers_changed();
    }

    /// Marks the issuer list stale and forgets verified tokens (an issuer may have been removed).
    pub fn issuers_changed(&self) {
        // INVARIANT: the generation moves before the cache is cleared, so a verification that
        // saw the list current and inserts after the clear is caught by its re-check.
        self.wanted.fetch_add(1, Ordering::SeqCst);
        self.cache.clear();
    }

    /// Whether the issuer list in memory reflects every change heard of.
    fn current(&self) -> bool {
        self.installed.load(Ordering::SeqCst) >= self.wanted.load(Ordering::SeqCst)
    }

    /// Whether `issuer` is Portcullis's own (its subjects are directory user ids).
    pub fn is_local_issuer(&self, issuer: &str) -> bool {
        self.local
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .is_some_and(|(spec, _)| spec.issuer == issuer)
    }

    /// Whether `issuer` is defined in the configuration file.
    pub fn is_config_issuer(&self, issuer: &str) -> bool {
        self.config_issuers.iter().any(|s| s.issuer == issuer)
    }

    /// The issuers from the configuration file.
    pub fn config_specs(&self) -> &[IssuerSpec] {
        &self.config_issuers
    }

    fn map(&self) -> Arc<IssuerMap> {
        self.issuers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Reloads the issuer list from the config and the store, keeping fetched keys of issuers
    /// whose settings did not change.
    pub async fn reload(&self) -> Result<(), ServiceError> {
        let _one = self.reloading.lock().await;
        // Requests that found the list stale wait here; the first reloads, the others find it
        // current. A change arriving while the store is read bumps `wanted` again.
        let target = self.wanted.load(Ordering::SeqCst);
        if self.installed.load(Ordering::SeqCst) >= target {
            return Ok(());
        }
        let stored = self.store.issuers().await?;
        let old = self.map();
        let mut next: IssuerMap = HashMap::new();
        let mut specs: Vec<(IssuerSpec, Option<Arc<KeySet>>)> = Vec::new();
        if let Some((spec, keys)) = self
            .local
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
        {
            specs.push((spec, Some(keys)));
        }
        specs.extend(self.config_issuers.iter().cloned().map(|s| (s, None)));
        for record in &stored {
            match IssuerSpec::from_record(record, &self.settings) {
                Ok(spec) => specs.push((spec, None)),
                Err(e) => {
                    tracing::warn!(issuer = %record.issuer, error = %e, "ignoring an invalid stored issuer")
                }
            }
        }
        for (spec, local_keys) in specs {
            if next.contains_key(&spec.issuer) {
                tracing::warn!(issuer = %spec.issuer, "an issuer is configured twice; the first definition wins");
                continue;
            }
            let state = match (local_keys, old.get(&spec.issuer)) {
                (Some(keys), _) => Arc::new(IssuerState::new(spec.clone(), keys)),
                (None, Some(prev)) if prev.spec == spec => prev.clone(),
                (None, _) => Arc::new(IssuerState::new(spec.clone(), Arc::new(KeySet::default()))),
            };
            next.insert(spec.issuer.clone(), state);
        }
        *self
            .issuers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(next);
        self.installed.store(target, Ordering::SeqCst);
        Ok(())
    }

    /// Verifies a bearer token: structure, issuer, signature, `exp`/`nbf`/`iss`/`aud`/`sub`.
    pub async fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, InboundError> {
        if token.len() > self.settings.max_token_len {
            return Err(JwtError::Oversized {
                max_len: self.settings.max_token_len,
            }
            .into());
        }
        let now = self.clock.now().as_secs();
        let hash = portcullis_crypto::sha256(token.as_bytes());
        // While the change feed is down, a removed issuer or key may not have been heard of:
        // every token is verified afresh (fail closed).
        let live = self.feed.is_live();
        if !live {
            // ... and the issuer list is read again (its issuers' fetched keys are kept).
            self.issuers_changed();
        }
        if live
            && self.current()
            && let Some(hit) = self.cache.get(&hash)
        {
            if hit.expires_at >= now {
                return Ok(hit);
            }
            self.cache.remove(&hash);
        }
        let verified = Arc::new(self.verify_uncached(token, now, None).await?);
        // Keep the verification no longer than the token lives (and never past a reload).
        if live && self.current() {
            self.cache.insert(hash, verified.clone());
            if !self.current() {
                self.cache.remove(&hash);
            }
        }
        Ok(verified)
    }

    /// Verifies an assertion a trusted issuer made for this server rather than an access token
    /// (an RFC 7523 / ID-JAG grant): its `typ` must be `typ` and its audience `audience`,
    /// whatever the issuer's own settings say; never read from nor kept in the cache.
    pub async fn verify_assertion(
        &self,
        token: &str,
        typ: &str,
        audience: &str,
    ) -> Result<VerifiedToken, InboundError> {
        if token.len() > self.settings.max_token_len {
            return Err(JwtError::Oversized {
                max_len: self.settings.max_token_len,
            }
            .into());
        }
        if !self.feed.is_live() {
            self.issuers_changed();
        }
        let now = self.clock.now().as_secs();
        self.verify_uncached(token, now, Some((typ, audience)))
            .await
    }

    /// Verifies a token against its issuer: structure, `exp`/`nbf`/`iss`/`aud`/`sub`, `typ`,
    /// signature. `assertion` replaces the issuer's audiences and required `typ`.
    async fn verify_uncached(
        &self,
        token: &str,
        now: i64,
        assertion: Option<(&str, &str)>,
    ) -> Result<VerifiedToken, InboundError> {
        if !self.current() {
            self.reload().await.map_err(|e| {
                tracing::warn!(error = %e, "loading the trusted issuers failed");
                InboundError::KeysUnavailable(e.to_string())
            })?;
        }
        let unverified = Unverified::parse(token, self.settings.max_token_len)?;
        let issuer = unverified
            .issuer()
            .ok_or(InboundError::UnknownIssuer)?
            .to_owned();
        let state = self
            .map()
            .get(&issuer)
            .cloned()
            .ok_or(InboundError::UnknownIssuer)?;
        let spec = &state.spec;
        let assertion_audience = assertion.map(|(_, aud)| vec![aud.to_owned()]);
        unverified.validate(&Validation {
            issuer: &spec.issuer,
            audiences: assertion_audience.as_deref().unwrap_or(&spec.audiences),
            algorithms: &spec.algorithms,
            leeway_secs: u64::from(spec.clock_skew_seconds),
            now,
            require_sub: true,
        })?;
        match (assertion, &spec.required_typ) {
            (Some((typ, _)), _) => unverified.check_type(typ)?,
            (None, Some(typ)) => unverified.check_type(typ)?,
            (None, None) => {}
        }
        let header = unverified.header();
        let keys = self.keys_for(&state, header.kid(), header.alg()).await?;
        unverified.verify_with(&keys)?;
        let claims = unverified.into_claims();
        Ok(build_verified(&state, issuer, claims))
    }

    /// The issuer's keys, refetched (at most once per `jwks_min_refetch`) when none matches.
    async fn keys_for(
        &self,
        state: &IssuerState,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<KeySet>, InboundError> {
        let keys = state.keys();
        let stale = state
            .fetched_at()
            .is_none_or(|t| self.since(t) > self.settings.jwks_ttl);
        let local = matches!(state.spec.keys, KeySource::Local);
        if local || (keys.find(kid, alg).is_some() && !stale) {
            return Ok(keys);
        }
        let _one = state.fetching.lock().await;
        // Someone else may have fetched while we waited.
        let keys = state.keys();
        let fetched_at = state.fetched_at();
        if keys.find(kid, alg).is_some()
            && fetched_at.is_some_and(|t| self.since(t) <= self.settings.jwks_ttl)
        {
            return Ok(keys);
        }
        if fetched_at.is_some_and(|t| self.since(t) < self.settings.jwks_min_refetch) {
            // Rate limit: an unknown kid does not cause a fetch storm.
            return Ok(keys);
        }
        match self.fetch_keys(&state.spec).await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                // A key the issuer no longer publishes verifies nothing more: forget the tokens
                // verified with it (all of them; this is rare).
                if keys.kids().any(|k| !fresh.kids().any(|f| f == k)) {
                    tracing::info!(issuer = %state.spec.issuer, "a signing key was removed from the JWKS; verified tokens are forgotten");
                    self.issuers_changed();
                }
                *state
                    .keys
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh.clone();
                *state
                    .fetched_at
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(self.clock.now());
                Ok(fresh)
            }
            Err(e) => {
                // Record the attempt so that a down IdP is not hammered; keep the old keys.
                *state
                    .fetched_at
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(self.clock.now());
                tracing::warn!(issuer = %state.spec.issuer, error = %e, "fetching the issuer's keys failed");
                if keys.is_empty() {
                    Err(InboundError::KeysUnavailable(e))
                } else {
                    Ok(keys)
                }
            }
        }
    }

    /// How long ago `t` was on the services' clock. A `t` ahead of the clock (the wall clock was
    /// set back) counts as long ago, so that keys are not held fresh, nor refetches held off, until
    /// the clock catches up; the next fetch then records the clock's time again.
    fn since(&self, t: Timestamp) -> Duration {
        u64::try_from(self.clock.now().millis_since(t)).map_or(Duration::MAX, Duration::from_millis)
    }

    async fn fetch_keys(&self, spec: &IssuerSpec) -> Result<KeySet, String> {
        let jwks_url = match &spec.keys {
            KeySource::Jwks(u) => u.clone(),
            KeySource::Local => return Ok(KeySet::default()),
            KeySource::Discovery(u) => {
                let doc: Value = crate::urls::get_json(&self.http, u).await?;
                if doc.get("issuer").and_then(Value::as_str) != Some(spec.issuer.as_str()) {
                    return Err("the discovery document names another issuer".into());
                }
                let jwks = doc
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or("the discovery document has no jwks_uri")?;
                let jwks = crate::urls::check_url(jwks, "jwks_uri", &self.settings)
                    .map_err(|e| e.to_string())?;
                // Keys served from elsewhere than the issuer's origin are not taken from a
                // discovery document: an operator who trusts such a location names it (jwksUrl).
                if !crate::urls::same_origin(&jwks, &spec.issuer) {
                    return Err(format!(
                        "the discovery document's jwks_uri {jwks} is not on the issuer's origin; set jwksUrl to trust it"
                    ));
                }
                jwks
            }
        };
        let set: JwkSet = crate::urls::get_json(&self.http, &jwks_url).await?;
        let (keys, skipped) = KeySet::from_jwks(&set);
        for s in skipped {
            tracing::debug!(issuer = %spec.issuer, key = %s, "skipped a key of the issuer's JWKS");
        }
        tracing::info!(issuer = %spec.issuer, keys = keys.len(), "fetched the issuer's keys");
        Ok(keys)
    }
}

fn build_verified(
    state: &IssuerState,
    issuer: String,
    claims: Map<String, Value>,
) -> VerifiedToken {
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let scopes = match (claims.get("scope"), claims.get("scp")) {
        (Some(Value::String(s)), _) => s.split_whitespace().map(str::to_owned).collect(),
        (_, Some(v)) => strings(Some(v)),
        _ => Vec::new(),
    };
    let token_roles = strings(state.roles_path.as_ref().and_then(|p| p.resolve(&claims)));
    let tenants = strings(state.tenant_path.as_ref().and_then(|p| p.resolve(&claims)));
    let client_id = claims
        .get("azp")
        .or_else(|| claims.get("client_id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let expires_at = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    VerifiedToken {
        issuer,
        subject,
        claims,
        scopes,
        token_roles,
        tenants,
        client_id,
        expires_at,
        found: std::sync::OnceLock::new(),
    }
}

/// A claim read as a list of strings: a string (space-separated for `scp`-like claims is not
/// assumed: one string is one value), or an array of strings (other elements ignored).
fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}
