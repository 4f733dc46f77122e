//! Portcullis's services: the decision on every outbound token request (the access control
//! plane), the token vault, inbound token verification, and management of apps, policies, the
//! directory, issuers, clients and admin keys.
//!
//! [`Core`] holds the stores (as trait objects: it never knows which database it runs on), the
//! sealer for secrets at rest, the inbound verifier, the provider client, the caches of the token
//! path and the audit writer. The HTTP crate calls it; it calls nothing above it.

pub mod admin;
pub mod apply;
mod audit;
pub mod authz;
mod cache;
pub mod changes;
pub mod console;
mod error;
mod exchange;
mod identity;
mod ids;
mod inbound;
pub mod limits;
pub mod manage;
mod plane;
mod provider;
pub mod refusal;
mod sealer;
mod settings;
mod signing;
mod tickets;
pub use tickets::{ConnectLinkPage, ConnectStart, binding_cookie_name, claim_cookie_name};
mod urls;
mod vault;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use portcullis_crypto::envelope::MasterKey;
use portcullis_domain::{Change, ChangeEvent, Clock, Stores, Timestamp};

pub use admin::{AdminIdentity, NewAdminKey};
pub use audit::AuditSink;
pub use error::{ServiceError, from_json};
pub use exchange::{
    ClientIdentity, ExchangeFailure, ExchangeRequest, ExchangeResponse, TOKEN_EXCHANGE_GRANT,
};
pub use identity::{EXTERNAL_PREFIX, external_principal};
pub use ids::{new_event_id, new_id};
pub use inbound::{Inbound, InboundError, IssuerSpec, KeySource, VerifiedToken};
pub use plane::{
    AppSnapshot, Checked, DecisionSummary, Granted, OutboundToken, Surface, TokenRequest,
};
pub use provider::{Provider, ProviderError, TokenEndpoint, TokenResponse, http_client};
pub use refusal::{DenialReason, ForbiddenReason, NotConnectedReason, Refusal, RequestProblem};
pub use sealer::{ReencryptReport, Sealer, SealerError, reencrypt};
pub use settings::{CacheCapacities, Settings};
pub use signing::{SigningKeyView, TOKEN_CLOCK_SKEW_SECS, signing_key_aad};
pub use urls::check_url;
pub use vault::{
    AdminConnectRequest, CallbackOutcome, CallbackParams, ConnectRequest, ConnectionInfo,
    ImportToken, RefreshError, RevokeReport, connection_aad, state_aad,
};

/// Everything the services need, wired once at start. Its parts are private: the layers above
/// (HTTP, the CLI) reach storage, keys and time only through the services' methods.
pub struct Core {
    /// The stores of the configured backend.
    stores: Stores,
    /// Runtime settings.
    settings: Arc<Settings>,
    /// Time.
    clock: Arc<dyn Clock>,
    /// Secrets at rest.
    sealer: Arc<Sealer>,
    /// Inbound token verification.
    inbound: Arc<Inbound>,
    /// Calls to providers.
    provider: Provider,
    /// The audit writer.
    audit: AuditSink,
    caches: Arc<cache::Caches>,
    admin_keys: quick_cache::sync::Cache<[u8; 32], Option<portcullis_domain::AdminKeyRecord>>,
    clients: quick_cache::sync::Cache<String, Option<portcullis_domain::ClientRecord>>,
    narrowed: quick_cache::sync::Cache<(String, String), Arc<vault::Narrowed>>,
    inflight: Mutex<HashMap<String, vault::RefreshFuture>>,
    reencryption: Mutex<Option<manage::ReencryptionStatus>>,
    per_address: Option<limits::RateLimiter<std::net::IpAddr>>,
    per_subject: Option<limits::RateLimiter<String>>,
    signing: signing::SigningKeys,
    /// Serializes refreshes of Portcullis's own issuer.
    local_issuer: tokio::sync::Mutex<()>,
    /// The resource servers by canonical URI, and whether a change was heard since they were read.
    resources_by_uri: std::sync::RwLock<Arc<HashMap<String, portcullis_domain::ResourceRecord>>>,
    resources_wanted: std::sync::atomic::AtomicU64,
    resources_installed: std::sync::atomic::AtomicU64,
    /// Bounds the password hashes computed at once (each holds 19 MiB for tens of milliseconds).
    password_hashing: tokio::sync::Semaphore,
    /// Sign-in attempts per client address.
    sign_in_limit: limits::RateLimiter<std::net::IpAddr>,
    /// Dynamic client registrations per client address.
    registration_limit: limits::RateLimiter<std::net::IpAddr>,
    /// Client ID metadata documents, as long as their caching allows.
    metadata_documents: quick_cache::sync::Cache<String, authz::CachedDocument>,
    /// The HTTP client that fetches them.
    metadata_http: reqwest::Client,
    /// Upstream identity providers' discovery documents and keys, by issuer.
    upstreams: quick_cache::sync::Cache<String, Arc<authz::Upstream>>,
    me: Weak<Core>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("stores", &self.stores)
            .finish_non_exhaustive()
    }
}

/// What [`Core::start`] needs besides the stores.
#[derive(Debug)]
pub struct CoreOptions {
    /// Runtime settings.
    pub settings: Settings,
    /// The operator's master keys (the first is active).
    pub master_keys: Vec<MasterKey>,
    /// Issuers from the configuration file.
    pub config_issuers: Vec<IssuerSpec>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

impl Core {
    /// Wires the services on `stores`: opens the sealer (creating the first data key on an empty
    /// database), starts the audit writer, and subscribes the caches to the change feed.
    pub async fn start(stores: Stores, options: CoreOptions) -> Result<Arc<Self>, ServiceError> {
        let settings = Arc::new(options.settings);
        let clock = options.clock;
        let sealer = Arc::new(
            Sealer::load(stores.keys.clone(), options.master_keys, clock.clone())
                .await
                .map_err(|e| ServiceError::Internal(e.to_string()))?,
        );
        sealer.set_seal_limit(settings.data_key_seal_limit);
        let counting = Arc::downgrade(&sealer);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(sealer) = counting.upgrade() else {
                    return;
                };
                if let Err(e) = sealer.flush_seals().await {
                    tracing::warn!(error = %e, "counting the data key's seals failed");
                }
            }
        });
        let http = http_client(
            settings.provider_timeout,
            settings.production && !settings.danger_allow_private_network,
        )
        .map_err(ServiceError::Internal)?;
        let metadata_http = authz::metadata_http(settings.danger_allow_private_client_metadata)
            .map_err(ServiceError::Internal)?;
        let inbound = Arc::new(Inbound::new(
            options.config_issuers,
            stores.issuers.clone(),
            stores.changes.clone(),
            http.clone(),
            clock.clone(),
            settings.clone(),
        ));
        let caches = Arc::new(cache::Caches::new(
            &stores.changes,
            &settings.cache_capacities,
        ));
        let audit = AuditSink::spawn(stores.clone());
        let per_address = settings
            .rate_limit_per_address
            .map(limits::RateLimiter::new);
        let per_subject = settings
            .rate_limit_per_subject
            .map(limits::RateLimiter::new);
        let core = Arc::new_cyclic(|me| Core {
            provider: Provider::new(http, settings.provider_retries),
            stores: stores.clone(),
            settings,
            clock,
            sealer,
            inbound,
            audit,
            caches,
            admin_keys: quick_cache::sync::Cache::new(1024),
            clients: quick_cache::sync::Cache::new(4096),
            narrowed: quick_cache::sync::Cache::new(100_000),
            inflight: Mutex::new(HashMap::new()),
            reencryption: Mutex::new(None),
            per_address,
            per_subject,
            signing: signing::SigningKeys::default(),
            local_issuer: tokio::sync::Mutex::new(()),
            resources_by_uri: std::sync::RwLock::new(Arc::new(HashMap::new())),
            resources_wanted: std::sync::atomic::AtomicU64::new(1),
            resources_installed: std::sync::atomic::AtomicU64::new(0),
            password_hashing: tokio::sync::Semaphore::new(4),
            sign_in_limit: limits::RateLimiter::new(limits::Rate {
                per_second: 10,
                burst: 50,
            }),
            registration_limit: limits::RateLimiter::new(limits::Rate {
                per_second: 1,
                burst: 20,
            }),
            metadata_documents: quick_cache::sync::Cache::new(10_000),
            metadata_http,
            upstreams: quick_cache::sync::Cache::new(256),
            me: me.clone(),
        });
        let weak = Arc::downgrade(&core);
        stores
            .changes
            .add_listener(Arc::new(move |event: &ChangeEvent| {
                if let Some(core) = weak.upgrade() {
                    core.apply_change(event);
                }
            }));
        core.load_signing_keys().await?;
        if let Err(e) = core.inbound.reload().await {
            tracing::warn!(error = %e, "loading the trusted issuers failed; retrying on first use");
        }
        Ok(core)
    }

    /// Applies a change event to every in-memory state (synchronously; see `cache`).
    fn apply_change(&self, event: &ChangeEvent) {
        self.caches.apply(event);
        match event {
            ChangeEvent::Reset => {
                self.inbound.issuers_changed();
                self.admin_keys.clear();
                self.clients.clear();
                self.reload_data_keys();
                self.resources_changed();
                self.reload_signing_keys();
            }
            ChangeEvent::Changed(change) => match change {
                Change::Issuers => self.inbound.issuers_changed(),
                Change::AdminKeys => self.admin_keys.clear(),
                Change::Client(id) => {
                    self.clients.remove(id);
                }
                Change::DataKeys => self.reload_data_keys(),
                Change::SigningKeys => self.reload_signing_keys(),
                Change::Resources => {
                    self.resources_changed();
                    self.spawn_refresh_local_issuer();
                }
                Change::App(_)
                | Change::User(_)
                | Change::AllUsers
                | Change::Connection(_)
                | Change::AppConnections(_) => {}
            },
        }
    }

    fn reload_data_keys(&self) {
        let sealer = self.sealer.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = sealer.reload().await {
                    tracing::warn!(error = %e, "reloading the data keys failed");
                }
            });
        }
    }

    /// Counts a request from `address` on a rate-limited surface: `Err` with the wait when the
    /// address is over its limit (the request is then counted as rejected on `surface`).
    pub fn rate_limit_address(
        &self,
        address: std::net::IpAddr,
        surface: &'static str,
    ) -> Result<(), std::time::Duration> {
        let Some(limiter) = &self.per_address else {
            return Ok(());
        };
        limiter
            .check(&address, std::time::Instant::now())
            .inspect_err(|_| self.audit.reject(surface, "rate_limited", self.clock.now()))
    }

    /// Deletes the audit rows older than the configured retention; returns how many went.
    pub async fn prune_audit(&self) -> Result<u64, ServiceError> {
        match self.settings.audit_retention {
            None => Ok(0),
            Some(retention) => {
                audit::prune(self.stores.audit.as_ref(), self.clock.as_ref(), retention)
                    .await
                    .map_err(ServiceError::from)
            }
        }
    }

    /// How many apps, users and connections the token path has read from the database so far
    /// (a warm request reads none).
    pub fn cache_loads(&self) -> u64 {
        self.caches.loads()
    }

    /// Waits until every queued audit record is written (graceful shutdown, tests).
    pub async fn flush_audit(&self) {
        self.audit.flush().await;
    }

    /// The runtime settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Now, on the services' clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Inbound token verification: the trusted issuers and their keys.
    pub fn inbound(&self) -> &Inbound {
        &self.inbound
    }

    /// The database backend's name (`sqlite`, `postgres`).
    pub fn backend(&self) -> &'static str {
        self.stores.health.backend()
    }

    /// Whether this node can serve: the database answers and the change feed is live.
    pub async fn readiness(&self) -> Readiness {
        Readiness {
            database: self.stores.health.ping().await.is_ok(),
            change_feed: self.stores.changes.is_live(),
            backend: self.stores.health.backend(),
        }
    }

    /// Deletes the connect links (pending consents) that expired; returns how many went.
    pub async fn purge_expired_connect_links(&self) -> Result<u64, ServiceError> {
        Ok(self
            .stores
            .consent_states
            .purge_expired_states(self.clock.now())
            .await?)
    }

    /// The stores themselves, for tests that check what is stored (ciphertexts, rows).
    #[doc(hidden)]
    pub fn stores_for_tests(&self) -> &Stores {
        &self.stores
    }

    /// The sealer itself, for tests of key rotation and re-encryption.
    #[doc(hidden)]
    pub fn sealer_for_tests(&self) -> &Arc<Sealer> {
        &self.sealer
    }
}

/// Whether a node can serve ([`Core::readiness`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// The database answered a ping.
    pub database: bool,
    /// The change feed is live (on PostgreSQL, the listener is connected).
    pub change_feed: bool,
    /// The backend's name.
    pub backend: &'static str,
}
