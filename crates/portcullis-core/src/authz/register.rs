//! Dynamic client registration (RFC 7591), for the MCP clients that still use it: public clients
//! only (PKCE is their proof), the code flow and refresh tokens only, `application_type`
//! honoured, limited per client address, optionally behind an initial access token. A
//! registration never used within a day, or unused for the configured period, is removed; the
//! client then gets `invalid_client` like any unknown client.

use std::net::IpAddr;

use portcullis_crypto::{constant_time_eq, random_token, sha256};
use portcullis_domain::{ClientRecord, PageRequest, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN, is_loopback_uri};
use crate::manage::{MAX_REDIRECT_URIS, check_redirect_uri};
use crate::{Core, ServiceError};

/// How long a registration may go unused after it is made, in seconds.
pub const NEVER_USED_TTL_SECS: i64 = 24 * 3600;
/// How often a client's last use is written at most, in seconds.
const TOUCH_EVERY_SECS: i64 = 3600;

/// A registration request (RFC 7591 §2). Metadata not listed here is ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RegistrationRequest {
    /// `redirect_uris` (required).
    #[serde(default)]
    pub redirect_uris: Option<Vec<String>>,
    /// `client_name`.
    #[serde(default)]
    pub client_name: Option<String>,
    /// `token_endpoint_auth_method`: `none` (the default here).
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    /// `grant_types`: `authorization_code` (the default) and `refresh_token`.
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    /// `response_types`: `code`.
    #[serde(default)]
    pub response_types: Option<Vec<String>>,
    /// `application_type`: `web` (the default) or `native`.
    #[serde(default)]
    pub application_type: Option<String>,
}

/// A registered client (RFC 7591 §3.2.1).
#[derive(Debug, Clone, Serialize)]
pub struct RegisteredClient {
    /// The new `client_id`.
    pub client_id: String,
    /// When it was issued (seconds since the epoch).
    pub client_id_issued_at: i64,
    /// Its name.
    pub client_name: String,
    /// Its redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Its grant types.
    pub grant_types: Vec<String>,
    /// `["code"]`.
    pub response_types: Vec<&'static str>,
    /// `none`: a public client.
    pub token_endpoint_auth_method: &'static str,
    /// `web` or `native`.
    pub application_type: String,
}

/// Why a registration was refused (RFC 7591 §3.2.2, RFC 6750 §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationError {
    /// A redirect URI is not acceptable.
    InvalidRedirectUri(String),
    /// Other metadata is not acceptable.
    InvalidClientMetadata(String),
    /// The initial access token is missing or wrong (401).
    InvalidToken,
    /// Registration is turned off (403).
    Disabled,
    /// Too many registrations from this address; retry after this many seconds (429).
    RateLimited(u64),
    /// The database is unavailable or the server failed.
    Service(String),
}

impl From<ServiceError> for RegistrationError {
    fn from(e: ServiceError) -> Self {
        Self::Service(e.to_string())
    }
}

fn metadata(d: impl Into<String>) -> RegistrationError {
    RegistrationError::InvalidClientMetadata(d.into())
}

impl Core {
    /// Registers a public client (RFC 7591).
    pub async fn register_client(
        &self,
        req: &RegistrationRequest,
        bearer: Option<&str>,
        from: Option<IpAddr>,
    ) -> Result<RegisteredClient, RegistrationError> {
        if !self.settings.dynamic_registration {
            return Err(RegistrationError::Disabled);
        }
        if let Some(expected) = &self.settings.registration_token {
            let presented = sha256(bearer.unwrap_or_default().as_bytes());
            if !constant_time_eq(&presented, &sha256(expected.expose().as_bytes())) {
                return Err(RegistrationError::InvalidToken);
            }
        }
        if let Some(ip) = from
            && let Err(wait) = self
                .registration_limit
                .check(&ip, std::time::Instant::now())
        {
            return Err(RegistrationError::RateLimited(
                crate::limits::retry_after_secs(wait),
            ));
        }
        match req.token_endpoint_auth_method.as_deref() {
            None | Some("none") => {}
            Some(_) => {
                return Err(metadata(
                    "only public clients register here: token_endpoint_auth_method must be none",
                ));
            }
        }
        let mut grants = req
            .grant_types
            .clone()
            .unwrap_or_else(|| vec![GRANT_AUTHORIZATION_CODE.to_owned()]);
        grants.sort();
        grants.dedup();
        if grants.is_empty()
            || grants.len() > 2
            || !grants
                .iter()
                .all(|g| g == GRANT_AUTHORIZATION_CODE || g == GRANT_REFRESH_TOKEN)
            || !grants.iter().any(|g| g == GRANT_AUTHORIZATION_CODE)
        {
            return Err(metadata(
                "grant_types must be authorization_code, optionally with refresh_token",
            ));
        }
        if let Some(types) = &req.response_types
            && types.iter().any(|t| t != "code")
        {
            return Err(metadata("response_types must be [\"code\"]"));
        }
        let application_type = req.application_type.clone().unwrap_or_else(|| "web".into());
        let native = match application_type.as_str() {
            "web" => false,
            "native" => true,
            _ => return Err(metadata("application_type must be web or native")),
        };
        let redirects = req.redirect_uris.clone().unwrap_or_default();
        if redirects.is_empty() || redirects.len() > MAX_REDIRECT_URIS {
            return Err(RegistrationError::InvalidRedirectUri(format!(
                "redirect_uris must list 1 to {MAX_REDIRECT_URIS} URIs"
            )));
        }
        for r in &redirects {
            check_redirect_uri(r)
                .map_err(|e| RegistrationError::InvalidRedirectUri(e.to_string()))?;
            let u = url::Url::parse(r)
                .map_err(|_| RegistrationError::InvalidRedirectUri("not a URI".into()))?;
            let loopback = u.scheme() == "http" && is_loopback_uri(&u);
            let private_use = !u.has_host();
            // A native app answers on a loopback port or its own scheme (RFC 8252 §7); a web
            // client on https (loopback http is kept for local development).
            if native && !(loopback || private_use) {
                return Err(RegistrationError::InvalidRedirectUri(
                    "a native application's redirect URIs are loopback http or a private-use scheme"
                        .into(),
                ));
            }
            if !native && private_use {
                return Err(RegistrationError::InvalidRedirectUri(
                    "a web application's redirect URIs are https (or loopback http)".into(),
                ));
            }
        }
        let name = match &req.client_name {
            Some(n) => {
                crate::manage::check_name("client_name", n).map_err(|e| metadata(e.to_string()))?;
                n.trim().to_owned()
            }
            None => "Unnamed client".to_owned(),
        };
        let now = self.clock.now();
        let id = format!("dyn_{}", random_token(16));
        let mut m = Map::new();
        m.insert("grantTypes".into(), serde_json::json!(grants));
        m.insert("redirectUris".into(), serde_json::json!(redirects));
        m.insert("tokenEndpointAuthMethod".into(), Value::from("none"));
        m.insert(
            "applicationType".into(),
            Value::from(application_type.clone()),
        );
        m.insert("dynamic".into(), Value::Bool(true));
        let record = ClientRecord {
            id: id.clone(),
            name: name.clone(),
            secret_hash: None,
            metadata: m,
            created_at: now,
            updated_at: now,
        };
        self.stores
            .clients
            .insert_client(&record)
            .await
            .map_err(ServiceError::from)?;
        tracing::info!(client = %id, "a client registered dynamically");
        Ok(RegisteredClient {
            client_id: id,
            client_id_issued_at: now.as_secs(),
            client_name: name,
            redirect_uris: redirects,
            grant_types: grants,
            response_types: vec!["code"],
            token_endpoint_auth_method: "none",
            application_type,
        })
    }

    /// Records that a dynamically registered client was used (at most once an hour).
    pub(crate) async fn touch_client(&self, id: &str) -> Result<(), ServiceError> {
        let Some(record) = self.client_record(id).await? else {
            return Ok(());
        };
        if record.metadata.get("dynamic") != Some(&Value::Bool(true)) {
            return Ok(());
        }
        let now = self.clock.now();
        let last = record
            .metadata
            .get("lastUsedAt")
            .and_then(Value::as_i64)
            .map(Timestamp::from_millis);
        if last.is_some_and(|t| now.millis_since(t) < TOUCH_EVERY_SECS * 1000) {
            return Ok(());
        }
        let mut updated = record;
        updated
            .metadata
            .insert("lastUsedAt".into(), Value::from(now.as_millis()));
        updated.updated_at = now;
        self.stores.clients.update_client(&updated).await?;
        Ok(())
    }

    /// The authorization server's housekeeping: expired codes and refresh tokens (a day after
    /// they expired) and unused registrations go.
    pub async fn purge_authorization_server(&self) -> Result<(), ServiceError> {
        let cut = self.clock.now().add_secs(-24 * 3600);
        self.stores.grants.purge_grants(cut).await?;
        self.purge_unused_clients().await?;
        Ok(())
    }

    /// Removes dynamically registered clients never used within a day of registering, or unused
    /// for `unused_client_ttl_secs`; returns how many went.
    pub async fn purge_unused_clients(&self) -> Result<u64, ServiceError> {
        let now = self.clock.now();
        let mut page = PageRequest {
            after: None,
            limit: 500,
        };
        let mut removed = 0;
        loop {
            let batch = self.stores.clients.clients(&page).await?;
            let done = batch.len() < page.limit as usize;
            page.after = batch.last().map(|c| c.id.clone());
            for c in batch {
                if c.metadata.get("dynamic") != Some(&Value::Bool(true)) {
                    continue;
                }
                let stale = match c.metadata.get("lastUsedAt").and_then(Value::as_i64) {
                    None => now.millis_since(c.created_at) > NEVER_USED_TTL_SECS * 1000,
                    Some(t) => {
                        now.millis_since(Timestamp::from_millis(t))
                            > self.settings.unused_client_ttl_secs * 1000
                    }
                };
                if stale {
                    match self.stores.clients.delete_client(&c.id).await {
                        Ok(()) => removed += 1,
                        Err(portcullis_domain::StoreError::NotFound { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            if done {
                break;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "removed unused dynamically registered clients");
        }
        Ok(removed)
    }
}
