//! Master keys: the operator's key-encryption keys, which wrap data keys.

use std::collections::HashSet;
use std::fmt;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce};
use zeroize::Zeroizing;

use super::key_ring::DataKey;
use super::{KEY_LEN, NONCE_LEN, TAG_LEN, aad, aes_key};
use crate::encoding::{b64_decode_lenient, b64_encode_standard};
use crate::error::CryptoError;
use crate::random;
use crate::secret::SecretString;

/// The first byte of a wrapped data key: the format version.
const WRAP_V1: u8 = 0x01;
/// The longest master key id.
const MAX_ID_LEN: usize = 64;
/// Domain separation for the associated data of wrapped keys.
const WRAP_LABEL: &str = "portcullis/data-key/v1";

/// A key-encryption key supplied by the operator, with an id that is written into every data key
/// it wraps.
///
/// The text form, used in configuration, is `id:base64(32 bytes)`; see [`MasterKey::parse_ring`].
pub struct MasterKey {
    id: String,
    bytes: Zeroizing<[u8; KEY_LEN]>,
    key: LessSafeKey,
}

impl MasterKey {
    /// A new random master key (for a development setup that writes its own key file).
    ///
    /// # Errors
    /// [`CryptoError::InvalidMasterKey`] when `id` is empty, longer than 64 bytes, or has a
    /// character other than ASCII letters, digits, `-`, `_` and `.`.
    pub fn generate(id: impl Into<String>) -> Result<Self, CryptoError> {
        let id = id.into();
        check_id(&id).map_err(|reason| CryptoError::InvalidMasterKey { entry: 1, reason })?;
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        random::fill(bytes.as_mut_slice());
        Ok(Self::from_parts(id, bytes))
    }

    fn from_parts(id: String, bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        let key = aes_key(&bytes);
        Self { id, bytes, key }
    }

    /// Parses a master key ring: one `id:base64(32 bytes)` entry per line or comma-separated, in
    /// standard or URL-safe base64, padded or not. Blank entries and `#` comments are ignored.
    /// The first key is the active one (it wraps new data keys); the others only unwrap.
    ///
    /// # Errors
    /// - [`CryptoError::InvalidMasterKey`] for an entry without `:`, a bad id, bad base64 or a key
    ///   that is not 32 bytes (the message names the entry's position, never its key);
    /// - [`CryptoError::DuplicateMasterKeyId`] when two entries share an id;
    /// - [`CryptoError::NoMasterKey`] when there is no entry at all.
    pub fn parse_ring(text: &str) -> Result<Vec<MasterKey>, CryptoError> {
        let mut keys = Vec::new();
        let mut seen = HashSet::new();
        let entries = text
            .lines()
            .map(|line| line.split_once('#').map_or(line, |(before, _)| before))
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .filter(|entry| !entry.is_empty());
        for (index, entry) in entries.enumerate() {
            let key = Self::parse_entry(entry).map_err(|reason| CryptoError::InvalidMasterKey {
                entry: index + 1,
                reason,
            })?;
            if !seen.insert(key.id.clone()) {
                return Err(CryptoError::DuplicateMasterKeyId { id: key.id });
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(CryptoError::NoMasterKey);
        }
        Ok(keys)
    }

    fn parse_entry(entry: &str) -> Result<Self, &'static str> {
        let (id, encoded) = entry.split_once(':').ok_or("expected `id:base64-key`")?;
        let id = id.trim();
        check_id(id)?;
        let decoded = Zeroizing::new(
            b64_decode_lenient(encoded.trim()).ok_or("the key is not valid base64")?,
        );
        if decoded.len() != KEY_LEN {
            return Err("the key must be 32 bytes (256 bits) long");
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        bytes.copy_from_slice(&decoded);
        Ok(Self::from_parts(id.to_owned(), bytes))
    }

    /// The key's id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key in its text form, `id:base64(32 bytes)` (standard base64), as
    /// [`MasterKey::parse_ring`] reads it.
    #[must_use]
    pub fn encode(&self) -> SecretString {
        SecretString::new(format!("{}:{}", self.id, b64_encode_standard(&*self.bytes)))
    }

    /// Encrypts `data_key` under this master key, binding the data key's id and this master key's
    /// id: `0x01 | id length (1 byte) | master key id | nonce (12) | encrypted key (32) | tag (16)`.
    ///
    /// # Errors
    /// [`CryptoError::Encrypt`] if the cryptographic library refuses (not expected to happen).
    pub fn wrap(&self, data_key: &DataKey) -> Result<Vec<u8>, CryptoError> {
        let id_len = u8::try_from(self.id.len()).map_err(|_| CryptoError::Encrypt)?;
        let nonce = random::random_bytes::<NONCE_LEN>();
        let mut body = Zeroizing::new(data_key.bytes().to_vec());
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(wrap_aad(&self.id, data_key.id())),
                body.as_mut_slice(),
            )
            .map_err(|_| CryptoError::Encrypt)?;

        let mut out = Vec::with_capacity(2 + self.id.len() + NONCE_LEN + KEY_LEN + TAG_LEN);
        out.push(WRAP_V1);
        out.push(id_len);
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Decrypts a data key wrapped by [`MasterKey::wrap`]; `id` must be the data key id it was
    /// wrapped with.
    ///
    /// # Errors
    /// - [`CryptoError::UnknownMasterKey`] when another master key wrapped it;
    /// - [`CryptoError::MalformedCiphertext`] when the bytes are not a wrapped key;
    /// - [`CryptoError::Decrypt`] when `id` is not the one it was wrapped with, or the bytes were
    ///   modified.
    pub fn unwrap(&self, id: u32, wrapped: &[u8]) -> Result<DataKey, CryptoError> {
        let parts = WrappedKey::parse(wrapped).ok_or(CryptoError::MalformedCiphertext)?;
        if parts.master_key_id != self.id {
            return Err(CryptoError::UnknownMasterKey {
                id: parts.master_key_id.to_owned(),
            });
        }
        let nonce =
            Nonce::try_assume_unique_for_key(parts.nonce).map_err(|_| CryptoError::Decrypt)?;
        let mut buf = Zeroizing::new(parts.body.to_vec());
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(wrap_aad(&self.id, id)), buf.as_mut_slice())
            .map_err(|_| CryptoError::Decrypt)?;
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        if plain.len() != KEY_LEN {
            return Err(CryptoError::MalformedCiphertext);
        }
        bytes.copy_from_slice(plain);
        Ok(DataKey::from_bytes(id, bytes))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The id of the master key that wrapped `wrapped`, read without decrypting; `None` when the
/// bytes are not a wrapped key.
#[must_use]
pub fn wrapped_master_key_id(wrapped: &[u8]) -> Option<&str> {
    WrappedKey::parse(wrapped).map(|parts| parts.master_key_id)
}

/// Unwraps the data key `id` with whichever master key of `ring` wrapped it.
///
/// # Errors
/// As [`MasterKey::unwrap`]; [`CryptoError::UnknownMasterKey`] when no key of `ring` has the id
/// written in `wrapped`.
pub fn unwrap_data_key(
    ring: &[MasterKey],
    id: u32,
    wrapped: &[u8],
) -> Result<DataKey, CryptoError> {
    let master_id = wrapped_master_key_id(wrapped).ok_or(CryptoError::MalformedCiphertext)?;
    let master = ring.iter().find(|key| key.id == master_id).ok_or_else(|| {
        CryptoError::UnknownMasterKey {
            id: master_id.to_owned(),
        }
    })?;
    master.unwrap(id, wrapped)
}

struct WrappedKey<'a> {
    master_key_id: &'a str,
    nonce: &'a [u8],
    body: &'a [u8],
}

impl<'a> WrappedKey<'a> {
    fn parse(bytes: &'a [u8]) -> Option<Self> {
        let (&version, rest) = bytes.split_first()?;
        let (&id_len, rest) = rest.split_first()?;
        if version != WRAP_V1 || rest.len() != usize::from(id_len) + NONCE_LEN + KEY_LEN + TAG_LEN {
            return None;
        }
        let (id, rest) = rest.split_at(usize::from(id_len));
        let (nonce, body) = rest.split_at(NONCE_LEN);
        Some(Self {
            master_key_id: std::str::from_utf8(id).ok()?,
            nonce,
            body,
        })
    }
}

fn wrap_aad(master_key_id: &str, data_key_id: u32) -> Vec<u8> {
    aad(&[WRAP_LABEL, master_key_id, &data_key_id.to_string()])
}

fn check_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("the key id is empty");
    }
    if id.len() > MAX_ID_LEN {
        return Err("the key id is longer than 64 characters");
    }
    if !id
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return Err("the key id may only hold ASCII letters, digits, `-`, `_` and `.`");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_key() {
        let key = MasterKey::generate("k1").unwrap();
        assert_eq!(format!("{key:?}"), "MasterKey { id: \"k1\", .. }");
        assert_eq!(format!("{:?}", key.encode()), "[redacted]");
    }

    #[test]
    fn generate_checks_the_id() {
        assert!(MasterKey::generate("").is_err());
        assert!(MasterKey::generate("a:b").is_err());
        assert!(MasterKey::generate("x".repeat(65)).is_err());
        assert!(MasterKey::generate("x".repeat(64)).is_ok());
        assert!(MasterKey::generate("prod-2026.01_a").is_ok());
    }

    #[test]
    fn wrapped_layout() {
        let master = MasterKey::generate("m1").unwrap();
        let wrapped = master.wrap(&DataKey::generate(5)).unwrap();
        assert_eq!(wrapped.len(), 2 + 2 + 12 + 32 + 16);
        assert_eq!(&wrapped[..4], &[0x01, 2, b'm', b'1']);
        assert_eq!(wrapped_master_key_id(&wrapped), Some("m1"));
        assert_eq!(wrapped_master_key_id(&wrapped[1..]), None);
        assert_eq!(wrapped_master_key_id(&wrapped[..wrapped.len() - 1]), None);
    }
}
