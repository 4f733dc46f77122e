//! Configuration: defaults → TOML file → `PORTCULLIS_*` environment variables → flags, validated
//! once into the runtime settings that are passed explicitly. Unknown keys in the file are errors.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use portcullis_core::limits::Rate;
use portcullis_core::{CacheCapacities, IssuerSpec, KeySource, Settings};
use portcullis_crypto::SecretString;
use portcullis_crypto::envelope::MasterKey;
use portcullis_crypto::jws::Algorithm;
use serde::Deserialize;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("the configuration file {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A value is not acceptable.
    #[error("{0}")]
    Invalid(String),
}

/// The configuration file (every key optional).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on.
    pub listen: Option<String>,
    /// Data directory (SQLite database, development master key).
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL; SQLite in the data directory when absent.
    pub database_url: Option<String>,
    /// The URL users and providers reach this deployment at.
    pub public_url: Option<String>,
    /// Refuse to start without an external master key, and refuse `danger_*` switches.
    pub production: Option<bool>,
    /// A file holding the master key ring (`id:base64` per line; the first is active).
    pub master_key_file: Option<PathBuf>,
    /// `text` or `json`.
    pub log_format: Option<String>,
    /// A tracing filter (`info`, `portcullis=debug`...).
    pub log_level: Option<String>,
    /// Database settings.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// Outbound (token vault) settings.
    #[serde(default)]
    pub outbound: OutboundConfig,
    /// Inbound token settings and trusted issuers.
    #[serde(default)]
    pub inbound: InboundConfig,
    /// The audit log.
    #[serde(default)]
    pub audit: AuditConfig,
    /// The sizes of the token path's caches.
    #[serde(default)]
    pub cache: CacheConfig,
    /// Rate limits of the outbound and OAuth surfaces.
    #[serde(default)]
    pub rate_limits: RateLimitsConfig,
    /// Data keys.
    #[serde(default)]
    pub keys: KeysConfig,
    /// The tokens Portcullis signs.
    #[serde(default)]
    pub tokens: TokensConfig,
    /// Dynamic client registration (RFC 7591).
    #[serde(default)]
    pub registration: RegistrationConfig,
}

/// `[registration]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationConfig {
    /// Whether clients may register themselves at `/oauth2/register` (default true).
    pub enabled: Option<bool>,
    /// The initial access token registration requires (or PORTCULLIS_REGISTRATION_TOKEN); none by
    /// default: registration is open.
    pub initial_access_token: Option<String>,
    /// How long a registered client may go unused before it is removed, in seconds (default 30
    /// days; 3600 to 31536000). A registration never used is removed after a day.
    pub unused_client_ttl_seconds: Option<i64>,
}

/// `[tokens]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    /// Lifetime of the access tokens Portcullis signs, in seconds (default 300; 60 to 86400).
    pub access_token_ttl_seconds: Option<i64>,
    /// Algorithm of new signing keys: `ES256` (default), `ES384`, `RS256`, `PS256`, `EdDSA`...
    pub signing_alg: Option<String>,
    /// Lifetime of a refresh token, in seconds (default 30 days; 300 to 31536000). Each rotation
    /// issues a token with a full lifetime.
    pub refresh_token_ttl_seconds: Option<i64>,
    /// Lifetime of a browser's sign-in session, in seconds (default 8 hours; 60 to 2592000).
    pub session_ttl_seconds: Option<i64>,
    /// Failed sign-ins in a row that lock a local user out (default 5; 1 to 100).
    pub sign_in_max_failures: Option<u32>,
    /// How long a lockout lasts, in seconds (default 300; 1 to 86400).
    pub sign_in_lockout_seconds: Option<i64>,
}

/// `[keys]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// Rotate the active data key after it sealed this many secrets (default 2^30, at most 2^31).
    pub rotate_after_seals: Option<u64>,
}

/// `[audit]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Days audit rows are kept (default 90; 0 keeps them forever).
    pub retention_days: Option<u32>,
    /// Inbound-token claims never stored with a decision's inputs, which policy replays read
    /// (for example `email`). Also PORTCULLIS_AUDIT_NEVER_STORE_CLAIMS, comma-separated.
    pub never_store_claims: Option<Vec<String>>,
}

/// `[cache]`: how many entries each of the token path's caches keeps (at least 16; the least
/// valuable entry is evicted past it). Also PORTCULLIS_CACHE_APPS, _USERS, _IDENTITIES and
/// _CONNECTIONS.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Outbound apps with their policies (default 10,000).
    pub apps: Option<usize>,
    /// Directory users by id (default 100,000).
    pub users: Option<usize>,
    /// Directory users by issuer and subject (default 100,000).
    pub identities: Option<usize>,
    /// Connections (default 200,000).
    pub connections: Option<usize>,
}

/// `[rate_limits]`: each `"<per second>"`, `"<per second>/<burst>"` or `"off"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsConfig {
    /// Per client address (default `500/1000`).
    pub per_address: Option<String>,
    /// Per subject (default `20/60`).
    pub per_subject: Option<String>,
}

/// `[database]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// PostgreSQL pool size.
    pub pool_size: Option<usize>,
}

/// `[outbound]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    /// Refresh this many seconds before expiry.
    pub refresh_window_seconds: Option<i64>,
    /// How long a refresh lease lasts.
    pub refresh_lease_seconds: Option<i64>,
    /// Timeout of one provider call.
    pub provider_timeout_seconds: Option<u64>,
    /// Retries of a transiently failing refresh.
    pub provider_retries: Option<u32>,
    /// How long a connect link is valid.
    pub consent_ttl_seconds: Option<i64>,
    /// Return URLs connect flows may send the browser to (origins or prefixes ending with `/`).
    pub allowed_return_urls: Option<Vec<String>>,
    /// Accept plain-HTTP provider URLs on non-loopback hosts (never in production).
    pub danger_allow_insecure_http: Option<bool>,
    /// In production mode, still call URLs on loopback, private or link-local addresses (tests).
    pub danger_allow_private_network: Option<bool>,
}

/// `[inbound]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundConfig {
    /// The scope inbound tokens need to fetch outbound tokens.
    pub fetch_scope: Option<String>,
    /// The tenant role allowed to connect an app for a whole tenant.
    pub tenant_admin_role: Option<String>,
    /// How many verified tokens are remembered.
    pub token_cache_capacity: Option<usize>,
    /// How long fetched JWKS are used.
    pub jwks_ttl_seconds: Option<u64>,
    /// The shortest interval between JWKS fetches caused by an unknown `kid`.
    pub jwks_min_refetch_seconds: Option<u64>,
    /// Trusted issuers.
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
}

/// `[[inbound.issuers]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The exact `iss`.
    pub issuer: String,
    /// JWKS URL.
    pub jwks_url: Option<String>,
    /// OpenID Connect discovery URL.
    pub discovery_url: Option<String>,
    /// Accepted audiences.
    pub audiences: Vec<String>,
    /// Accepted algorithms (default RS256, ES256, EdDSA).
    pub algorithms: Option<Vec<String>>,
    /// Claim with roles.
    pub roles_claim: Option<String>,
    /// Claim with tenant(s).
    pub tenant_claim: Option<String>,
    /// Leeway in seconds (default 60).
    pub clock_skew_seconds: Option<u32>,
    /// The `typ` header its tokens must carry (for example `at+jwt`).
    pub required_typ: Option<String>,
}

/// Flags of the commands that open the storage (`serve`, `migrate`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StorageFlags {
    /// Configuration file (TOML). Also PORTCULLIS_CONFIG.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (default ./portcullis-data). Also PORTCULLIS_DATA_DIR.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (default: SQLite in the data directory). Also PORTCULLIS_DATABASE_URL.
    #[arg(long)]
    pub database_url: Option<String>,
}

/// Flags of `serve`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeFlags {
    /// Storage flags.
    #[command(flatten)]
    pub storage: StorageFlags,
    /// Address to listen on (default 127.0.0.1:8080). Also PORTCULLIS_LISTEN.
    #[arg(long)]
    pub listen: Option<String>,
    /// Public URL (default http://<listen>). Also PORTCULLIS_PUBLIC_URL.
    #[arg(long)]
    pub public_url: Option<String>,
    /// Production mode: an external master key is required. Also PORTCULLIS_PRODUCTION=true.
    #[arg(long)]
    pub production: bool,
}

/// Where the master key comes from.
#[derive(Debug, Clone)]
pub enum MasterKeySource {
    /// `PORTCULLIS_MASTER_KEY`.
    Env(SecretString),
    /// A file named by the configuration.
    File(PathBuf),
    /// Development only: generated into the data directory.
    Generated(PathBuf),
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The data directory.
    pub data_dir: PathBuf,
    /// PostgreSQL URL, if any.
    pub database_url: Option<String>,
    /// PostgreSQL pool size.
    pub pool_size: usize,
    /// Production mode.
    pub production: bool,
    /// Where the master key comes from.
    pub master_key: MasterKeySource,
    /// `PORTCULLIS_BOOTSTRAP_ADMIN_KEY`.
    pub bootstrap_admin_key: Option<SecretString>,
    /// `text` or `json`.
    pub log_json: bool,
    /// Tracing filter.
    pub log_level: String,
    /// Service settings.
    pub settings: Settings,
    /// Whether the public URL was configured (else it follows the bound address).
    pub public_url_explicit: bool,
    /// Trusted issuers from the file.
    pub issuers: Vec<IssuerSpec>,
}

/// The environment, read through a function so that tests can pass their own.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn env_bool(env: Env<'_>, key: &str) -> Result<Option<bool>, ConfigError> {
    env(key)
        .map(|v| match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" | "" => Ok(false),
            _ => Err(ConfigError::Invalid(format!("{key} must be true or false"))),
        })
        .transpose()
}

fn env_num<T: std::str::FromStr>(env: Env<'_>, key: &str) -> Result<Option<T>, ConfigError> {
    env(key)
        .map(|v| {
            v.trim()
                .parse::<T>()
                .map_err(|_| ConfigError::Invalid(format!("{key} must be a number")))
        })
        .transpose()
}

fn rate(
    env: Env<'_>,
    key: &str,
    file: Option<&str>,
    default: Option<Rate>,
) -> Result<Option<Rate>, ConfigError> {
    match env(key).as_deref().or(file) {
        None => Ok(default),
        Some(text) => Rate::parse(text).map_err(|e| ConfigError::Invalid(format!("{key}: {e}"))),
    }
}

impl Config {
    /// Loads the configuration for `serve` (and `migrate`, with default serve flags).
    pub fn load(flags: &ServeFlags, env: Env<'_>) -> Result<Self, ConfigError> {
        let path = flags
            .storage
            .config
            .clone()
            .or_else(|| env("PORTCULLIS_CONFIG").map(PathBuf::from));
        let file = match &path {
            Some(p) => read_file(p)?,
            None => FileConfig::default(),
        };
        let listen_text = flags
            .listen
            .clone()
            .or_else(|| env("PORTCULLIS_LISTEN"))
            .or(file.listen.clone())
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            ConfigError::Invalid(format!("listen address {listen_text:?} is not host:port"))
        })?;
        let data_dir = flags
            .storage
            .data_dir
            .clone()
            .or_else(|| env("PORTCULLIS_DATA_DIR").map(PathBuf::from))
            .or(file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("portcullis-data"));
        let database_url = flags
            .storage
            .database_url
            .clone()
            .or_else(|| env("PORTCULLIS_DATABASE_URL"))
            .or(file.database_url.clone())
            .filter(|u| !u.is_empty());
        let production = flags.production
            || env_bool(env, "PORTCULLIS_PRODUCTION")?
                .or(file.production)
                .unwrap_or(false);
        let default_public = format!(
            "http://{}",
            if listen.ip().is_unspecified() {
                format!("127.0.0.1:{}", listen.port())
            } else {
                listen.to_string()
            }
        );
        let explicit_public = flags
            .public_url
            .clone()
            .or_else(|| env("PORTCULLIS_PUBLIC_URL"))
            .or(file.public_url.clone());
        let public_url_explicit = explicit_public.is_some();
        let public_url = explicit_public
            .unwrap_or(default_public)
            .trim_end_matches('/')
            .to_owned();
        let parsed = url_check(&public_url)?;
        let master_key = match (
            env("PORTCULLIS_MASTER_KEY"),
            env("PORTCULLIS_MASTER_KEY_FILE")
                .map(PathBuf::from)
                .or(file.master_key_file.clone()),
        ) {
            (Some(k), _) => MasterKeySource::Env(SecretString::from(k)),
            (None, Some(f)) => MasterKeySource::File(f),
            (None, None) if production => {
                return Err(ConfigError::Invalid(
                    "production mode needs a master key: set PORTCULLIS_MASTER_KEY or master_key_file (it must not live beside the data)".into(),
                ));
            }
            (None, None) => MasterKeySource::Generated(data_dir.join("master.key")),
        };
        let o = &file.outbound;
        let i = &file.inbound;
        let danger_http = env_bool(env, "PORTCULLIS_DANGER_ALLOW_INSECURE_HTTP")?
            .or(o.danger_allow_insecure_http)
            .unwrap_or(false);
        if production && danger_http {
            return Err(ConfigError::Invalid(
                "danger_allow_insecure_http cannot be used in production mode".into(),
            ));
        }
        if production
            && parsed != "https"
            && !public_url.contains("://127.0.0.1")
            && !public_url.contains("://localhost")
        {
            return Err(ConfigError::Invalid(
                "production mode needs an https public_url".into(),
            ));
        }
        let allowed_return_urls = env("PORTCULLIS_ALLOWED_RETURN_URLS")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .or(o.allowed_return_urls.clone())
            .unwrap_or_default();
        let defaults = Settings::default();
        let settings = Settings {
            public_url: public_url.clone(),
            node_id: String::new(),
            refresh_window_secs: o
                .refresh_window_seconds
                .unwrap_or(defaults.refresh_window_secs),
            refresh_lease_secs: o
                .refresh_lease_seconds
                .unwrap_or(defaults.refresh_lease_secs),
            provider_timeout: o
                .provider_timeout_seconds
                .map_or(defaults.provider_timeout, Duration::from_secs),
            provider_retries: o.provider_retries.unwrap_or(defaults.provider_retries),
            consent_ttl_secs: o.consent_ttl_seconds.unwrap_or(defaults.consent_ttl_secs),
            fetch_scope: env("PORTCULLIS_FETCH_SCOPE")
                .or(i.fetch_scope.clone())
                .unwrap_or(defaults.fetch_scope),
            tenant_admin_role: i
                .tenant_admin_role
                .clone()
                .unwrap_or(defaults.tenant_admin_role),
            allowed_return_urls,
            token_cache_capacity: i
                .token_cache_capacity
                .unwrap_or(defaults.token_cache_capacity),
            cache_capacities: CacheCapacities {
                apps: env_num(env, "PORTCULLIS_CACHE_APPS")?
                    .or(file.cache.apps)
                    .unwrap_or(defaults.cache_capacities.apps),
                users: env_num(env, "PORTCULLIS_CACHE_USERS")?
                    .or(file.cache.users)
                    .unwrap_or(defaults.cache_capacities.users),
                identities: env_num(env, "PORTCULLIS_CACHE_IDENTITIES")?
                    .or(file.cache.identities)
                    .unwrap_or(defaults.cache_capacities.identities),
                connections: env_num(env, "PORTCULLIS_CACHE_CONNECTIONS")?
                    .or(file.cache.connections)
                    .unwrap_or(defaults.cache_capacities.connections),
            },
            jwks_ttl: i
                .jwks_ttl_seconds
                .map_or(defaults.jwks_ttl, Duration::from_secs),
            jwks_min_refetch: i
                .jwks_min_refetch_seconds
                .map_or(defaults.jwks_min_refetch, Duration::from_secs),
            max_token_len: defaults.max_token_len,
            danger_allow_insecure_http: danger_http,
            production,
            data_key_seal_limit: match env_num::<u64>(
                env,
                "PORTCULLIS_DATA_KEY_ROTATE_AFTER_SEALS",
            )?
            .or(file.keys.rotate_after_seals)
            {
                None => defaults.data_key_seal_limit,
                Some(n) if (1..=1 << 31).contains(&n) => n,
                Some(_) => {
                    return Err(ConfigError::Invalid(
                        "keys.rotate_after_seals must be 1 to 2^31 (AES-GCM's random-nonce limit is 2^32)".into(),
                    ));
                }
            },
            danger_allow_private_network: env_bool(env, "PORTCULLIS_DANGER_ALLOW_PRIVATE_NETWORK")?
                .or(o.danger_allow_private_network)
                .unwrap_or(false),
            audit_retention: match env_num::<u32>(env, "PORTCULLIS_AUDIT_RETENTION_DAYS")?
                .or(file.audit.retention_days)
            {
                None => defaults.audit_retention,
                Some(0) => None,
                Some(days) => Some(Duration::from_secs(u64::from(days) * 24 * 3600)),
            },
            audit_never_store_claims: env("PORTCULLIS_AUDIT_NEVER_STORE_CLAIMS")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .or_else(|| file.audit.never_store_claims.clone())
                .unwrap_or_default()
                .into(),
            rate_limit_per_address: rate(
                env,
                "PORTCULLIS_RATE_LIMIT_PER_ADDRESS",
                file.rate_limits.per_address.as_deref(),
                defaults.rate_limit_per_address,
            )?,
            rate_limit_per_subject: rate(
                env,
                "PORTCULLIS_RATE_LIMIT_PER_SUBJECT",
                file.rate_limits.per_subject.as_deref(),
                defaults.rate_limit_per_subject,
            )?,
            access_token_ttl_secs: file
                .tokens
                .access_token_ttl_seconds
                .unwrap_or(defaults.access_token_ttl_secs),
            signing_alg: match env("PORTCULLIS_SIGNING_ALG").or(file.tokens.signing_alg.clone()) {
                None => defaults.signing_alg,
                Some(name) => portcullis_crypto::jws::Algorithm::from_name(&name).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "tokens.signing_alg {name:?} is not a JWS algorithm Portcullis signs with (ES256, ES384, RS256, PS256, EdDSA...)"
                    ))
                })?,
            },
            refresh_token_ttl_secs: file
                .tokens
                .refresh_token_ttl_seconds
                .unwrap_or(defaults.refresh_token_ttl_secs),
            session_ttl_secs: file
                .tokens
                .session_ttl_seconds
                .unwrap_or(defaults.session_ttl_secs),
            sign_in_max_failures: file
                .tokens
                .sign_in_max_failures
                .unwrap_or(defaults.sign_in_max_failures),
            sign_in_lockout_secs: file
                .tokens
                .sign_in_lockout_seconds
                .unwrap_or(defaults.sign_in_lockout_secs),
            dynamic_registration: env_bool(env, "PORTCULLIS_DYNAMIC_REGISTRATION")?
                .or(file.registration.enabled)
                .unwrap_or(defaults.dynamic_registration),
            registration_token: match env("PORTCULLIS_REGISTRATION_TOKEN")
                .or(file.registration.initial_access_token.clone())
            {
                Some(t) if t.len() < 16 => {
                    return Err(ConfigError::Invalid(
                        "registration.initial_access_token must be at least 16 characters".into(),
                    ));
                }
                other => other.map(portcullis_crypto::SecretString::from),
            },
            unused_client_ttl_secs: file
                .registration
                .unused_client_ttl_seconds
                .unwrap_or(defaults.unused_client_ttl_secs),
            danger_allow_private_client_metadata: env_bool(
                env,
                "PORTCULLIS_DANGER_ALLOW_PRIVATE_CLIENT_METADATA",
            )?
            .unwrap_or(false),
        };
        check_settings(&settings)?;
        let mut issuers = Vec::new();
        for (n, c) in i.issuers.iter().enumerate() {
            issuers.push(issuer_spec(n, c, &settings)?);
        }
        let log_format = env("PORTCULLIS_LOG_FORMAT")
            .or(file.log_format.clone())
            .unwrap_or_else(|| "text".into());
        let log_json = match log_format.as_str() {
            "json" => true,
            "text" => false,
            other => {
                return Err(ConfigError::Invalid(format!(
                    "log_format must be text or json, not {other:?}"
                )));
            }
        };
        Ok(Self {
            listen,
            data_dir,
            database_url,
            pool_size: env_num(env, "PORTCULLIS_DATABASE_POOL_SIZE")?
                .or(file.database.pool_size)
                .unwrap_or(16),
            production,
            master_key,
            bootstrap_admin_key: env("PORTCULLIS_BOOTSTRAP_ADMIN_KEY")
                .filter(|k| !k.is_empty())
                .map(SecretString::from),
            log_json,
            log_level: env("PORTCULLIS_LOG_LEVEL")
                .or(file.log_level.clone())
                .unwrap_or_else(|| "info".into()),
            settings,
            public_url_explicit,
            issuers,
        })
    }

    /// Reads (or, in development, creates) the master key ring.
    pub fn master_keys(&self) -> Result<Vec<MasterKey>, ConfigError> {
        let text = match &self.master_key {
            MasterKeySource::Env(k) => k.clone(),
            MasterKeySource::File(f) => {
                SecretString::from(std::fs::read_to_string(f).map_err(|source| {
                    ConfigError::Read {
                        path: f.clone(),
                        source,
                    }
                })?)
            }
            MasterKeySource::Generated(f) => {
                if !f.exists() {
                    let key = MasterKey::generate("dev-1")
                        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
                    write_private(f, key.encode().expose())?;
                }
                SecretString::from(std::fs::read_to_string(f).map_err(|source| {
                    ConfigError::Read {
                        path: f.clone(),
                        source,
                    }
                })?)
            }
        };
        MasterKey::parse_ring(text.expose())
            .map_err(|e| ConfigError::Invalid(format!("the master key is invalid: {e}")))
    }
}

fn check_settings(s: &Settings) -> Result<(), ConfigError> {
    if !(0..=86_400).contains(&s.refresh_window_secs) {
        return Err(ConfigError::Invalid(
            "outbound.refresh_window_seconds must be 0 to 86400".into(),
        ));
    }
    if !(5..=600).contains(&s.refresh_lease_secs) {
        return Err(ConfigError::Invalid(
            "outbound.refresh_lease_seconds must be 5 to 600".into(),
        ));
    }
    let worst = s.refresh_budget().as_secs() + 2;
    if worst >= u64::try_from(s.refresh_lease_secs).unwrap_or(0) {
        return Err(ConfigError::Invalid(format!(
            "outbound.refresh_lease_seconds ({}) must exceed a refresh's whole budget — the provider timeout times the attempts, their backoff, and retries of the write ({worst} s) — or a slow refresh could outlive its lease",
            s.refresh_lease_secs
        )));
    }
    if !(60..=86_400).contains(&s.consent_ttl_secs) {
        return Err(ConfigError::Invalid(
            "outbound.consent_ttl_seconds must be 60 to 86400".into(),
        ));
    }
    if !(60..=86_400).contains(&s.access_token_ttl_secs) {
        return Err(ConfigError::Invalid(
            "tokens.access_token_ttl_seconds must be 60 to 86400".into(),
        ));
    }
    let ranges: [(&str, i64, i64, i64); 4] = [
        (
            "tokens.refresh_token_ttl_seconds",
            s.refresh_token_ttl_secs,
            300,
            31_536_000,
        ),
        (
            "tokens.session_ttl_seconds",
            s.session_ttl_secs,
            60,
            2_592_000,
        ),
        (
            "tokens.sign_in_max_failures",
            i64::from(s.sign_in_max_failures),
            1,
            100,
        ),
        (
            "tokens.sign_in_lockout_seconds",
            s.sign_in_lockout_secs,
            1,
            86_400,
        ),
    ];
    for (name, value, min, max) in ranges {
        if !(min..=max).contains(&value) {
            return Err(ConfigError::Invalid(format!(
                "{name} must be {min} to {max}"
            )));
        }
    }
    if s.fetch_scope.is_empty() || s.fetch_scope.contains(' ') {
        return Err(ConfigError::Invalid(
            "inbound.fetch_scope must be one scope".into(),
        ));
    }
    Ok(())
}

fn url_check(u: &str) -> Result<String, ConfigError> {
    let (scheme, rest) = u
        .split_once("://")
        .ok_or_else(|| ConfigError::Invalid(format!("public_url {u:?} is not an absolute URL")))?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() {
        return Err(ConfigError::Invalid(format!(
            "public_url {u:?} must be an http(s) URL"
        )));
    }
    Ok(scheme.to_owned())
}

fn issuer_spec(n: usize, c: &IssuerConfig, settings: &Settings) -> Result<IssuerSpec, ConfigError> {
    let record = portcullis_domain::IssuerRecord {
        id: format!("config:{n}"),
        issuer: c.issuer.clone(),
        jwks_url: c.jwks_url.clone(),
        discovery_url: c.discovery_url.clone(),
        audiences: c.audiences.clone(),
        algorithms: c.algorithms.clone().unwrap_or_else(|| {
            [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect()
        }),
        roles_claim: c.roles_claim.clone(),
        tenant_claim: c.tenant_claim.clone(),
        clock_skew_seconds: c.clock_skew_seconds.unwrap_or(60),
        required_typ: c.required_typ.clone(),
        created_at: portcullis_domain::Timestamp::default(),
        updated_at: portcullis_domain::Timestamp::default(),
    };
    let spec = IssuerSpec::from_record(&record, settings)
        .map_err(|e| ConfigError::Invalid(format!("inbound.issuers[{n}]: {e}")))?;
    debug_assert!(!matches!(spec.keys, KeySource::Local));
    Ok(spec)
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Writes a new file readable only by its owner.
pub(crate) fn write_private(path: &Path, content: &str) -> Result<(), ConfigError> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ConfigError::Read {
            path: dir.to_owned(),
            source,
        })?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    f.write_all(content.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_need_nothing() {
        let c = Config::load(&ServeFlags::default(), &env_of(&[])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("portcullis-data"));
        assert!(c.database_url.is_none());
        assert!(matches!(c.master_key, MasterKeySource::Generated(_)));
        assert_eq!(c.settings.public_url, "http://127.0.0.1:8080");
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\ndata_dir = \"/from-file\"\n[outbound]\nrefresh_window_seconds = 30\n").unwrap();
        let mut flags = ServeFlags::default();
        flags.storage.config = Some(path.clone());
        let c = Config::load(&flags, &env_of(&[("PORTCULLIS_DATA_DIR", "/from-env")])).unwrap();
        assert_eq!(c.listen.port(), 1);
        assert_eq!(c.data_dir, PathBuf::from("/from-env"));
        assert_eq!(c.settings.refresh_window_secs, 30);
        flags.listen = Some("127.0.0.1:2".into());
        let c = Config::load(&flags, &env_of(&[])).unwrap();
        assert_eq!(c.listen.port(), 2);
        assert_eq!(c.data_dir, PathBuf::from("/from-file"));
    }

    #[test]
    fn cache_sizes_come_from_the_file_then_the_environment() {
        let c = Config::load(&ServeFlags::default(), &env_of(&[])).unwrap();
        assert_eq!(c.settings.cache_capacities, CacheCapacities::default());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            "[cache]
users = 5000
connections = 20000
",
        )
        .unwrap();
        let mut flags = ServeFlags::default();
        flags.storage.config = Some(path);
        let env = env_of(&[("PORTCULLIS_CACHE_CONNECTIONS", "7000")]);
        let sizes = Config::load(&flags, &env)
            .unwrap()
            .settings
            .cache_capacities;
        assert_eq!((sizes.users, sizes.connections), (5000, 7000));
        assert_eq!(sizes.apps, CacheCapacities::default().apps);
        let bad = env_of(&[("PORTCULLIS_CACHE_USERS", "lots")]);
        let e = Config::load(&flags, &bad).unwrap_err();
        assert!(e.to_string().contains("PORTCULLIS_CACHE_USERS"), "{e}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let mut flags = ServeFlags::default();
        flags.storage.config = Some(path);
        let e = Config::load(&flags, &env_of(&[])).unwrap_err();
        assert!(e.to_string().contains("lisen"), "{e}");
    }

    #[test]
    fn production_refuses_a_missing_master_key() {
        let flags = ServeFlags {
            production: true,
            ..ServeFlags::default()
        };
        let e = Config::load(&flags, &env_of(&[])).unwrap_err();
        assert!(e.to_string().contains("master key"), "{e}");
        let ok = Config::load(&flags, &env_of(&[("PORTCULLIS_MASTER_KEY", "k1:AAAA")]));
        assert!(ok.is_ok());
    }

    #[test]
    fn dev_master_key_is_generated_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let mut flags = ServeFlags::default();
        flags.storage.data_dir = Some(dir.path().to_owned());
        let c = Config::load(&flags, &env_of(&[])).unwrap();
        let a = c.master_keys().unwrap();
        let b = c.master_keys().unwrap();
        assert_eq!(a[0].id(), b[0].id());
        assert_eq!(a[0].encode().expose(), b[0].encode().expose());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("master.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_lease_shorter_than_a_refresh_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            "[outbound]\nrefresh_lease_seconds = 10\nprovider_timeout_seconds = 10\n",
        )
        .unwrap();
        let mut flags = ServeFlags::default();
        flags.storage.config = Some(path);
        assert!(Config::load(&flags, &env_of(&[])).is_err());
    }
}
