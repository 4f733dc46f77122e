//! Password hashing: argon2id with the parameters OWASP recommends (19 MiB, 2 passes, one lane),
//! stored as a PHC string, so that stronger parameters can come later and old hashes still verify.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::random::random_bytes;

/// A PHC string of a valid argon2id hash of a password no one knows: verified against when the
/// user does not exist, so that an unknown user takes as long to refuse as a wrong password.
pub const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$k7a8wNeFwZ+pa1uEd9+Cx+W3BEJTMFV9SPi4sNSj9jQ";

fn hasher() -> Argon2<'static> {
    #[expect(
        clippy::expect_used,
        reason = "constant parameters within argon2's documented bounds"
    )]
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password with a fresh random salt; returns the PHC string.
///
/// # Errors
/// Only if argon2 refuses the input (a password longer than 2^32 bytes).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| e.to_string())?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches the PHC string `stored` (argon2's comparison is constant-time).
/// A malformed stored hash matches nothing.
#[must_use]
pub fn verify_password(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    hasher()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsE", &h));
        assert_ne!(h, hash_password("correct horse").unwrap(), "salted");
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn the_decoy_hash_is_a_valid_hash_of_nothing_guessable() {
        assert!(PasswordHash::new(DECOY_HASH).is_ok());
        assert!(!verify_password("", DECOY_HASH));
        assert!(!verify_password("password", DECOY_HASH));
    }
}
