//! Connections: a user's (or a tenant's, or an app's) credential for one outbound app.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{StoreError, Timestamp};

/// A sealed secret as the stores keep it: the ciphertext and the id of the data key that sealed it
/// (kept beside the bytes so that key rotation can find what it still has to re-encrypt).
#[derive(Clone, PartialEq, Eq)]
pub struct Ciphertext {
    /// The data key that sealed `bytes`.
    pub key_id: u32,
    /// The sealed bytes (format of `portcullis-crypto`'s envelope).
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Ciphertext(key {}, {} bytes)",
            self.key_id,
            self.bytes.len()
        )
    }
}

/// The one data key a connection's secrets are sealed with: its access token (or API key) and its
/// refresh token are always sealed together, under the same key, because a connection row records
/// a single key id for both (key rotation finds what it still has to re-encrypt by that id).
///
/// # Errors
/// [`StoreError::Backend`] when `refresh` was sealed with another key than `access`.
pub fn sealed_key_id(access: &Ciphertext, refresh: Option<&Ciphertext>) -> Result<u32, StoreError> {
    match refresh {
        Some(r) if r.key_id != access.key_id => Err(StoreError::Backend(
            "a connection's secrets must be sealed with one key".into(),
        )),
        _ => Ok(access.key_id),
    }
}

/// Whose credential a connection is. `user_id` and `tenant_id` are both optional:
/// user only → the user's own; user and tenant → the user's within that tenant; tenant only → the
/// tenant's shared credential; neither → the whole app's (API-key apps only).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionKey {
    /// The outbound app.
    pub app_id: String,
    /// The owning user, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The tenant, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
}

impl ConnectionKey {
    /// A user's own connection.
    pub fn user(app_id: &str, user_id: &str, tenant_id: Option<&str>) -> Self {
        Self {
            app_id: app_id.to_owned(),
            user_id: Some(user_id.to_owned()),
            tenant_id: tenant_id.map(str::to_owned),
        }
    }

    /// A tenant's shared connection.
    pub fn tenant(app_id: &str, tenant_id: &str) -> Self {
        Self {
            app_id: app_id.to_owned(),
            user_id: None,
            tenant_id: Some(tenant_id.to_owned()),
        }
    }

    /// The app-wide credential (API-key apps).
    pub fn app(app_id: &str) -> Self {
        Self {
            app_id: app_id.to_owned(),
            user_id: None,
            tenant_id: None,
        }
    }
}

/// What kind of credential a connection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CredentialKind {
    /// OAuth access token, with an optional refresh token.
    #[serde(rename = "oauth")]
    OAuth,
    /// A static API key.
    ApiKey,
}

impl CredentialKind {
    /// The wire and storage name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OAuth => "oauth",
            Self::ApiKey => "apiKey",
        }
    }

    /// Parses the storage name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "oauth" => Some(Self::OAuth),
            "apiKey" => Some(Self::ApiKey),
            _ => None,
        }
    }
}

/// Whether a connection can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ConnectionStatus {
    /// Usable.
    Active,
    /// The provider rejected the refresh token (`invalid_grant`): the user must consent again.
    /// Kept, not deleted, so that its history and the error stay visible.
    ConsentRequired,
}

impl ConnectionStatus {
    /// The wire and storage name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::ConsentRequired => "consentRequired",
        }
    }

    /// Parses the storage name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(Self::Active),
            "consentRequired" => Some(Self::ConsentRequired),
            _ => None,
        }
    }
}

/// A credential as stored. Secrets are sealed; nothing here is ever returned by the management API
/// except metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    /// Server-assigned id (`con_…`).
    pub id: String,
    /// Whose credential this is.
    pub key: ConnectionKey,
    /// OAuth token or API key.
    pub kind: CredentialKind,
    /// Usable, or waiting for consent.
    pub status: ConnectionStatus,
    /// The scopes the provider actually granted.
    pub scopes: Vec<String>,
    /// The access token's type (`Bearer`, ...).
    pub token_type: Option<String>,
    /// The access token, or the API key.
    pub access: Ciphertext,
    /// The refresh token.
    pub refresh: Option<Ciphertext>,
    /// When the access token expires (None: unknown or never).
    pub expires_at: Option<Timestamp>,
    /// The user's id at the provider, from an id_token or userinfo.
    pub provider_subject: Option<String>,
    /// Bumped by every change of the tokens; fences refresh writes.
    pub version: i64,
    /// Who holds the refresh lease, and until when.
    pub lease: Option<(String, Timestamp)>,
    /// When the tokens were last refreshed.
    pub last_refresh_at: Option<Timestamp>,
    /// The last refresh failure, in words.
    pub last_refresh_error: Option<String>,
    /// When the credential was last handed out.
    pub last_used_at: Option<Timestamp>,
    /// Who created the connection (`user:<id>`, `admin:<key id>`, `import`).
    pub granted_by: Option<String>,
    /// When the connection was created.
    pub created_at: Timestamp,
    /// When the connection last changed.
    pub updated_at: Timestamp,
}

impl ConnectionRecord {
    /// The data key its secrets are sealed with (see [`sealed_key_id`]).
    ///
    /// # Errors
    /// [`StoreError::Backend`] when its two secrets were sealed with different keys.
    pub fn sealed_key_id(&self) -> Result<u32, StoreError> {
        sealed_key_id(&self.access, self.refresh.as_ref())
    }
}

/// New tokens from a refresh, written atomically (a rotated refresh token with its access token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSet {
    /// The new access token.
    pub access: Ciphertext,
    /// The refresh token to store: the rotated one, or the old one sealed again beside the new
    /// access token when the provider did not rotate it; `None` when there is none.
    pub refresh: Option<Ciphertext>,
    /// The access token's type.
    pub token_type: Option<String>,
    /// Its expiry.
    pub expires_at: Option<Timestamp>,
    /// The granted scopes.
    pub scopes: Vec<String>,
}

impl TokenSet {
    /// The data key its secrets are sealed with (see [`sealed_key_id`]).
    ///
    /// # Errors
    /// [`StoreError::Backend`] when its two secrets were sealed with different keys.
    pub fn sealed_key_id(&self) -> Result<u32, StoreError> {
        sealed_key_id(&self.access, self.refresh.as_ref())
    }
}

/// How a refresh failed, recorded on the connection when the lease is released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshFailure {
    /// The error, in words (never a token).
    pub error: String,
    /// True when the provider rejected the grant: the connection then needs consent.
    pub consent_required: bool,
}

/// A pending consent flow (`state`), single use, expiring, bound to who asked and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentState {
    /// SHA-256 of the `state` value, hex; the value itself is never stored.
    pub id: String,
    /// The connection this flow creates or extends.
    pub key: ConnectionKey,
    /// The scopes asked of the provider.
    pub scopes: Vec<String>,
    /// Where to send the user's browser afterwards.
    pub return_url: Option<String>,
    /// The PKCE verifier, sealed.
    pub pkce_verifier: Option<Ciphertext>,
    /// The redirect URI sent to the provider (must be sent again with the code).
    pub redirect_uri: String,
    /// Who started the flow (`user:<id>`, `admin:<key id>`).
    pub initiated_by: String,
    /// When the flow started.
    pub created_at: Timestamp,
    /// When the state stops being accepted.
    pub expires_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(key_id: u32) -> Ciphertext {
        Ciphertext {
            key_id,
            bytes: vec![1, 2, 3],
        }
    }

    #[test]
    fn secrets_sealed_together_name_their_key() {
        assert_eq!(sealed_key_id(&sealed(3), None).unwrap(), 3);
        assert_eq!(sealed_key_id(&sealed(3), Some(&sealed(3))).unwrap(), 3);
        assert_eq!(sealed_key_id(&sealed(0), Some(&sealed(0))).unwrap(), 0);
    }

    #[test]
    fn secrets_sealed_with_two_keys_are_refused() {
        for (access, refresh) in [(3, 4), (4, 3), (0, u32::MAX)] {
            match sealed_key_id(&sealed(access), Some(&sealed(refresh))) {
                Err(StoreError::Backend(msg)) => {
                    assert_eq!(msg, "a connection's secrets must be sealed with one key");
                }
                other => panic!("{access}/{refresh}: {other:?}"),
            }
        }
    }

    #[test]
    fn records_and_token_sets_follow_the_same_rule() {
        let tokens = TokenSet {
            access: sealed(7),
            refresh: Some(sealed(8)),
            token_type: None,
            expires_at: None,
            scopes: Vec::new(),
        };
        assert!(tokens.sealed_key_id().is_err());
        let tokens = TokenSet {
            refresh: Some(sealed(7)),
            ..tokens
        };
        assert_eq!(tokens.sealed_key_id().unwrap(), 7);
    }
}
