//! Private keys that sign JWS and JWTs (for tests now, for Portcullis's own authorization server
//! later).

use std::fmt;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair as _, RsaEncoding,
    RsaKeyPair,
};
use serde_json::{Map, Value};

use super::algorithm::Algorithm;
use super::error::JwsError;
use super::jwk::Jwk;
use super::verifying_key::{MAX_RSA_BITS, MIN_RSA_BITS, VerifyingKey, bit_len};
use crate::encoding::b64url_encode;
use crate::secret::SecretBytes;

enum Inner {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private signing key bound to one algorithm, with its public JWK and an RFC 7638 thumbprint
/// as key id.
pub struct SigningKey {
    alg: Algorithm,
    inner: Inner,
    kid: String,
    jwk: Jwk,
}

impl SigningKey {
    /// A fresh key for `alg`: RSA 2048 bits for `RS*`/`PS*`, P-256 for `ES256`, P-384 for `ES384`,
    /// Ed25519 for `EdDSA`.
    ///
    /// # Errors
    /// [`JwsError::Internal`] if the cryptographic library fails to generate the key.
    pub fn generate(alg: Algorithm) -> Result<Self, JwsError> {
        let inner = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => {
                Inner::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| JwsError::Internal)?)
            }
            Algorithm::ES256 | Algorithm::ES384 => Inner::Ecdsa(
                EcdsaKeyPair::generate(ecdsa_signing(alg)).map_err(|_| JwsError::Internal)?,
            ),
            Algorithm::EdDSA => {
                Inner::Ed25519(Ed25519KeyPair::generate().map_err(|_| JwsError::Internal)?)
            }
        };
        Self::new(alg, inner)
    }

    /// Loads an unencrypted PKCS#8 (DER) private key for `alg`.
    ///
    /// # Errors
    /// [`JwsError::InvalidKey`] when `der` is not a PKCS#8 key of the kind `alg` needs;
    /// [`JwsError::RsaKeySize`] for an RSA key outside 2048 to 8192 bits.
    pub fn from_pkcs8(alg: Algorithm, der: &[u8]) -> Result<Self, JwsError> {
        let invalid = |_| JwsError::InvalidKey {
            reason: "not a PKCS#8 private key for this algorithm",
        };
        let inner = if alg.is_rsa() {
            let key = RsaKeyPair::from_pkcs8(der).map_err(invalid)?;
            let bits = key.public_modulus_len() * 8;
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                return Err(JwsError::RsaKeySize { bits });
            }
            Inner::Rsa(key)
        } else if alg == Algorithm::EdDSA {
            Inner::Ed25519(Ed25519KeyPair::from_pkcs8(der).map_err(invalid)?)
        } else {
            Inner::Ecdsa(EcdsaKeyPair::from_pkcs8(ecdsa_signing(alg), der).map_err(invalid)?)
        };
        Self::new(alg, inner)
    }

    fn new(alg: Algorithm, inner: Inner) -> Result<Self, JwsError> {
        let mut jwk = public_jwk(&inner)?;
        let kid = jwk.thumbprint()?;
        jwk.alg = Some(alg.as_str().to_owned());
        jwk.use_ = Some("sig".to_owned());
        jwk.kid = Some(kid.clone());
        Ok(Self {
            alg,
            inner,
            kid,
            jwk,
        })
    }

    /// The private key as unencrypted PKCS#8 v1 DER, for storage (encrypt it first).
    ///
    /// # Errors
    /// [`JwsError::Internal`] if the cryptographic library fails to encode it.
    pub fn to_pkcs8(&self) -> Result<SecretBytes, JwsError> {
        let bytes = match &self.inner {
            Inner::Rsa(key) => {
                let der: Pkcs8V1Der<'static> = key.as_der().map_err(|_| JwsError::Internal)?;
                der.as_ref().to_vec()
            }
            Inner::Ecdsa(key) => key
                .to_pkcs8v1()
                .map_err(|_| JwsError::Internal)?
                .as_ref()
                .to_vec(),
            Inner::Ed25519(key) => key
                .to_pkcs8v1()
                .map_err(|_| JwsError::Internal)?
                .as_ref()
                .to_vec(),
        };
        Ok(SecretBytes::new(bytes))
    }

    /// The algorithm this key signs with.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The key id: the RFC 7638 thumbprint of the public key, base64url.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK with `kid`, `alg` and `use: sig`, for publishing in a JWK set.
    #[must_use]
    pub fn public_jwk(&self) -> Jwk {
        self.jwk.clone()
    }

    /// The matching verification key.
    ///
    /// # Errors
    /// Not expected; as [`VerifyingKey::from_jwk`].
    pub fn verifying_key(&self) -> Result<VerifyingKey, JwsError> {
        VerifyingKey::from_jwk(&self.jwk)
    }

    /// Signs `message` (a JWS signing input) and returns the raw JWS signature (for ECDSA the
    /// fixed-length `r || s` form that JWS uses).
    ///
    /// # Errors
    /// [`JwsError::Internal`] if the cryptographic library fails.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JwsError> {
        let rng = SystemRandom::new();
        match &self.inner {
            Inner::Rsa(key) => {
                let mut out = vec![0u8; key.public_modulus_len()];
                key.sign(rsa_encoding(self.alg), &rng, message, &mut out)
                    .map_err(|_| JwsError::Internal)?;
                Ok(out)
            }
            Inner::Ecdsa(key) => Ok(key
                .sign(&rng, message)
                .map_err(|_| JwsError::Internal)?
                .as_ref()
                .to_vec()),
            Inner::Ed25519(key) => Ok(key.sign(message).as_ref().to_vec()),
        }
    }

    /// Signs `claims` as a compact JWT with the header `{"alg", "kid", "typ"?}`.
    ///
    /// # Errors
    /// [`JwsError::ClaimsNotObject`] when `claims` is not a JSON object; [`JwsError::Internal`]
    /// if signing fails.
    pub fn sign_jwt(&self, claims: &Value, typ: Option<&str>) -> Result<String, JwsError> {
        if !claims.is_object() {
            return Err(JwsError::ClaimsNotObject);
        }
        let mut header = Map::new();
        header.insert("alg".into(), Value::from(self.alg.as_str()));
        header.insert("kid".into(), Value::from(self.kid.as_str()));
        if let Some(typ) = typ {
            header.insert("typ".into(), Value::from(typ));
        }
        let mut token = b64url_encode(Value::Object(header).to_string().as_bytes());
        token.push('.');
        token.push_str(&b64url_encode(claims.to_string().as_bytes()));
        let signature = self.sign(token.as_bytes())?;
        token.push('.');
        token.push_str(&b64url_encode(&signature));
        Ok(token)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn ecdsa_signing(alg: Algorithm) -> &'static EcdsaSigningAlgorithm {
    if alg == Algorithm::ES384 {
        &signature::ECDSA_P384_SHA384_FIXED_SIGNING
    } else {
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING
    }
}

fn rsa_encoding(alg: Algorithm) -> &'static dyn RsaEncoding {
    match alg {
        Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_SHA512,
        _ => &signature::RSA_PKCS1_SHA256,
    }
}

fn public_jwk(inner: &Inner) -> Result<Jwk, JwsError> {
    Ok(match inner {
        Inner::Rsa(key) => {
            let public = key.public_key();
            let n = public.modulus().big_endian_without_leading_zero();
            debug_assert!(bit_len(n) >= MIN_RSA_BITS);
            Jwk {
                kty: "RSA".into(),
                n: Some(b64url_encode(n)),
                e: Some(b64url_encode(
                    public.exponent().big_endian_without_leading_zero(),
                )),
                ..Jwk::default()
            }
        }
        Inner::Ecdsa(key) => {
            let point = key.public_key().as_ref();
            // An uncompressed point: 0x04 | x | y.
            let coordinates = point.get(1..).ok_or(JwsError::Internal)?;
            let (x, y) = coordinates.split_at(coordinates.len() / 2);
            let crv = if x.len() == 48 { "P-384" } else { "P-256" };
            Jwk {
                kty: "EC".into(),
                crv: Some(crv.into()),
                x: Some(b64url_encode(x)),
                y: Some(b64url_encode(y)),
                ..Jwk::default()
            }
        }
        Inner::Ed25519(key) => Jwk {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            x: Some(b64url_encode(key.public_key().as_ref())),
            ..Jwk::default()
        },
    })
}
