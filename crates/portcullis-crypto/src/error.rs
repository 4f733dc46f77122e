//! Errors of the envelope-encryption and master-key functions.

/// Why sealing, opening, wrapping or parsing key material failed.
///
/// Messages never contain key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// Authenticated decryption failed: wrong key, wrong associated data (the ciphertext was
    /// moved to another row) or a modified ciphertext. Deliberately one variant for all three.
    #[error("decryption failed: the ciphertext, its associated data or the key does not match")]
    Decrypt,
    /// Encryption failed inside the cryptographic library (for example an absurdly large input).
    #[error("encryption failed")]
    Encrypt,
    /// The ciphertext names a data key that this key ring does not hold; load it and retry.
    #[error("the ciphertext was sealed under data key {id}, which is not loaded")]
    UnknownDataKey {
        /// The data key id written in the ciphertext.
        id: u32,
    },
    /// The bytes are too short or start with an unknown format version.
    #[error("the ciphertext is truncated or in an unknown format")]
    MalformedCiphertext,
    /// A wrapped data key names a master key that is not configured.
    #[error("the data key was wrapped under master key `{id}`, which is not available")]
    UnknownMasterKey {
        /// The master key id written in the wrapped key.
        id: String,
    },
    /// One entry of a master key list could not be parsed.
    #[error("master key entry {entry} is invalid: {reason}")]
    InvalidMasterKey {
        /// The entry's position in the list, counting from 1.
        entry: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two master keys share one id.
    #[error("master key id `{id}` appears more than once")]
    DuplicateMasterKeyId {
        /// The repeated id.
        id: String,
    },
    /// The master key list holds no key.
    #[error("no master key is configured")]
    NoMasterKey,
}

impl CryptoError {
    /// A stable `snake_case` code for logs and audit records.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Decrypt => "decrypt_failed",
            Self::Encrypt => "encrypt_failed",
            Self::UnknownDataKey { .. } => "unknown_data_key",
            Self::MalformedCiphertext => "malformed_ciphertext",
            Self::UnknownMasterKey { .. } => "unknown_master_key",
            Self::InvalidMasterKey { .. } => "invalid_master_key",
            Self::DuplicateMasterKeyId { .. } => "duplicate_master_key_id",
            Self::NoMasterKey => "no_master_key",
        }
    }
}
