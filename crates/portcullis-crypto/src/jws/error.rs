//! Errors of JWK handling, signature verification and token validation.

use std::fmt;

use super::algorithm::Algorithm;

/// Why a key could not be used, or a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwsError {
    /// The JWK `kty` is not one this crate verifies with (`oct` keys are never accepted).
    #[error("key type `{kty}` is not supported")]
    UnsupportedKeyType {
        /// The `kty` member, shortened.
        kty: String,
    },
    /// The JWK `crv` is not supported for its key type.
    #[error("curve `{crv}` is not supported")]
    UnsupportedCurve {
        /// The `crv` member, shortened.
        crv: String,
    },
    /// The algorithm name is not a supported asymmetric JWS algorithm.
    #[error("algorithm `{alg}` is not supported")]
    UnsupportedAlgorithm {
        /// The algorithm name, shortened.
        alg: String,
    },
    /// The key cannot be used with this algorithm (for its type, its curve or its JWK `alg`).
    #[error("algorithm {alg} cannot be used with this key")]
    AlgorithmMismatch {
        /// The requested algorithm.
        alg: Algorithm,
    },
    /// The JWK is marked for another use than signatures (`use` or `key_ops`).
    #[error("the key is not meant for verifying signatures")]
    NotForSignatures,
    /// The RSA modulus is outside 2048 to 8192 bits.
    #[error("an RSA key of {bits} bits is outside the allowed 2048 to 8192 bits")]
    RsaKeySize {
        /// The modulus length in bits.
        bits: usize,
    },
    /// The key material is missing, badly encoded or not a valid key.
    #[error("the key is invalid: {reason}")]
    InvalidKey {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The key set already holds a key with this id for an overlapping algorithm.
    #[error("another key already has the id `{kid}`")]
    DuplicateKeyId {
        /// The repeated key id, shortened.
        kid: String,
    },
    /// The signature does not verify under the key.
    #[error("the signature does not verify")]
    BadSignature,
    /// The claims to sign are not a JSON object.
    #[error("the claims to sign are not a JSON object")]
    ClaimsNotObject,
    /// The cryptographic library failed to produce a key or a signature.
    #[error("the cryptographic library failed to generate a key or a signature")]
    Internal,
}

impl JwsError {
    /// A stable `snake_case` code for logs and audit records.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedKeyType { .. } => "unsupported_key_type",
            Self::UnsupportedCurve { .. } => "unsupported_curve",
            Self::UnsupportedAlgorithm { .. } => "unsupported_algorithm",
            Self::AlgorithmMismatch { .. } => "algorithm_mismatch",
            Self::NotForSignatures => "not_for_signatures",
            Self::RsaKeySize { .. } => "rsa_key_size",
            Self::InvalidKey { .. } => "invalid_key",
            Self::DuplicateKeyId { .. } => "duplicate_key_id",
            Self::BadSignature => "bad_signature",
            Self::ClaimsNotObject => "claims_not_object",
            Self::Internal => "internal",
        }
    }
}

/// Why a token was rejected. Each variant has a stable [`JwtError::code`] for logs and audit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// The token is longer than the caller's limit; nothing else was looked at.
    #[error("the token is longer than the allowed {max_len} bytes")]
    Oversized {
        /// The limit that was exceeded.
        max_len: usize,
    },
    /// The token is not a well-formed compact JWS carrying a JSON object.
    #[error("the token is malformed: {0}")]
    Malformed(Malformation),
    /// The header names an algorithm this crate does not verify (`none`, HMAC, unknown).
    #[error("the token algorithm `{alg}` is not supported")]
    UnsupportedAlgorithm {
        /// The header's `alg`, shortened.
        alg: String,
    },
    /// The algorithm is supported but not allowed here: not in the validation's list, or not
    /// usable with the key.
    #[error("the token algorithm {alg} is not allowed")]
    AlgorithmNotAllowed {
        /// The header's `alg`.
        alg: Algorithm,
    },
    /// No key matches the token's `kid` and algorithm.
    #[error("the token matches no known key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token signature does not verify")]
    BadSignature,
    /// The token has expired (`exp` plus leeway is in the past).
    #[error("the token has expired")]
    Expired,
    /// The token is not valid yet (`nbf` is in the future, beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// The `iss` claim is missing or not the expected issuer.
    #[error("the token issuer is not the expected one")]
    WrongIssuer,
    /// The `aud` claim is missing or names none of the expected audiences.
    #[error("the token audience is not an expected one")]
    WrongAudience,
    /// The `sub` claim is missing, empty or not a string.
    #[error("the token has no subject")]
    MissingSubject,
    /// The `exp` claim is missing.
    #[error("the token has no expiry")]
    MissingExpiry,
    /// The `iat` claim is in the future, beyond the leeway.
    #[error("the token was issued in the future")]
    IssuedInFuture,
    /// The header's `typ` is not the one the issuer is required to send (RFC 8725 §3.11).
    #[error("the token type is not the expected one")]
    WrongType,
}

impl JwtError {
    /// A stable `snake_case` code for logs and audit records.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Oversized { .. } => "oversized",
            Self::Malformed(_) => "malformed",
            Self::UnsupportedAlgorithm { .. } => "unsupported_algorithm",
            Self::AlgorithmNotAllowed { .. } => "algorithm_not_allowed",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingSubject => "missing_subject",
            Self::MissingExpiry => "missing_expiry",
            Self::IssuedInFuture => "issued_in_future",
            Self::WrongType => "wrong_type",
        }
    }
}

/// A part of a compact JWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPart {
    /// The protected header.
    Header,
    /// The payload (the claims).
    Payload,
    /// The signature.
    Signature,
}

impl fmt::Display for TokenPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Header => "header",
            Self::Payload => "payload",
            Self::Signature => "signature",
        })
    }
}

/// What exactly is malformed in a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformation {
    /// Not exactly three dot-separated segments.
    #[error("it does not have exactly three segments")]
    SegmentCount,
    /// A segment is not strict base64url (no padding, no whitespace, canonical).
    #[error("the {0} is not strict base64url")]
    Base64(TokenPart),
    /// A segment is not valid JSON.
    #[error("the {0} is not valid JSON")]
    Json(TokenPart),
    /// A segment is JSON but not an object.
    #[error("the {0} is not a JSON object")]
    NotObject(TokenPart),
    /// A JSON object has the same member twice.
    #[error("the {0} has a duplicate member")]
    DuplicateMember(TokenPart),
    /// The header has no `alg` string.
    #[error("the header has no algorithm")]
    MissingAlgorithm,
    /// A header member has the wrong JSON type.
    #[error("the header member `{0}` is not a string")]
    HeaderMember(&'static str),
    /// The header has `crit`: no extension is understood, so RFC 7515 requires rejection.
    #[error("the header lists critical extensions, and none is understood")]
    CriticalHeader,
    /// The header has `b64` (RFC 7797 unencoded payload), which is not supported.
    #[error("the header asks for an unencoded payload")]
    UnencodedPayload,
    /// A registered claim has the wrong JSON type.
    #[error("the claim `{0}` has the wrong type")]
    Claim(&'static str),
}

/// `value` cut to at most 64 bytes (on a character boundary), for attacker-controlled strings
/// carried in errors.
pub(crate) fn truncated(value: &str) -> String {
    const MAX: usize = 64;
    if value.len() <= MAX {
        return value.to_owned();
    }
    let mut end = MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &value[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncated("HS256"), "HS256");
        assert_eq!(truncated(&"a".repeat(64)), "a".repeat(64));
        assert_eq!(truncated(&"a".repeat(80)), format!("{}…", "a".repeat(64)));
        let s = format!("{}é", "a".repeat(63));
        assert_eq!(
            truncated(&format!("{s}zzz")),
            format!("{}…", "a".repeat(63))
        );
    }

    #[test]
    fn codes_are_distinct() {
        let errors = [
            JwtError::Oversized { max_len: 1 },
            JwtError::Malformed(Malformation::SegmentCount),
            JwtError::UnsupportedAlgorithm { alg: "x".into() },
            JwtError::AlgorithmNotAllowed {
                alg: Algorithm::RS256,
            },
            JwtError::UnknownKey,
            JwtError::BadSignature,
            JwtError::Expired,
            JwtError::NotYetValid,
            JwtError::WrongIssuer,
            JwtError::WrongAudience,
            JwtError::MissingSubject,
            JwtError::MissingExpiry,
            JwtError::IssuedInFuture,
            JwtError::WrongType,
        ];
        let mut codes: Vec<&str> = errors.iter().map(JwtError::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), errors.len());
        for e in &errors {
            let message = e.to_string();
            assert!(message.starts_with("the token"), "{message}");
        }
    }
}
