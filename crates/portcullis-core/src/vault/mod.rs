//! The token vault: connecting outbound apps (the consent flow), storing credentials sealed,
//! refreshing them with exactly one refresh in flight per connection across every node, API keys,
//! imports, revocation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use portcullis_crypto::envelope::aad;
use portcullis_crypto::{SecretString, pkce, random_token, sha256};
use portcullis_domain::{
    AppKind, AppRecord, ConnectionKey, ConnectionRecord, ConnectionStatus, ConsentState,
    CredentialKind, RefreshFailure, StoreError, Timestamp, TokenSet,
};
use portcullis_policy::{AllowedScopes, Subject};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::provider::{Provider, ProviderError, TokenResponse};
use crate::refusal::Refusal;
use crate::{Core, ServiceError, ids};

mod api_keys;
mod connect;
mod connections;
mod import;
mod refresh;
mod revoke;

pub use connections::AdminConnectRequest;

/// The associated data binding a connection's secret to its row: the row's identity (app, user,
/// tenant) and the field. A ciphertext copied into another row, or from the access field into the
/// refresh field, fails to open.
pub fn connection_aad(key: &ConnectionKey, field: &str) -> Vec<u8> {
    aad(&[
        "connection",
        &key.app_id,
        key.user_id.as_deref().unwrap_or(""),
        key.tenant_id.as_deref().unwrap_or(""),
        field,
    ])
}

/// The associated data binding a pending consent's PKCE verifier to it.
pub fn state_aad(state_id: &str) -> Vec<u8> {
    aad(&["consent", state_id, "pkce_verifier"])
}

/// Why a refresh did not produce a fresh token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    /// The provider rejected the refresh token: the user must consent again.
    #[error("the provider rejected the grant; the user must consent again")]
    ConsentRequired,
    /// The token expired and there is no refresh token.
    #[error("the token expired and cannot be refreshed")]
    Expired,
    /// The connection was deleted meanwhile.
    #[error("the connection no longer exists")]
    Gone,
    /// The provider or the database is unavailable.
    #[error("{0}")]
    Unavailable(String),
    /// Something else.
    #[error("{0}")]
    Internal(String),
}

/// The first wait before writing a refresh's result again; it doubles, up to a second.
const STORE_RETRY_FIRST: Duration = Duration::from_millis(100);
/// The time retries of that write may take (part of `Settings::refresh_budget`).
pub(crate) const STORE_RETRY_BUDGET: Duration = Duration::from_secs(5);

impl From<StoreError> for RefreshError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => Self::Unavailable(m),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<ServiceError> for RefreshError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Unavailable(m) => Self::Unavailable(m),
            other => Self::Internal(other.to_string()),
        }
    }
}

pub(crate) type RefreshFuture =
    Shared<BoxFuture<'static, Result<Arc<ConnectionRecord>, RefreshError>>>;

/// A token narrowed to fewer scopes than the stored grant, held in memory until it expires.
#[derive(Debug, Clone)]
pub(crate) struct Narrowed {
    pub(crate) access_token: SecretString,
    pub(crate) token_type: Option<String>,
    pub(crate) expires_at: Option<Timestamp>,
    pub(crate) scopes: Vec<String>,
}

/// What a user asks for when connecting an app.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectRequest {
    /// Scopes to ask the provider for (default: the app's default scopes). With an existing
    /// connection, the grant is extended (incremental consent).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Connect within this tenant (the user must be a member of it).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Connect for the whole tenant (a tenant admin only).
    #[serde(default)]
    pub tenant_level: bool,
    /// Where to send the browser afterwards (must be allowed by the configuration).
    #[serde(default)]
    pub return_url: Option<String>,
}

/// The provider's redirect back to Portcullis.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallbackParams {
    /// The `state` Portcullis sent: the hash of the browser's binding value.
    pub state: Option<SecretString>,
    /// The authorization code.
    pub code: Option<SecretString>,
    /// An error instead of a code.
    pub error: Option<String>,
    /// The error's description.
    pub error_description: Option<String>,
    /// The provider's issuer identifier (RFC 9207), when it sends one.
    pub iss: Option<String>,
    /// The browser's binding cookie for this `state` (see [`crate::tickets`]): the callback
    /// completes only in the browser that continued the connect link.
    pub binding: Option<SecretString>,
}

/// How the callback ends for the user's browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackOutcome {
    /// Send the browser to this URL.
    Redirect(String),
    /// Show a page.
    Page {
        /// HTTP status.
        status: u16,
        /// Short title.
        title: &'static str,
        /// What happened and what to do.
        message: String,
    },
}

/// A connection's metadata, as the management API shows it (never a token).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionInfo {
    /// The connection's id.
    pub id: String,
    /// The outbound app the connection is to.
    pub app_id: String,
    /// The user who owns the connection (absent for a tenant's or the app's connection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The tenant: a tenant's shared connection, or a user's within the tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Whose credential it is: `user`, `tenant` or `app`.
    pub owner: &'static str,
    /// What the credential is: `oauth` (tokens Portcullis refreshes) or `apiKey`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `active`, or `consentRequired` when the provider refused the grant and the user must connect
    /// again.
    pub status: &'static str,
    /// The scopes the provider granted.
    pub scopes: Vec<String>,
    /// The access token's type, usually `Bearer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// When the access token expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// Whether a refresh token is stored.
    pub has_refresh_token: bool,
    /// The user's id at the provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_subject: Option<String>,
    /// When the token was last refreshed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_refresh_at: Option<Timestamp>,
    /// Why the last refresh failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_refresh_error: Option<String>,
    /// When the credential was last handed out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<Timestamp>,
    /// Who created the connection: `user:<id>` (the user's consent) or `admin:<key id>` (an admin's
    /// link, import or API key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granted_by: Option<String>,
    /// When the connection was created.
    pub created_at: Timestamp,
    /// When the connection last changed (a refresh, a new consent).
    pub updated_at: Timestamp,
}

impl From<&ConnectionRecord> for ConnectionInfo {
    fn from(c: &ConnectionRecord) -> Self {
        Self {
            id: c.id.clone(),
            app_id: c.key.app_id.clone(),
            user_id: c.key.user_id.clone(),
            tenant_id: c.key.tenant_id.clone(),
            owner: match (&c.key.user_id, &c.key.tenant_id) {
                (Some(_), _) => "user",
                (None, Some(_)) => "tenant",
                (None, None) => "app",
            },
            kind: c.kind.as_str(),
            status: c.status.as_str(),
            scopes: c.scopes.clone(),
            token_type: c.token_type.clone(),
            expires_at: c.expires_at,
            has_refresh_token: c.refresh.is_some(),
            provider_subject: c.provider_subject.clone(),
            last_refresh_at: c.last_refresh_at,
            last_refresh_error: c.last_refresh_error.clone(),
            last_used_at: c.last_used_at,
            granted_by: c.granted_by.clone(),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A token to import (migration from another vault).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportToken {
    /// The owning user (for a user connection).
    #[serde(default)]
    pub user_id: Option<String>,
    /// The tenant (for a tenant connection, or a user's within a tenant).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// The access token (sealed at rest, never shown).
    pub access_token: SecretString,
    /// The refresh token, if any: Portcullis refreshes the access token with it when it expires.
    #[serde(default)]
    pub refresh_token: Option<SecretString>,
    /// The token type (default `Bearer`).
    #[serde(default)]
    pub token_type: Option<String>,
    /// When the access token expires (RFC 3339).
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// The scopes the token was granted (each one the app offers).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The user's id at the provider.
    #[serde(default)]
    pub provider_subject: Option<String>,
}

/// What revoking a connection did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevokeReport {
    /// The connection removed.
    pub connection: ConnectionInfo,
    /// Whether the provider's revocation endpoint confirmed.
    pub provider_revoked: bool,
    /// Why the provider did not confirm (the connection is removed regardless).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_error: Option<String>,
}

fn provider_service_error(e: ProviderError) -> ServiceError {
    match e {
        ProviderError::Unavailable(m) => {
            ServiceError::Unavailable(format!("the provider is unavailable: {m}"))
        }
        other => ServiceError::invalid("provider_error", other.to_string()),
    }
}

/// Rejects scopes an OAuth app does not offer (when it lists its scopes).
pub(crate) fn check_scopes_offered(app: &AppRecord, scopes: &[String]) -> Result<(), ServiceError> {
    if scopes.len() > crate::plane::MAX_SCOPES
        || scopes.iter().any(|s| {
            s.is_empty()
                || s.chars().count() > crate::plane::MAX_SCOPE_LEN
                || s.chars().any(char::is_control)
        })
    {
        return Err(ServiceError::invalid(
            "invalid_request",
            format!(
                "scopes: at most {} scopes of 1 to {} characters, none a control character",
                crate::plane::MAX_SCOPES,
                crate::plane::MAX_SCOPE_LEN
            ),
        ));
    }
    if app.settings.scopes.is_empty() {
        return Ok(());
    }
    for s in scopes {
        if !app.settings.scopes.iter().any(|d| &d.name == s) {
            return Err(ServiceError::invalid(
                "invalid_scope",
                format!("app {} does not offer the scope {s:?}", app.id),
            ));
        }
    }
    Ok(())
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
