//! JSON Web Keys (RFC 7517) and their thumbprints (RFC 7638).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::JwsError;
use crate::encoding::b64url_encode;
use crate::hash::sha256;

/// A public JSON Web Key, as published in a JWK set.
///
/// Only the members used for signature verification are kept; unknown members (and any private
/// key members such as `d`) are ignored when deserializing and therefore never stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// Intended use; only keys without it or with `sig` are used.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Permitted operations; when present it must include `verify`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_ops: Option<Vec<String>>,
    /// The one algorithm the key is meant for; pins the key to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Key id, matched against a token's `kid` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Curve, for `EC` (`P-256`, `P-384`) and `OKP` (`Ed25519`) keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// RSA modulus, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// EC x coordinate, or the OKP public key, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

impl Jwk {
    /// The RFC 7638 thumbprint: base64url(SHA-256(the required members, in lexicographic order,
    /// without whitespace)). Stable across re-serializations, so usable as a key id.
    ///
    /// # Errors
    /// [`JwsError::UnsupportedKeyType`] for a `kty` other than `RSA`, `EC`, `OKP`;
    /// [`JwsError::InvalidKey`] when a required member is missing.
    pub fn thumbprint(&self) -> Result<String, JwsError> {
        let canonical = match self.kty.as_str() {
            "RSA" => format!(
                r#"{{"e":{},"kty":"RSA","n":{}}}"#,
                json_string(required(self.e.as_deref(), "the `e` member is missing")?),
                json_string(required(self.n.as_deref(), "the `n` member is missing")?),
            ),
            "EC" => format!(
                r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
                json_string(required(
                    self.crv.as_deref(),
                    "the `crv` member is missing"
                )?),
                json_string(required(self.x.as_deref(), "the `x` member is missing")?),
                json_string(required(self.y.as_deref(), "the `y` member is missing")?),
            ),
            "OKP" => format!(
                r#"{{"crv":{},"kty":"OKP","x":{}}}"#,
                json_string(required(
                    self.crv.as_deref(),
                    "the `crv` member is missing"
                )?),
                json_string(required(self.x.as_deref(), "the `x` member is missing")?),
            ),
            other => {
                return Err(JwsError::UnsupportedKeyType {
                    kty: super::error::truncated(other),
                });
            }
        };
        Ok(b64url_encode(&sha256(canonical.as_bytes())))
    }
}

/// A JWK set (RFC 7517 section 5), as served at an issuer's `jwks_uri`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The keys, in the publisher's order.
    pub keys: Vec<Jwk>,
}

pub(crate) fn required<'a>(
    member: Option<&'a str>,
    reason: &'static str,
) -> Result<&'a str, JwsError> {
    member.ok_or(JwsError::InvalidKey { reason })
}

fn json_string(value: &str) -> String {
    Value::String(value.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_rsa_example() {
        // RFC 7638, section 3.1.
        let jwk: Jwk = serde_json::from_str(
            r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
        )
        .unwrap();
        assert_eq!(
            jwk.thumbprint().unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn rfc8037_okp_example() {
        // RFC 8037, appendix A.3.
        let jwk = Jwk {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            x: Some("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into()),
            ..Jwk::default()
        };
        assert_eq!(
            jwk.thumbprint().unwrap(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn thumbprint_needs_the_required_members() {
        let jwk = Jwk {
            kty: "EC".into(),
            crv: Some("P-256".into()),
            x: Some("AA".into()),
            ..Jwk::default()
        };
        assert!(matches!(jwk.thumbprint(), Err(JwsError::InvalidKey { .. })));
        let oct = Jwk {
            kty: "oct".into(),
            ..Jwk::default()
        };
        assert!(matches!(
            oct.thumbprint(),
            Err(JwsError::UnsupportedKeyType { .. })
        ));
    }

    #[test]
    fn serde_ignores_unknown_and_private_members() {
        let jwk: Jwk = serde_json::from_str(
            r#"{"kty":"OKP","crv":"Ed25519","x":"abc","d":"secret","x5c":["..."],"use":"sig","key_ops":["verify"]}"#,
        )
        .unwrap();
        assert_eq!(jwk.use_.as_deref(), Some("sig"));
        let out = serde_json::to_string(&jwk).unwrap();
        assert!(!out.contains("secret"));
        assert_eq!(
            out,
            r#"{"kty":"OKP","use":"sig","key_ops":["verify"],"crv":"Ed25519","x":"abc"}"#
        );
    }
}
