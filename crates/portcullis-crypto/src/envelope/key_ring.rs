//! Data keys and the key ring that seals and opens secrets at rest.

use std::collections::HashMap;
use std::fmt;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce};
use zeroize::Zeroizing;

use super::{KEY_LEN, NONCE_LEN, TAG_LEN, aes_key};
use crate::error::CryptoError;
use crate::random;
use crate::secret::SecretBytes;

/// The first byte of every sealed value: the format version.
const FORMAT_V1: u8 = 0x01;
/// Version byte and data key id.
const HEADER_LEN: usize = 1 + 4;
/// The shortest possible sealed value: header, nonce and tag around an empty plaintext.
const MIN_SEALED_LEN: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

/// A data-encryption key: a random AES-256-GCM key with a numeric id.
///
/// Stored in the database wrapped under a master key (see [`crate::envelope::MasterKey::wrap`]).
pub struct DataKey {
    id: u32,
    bytes: Zeroizing<[u8; KEY_LEN]>,
    key: LessSafeKey,
}

impl DataKey {
    /// A new random data key with the given id.
    #[must_use]
    pub fn generate(id: u32) -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        random::fill(bytes.as_mut_slice());
        Self::from_bytes(id, bytes)
    }

    pub(crate) fn from_bytes(id: u32, bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        let key = aes_key(&bytes);
        Self { id, bytes, key }
    }

    /// The key's id, written in every ciphertext it seals.
    #[must_use]
    pub fn id(&self) -> u32 {
        self.id
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A sealed secret and the id of the data key that sealed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The id of the data key used (also written inside `bytes`); store it beside the ciphertext
    /// to find the rows to re-encrypt after a rotation.
    pub key_id: u32,
    /// `0x01 | key_id (u32, big-endian) | nonce (12 bytes) | ciphertext || tag (16 bytes)`.
    pub bytes: Vec<u8>,
}

/// The data key id written in a sealed value, without opening it; `None` when the bytes are not a
/// sealed value of a known format.
#[must_use]
pub fn sealed_key_id(bytes: &[u8]) -> Option<u32> {
    if bytes.len() < MIN_SEALED_LEN || bytes[0] != FORMAT_V1 {
        return None;
    }
    let mut id = [0u8; 4];
    id.copy_from_slice(&bytes[1..HEADER_LEN]);
    Some(u32::from_be_bytes(id))
}

/// The data keys in use, one of them active.
///
/// [`KeyRing::seal`] always uses the active key; [`KeyRing::open`] uses whichever key the
/// ciphertext names. To rotate: generate a key, store it wrapped, [`KeyRing::insert`] it on every
/// node, then [`KeyRing::set_active`]; old rows keep opening and can be re-sealed at leisure.
///
/// Nonces are random (96 bits), so a single data key should seal fewer than 2^32 values; rotate
/// well before that.
pub struct KeyRing {
    active: u32,
    keys: HashMap<u32, DataKey>,
}

impl KeyRing {
    /// A ring that holds `active` and seals with it.
    #[must_use]
    pub fn new(active: DataKey) -> Self {
        let id = active.id;
        let mut keys = HashMap::new();
        keys.insert(id, active);
        Self { active: id, keys }
    }

    /// Adds a key that can open ciphertexts; a key with the same id is replaced.
    pub fn insert(&mut self, key: DataKey) {
        self.keys.insert(key.id, key);
    }

    /// Makes the key `id` the one that seals.
    ///
    /// # Errors
    /// [`CryptoError::UnknownDataKey`] when the ring does not hold that key.
    pub fn set_active(&mut self, id: u32) -> Result<(), CryptoError> {
        if !self.keys.contains_key(&id) {
            return Err(CryptoError::UnknownDataKey { id });
        }
        self.active = id;
        Ok(())
    }

    /// The id of the key that seals.
    #[must_use]
    pub fn active_id(&self) -> u32 {
        self.active
    }

    /// Whether the ring holds the key `id`.
    #[must_use]
    pub fn contains(&self, id: u32) -> bool {
        self.keys.contains_key(&id)
    }

    /// The ids of all keys in the ring, in no particular order.
    pub fn key_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.keys().copied()
    }

    /// The number of keys in the ring (at least one).
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always `false`: a ring holds at least its active key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Encrypts `plaintext` under the active key, bound to `aad` (build it with
    /// [`crate::envelope::aad`]).
    ///
    /// # Errors
    /// [`CryptoError::Encrypt`] if the cryptographic library refuses (in practice only for inputs
    /// of tens of gigabytes).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, CryptoError> {
        // INVARIANT: `self.active` is always a key of `self.keys` (set by `new` and `set_active`,
        // and keys are never removed).
        let key = self.keys.get(&self.active).ok_or(CryptoError::Encrypt)?;
        let nonce = random::random_bytes::<NONCE_LEN>();

        let mut out = Vec::with_capacity(MIN_SEALED_LEN + plaintext.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&key.id.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);

        let full_aad = bound_aad(&out[..HEADER_LEN], aad);
        let (_, body) = out.split_at_mut(HEADER_LEN + NONCE_LEN);
        let sealed = key.key.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&full_aad),
            body,
        );
        let Ok(tag) = sealed else {
            // The buffer may still hold plaintext.
            zeroize::Zeroize::zeroize(&mut out);
            return Err(CryptoError::Encrypt);
        };
        out.extend_from_slice(tag.as_ref());
        Ok(Sealed {
            key_id: key.id,
            bytes: out,
        })
    }

    /// Decrypts a value made by [`KeyRing::seal`] with the same `aad`.
    ///
    /// # Errors
    /// - [`CryptoError::UnknownDataKey`] with the id when the ring lacks the key: load it, retry;
    /// - [`CryptoError::MalformedCiphertext`] when the bytes are not a sealed value;
    /// - [`CryptoError::Decrypt`] when the associated data differs or any byte was modified.
    pub fn open(&self, bytes: &[u8], aad: &[u8]) -> Result<SecretBytes, CryptoError> {
        let id = sealed_key_id(bytes).ok_or(CryptoError::MalformedCiphertext)?;
        let key = self
            .keys
            .get(&id)
            .ok_or(CryptoError::UnknownDataKey { id })?;
        let (header, rest) = bytes.split_at(HEADER_LEN);
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Decrypt)?;

        let full_aad = bound_aad(header, aad);
        let mut buf = Zeroizing::new(body.to_vec());
        let plaintext_len = key
            .key
            .open_in_place(nonce, Aad::from(&full_aad), buf.as_mut_slice())
            .map_err(|_| CryptoError::Decrypt)?
            .len();
        buf.truncate(plaintext_len);
        Ok(SecretBytes::new(std::mem::take(&mut *buf)))
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<u32> = self.key_ids().collect();
        ids.sort_unstable();
        f.debug_struct("KeyRing")
            .field("active", &self.active)
            .field("key_ids", &ids)
            .finish()
    }
}

/// The associated data the cipher sees: the header (format version and key id) followed by the
/// caller's associated data, so the header is authenticated too. The header has a fixed length,
/// so the concatenation is unambiguous.
fn bound_aad(header: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(header.len() + aad.len());
    full.extend_from_slice(header);
    full.extend_from_slice(aad);
    full
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::aad;

    #[test]
    fn wire_format() {
        let ring = KeyRing::new(DataKey::generate(0x0102_0304));
        let sealed = ring.seal(b"hello", b"ctx").unwrap();
        assert_eq!(sealed.key_id, 0x0102_0304);
        assert_eq!(sealed.bytes[0], 0x01);
        assert_eq!(&sealed.bytes[1..5], &[1, 2, 3, 4]);
        assert_eq!(sealed.bytes.len(), 1 + 4 + 12 + 5 + 16);
        assert_eq!(sealed_key_id(&sealed.bytes), Some(0x0102_0304));
        assert_ne!(&sealed.bytes[17..22], b"hello");
    }

    #[test]
    fn nonces_are_fresh() {
        let ring = KeyRing::new(DataKey::generate(1));
        let a = ring.seal(b"same", b"").unwrap();
        let b = ring.seal(b"same", b"").unwrap();
        assert_ne!(a.bytes, b.bytes);
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let ring = KeyRing::new(DataKey::generate(1));
        let sealed = ring.seal(b"", &aad(&["x"])).unwrap();
        assert!(ring.open(&sealed.bytes, &aad(&["x"])).unwrap().is_empty());
    }

    #[test]
    fn debug_shows_ids_only() {
        let key = DataKey::generate(7);
        let bytes = *key.bytes();
        let mut ring = KeyRing::new(key);
        ring.insert(DataKey::generate(3));
        let printed = format!("{ring:?}");
        assert_eq!(printed, "KeyRing { active: 7, key_ids: [3, 7] }");
        let printed = format!("{:?}", DataKey::from_bytes(9, Zeroizing::new(bytes)));
        assert_eq!(printed, "DataKey { id: 9, .. }");
    }

    #[test]
    fn short_or_unknown_format_is_malformed() {
        let ring = KeyRing::new(DataKey::generate(1));
        let sealed = ring.seal(b"x", b"").unwrap();
        assert_eq!(
            ring.open(&sealed.bytes[..MIN_SEALED_LEN - 1], b""),
            Err(CryptoError::MalformedCiphertext)
        );
        let mut other_version = sealed.bytes.clone();
        other_version[0] = 0x02;
        assert_eq!(
            ring.open(&other_version, b""),
            Err(CryptoError::MalformedCiphertext)
        );
        assert_eq!(sealed_key_id(&other_version), None);
        assert_eq!(ring.open(&[], b""), Err(CryptoError::MalformedCiphertext));
    }
}
