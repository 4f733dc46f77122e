//! Envelope encryption for secrets at rest.
//!
//! Two levels of keys:
//! - a [`MasterKey`] (key-encryption key) comes from the operator (a file or an environment
//!   variable) and never sits beside the data;
//! - [`DataKey`]s (data-encryption keys) are random AES-256-GCM keys, stored in the database
//!   wrapped under a master key, and held unwrapped in a [`KeyRing`] at run time.
//!
//! Every ciphertext carries the id of the data key that sealed it, so keys rotate without
//! downtime: new data is sealed under the active key while older keys still open older rows.
//! Callers bind each ciphertext to its row with [`aad`], so a ciphertext copied into another row
//! fails to open.

mod key_ring;
mod master_key;

use aws_lc_rs::aead::{AES_256_GCM, LessSafeKey, UnboundKey};

pub use key_ring::{DataKey, KeyRing, Sealed, sealed_key_id};
pub use master_key::{MasterKey, unwrap_data_key, wrapped_master_key_id};

/// The AES-256 key length in bytes.
pub(crate) const KEY_LEN: usize = 32;
/// The AES-GCM nonce length in bytes.
pub(crate) const NONCE_LEN: usize = 12;
/// The AES-GCM tag length in bytes.
pub(crate) const TAG_LEN: usize = 16;

/// Canonical associated data from `parts`: each part as its length (8 bytes, big-endian) followed
/// by its bytes, so no two different lists of parts give the same bytes (`["ab", "c"]` and
/// `["a", "bc"]` differ). Bind a ciphertext to its row with it, for example
/// `aad(&["connection", id, app, user, tenant, "access"])`.
#[must_use]
pub fn aad(parts: &[&str]) -> Vec<u8> {
    let len = parts.iter().map(|p| 8 + p.len()).sum();
    let mut out = Vec::with_capacity(len);
    for part in parts {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// An AES-256-GCM key ready for use.
pub(crate) fn aes_key(bytes: &[u8; KEY_LEN]) -> LessSafeKey {
    #[expect(
        clippy::expect_used,
        reason = "AES-256-GCM accepts every 32-byte key, and the array type guarantees the length"
    )]
    let key = UnboundKey::new(&AES_256_GCM, bytes).expect("a 32-byte key is a valid AES-256 key");
    LessSafeKey::new(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aad_is_unambiguous() {
        assert_ne!(aad(&["ab", "c"]), aad(&["a", "bc"]));
        assert_ne!(aad(&["a", ""]), aad(&["a"]));
        assert_ne!(aad(&[""]), aad(&[]));
        assert_eq!(aad(&["x", "y"]), aad(&["x", "y"]));
        assert_eq!(
            aad(&["ab"]),
            [0, 0, 0, 0, 0, 0, 0, 2, b'a', b'b'],
            "the encoding is part of the storage format and must not change"
        );
    }
}
