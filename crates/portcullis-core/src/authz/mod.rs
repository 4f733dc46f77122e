//! Portcullis's own OAuth 2.1 authorization server, for the MCP servers registered as resources:
//! `authorize` (the code flow with PKCE S256, exact redirect URIs, RFC 8707 resources, RFC 9207
//! `iss`), `session` (local sign-in: argon2id, lockout; the browser's sealed session cookie),
//! `tokens` (codes, refresh tokens rotated with reuse detection, client credentials, RFC 9068
//! access tokens, introspection, revocation, userinfo).
//!
//! Its access tokens are inbound tokens of the access control plane with no configuration: the
//! local issuer's keys are the published signing keys, its audiences the resources' URIs.

mod authorize;
mod consents;
mod metadata_document;
mod register;
mod session;
mod sso;
mod tokens;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use portcullis_crypto::jws::{Algorithm, Jwk, KeySet, VerifyingKey};
use portcullis_domain::{Ciphertext, PageRequest, ResourceRecord};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use authorize::{
    AuthorizeOutcome, AuthorizeParams, ConsentScreen, MAX_NONCE_CHARS, OPENID_SCOPES,
    PendingAuthorization,
};
pub use consents::{ConsentList, ConsentView, PasswordInput};
pub(crate) use metadata_document::{CachedDocument, metadata_http};
pub use metadata_document::{
    MAX_CLIENT_ID_URL, MAX_METADATA_DOCUMENT_BYTES, is_metadata_document_id,
};
pub use register::{NEVER_USED_TTL_SECS, RegisteredClient, RegistrationError, RegistrationRequest};
pub use session::{Session, SignInError};
pub(crate) use sso::Upstream;
pub use sso::{SSO_FLOW_TTL_SECS, SsoButton, SsoError, SsoStart, SsoThen};
pub use tokens::{TokenParams, TokenResponse};

use crate::inbound::{IssuerSpec, KeySource};
use crate::{Core, ServiceError};

/// The authorization code grant.
pub const GRANT_AUTHORIZATION_CODE: &str = "authorization_code";
/// The refresh token grant.
pub const GRANT_REFRESH_TOKEN: &str = "refresh_token";
/// The client credentials grant.
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
/// The JWT bearer grant (RFC 7523), here with Identity Assertion JWT Authorization Grants.
pub const GRANT_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The grant profile advertised for ID-JAG.
pub const ID_JAG_PROFILE: &str = "urn:ietf:params:oauth:grant-profile:id-jag";
/// The `typ` of an Identity Assertion JWT Authorization Grant.
pub const ID_JAG_TYP: &str = "oauth-id-jag+jwt";
/// How long an authorization code can be redeemed, in seconds.
pub const CODE_TTL_SECS: i64 = 60;
/// How long a user has to sign in and consent, in seconds.
pub const AUTHORIZATION_TTL_SECS: i64 = 600;
/// The `typ` of Portcullis's access tokens (RFC 9068).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// The id Portcullis's own issuer has among the trusted issuers.
pub const LOCAL_ISSUER_ID: &str = "portcullis";
/// The longest sealed value read from a form or a cookie, in characters.
const MAX_SEALED_LEN: usize = 8192;

/// Whether a URI's host is a loopback address (`127.0.0.0/8`, `[::1]`, `localhost`): a native
/// app's redirect URI there matches on any port (RFC 8252 §7.3).
pub fn is_loopback_uri(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// An OAuth error code (RFC 6749 §4.1.2.1 and §5.2, RFC 8707, RFC 7009).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthCode {
    /// `invalid_request`.
    InvalidRequest,
    /// `invalid_client` (401).
    InvalidClient,
    /// `invalid_grant`.
    InvalidGrant,
    /// `unauthorized_client`.
    UnauthorizedClient,
    /// `unsupported_grant_type`.
    UnsupportedGrantType,
    /// `unsupported_response_type`.
    UnsupportedResponseType,
    /// `invalid_scope`.
    InvalidScope,
    /// `invalid_target` (RFC 8707).
    InvalidTarget,
    /// `access_denied`.
    AccessDenied,
    /// `server_error` (500).
    ServerError,
    /// `temporarily_unavailable` (503).
    TemporarilyUnavailable,
}

impl OAuthCode {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    /// The HTTP status of a token-endpoint error with this code.
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidClient => 401,
            Self::ServerError => 500,
            Self::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

/// An OAuth error: a code and a description for the client's developer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The error code.
    pub code: OAuthCode,
    /// `error_description`.
    pub description: String,
}

impl OAuthError {
    /// An error with a code and a description.
    pub fn new(code: OAuthCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }
}

impl From<ServiceError> for OAuthError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Unavailable(m) => {
                tracing::warn!(error = %m, "an OAuth request could not be served");
                Self::new(
                    OAuthCode::TemporarilyUnavailable,
                    "the server cannot reach its database; try again shortly",
                )
            }
            ServiceError::Internal(m) => {
                tracing::error!(error = %m, "an OAuth request failed");
                Self::new(OAuthCode::ServerError, "the server failed")
            }
            other => Self::new(OAuthCode::InvalidRequest, other.to_string()),
        }
    }
}

impl From<portcullis_domain::StoreError> for OAuthError {
    fn from(e: portcullis_domain::StoreError) -> Self {
        ServiceError::from(e).into()
    }
}

/// A scope string's scopes, in order, without duplicates.
pub(crate) fn split_scopes(scope: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in scope
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
    {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    out
}

/// Whether a scope token is made of the characters RFC 6749 §3.3 allows.
pub(crate) fn scope_token_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

impl Core {
    /// Trusts Portcullis's own access tokens as inbound tokens: signed by a published signing
    /// key, `typ` `at+jwt`, for a registered resource. Called when the signing keys or the
    /// resources change.
    pub(crate) async fn refresh_local_issuer(&self) -> Result<(), ServiceError> {
        let _one = self.local_issuer.lock().await;
        let target = self.resources_wanted.load(Ordering::SeqCst);
        let mut resources = HashMap::new();
        let mut page = PageRequest {
            after: None,
            limit: 500,
        };
        loop {
            let batch = self.stores.resources.resources(&page).await?;
            let done = batch.len() < page.limit as usize;
            page.after = batch.last().map(|r| r.id.clone());
            resources.extend(batch.into_iter().map(|r| (r.uri.clone(), r)));
            if done {
                break;
            }
        }
        let mut keys = KeySet::default();
        let mut algorithms: Vec<Algorithm> = Vec::new();
        let published = self.jwks();
        for jwk in published["keys"].as_array().into_iter().flatten() {
            let key = serde_json::from_value::<Jwk>(jwk.clone())
                .ok()
                .and_then(|j| VerifyingKey::from_jwk(&j).ok());
            if let Some(key) = key {
                for alg in key.algorithms() {
                    if !algorithms.contains(&alg) {
                        algorithms.push(alg);
                    }
                }
                keys.insert(key)
                    .map_err(|e| ServiceError::Internal(format!("a published key: {e}")))?;
            }
        }
        let mut audiences: Vec<String> = resources.keys().cloned().collect();
        audiences.sort();
        *self
            .resources_by_uri
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(resources);
        self.resources_installed.store(target, Ordering::SeqCst);
        self.inbound.set_local_issuer(
            IssuerSpec {
                id: LOCAL_ISSUER_ID.into(),
                issuer: self.settings.public_url.clone(),
                keys: KeySource::Local,
                audiences,
                algorithms,
                roles_claim: None,
                tenant_claim: None,
                clock_skew_seconds: crate::signing::TOKEN_CLOCK_SKEW_SECS as u32,
                required_typ: Some(ACCESS_TOKEN_TYP.into()),
            },
            Arc::new(keys),
        );
        Ok(())
    }

    /// Marks the resources read stale (a change was heard).
    pub(crate) fn resources_changed(&self) {
        self.resources_wanted.fetch_add(1, Ordering::SeqCst);
    }

    /// The registered resource with this canonical URI (read again first when a change was
    /// heard since, or the change feed is down).
    pub(crate) async fn resource_record_by_uri(
        &self,
        uri: &str,
    ) -> Result<Option<ResourceRecord>, ServiceError> {
        if !self.stores.changes.is_live() {
            self.resources_changed();
        }
        if self.resources_installed.load(Ordering::SeqCst)
            < self.resources_wanted.load(Ordering::SeqCst)
        {
            self.refresh_local_issuer().await?;
        }
        Ok(self
            .resources_by_uri
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(uri)
            .cloned())
    }

    /// Verifies an inbound token (see [`crate::Inbound::verify`]), after reading the resources
    /// again if a change was heard since: a token for a resource registered a moment ago on
    /// another node is its own issuer's.
    pub async fn verify_inbound(
        &self,
        token: &str,
    ) -> Result<Arc<crate::inbound::VerifiedToken>, crate::inbound::InboundError> {
        if self.resources_installed.load(Ordering::SeqCst)
            < self.resources_wanted.load(Ordering::SeqCst)
            && let Err(e) = self.refresh_local_issuer().await
        {
            tracing::warn!(error = %e, "reading the resource servers failed");
        }
        self.inbound.verify(token).await
    }

    /// Refreshes the local issuer in the background (after a change heard on the feed).
    pub(crate) fn spawn_refresh_local_issuer(&self) {
        let Some(core) = self.me.upgrade() else {
            return;
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = core.refresh_local_issuer().await {
                    tracing::warn!(error = %e, "refreshing Portcullis's own issuer failed");
                }
            });
        }
    }

    /// Seals a value for a browser to carry (a form field, a cookie): encrypted and bound to
    /// `aad`, so that it can be neither read nor forged.
    pub(crate) fn seal_value<T: Serialize>(
        &self,
        value: &T,
        aad: &[u8],
    ) -> Result<String, ServiceError> {
        let json = serde_json::to_vec(value).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let sealed = self.sealer.seal(&json, aad)?;
        let mut raw = sealed.key_id.to_be_bytes().to_vec();
        raw.extend_from_slice(&sealed.bytes);
        Ok(B64.encode(raw))
    }

    /// Opens a value sealed by [`Core::seal_value`] with the same `aad`; `None` when it is not
    /// one.
    pub(crate) async fn open_value<T: DeserializeOwned>(
        &self,
        text: &str,
        aad: &[u8],
    ) -> Option<T> {
        if text.is_empty() || text.len() > MAX_SEALED_LEN {
            return None;
        }
        let raw = B64.decode(text).ok()?;
        if raw.len() < 5 {
            return None;
        }
        let (id, bytes) = raw.split_at(4);
        let sealed = Ciphertext {
            key_id: u32::from_be_bytes([id[0], id[1], id[2], id[3]]),
            bytes: bytes.to_vec(),
        };
        let json = self.sealer.open(&sealed, aad).await.ok()?;
        serde_json::from_slice(json.expose()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        for u in [
            "http://127.0.0.1/cb",
            "http://127.0.0.1:5000/cb",
            "http://[::1]:80/",
            "http://localhost:3000/x",
        ] {
            assert!(is_loopback_uri(&url::Url::parse(u).unwrap()), "{u}");
        }
        for u in [
            "http://10.0.0.1/cb",
            "https://example.com/",
            "http://127.example/",
        ] {
            assert!(!is_loopback_uri(&url::Url::parse(u).unwrap()), "{u}");
        }
    }

    #[test]
    fn scopes_are_split_once_each_and_checked() {
        assert_eq!(
            split_scopes(Some("a  b a c")),
            vec!["a".to_owned(), "b".into(), "c".into()]
        );
        assert!(split_scopes(None).is_empty());
        assert!(scope_token_ok("tools.read"));
        assert!(!scope_token_ok("a\"b"));
        assert!(!scope_token_ok("a\\b"));
        assert!(!scope_token_ok(""));
    }
}
