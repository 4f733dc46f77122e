//! Cryptographic building blocks for Portcullis: small, pure functions over bytes, keys and a
//! current time passed in. No IO, no global state, no clock reads.
//!
//! - [`secret`]: [`SecretString`] and [`SecretBytes`], redacted in logs and zeroized on drop;
//! - [`hash`], [`random`], [`compare`]: SHA-256, secure randomness, constant-time comparison;
//! - [`pkce`]: RFC 7636 `S256` challenges;
//! - [`envelope`]: AES-256-GCM envelope encryption for secrets at rest, with a rotating key ring
//!   and ciphertexts bound to their rows;
//! - [`jws`]: JWK sets, pre-parsed verification keys, signing keys, and JWT parsing and
//!   validation (asymmetric algorithms only).
//!
//! The backend is AWS-LC, through `aws-lc-rs`.

pub mod compare;
mod encoding;
pub mod envelope;
mod error;
pub mod hash;
pub mod jws;
pub mod password;
pub mod pkce;
pub mod random;
pub mod secret;

pub use compare::constant_time_eq;
pub use error::CryptoError;
pub use hash::sha256;
pub use random::{random_bytes, random_token};
pub use secret::{SecretBytes, SecretString};

#[cfg(test)]
mod tests {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn shared_types_are_send_and_sync() {
        assert_send_sync::<crate::envelope::KeyRing>();
        assert_send_sync::<crate::envelope::MasterKey>();
        assert_send_sync::<crate::envelope::DataKey>();
        assert_send_sync::<crate::jws::KeySet>();
        assert_send_sync::<crate::jws::VerifyingKey>();
        assert_send_sync::<crate::jws::SigningKey>();
        assert_send_sync::<crate::jws::Unverified>();
        assert_send_sync::<crate::SecretString>();
        assert_send_sync::<crate::SecretBytes>();
    }
}
