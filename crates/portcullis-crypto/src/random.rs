//! Randomness from the operating system's generator, through AWS-LC.

use aws_lc_rs::rand;

use crate::encoding::b64url_encode;

/// Fills `buf` with cryptographically secure random bytes.
pub(crate) fn fill(buf: &mut [u8]) {
    #[expect(
        clippy::expect_used,
        reason = "AWS-LC's RAND_bytes aborts the process instead of returning failure, so the error \
                  branch is unreachable; a Result here would only push an impossible case onto every \
                  caller"
    )]
    rand::fill(buf).expect("the system random generator never fails");
}

/// `N` cryptographically secure random bytes.
#[must_use]
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill(&mut out);
    out
}

/// A random, URL-safe token: `n_bytes` random bytes in base64url without padding (32 bytes give a
/// 43-character token with 256 bits of entropy). For session ids, authorization codes, CSRF
/// state and the like.
#[must_use]
pub fn random_token(n_bytes: usize) -> String {
    let mut bytes = zeroize::Zeroizing::new(vec![0u8; n_bytes]);
    fill(&mut bytes);
    b64url_encode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_differ_between_calls() {
        let a = random_bytes::<32>();
        let b = random_bytes::<32>();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
    }

    #[test]
    fn token_length_and_alphabet() {
        let t = random_token(32);
        assert_eq!(t.len(), 43);
        assert!(
            t.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(t, random_token(32));
        assert_eq!(random_token(0), "");
        assert_eq!(random_token(16).len(), 22);
    }
}
