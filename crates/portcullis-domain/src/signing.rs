//! Portcullis's own token-signing keys: one active key signs, retired keys stay published until
//! every token they signed has expired.

use async_trait::async_trait;

use crate::{Ciphertext, StoreError, Timestamp};

/// One token-signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// The key id (`kid`): its RFC 7638 thumbprint.
    pub kid: String,
    /// The JWS algorithm (`ES256`, `RS256`, `EdDSA`).
    pub alg: String,
    /// The private key (PKCS#8), sealed; bound to the key id.
    pub private_key: Ciphertext,
    /// The public key as published (a JWK, JSON).
    pub public_jwk: String,
    /// When the key was created.
    pub created_at: Timestamp,
    /// When it stopped signing (a rotation); `None` while it is the active key.
    pub retired_at: Option<Timestamp>,
}

/// The signing keys.
#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// Every signing key, oldest first (of two created at once, the retired one first).
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Inserts `key` as the active key if there is none (several nodes may race at first
    /// start); returns the keys as they are after.
    async fn insert_first_signing_key(
        &self,
        key: &SigningKeyRecord,
    ) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// A rotation, in one transaction: the active key is retired at `key.created_at` and `key`
    /// becomes the active one. `AlreadyExists` when the key id is taken.
    async fn rotate_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError>;
    /// Deletes the keys retired before `before`; returns how many went.
    async fn purge_signing_keys(&self, before: Timestamp) -> Result<u64, StoreError>;
}
