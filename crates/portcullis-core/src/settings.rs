//! The settings services run with, validated once by the binary and passed in.

use std::time::Duration;

use crate::limits::Rate;

/// Runtime settings of the services.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The URL users and providers reach this deployment at (no trailing slash), e.g.
    /// `https://portcullis.example.com`. Connect links and the provider callback are built on it.
    pub public_url: String,
    /// A random id for this process (refresh leases, logs).
    pub node_id: String,
    /// Refresh a token this many seconds before it expires.
    pub refresh_window_secs: i64,
    /// How long a refresh lease lasts; must exceed the provider timeout times the attempts.
    pub refresh_lease_secs: i64,
    /// Timeout of one call to a provider.
    pub provider_timeout: Duration,
    /// How many times a transient refresh failure is retried (with backoff).
    pub provider_retries: u32,
    /// How long a pending consent (`state`) is accepted.
    pub consent_ttl_secs: i64,
    /// The scope an inbound token must carry to fetch outbound tokens.
    pub fetch_scope: String,
    /// The tenant role that lets a user connect an app for the whole tenant.
    pub tenant_admin_role: String,
    /// Return URLs a connect flow may send the browser back to: each entry is an origin
    /// (`https://app.example.com`) or a URL prefix ending with `/`. The public URL's origin is
    /// always allowed.
    pub allowed_return_urls: Vec<String>,
    /// How many verified inbound tokens are remembered.
    pub token_cache_capacity: usize,
    /// How many entries the token path's other caches keep (each evicts the least valuable
    /// entry past its size, so memory follows these sizes and not the data).
    pub cache_capacities: CacheCapacities,
    /// How long a fetched JWKS is used before it is fetched again.
    pub jwks_ttl: Duration,
    /// The shortest interval between two JWKS fetches caused by an unknown `kid`.
    pub jwks_min_refetch: Duration,
    /// The longest inbound token accepted, in bytes.
    pub max_token_len: usize,
    /// Accept plain-HTTP provider and JWKS URLs on hosts other than loopback (never in
    /// production).
    pub danger_allow_insecure_http: bool,
    /// Production mode: the URLs Portcullis calls must be `https` and must not name or resolve to
    /// loopback, private, link-local or other internal addresses.
    pub production: bool,
    /// In production mode, still allow URLs on internal addresses (tests; never otherwise).
    pub danger_allow_private_network: bool,
    /// Rotate the active data key after it sealed this many secrets.
    pub data_key_seal_limit: u64,
    /// How long audit rows (decisions, management changes, rejected-request counts) are kept;
    /// `None` keeps them forever.
    pub audit_retention: Option<Duration>,
    /// Inbound-token claims never stored with a decision's inputs (which replays read).
    pub audit_never_store_claims: std::sync::Arc<[String]>,
    /// The rate limit per client address on the outbound and OAuth surfaces (`None`: none).
    pub rate_limit_per_address: Option<Rate>,
    /// The rate limit per subject (the caller's principal) on token requests (`None`: none).
    pub rate_limit_per_subject: Option<Rate>,
    /// The lifetime of the access tokens Portcullis signs, in seconds.
    pub access_token_ttl_secs: i64,
    /// The algorithm of new token-signing keys (`ES256` by default; `RS256`, `EdDSA`...).
    pub signing_alg: portcullis_crypto::jws::Algorithm,
    /// Lifetime of a refresh token, in seconds (each rotation issues a token with a new one).
    pub refresh_token_ttl_secs: i64,
    /// Lifetime of a browser's sign-in session, in seconds.
    pub session_ttl_secs: i64,
    /// Failed sign-ins in a row that lock a local user out.
    pub sign_in_max_failures: u32,
    /// How long a lockout lasts, in seconds.
    pub sign_in_lockout_secs: i64,
    /// Whether clients may register themselves (RFC 7591).
    pub dynamic_registration: bool,
    /// The initial access token registration requires, if any.
    pub registration_token: Option<portcullis_crypto::SecretString>,
    /// How long a dynamically registered client may go unused before it is removed, in seconds.
    pub unused_client_ttl_secs: i64,
    /// DANGER: fetch client ID metadata documents from loopback, private and internal addresses,
    /// and over `http` (for tests only).
    pub danger_allow_private_client_metadata: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".to_owned(),
            node_id: "node".to_owned(),
            refresh_window_secs: 60,
            refresh_lease_secs: 45,
            provider_timeout: Duration::from_secs(10),
            provider_retries: 2,
            consent_ttl_secs: 600,
            fetch_scope: "outbound.token.fetch".to_owned(),
            tenant_admin_role: "Tenant Admin".to_owned(),
            allowed_return_urls: Vec::new(),
            token_cache_capacity: 100_000,
            cache_capacities: CacheCapacities::default(),
            jwks_ttl: Duration::from_secs(3600),
            jwks_min_refetch: Duration::from_secs(10),
            max_token_len: 16 * 1024,
            danger_allow_insecure_http: false,
            production: false,
            danger_allow_private_network: false,
            data_key_seal_limit: crate::sealer::DEFAULT_SEAL_LIMIT,
            audit_retention: Some(Duration::from_secs(90 * 24 * 3600)),
            audit_never_store_claims: std::sync::Arc::from([]),
            rate_limit_per_address: Some(Rate {
                per_second: 500,
                burst: 1000,
            }),
            rate_limit_per_subject: Some(Rate {
                per_second: 20,
                burst: 60,
            }),
            access_token_ttl_secs: 300,
            signing_alg: portcullis_crypto::jws::Algorithm::ES256,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            session_ttl_secs: 8 * 3600,
            sign_in_max_failures: 5,
            sign_in_lockout_secs: 300,
            dynamic_registration: true,
            registration_token: None,
            unused_client_ttl_secs: 30 * 24 * 3600,
            danger_allow_private_client_metadata: false,
        }
    }
}

impl Settings {
    /// The longest a refresh may take while holding its lease: every attempt at the provider with
    /// its timeout and backoff, then every attempt at writing the result. The lease must be
    /// longer, or a slow refresh could outlive it and a rotated refresh token be lost.
    pub fn refresh_budget(&self) -> Duration {
        let attempts = self.provider_retries + 1;
        let provider = self.provider_timeout * attempts;
        let backoff = Duration::from_millis(200 * ((1u64 << self.provider_retries.min(16)) - 1));
        provider + backoff + crate::vault::STORE_RETRY_BUDGET
    }

    /// The provider callback URL (the `redirect_uri` Portcullis registers with providers).
    pub fn callback_url(&self) -> String {
        format!("{}/v1/outbound/callback", self.public_url)
    }

    /// The `redirect_uri` of an app: its own callback, or the shared one for apps that keep it.
    pub fn callback_url_for(&self, app: &portcullis_domain::AppRecord) -> String {
        if app.settings.shared_callback {
            self.callback_url()
        } else {
            format!("{}/v1/outbound/callback/{}", self.public_url, app.id)
        }
    }
}

/// The sizes of the token path's caches, in entries (at least 16 each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheCapacities {
    /// Outbound apps with their policies.
    pub apps: usize,
    /// Directory users, by id.
    pub users: usize,
    /// Directory users, by an inbound token's issuer and subject.
    pub identities: usize,
    /// Connections (their sealed tokens), by app, user and tenant.
    pub connections: usize,
}

impl Default for CacheCapacities {
    fn default() -> Self {
        Self {
            apps: 10_000,
            users: 100_000,
            identities: 100_000,
            connections: 200_000,
        }
    }
}
