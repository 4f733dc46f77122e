//! RFC 8693 token exchange: the same decision as the token endpoint, for any OAuth client library.
//! The caller (the MCP server) authenticates as a confidential client; the subject token is the
//! user's inbound token; `resource` or `audience` names the outbound app.

use portcullis_crypto::{SecretString, constant_time_eq, sha256};
use portcullis_domain::Timestamp;
use serde::Serialize;

use crate::plane::{Surface, TokenRequest};
use crate::refusal::Refusal;
use crate::{Core, Granted, ServiceError};

/// The token-exchange grant type.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// The token type issued for API-key apps.
pub const API_KEY_TOKEN_TYPE: &str = "urn:portcullis:params:oauth:token-type:api_key";
/// Prefix of a `resource` naming an outbound app (`urn:portcullis:outbound-app:<appId>`).
pub const APP_RESOURCE_PREFIX: &str = "urn:portcullis:outbound-app:";

/// The form of a token-exchange request (already parsed from `application/x-www-form-urlencoded`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExchangeRequest {
    /// `subject_token`.
    pub subject_token: Option<SecretString>,
    /// `subject_token_type`.
    pub subject_token_type: Option<String>,
    /// `resource` (repeatable).
    pub resources: Vec<String>,
    /// `audience` (repeatable).
    pub audiences: Vec<String>,
    /// `scope`, space-separated.
    pub scope: Option<String>,
    /// `requested_token_type`.
    pub requested_token_type: Option<String>,
    /// `actor_token` (delegation is not supported).
    pub actor_token: Option<SecretString>,
    /// Portcullis extension: the tenant.
    pub tenant_id: Option<String>,
}

/// An authenticated client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// Its id.
    pub client_id: String,
    /// Apps it may fetch tokens for (`None`: all).
    pub allowed_apps: Option<Vec<String>>,
    /// The grant types it may use.
    pub grant_types: Vec<String>,
    /// A public client (it has no secret; it proves nothing but PKCE).
    pub public: bool,
}

impl ClientIdentity {
    /// Whether the client may use `grant`.
    pub fn may(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }
}

/// The token endpoint's answer (RFC 8693 §2.2.1).
#[derive(Debug, Clone, Serialize)]
pub struct ExchangeResponse {
    /// The outbound credential.
    #[serde(serialize_with = "crate::manage::expose")]
    pub access_token: SecretString,
    /// `urn:ietf:params:oauth:token-type:access_token`, or the API-key type.
    pub issued_token_type: &'static str,
    /// `Bearer` (or `N_A` for an API key).
    pub token_type: String,
    /// Seconds until it expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
    /// The scopes it carries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Why a token exchange failed. The HTTP layer says it in OAuth's words (RFC 6749 §5.2,
/// RFC 8693 §2.2.2).
#[derive(Debug, Clone)]
pub enum ExchangeFailure {
    /// The request is malformed or asks for what is not supported (`invalid_request`).
    InvalidRequest(String),
    /// The request does not name exactly one outbound app the client may use (`invalid_target`).
    InvalidTarget(String),
    /// Client authentication failed (`invalid_client`).
    InvalidClient,
    /// The client may not use token exchange (`unauthorized_client`).
    UnauthorizedClient,
    /// The database is unreachable (`temporarily_unavailable`).
    Unavailable,
    /// The access control plane refused the subject token's request.
    Refused(Refusal),
}

impl Core {
    /// Authenticates a client: a confidential client by its id and secret (compared as
    /// constant-time hashes), a public client by its id alone (it must present no secret).
    pub async fn authenticate_client(
        &self,
        id: &str,
        secret: Option<&str>,
    ) -> Result<ClientIdentity, ExchangeFailure> {
        let result = self.check_client(id, secret).await;
        if let Err(ExchangeFailure::InvalidClient) = &result {
            self.audit
                .reject("oauth", "invalid_client", self.clock.now());
        }
        result
    }

    /// A client's record (from memory while nothing changed).
    pub(crate) async fn client_record(
        &self,
        id: &str,
    ) -> Result<Option<portcullis_domain::ClientRecord>, ServiceError> {
        if crate::authz::is_metadata_document_id(id) {
            return Ok(match self.metadata_client(id).await {
                Ok(c) => Some(c),
                Err(why) => {
                    tracing::debug!(client = %id, %why, "a client ID metadata document cannot be used");
                    None
                }
            });
        }
        // While the change feed is down a change may not have been heard of: read the store.
        let live = self.stores.changes.is_live();
        if let Some(r) = self.clients.get(id).filter(|_| live) {
            return Ok(r);
        }
        let r = self.stores.clients.client(id).await?;
        if live {
            self.clients.insert(id.to_owned(), r.clone());
        }
        Ok(r)
    }

    async fn check_client(
        &self,
        id: &str,
        secret: Option<&str>,
    ) -> Result<ClientIdentity, ExchangeFailure> {
        let bad = || ExchangeFailure::InvalidClient;
        if id.is_empty()
            || id.len() > crate::authz::MAX_CLIENT_ID_URL
            || secret.is_some_and(|s| s.is_empty() || s.len() > 512)
        {
            return Err(bad());
        }
        let record = self.client_record(id).await.map_err(|e| {
            tracing::warn!(error = %e, "reading a client failed");
            ExchangeFailure::Unavailable
        })?;
        // Hash even for an unknown client, so that timing does not tell which ids exist.
        let presented = secret.map(|s| sha256(s.as_bytes()));
        let Some(record) = record else {
            let _ = constant_time_eq(&presented.unwrap_or_default(), &[0u8; 32]);
            return Err(bad());
        };
        match (&record.secret_hash, presented) {
            (Some(stored), Some(presented)) if constant_time_eq(&presented, stored) => {}
            (None, None) => {}
            _ => return Err(bad()),
        }
        Ok(ClientIdentity {
            grant_types: crate::manage::metadata_list(&record, "grantTypes"),
            public: record.secret_hash.is_none(),
            allowed_apps: record
                .metadata
                .get("allowedApps")
                .and_then(|v| serde_json::from_value(v.clone()).ok()),
            client_id: record.id,
        })
    }

    /// Performs a token exchange for an authenticated client.
    pub async fn token_exchange(
        &self,
        client: &ClientIdentity,
        req: &ExchangeRequest,
    ) -> Result<ExchangeResponse, ExchangeFailure> {
        let subject_token = req
            .subject_token
            .as_ref()
            .map(SecretString::expose)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ExchangeFailure::InvalidRequest("subject_token is required".into()))?;
        match req.subject_token_type.as_deref() {
            Some(ACCESS_TOKEN_TYPE | JWT_TOKEN_TYPE) => {}
            Some(other) => {
                return Err(ExchangeFailure::InvalidRequest(format!(
                    "subject_token_type {other} is not supported; use {ACCESS_TOKEN_TYPE}"
                )));
            }
            None => {
                return Err(ExchangeFailure::InvalidRequest(
                    "subject_token_type is required".into(),
                ));
            }
        }
        if req.actor_token.is_some() {
            return Err(ExchangeFailure::InvalidRequest(
                "actor_token (delegation) is not supported".into(),
            ));
        }
        if let Some(t) = req.requested_token_type.as_deref()
            && t != ACCESS_TOKEN_TYPE
            && t != API_KEY_TOKEN_TYPE
        {
            return Err(ExchangeFailure::InvalidRequest(format!(
                "requested_token_type {t} cannot be issued"
            )));
        }
        if !client.may(TOKEN_EXCHANGE_GRANT) {
            return Err(ExchangeFailure::UnauthorizedClient);
        }
        let app_id = self.exchange_target(req)?;
        if let Some(allowed) = &client.allowed_apps
            && !allowed.contains(&app_id)
        {
            return Err(ExchangeFailure::InvalidTarget(format!(
                "the client may not fetch tokens for {app_id}"
            )));
        }
        let scopes: Vec<String> = req
            .scope
            .as_deref()
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let token_req = TokenRequest {
            app_id,
            scopes,
            tenant_id: req.tenant_id.clone(),
            force_refresh: false,
        };
        let surface = Surface::TokenExchange {
            client_id: client.client_id.clone(),
        };
        match self
            .fetch_token(Some(subject_token), &token_req, &surface)
            .await
        {
            Ok(granted) => Ok(self.exchange_response(granted)),
            Err(refusal) => Err(ExchangeFailure::Refused(refusal)),
        }
    }

    fn exchange_target(&self, req: &ExchangeRequest) -> Result<String, ExchangeFailure> {
        let mut targets: Vec<String> = Vec::new();
        let prefix_url = format!("{}/v1/outbound/apps/", self.settings.public_url);
        for r in &req.resources {
            let app = r
                .strip_prefix(APP_RESOURCE_PREFIX)
                .or_else(|| r.strip_prefix(&prefix_url))
                .map(|s| s.trim_end_matches('/'))
                .filter(|s| !s.is_empty() && !s.contains('/'))
                .ok_or_else(|| {
                    ExchangeFailure::InvalidTarget(format!(
                        "resource {r} does not name an outbound app (use {APP_RESOURCE_PREFIX}<appId>)"
                    ))
                })?;
            targets.push(app.to_owned());
        }
        targets.extend(req.audiences.iter().cloned());
        targets.sort();
        targets.dedup();
        match targets.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(ExchangeFailure::InvalidRequest(
                "name the outbound app with resource or audience".into(),
            )),
            _ => Err(ExchangeFailure::InvalidTarget(
                "name exactly one outbound app".into(),
            )),
        }
    }

    fn exchange_response(&self, granted: Granted) -> ExchangeResponse {
        let t = granted.token;
        let now = self.clock.now();
        let expires_in = t
            .expires_at
            .map(|e: Timestamp| (e.millis_since(now) / 1000).max(0));
        match (t.access_token, t.api_key) {
            (Some(at), _) => ExchangeResponse {
                access_token: at,
                issued_token_type: ACCESS_TOKEN_TYPE,
                token_type: t.token_type.unwrap_or_else(|| "Bearer".into()),
                expires_in,
                scope: (!t.scopes.is_empty()).then(|| t.scopes.join(" ")),
            },
            (None, key) => ExchangeResponse {
                access_token: key.unwrap_or_else(|| SecretString::from(String::new())),
                issued_token_type: API_KEY_TOKEN_TYPE,
                token_type: "N_A".into(),
                expires_in: None,
                scope: None,
            },
        }
    }
}
