//! Portcullis's own token-signing keys: created at first start, the private key sealed at rest
//! (bound to its key id), rotated with an overlap. The active key signs; a retired key stays in
//! the published JWK set until every token it signed has expired (the access-token lifetime plus
//! the clock skew verifiers allow), then it is deleted.

use std::sync::{Arc, RwLock};

use portcullis_crypto::envelope::aad;
use portcullis_crypto::jws::{Algorithm, SigningKey};
use portcullis_domain::{SigningKeyRecord, Timestamp};
use serde::Serialize;
use serde_json::Value;

use crate::{Core, ServiceError};

/// The clock skew a verifier of Portcullis's tokens may allow, in seconds: a retired key stays
/// published this long past the lifetime of the last token it signed.
pub const TOKEN_CLOCK_SKEW_SECS: i64 = 60;

/// The associated data binding a signing key's sealed private key to its key id.
pub fn signing_key_aad(kid: &str) -> Vec<u8> {
    aad(&["signing_key", kid, "private_key"])
}

/// The keys as this node holds them: the active key, ready to sign, and the published set.
#[derive(Default)]
pub(crate) struct KeyRing {
    active: Option<Arc<SigningKey>>,
    records: Vec<SigningKeyRecord>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("active", &self.active.as_ref().map(|k| k.kid().to_owned()))
            .field("keys", &self.records.len())
            .finish()
    }
}

/// The signing keys of a node, reloaded when any node rotates them.
#[derive(Debug, Default)]
pub(crate) struct SigningKeys {
    ring: RwLock<Arc<KeyRing>>,
}

impl SigningKeys {
    fn ring(&self) -> Arc<KeyRing> {
        self.ring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set(&self, ring: KeyRing) {
        *self
            .ring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(ring);
    }
}

/// A signing key, as the management API shows it (never its private part).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningKeyView {
    /// The key id (`kid`), its RFC 7638 thumbprint.
    pub kid: String,
    /// The JWS algorithm.
    pub alg: String,
    /// `active` (it signs) or `retired` (published until `publishedUntil`).
    pub state: &'static str,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stopped signing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<Timestamp>,
    /// Until when a retired key stays in the JWK set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_until: Option<Timestamp>,
}

impl Core {
    /// How long a retired key stays published: the access-token lifetime plus the clock skew.
    fn signing_key_retention_secs(&self) -> i64 {
        self.settings.access_token_ttl_secs + TOKEN_CLOCK_SKEW_SECS
    }

    /// A fresh key of the configured algorithm, its private key sealed.
    fn new_signing_key(&self) -> Result<(SigningKey, SigningKeyRecord), ServiceError> {
        let alg = self.settings.signing_alg;
        let key = SigningKey::generate(alg)
            .map_err(|e| ServiceError::Internal(format!("generating a signing key: {e}")))?;
        let pkcs8 = key
            .to_pkcs8()
            .map_err(|e| ServiceError::Internal(format!("encoding a signing key: {e}")))?;
        let private_key = self
            .sealer
            .seal(pkcs8.expose(), &signing_key_aad(key.kid()))?;
        let public_jwk = serde_json::to_string(&key.public_jwk())
            .map_err(|e| ServiceError::Internal(format!("encoding a public key: {e}")))?;
        let record = SigningKeyRecord {
            kid: key.kid().to_owned(),
            alg: alg.as_str().to_owned(),
            private_key,
            public_jwk,
            created_at: self.clock.now(),
            retired_at: None,
        };
        Ok((key, record))
    }

    /// Loads the signing keys; creates the first one when there is none (several nodes may race
    /// at first start: one key wins, the others load it).
    pub(crate) async fn load_signing_keys(&self) -> Result<(), ServiceError> {
        let mut records = self.stores.signing_keys.signing_keys().await?;
        if !records.iter().any(|k| k.retired_at.is_none()) {
            let (_, first) = self.new_signing_key()?;
            records = self
                .stores
                .signing_keys
                .insert_first_signing_key(&first)
                .await?;
            tracing::info!(kid = %first.kid, "created the first token-signing key");
        }
        let active = match records.iter().find(|k| k.retired_at.is_none()) {
            Some(r) => Some(Arc::new(self.open_signing_key(r).await?)),
            None => None,
        };
        self.signing.set(KeyRing { active, records });
        self.refresh_local_issuer().await
    }

    async fn open_signing_key(&self, r: &SigningKeyRecord) -> Result<SigningKey, ServiceError> {
        let alg = Algorithm::from_name(&r.alg).ok_or_else(|| {
            ServiceError::Internal(format!("signing key {} has an unknown algorithm", r.kid))
        })?;
        let der = self
            .sealer
            .open(&r.private_key, &signing_key_aad(&r.kid))
            .await?;
        let key = SigningKey::from_pkcs8(alg, der.expose())
            .map_err(|e| ServiceError::Internal(format!("signing key {}: {e}", r.kid)))?;
        if key.kid() != r.kid {
            return Err(ServiceError::Internal(format!(
                "signing key {} does not match its key id",
                r.kid
            )));
        }
        Ok(key)
    }

    /// Reloads the signing keys after a change (on any node).
    pub(crate) fn reload_signing_keys(&self) {
        let Some(core) = self.me.upgrade() else {
            return;
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = core.load_signing_keys().await {
                    tracing::warn!(error = %e, "reloading the signing keys failed");
                }
            });
        }
    }

    /// The published JWK set (RFC 7517): the active key and the retired keys still within their
    /// retention.
    pub fn jwks(&self) -> Value {
        let ring = self.signing.ring();
        let now = self.clock.now();
        let retention = self.signing_key_retention_secs();
        let keys: Vec<Value> = ring
            .records
            .iter()
            .filter(|k| k.retired_at.is_none_or(|r| r.add_secs(retention) > now))
            .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// Signs a JWT with the active key (`typ` in its header when given).
    pub fn sign_jwt(&self, claims: &Value, typ: Option<&str>) -> Result<String, ServiceError> {
        let ring = self.signing.ring();
        let key = ring
            .active
            .as_ref()
            .ok_or_else(|| ServiceError::Unavailable("no signing key is loaded".into()))?;
        key.sign_jwt(claims, typ)
            .map_err(|e| ServiceError::Internal(format!("signing a token: {e}")))
    }

    /// The signing keys, oldest first.
    pub async fn list_signing_keys(&self) -> Result<Vec<SigningKeyView>, ServiceError> {
        let retention = self.signing_key_retention_secs();
        Ok(self
            .stores
            .signing_keys
            .signing_keys()
            .await?
            .iter()
            .map(|k| SigningKeyView {
                kid: k.kid.clone(),
                alg: k.alg.clone(),
                state: if k.retired_at.is_none() {
                    "active"
                } else {
                    "retired"
                },
                created_at: k.created_at,
                retired_at: k.retired_at,
                published_until: k.retired_at.map(|r| r.add_secs(retention)),
            })
            .collect())
    }

    /// Rotates the signing keys: a new key signs from now on; the previous one stays published
    /// until the tokens it signed have expired. Keys past that are deleted. Returns the keys
    /// after.
    pub async fn rotate_signing_key(&self) -> Result<Vec<SigningKeyView>, ServiceError> {
        let (_, record) = self.new_signing_key()?;
        self.stores.signing_keys.rotate_signing_key(&record).await?;
        // Unpublished once `retired_at + retention <= now`: those retired at the cut or before go.
        let cut = record
            .created_at
            .add_secs(-self.signing_key_retention_secs())
            .add_millis(1);
        self.stores.signing_keys.purge_signing_keys(cut).await?;
        self.load_signing_keys().await?;
        tracing::info!(kid = %record.kid, "rotated the token-signing key");
        self.list_signing_keys().await
    }
}
