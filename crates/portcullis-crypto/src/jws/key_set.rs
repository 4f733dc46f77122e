//! A set of verification keys, looked up by key id and algorithm.

use std::fmt;

use super::algorithm::Algorithm;
use super::error::{JwsError, truncated};
use super::jwk::JwkSet;
use super::verifying_key::VerifyingKey;

/// A JWK that [`KeySet::from_jwks`] left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// The key's position in the JWK set, counting from 0.
    pub index: usize,
    /// The key's `kid`, if it had one.
    pub kid: Option<String>,
    /// Why it was skipped.
    pub reason: JwsError,
}

impl fmt::Display for SkippedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kid {
            Some(kid) => write!(
                f,
                "key {} (`{}`): {}",
                self.index,
                truncated(kid),
                self.reason
            ),
            None => write!(f, "key {}: {}", self.index, self.reason),
        }
    }
}

/// The verification keys of one issuer.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
}

impl KeySet {
    /// Builds a key set from a JWK set. Keys that cannot be used (encryption keys, symmetric keys,
    /// unsupported curves, RSA keys under 2048 bits, invalid material, a repeated `kid`) are
    /// skipped and reported, not fatal: one odd key must not take an issuer down.
    #[must_use]
    pub fn from_jwks(set: &JwkSet) -> (KeySet, Vec<SkippedKey>) {
        let mut keys = KeySet::default();
        let mut skipped = Vec::new();
        for (index, jwk) in set.keys.iter().enumerate() {
            let result = VerifyingKey::from_jwk(jwk).and_then(|key| keys.insert(key));
            if let Err(reason) = result {
                skipped.push(SkippedKey {
                    index,
                    kid: jwk.kid.clone(),
                    reason,
                });
            }
        }
        (keys, skipped)
    }

    /// Adds a key.
    ///
    /// # Errors
    /// [`JwsError::DuplicateKeyId`] when a key with the same `kid` already allows one of its
    /// algorithms (a lookup by `kid` would otherwise be ambiguous).
    pub fn insert(&mut self, key: VerifyingKey) -> Result<(), JwsError> {
        if let Some(kid) = key.kid() {
            let clash = self
                .keys
                .iter()
                .filter(|existing| existing.kid() == Some(kid))
                .any(|existing| key.algorithms().any(|alg| existing.allows(alg)));
            if clash {
                return Err(JwsError::DuplicateKeyId {
                    kid: truncated(kid),
                });
            }
        }
        self.keys.push(key);
        Ok(())
    }

    /// The key for a token with this `kid` header and algorithm.
    ///
    /// With a `kid`: the key with that id that allows `alg`. Without: the only key that allows
    /// `alg`, if there is exactly one (with several candidates the token must say which).
    #[must_use]
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&VerifyingKey> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|key| key.kid() == Some(kid) && key.allows(alg)),
            None => {
                let mut candidates = self.keys.iter().filter(|key| key.allows(alg));
                let only = candidates.next()?;
                candidates.next().is_none().then_some(only)
            }
        }
    }

    /// The number of keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set has no key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key ids of the keys that have one, in order.
    pub fn kids(&self) -> impl Iterator<Item = &str> + '_ {
        self.keys.iter().filter_map(VerifyingKey::kid)
    }

    /// All keys, in order.
    pub fn iter(&self) -> impl Iterator<Item = &VerifyingKey> + '_ {
        self.keys.iter()
    }
}
