//! PKCE (RFC 7636), `S256` only: the `plain` method offers no protection and OAuth 2.1 and the
//! MCP authorization specification forbid it.

use crate::compare::constant_time_eq;
use crate::encoding::b64url_encode;
use crate::hash::sha256;
use crate::random::random_token;
use crate::secret::SecretString;

/// The shortest code verifier RFC 7636 allows.
pub const MIN_VERIFIER_LEN: usize = 43;
/// The longest code verifier RFC 7636 allows.
pub const MAX_VERIFIER_LEN: usize = 128;

/// A fresh code verifier: 32 random bytes in base64url, 43 characters.
#[must_use]
pub fn new_verifier() -> SecretString {
    SecretString::new(random_token(32))
}

/// Whether `verifier` is a well-formed code verifier: 43 to 128 characters of the unreserved set
/// `[A-Z] [a-z] [0-9] - . _ ~`.
#[must_use]
pub fn is_valid_verifier(verifier: &str) -> bool {
    (MIN_VERIFIER_LEN..=MAX_VERIFIER_LEN).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~'))
}

/// The `S256` code challenge of `verifier`: `BASE64URL(SHA256(ASCII(verifier)))`.
#[must_use]
pub fn challenge_s256(verifier: &str) -> String {
    b64url_encode(&sha256(verifier.as_bytes()))
}

/// Whether `verifier` is well-formed and its `S256` challenge equals `challenge`, compared in
/// constant time.
#[must_use]
pub fn verify_s256(verifier: &str, challenge: &str) -> bool {
    if !is_valid_verifier(verifier) {
        return false;
    }
    constant_time_eq(challenge_s256(verifier).as_bytes(), challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636, Appendix B.
    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b() {
        assert_eq!(challenge_s256(RFC_VERIFIER), RFC_CHALLENGE);
        assert!(verify_s256(RFC_VERIFIER, RFC_CHALLENGE));
    }

    #[test]
    fn wrong_verifier_or_challenge_fails() {
        let mut other = RFC_VERIFIER.to_owned();
        other.replace_range(0..1, "e");
        assert!(!verify_s256(&other, RFC_CHALLENGE));
        assert!(!verify_s256(RFC_VERIFIER, &RFC_CHALLENGE[1..]));
        assert!(!verify_s256(RFC_VERIFIER, ""));
    }

    #[test]
    fn verifier_shape_is_enforced_even_when_the_challenge_matches() {
        for verifier in [
            "a".repeat(42),
            "a".repeat(129),
            format!("{}+", "a".repeat(42)),
            format!("{} ", "a".repeat(42)),
            format!("{}é", "a".repeat(41)),
        ] {
            let challenge = challenge_s256(&verifier);
            assert!(!verify_s256(&verifier, &challenge), "{verifier:?}");
        }
        for verifier in ["a".repeat(43), "~._-".repeat(32), "Z9".repeat(64)] {
            let challenge = challenge_s256(&verifier);
            assert!(verify_s256(&verifier, &challenge), "{verifier:?}");
        }
    }

    #[test]
    fn new_verifiers_are_valid_and_distinct() {
        let a = new_verifier();
        let b = new_verifier();
        assert_eq!(a.len(), 43);
        assert!(is_valid_verifier(a.expose()));
        assert_ne!(a, b);
        assert!(verify_s256(a.expose(), &challenge_s256(a.expose())));
    }
}
