//! Public keys, parsed once, pinned to the algorithms they may verify.

use std::fmt;

use aws_lc_rs::signature::{
    self, EcdsaVerificationAlgorithm, EdDSAParameters, ParsedPublicKey, RsaParameters,
    RsaPublicKeyComponents,
};

use super::algorithm::Algorithm;
use super::error::{JwsError, truncated};
use super::jwk::{Jwk, required};
use crate::encoding::b64url_decode;

static RS256: RsaParameters = signature::RSA_PKCS1_2048_8192_SHA256;
static RS384: RsaParameters = signature::RSA_PKCS1_2048_8192_SHA384;
static RS512: RsaParameters = signature::RSA_PKCS1_2048_8192_SHA512;
static PS256: RsaParameters = signature::RSA_PSS_2048_8192_SHA256;
static PS384: RsaParameters = signature::RSA_PSS_2048_8192_SHA384;
static PS512: RsaParameters = signature::RSA_PSS_2048_8192_SHA512;
static ES256: EcdsaVerificationAlgorithm = signature::ECDSA_P256_SHA256_FIXED;
static ES384: EcdsaVerificationAlgorithm = signature::ECDSA_P384_SHA384_FIXED;
static ED25519: EdDSAParameters = signature::ED25519;

/// The smallest RSA modulus accepted, in bits (RFC 7518 section 3.3 requires 2048).
pub(crate) const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus accepted, in bits (the verifier's limit).
pub(crate) const MAX_RSA_BITS: usize = 8192;

/// The kind of a verification key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyType {
    /// An RSA key with a modulus of `bits` bits.
    Rsa {
        /// Modulus length in bits.
        bits: usize,
    },
    /// An ECDSA key on NIST P-256.
    EcP256,
    /// An ECDSA key on NIST P-384.
    EcP384,
    /// An Ed25519 key.
    Ed25519,
}

/// A public key ready to verify JWS signatures, built once from a JWK.
///
/// The key is parsed when it is built, once per algorithm it allows, so verification does no
/// parsing. The algorithms it allows are fixed by its type and curve (an RSA key: `RS*` and
/// `PS*`; a P-256 key: `ES256`; a P-384 key: `ES384`; an Ed25519 key: `EdDSA`) and narrowed to
/// one by the JWK `alg` member when present.
pub struct VerifyingKey {
    kid: Option<String>,
    key_type: KeyType,
    // INVARIANT: non-empty, one entry per allowed algorithm, each parsed for its algorithm.
    keys: Vec<(Algorithm, ParsedPublicKey)>,
}

impl VerifyingKey {
    /// Builds a verification key from a public JWK.
    ///
    /// # Errors
    /// - [`JwsError::NotForSignatures`] when `use` is not `sig` or `key_ops` lacks `verify`;
    /// - [`JwsError::UnsupportedKeyType`], [`JwsError::UnsupportedCurve`],
    ///   [`JwsError::UnsupportedAlgorithm`] for what this crate does not verify (including every
    ///   symmetric `oct` key);
    /// - [`JwsError::AlgorithmMismatch`] when the JWK `alg` does not fit its type or curve;
    /// - [`JwsError::RsaKeySize`] for an RSA modulus outside 2048 to 8192 bits;
    /// - [`JwsError::InvalidKey`] for missing, badly encoded or invalid key material.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, JwsError> {
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err(JwsError::NotForSignatures);
        }
        if jwk
            .key_ops
            .as_ref()
            .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
        {
            return Err(JwsError::NotForSignatures);
        }
        let pinned = jwk
            .alg
            .as_deref()
            .map(|name| {
                Algorithm::from_name(name).ok_or_else(|| JwsError::UnsupportedAlgorithm {
                    alg: truncated(name),
                })
            })
            .transpose()?;

        let (key_type, keys) = match jwk.kty.as_str() {
            "RSA" => rsa_keys(jwk, pinned)?,
            "EC" => ec_key(jwk, pinned)?,
            "OKP" => okp_key(jwk, pinned)?,
            other => {
                return Err(JwsError::UnsupportedKeyType {
                    kty: truncated(other),
                });
            }
        };
        Ok(Self {
            kid: jwk.kid.clone(),
            key_type,
            keys,
        })
    }

    /// The key id from the JWK, if any.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The key's type and size.
    #[must_use]
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// Whether the key may verify signatures made with `alg`.
    #[must_use]
    pub fn allows(&self, alg: Algorithm) -> bool {
        self.keys.iter().any(|(allowed, _)| *allowed == alg)
    }

    /// The algorithms the key may verify.
    pub fn algorithms(&self) -> impl Iterator<Item = Algorithm> + '_ {
        self.keys.iter().map(|(alg, _)| *alg)
    }

    /// Verifies `signature` over `message` with `alg` (the bare JWS check: `message` is the
    /// signing input `header.payload`, `signature` the decoded third segment).
    ///
    /// # Errors
    /// [`JwsError::AlgorithmMismatch`] when the key does not allow `alg`;
    /// [`JwsError::BadSignature`] when the signature does not verify.
    pub fn verify_signature(
        &self,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), JwsError> {
        let (_, key) = self
            .keys
            .iter()
            .find(|(allowed, _)| *allowed == alg)
            .ok_or(JwsError::AlgorithmMismatch { alg })?;
        key.verify_sig(message, signature)
            .map_err(|_| JwsError::BadSignature)
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algorithms: Vec<Algorithm> = self.algorithms().collect();
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("key_type", &self.key_type)
            .field("algorithms", &algorithms)
            .finish()
    }
}

type Parsed = (KeyType, Vec<(Algorithm, ParsedPublicKey)>);

/// The algorithms a key may use: the family its type allows, or just the pinned one.
fn allowed(family: &[Algorithm], pinned: Option<Algorithm>) -> Result<Vec<Algorithm>, JwsError> {
    match pinned {
        None => Ok(family.to_vec()),
        Some(alg) if family.contains(&alg) => Ok(vec![alg]),
        Some(alg) => Err(JwsError::AlgorithmMismatch { alg }),
    }
}

fn decode(member: Option<&str>, missing: &'static str) -> Result<Vec<u8>, JwsError> {
    b64url_decode(required(member, missing)?).ok_or(JwsError::InvalidKey {
        reason: "a key member is not base64url",
    })
}

fn rsa_params(alg: Algorithm) -> Option<&'static RsaParameters> {
    match alg {
        Algorithm::RS256 => Some(&RS256),
        Algorithm::RS384 => Some(&RS384),
        Algorithm::RS512 => Some(&RS512),
        Algorithm::PS256 => Some(&PS256),
        Algorithm::PS384 => Some(&PS384),
        Algorithm::PS512 => Some(&PS512),
        Algorithm::ES256 | Algorithm::ES384 | Algorithm::EdDSA => None,
    }
}

/// The bit length of a big-endian unsigned integer without leading zero bytes.
pub(crate) fn bit_len(be: &[u8]) -> usize {
    match be.first() {
        None => 0,
        Some(&first) => (be.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

fn rsa_keys(jwk: &Jwk, pinned: Option<Algorithm>) -> Result<Parsed, JwsError> {
    let algorithms = allowed(&Algorithm::RSA, pinned)?;
    let n = decode(jwk.n.as_deref(), "the `n` member is missing")?;
    let e = decode(jwk.e.as_deref(), "the `e` member is missing")?;
    // RFC 7518 asks for minimal encodings; some publishers add a zero byte, which is harmless.
    let n = strip_leading_zeros(&n);
    let e = strip_leading_zeros(&e);
    let bits = bit_len(n);
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(JwsError::RsaKeySize { bits });
    }
    // A usable public exponent is odd, at least 3, and small (every real key uses 65537).
    if e.len() > 4 || e.last().is_none_or(|last| last & 1 == 0) || e == [1] {
        return Err(JwsError::InvalidKey {
            reason: "the RSA public exponent is not acceptable",
        });
    }
    if n.last().is_none_or(|last| last & 1 == 0) {
        return Err(JwsError::InvalidKey {
            reason: "the RSA modulus is even",
        });
    }
    let components = RsaPublicKeyComponents { n, e };
    let mut keys = Vec::with_capacity(algorithms.len());
    for alg in algorithms {
        let params = rsa_params(alg).ok_or(JwsError::AlgorithmMismatch { alg })?;
        let parsed = components
            .to_parsed_public_key(params)
            .map_err(|_| JwsError::InvalidKey {
                reason: "the RSA public key is not valid",
            })?;
        keys.push((alg, parsed));
    }
    Ok((KeyType::Rsa { bits }, keys))
}

fn ec_key(jwk: &Jwk, pinned: Option<Algorithm>) -> Result<Parsed, JwsError> {
    let crv = required(jwk.crv.as_deref(), "the `crv` member is missing")?;
    let (key_type, alg, verifier, len): (_, _, &'static EcdsaVerificationAlgorithm, _) = match crv {
        "P-256" => (KeyType::EcP256, Algorithm::ES256, &ES256, 32),
        "P-384" => (KeyType::EcP384, Algorithm::ES384, &ES384, 48),
        other => {
            return Err(JwsError::UnsupportedCurve {
                crv: truncated(other),
            });
        }
    };
    allowed(&[alg], pinned)?;
    let x = decode(jwk.x.as_deref(), "the `x` member is missing")?;
    let y = decode(jwk.y.as_deref(), "the `y` member is missing")?;
    if x.len() != len || y.len() != len {
        return Err(JwsError::InvalidKey {
            reason: "an EC coordinate does not have the curve's length",
        });
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    let parsed = ParsedPublicKey::new(verifier, &point).map_err(|_| JwsError::InvalidKey {
        reason: "the EC point is not on the curve",
    })?;
    Ok((key_type, vec![(alg, parsed)]))
}

fn okp_key(jwk: &Jwk, pinned: Option<Algorithm>) -> Result<Parsed, JwsError> {
    let crv = required(jwk.crv.as_deref(), "the `crv` member is missing")?;
    if crv != "Ed25519" {
        return Err(JwsError::UnsupportedCurve {
            crv: truncated(crv),
        });
    }
    allowed(&[Algorithm::EdDSA], pinned)?;
    let x = decode(jwk.x.as_deref(), "the `x` member is missing")?;
    if x.len() != 32 {
        return Err(JwsError::InvalidKey {
            reason: "an Ed25519 public key is 32 bytes long",
        });
    }
    let parsed = ParsedPublicKey::new(&ED25519, &x).map_err(|_| JwsError::InvalidKey {
        reason: "the Ed25519 public key is not valid",
    })?;
    Ok((KeyType::Ed25519, vec![(Algorithm::EdDSA, parsed)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_len(&[]), 0);
        assert_eq!(bit_len(&[1]), 1);
        assert_eq!(bit_len(&[0x80]), 8);
        assert_eq!(bit_len(&[0x01, 0x00]), 9);
        let mut n = vec![0xff; 256];
        assert_eq!(bit_len(&n), 2048);
        n[0] = 0x7f;
        assert_eq!(bit_len(&n), 2047);
        assert_eq!(strip_leading_zeros(&[0, 0, 1, 0]), &[1, 0]);
        assert_eq!(strip_leading_zeros(&[0, 0]), &[] as &[u8]);
    }

    #[test]
    fn pinning() {
        assert_eq!(allowed(&Algorithm::RSA, None).unwrap().len(), 6);
        assert_eq!(
            allowed(&Algorithm::RSA, Some(Algorithm::PS384)).unwrap(),
            vec![Algorithm::PS384]
        );
        assert_eq!(
            allowed(&[Algorithm::ES256], Some(Algorithm::RS256)),
            Err(JwsError::AlgorithmMismatch {
                alg: Algorithm::RS256
            })
        );
    }
}
