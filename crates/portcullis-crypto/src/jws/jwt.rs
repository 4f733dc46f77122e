//! Compact JWT parsing (once) and validation.

use std::fmt;

use serde_json::{Map, Value};

use super::algorithm::Algorithm;
use super::error::{JwsError, JwtError, Malformation, TokenPart, truncated};
use super::json::{Parsed, parse_object};
use super::key_set::KeySet;
use super::verifying_key::VerifyingKey;
use crate::encoding::b64url_decode;

/// The protected header of a token, as far as this crate reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    alg: Algorithm,
    kid: Option<String>,
    typ: Option<String>,
    cty: Option<String>,
}

impl Header {
    /// The signature algorithm (always a supported one: others fail parsing).
    #[must_use]
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The key id, if any.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The media type of the token (for example `at+jwt` for RFC 9068 access tokens), if any.
    #[must_use]
    pub fn typ(&self) -> Option<&str> {
        self.typ.as_deref()
    }

    /// The content type, if any (a nested JWT says `JWT`).
    #[must_use]
    pub fn cty(&self) -> Option<&str> {
        self.cty.as_deref()
    }
}

/// What [`Unverified::validate`] checks, with the current time passed in.
#[derive(Debug, Clone, Copy)]
pub struct Validation<'a> {
    /// The exact expected `iss`.
    pub issuer: &'a str,
    /// Accepted audiences: the token's `aud` must name at least one. Empty rejects every token
    /// (audience validation is mandatory).
    pub audiences: &'a [String],
    /// Accepted header algorithms.
    pub algorithms: &'a [Algorithm],
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// The current time, in seconds since the Unix epoch.
    pub now: i64,
    /// Whether a non-empty string `sub` is required.
    pub require_sub: bool,
}

/// A token whose structure has been checked and whose header and claims have been parsed, but
/// whose signature and claims have NOT been verified yet.
///
/// Call [`Unverified::verify`] (or [`Unverified::verify_with`]) and [`Unverified::validate`]
/// before trusting anything in it. Both are needed; their order does not matter (validating first
/// skips the signature check for tokens that are expired anyway).
#[derive(Clone)]
pub struct Unverified {
    header: Header,
    claims: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

impl Unverified {
    /// Parses a compact JWS carrying JSON claims, checking everything that can be checked without
    /// a key: the length (first, before any work), three segments of strict base64url, a JSON
    /// object header with unique members, a supported `alg` (`none` and HMAC fail here), string
    /// `kid`/`typ`/`cty`, no `crit` and no `b64`, and a JSON object payload with unique members.
    ///
    /// # Errors
    /// [`JwtError::Oversized`], [`JwtError::Malformed`], [`JwtError::UnsupportedAlgorithm`].
    pub fn parse(token: &str, max_len: usize) -> Result<Self, JwtError> {
        if token.len() > max_len {
            return Err(JwtError::Oversized { max_len });
        }
        let mut segments = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(malformed(Malformation::SegmentCount));
        };

        let header = parse_header(&decode(header_b64, TokenPart::Header)?)?;
        let claims = object(
            &decode(payload_b64, TokenPart::Payload)?,
            TokenPart::Payload,
        )?;
        let signature = decode(signature_b64, TokenPart::Signature)?;
        let signing_input = token[..header_b64.len() + 1 + payload_b64.len()].to_owned();
        Ok(Self {
            header,
            claims,
            signing_input,
            signature,
        })
    }

    /// The parsed header.
    #[must_use]
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The parsed claims (unverified until [`Unverified::verify`] and [`Unverified::validate`]
    /// succeed).
    #[must_use]
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// The claims, by value.
    #[must_use]
    pub fn into_claims(self) -> Map<String, Value> {
        self.claims
    }

    /// The `iss` claim when it is a string: use it to pick the issuer's key set before verifying.
    #[must_use]
    pub fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }

    /// The `sub` claim when it is a string.
    #[must_use]
    pub fn subject(&self) -> Option<&str> {
        self.claims.get("sub").and_then(Value::as_str)
    }

    /// Verifies the signature with `key`.
    ///
    /// # Errors
    /// [`JwtError::AlgorithmNotAllowed`] when the key does not allow the header's algorithm
    /// (an `RS256` token presented to an EC key, say); [`JwtError::BadSignature`] otherwise.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), JwtError> {
        let alg = self.header.alg;
        key.verify_signature(alg, self.signing_input.as_bytes(), &self.signature)
            .map_err(|e| match e {
                JwsError::AlgorithmMismatch { .. } => JwtError::AlgorithmNotAllowed { alg },
                _ => JwtError::BadSignature,
            })
    }

    /// Finds the key for this token in `keys` (by `kid` and algorithm, see [`KeySet::find`]) and
    /// verifies the signature with it; returns the key used.
    ///
    /// # Errors
    /// [`JwtError::UnknownKey`] when no key matches; as [`Unverified::verify`] otherwise.
    pub fn verify_with<'k>(&self, keys: &'k KeySet) -> Result<&'k VerifyingKey, JwtError> {
        let key = keys
            .find(self.header.kid(), self.header.alg)
            .ok_or(JwtError::UnknownKey)?;
        self.verify(key)?;
        Ok(key)
    }

    /// Validates the header algorithm and the registered claims against `v`:
    /// `alg` in `v.algorithms`; `exp` present and numeric, not before `now - leeway`; `nbf`, when
    /// present, not after `now + leeway`; `iat`, when present, not after `now + leeway`; `iss` exactly
    /// `v.issuer`; `aud` (a string or an array of strings) naming one of `v.audiences`; `sub` a
    /// non-empty string when `v.require_sub`.
    ///
    /// # Errors
    /// The first failed check: [`JwtError::AlgorithmNotAllowed`], [`JwtError::MissingExpiry`],
    /// [`JwtError::Expired`], [`JwtError::NotYetValid`], [`JwtError::IssuedInFuture`],
    /// [`JwtError::WrongIssuer`],
    /// [`JwtError::WrongAudience`], [`JwtError::MissingSubject`], or [`JwtError::Malformed`] for a
    /// registered claim of the wrong type.
    pub fn validate(&self, v: &Validation<'_>) -> Result<(), JwtError> {
        let alg = self.header.alg;
        if !v.algorithms.contains(&alg) {
            return Err(JwtError::AlgorithmNotAllowed { alg });
        }
        let leeway = i64::try_from(v.leeway_secs).unwrap_or(i64::MAX);

        let exp = self
            .date("exp", Rounding::Down)?
            .ok_or(JwtError::MissingExpiry)?;
        if v.now > exp.saturating_add(leeway) {
            return Err(JwtError::Expired);
        }
        if let Some(nbf) = self.date("nbf", Rounding::Up)?
            && v.now.saturating_add(leeway) < nbf
        {
            return Err(JwtError::NotYetValid);
        }
        if let Some(iat) = self.date("iat", Rounding::Down)?
            && iat > v.now.saturating_add(leeway)
        {
            return Err(JwtError::IssuedInFuture);
        }

        if self.issuer() != Some(v.issuer) {
            return Err(JwtError::WrongIssuer);
        }
        self.check_audience(v.audiences)?;
        if v.require_sub && self.subject().is_none_or(str::is_empty) {
            return Err(JwtError::MissingSubject);
        }
        Ok(())
    }

    /// Checks the header's `typ` against the type an issuer is required to send, compared without
    /// case and with or without the `application/` prefix (RFC 7515 §4.1.9), so that `at+jwt`
    /// matches `application/at+jwt` (RFC 9068).
    ///
    /// # Errors
    /// [`JwtError::WrongType`] when the header has no `typ` or another one.
    pub fn check_type(&self, required: &str) -> Result<(), JwtError> {
        let bare = |t: &str| {
            let t = t.trim();
            match t.get(..12) {
                Some(p) if p.eq_ignore_ascii_case("application/") => t[12..].to_ascii_lowercase(),
                _ => t.to_ascii_lowercase(),
            }
        };
        match self.header.typ() {
            Some(t) if bare(t) == bare(required) => Ok(()),
            _ => Err(JwtError::WrongType),
        }
    }

    fn check_audience(&self, expected: &[String]) -> Result<(), JwtError> {
        let accepted = |aud: &str| expected.iter().any(|e| e == aud);
        match self.claims.get("aud") {
            None => Err(JwtError::WrongAudience),
            Some(Value::String(aud)) if accepted(aud) => Ok(()),
            Some(Value::String(_)) => Err(JwtError::WrongAudience),
            Some(Value::Array(list)) => {
                let mut found = false;
                for item in list {
                    let aud = item.as_str().ok_or(malformed(Malformation::Claim("aud")))?;
                    found |= accepted(aud);
                }
                if found {
                    Ok(())
                } else {
                    Err(JwtError::WrongAudience)
                }
            }
            Some(_) => Err(malformed(Malformation::Claim("aud"))),
        }
    }

    /// A `NumericDate` claim as whole seconds, rounded in the direction that never extends
    /// validity; `Ok(None)` when absent.
    fn date(&self, name: &'static str, rounding: Rounding) -> Result<Option<i64>, JwtError> {
        let Some(value) = self.claims.get(name) else {
            return Ok(None);
        };
        let Value::Number(number) = value else {
            return Err(malformed(Malformation::Claim(name)));
        };
        let seconds = if let Some(i) = number.as_i64() {
            i
        } else if number.is_u64() {
            i64::MAX
        } else if let Some(f) = number.as_f64() {
            // `as` saturates for values outside i64; JSON has no NaN or infinity.
            match rounding {
                Rounding::Down => f.floor() as i64,
                Rounding::Up => f.ceil() as i64,
            }
        } else {
            return Err(malformed(Malformation::Claim(name)));
        };
        Ok(Some(seconds))
    }
}

impl fmt::Debug for Unverified {
    /// Shows the header and claims, never the signature: with it, the token would be a usable
    /// credential in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unverified")
            .field("header", &self.header)
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy)]
enum Rounding {
    Down,
    Up,
}

fn malformed(m: Malformation) -> JwtError {
    JwtError::Malformed(m)
}

fn decode(segment: &str, part: TokenPart) -> Result<Vec<u8>, JwtError> {
    b64url_decode(segment).ok_or(malformed(Malformation::Base64(part)))
}

fn object(bytes: &[u8], part: TokenPart) -> Result<Map<String, Value>, JwtError> {
    match parse_object(bytes) {
        Parsed::Object(map) => Ok(map),
        Parsed::NotObject => Err(malformed(Malformation::NotObject(part))),
        Parsed::DuplicateMember => Err(malformed(Malformation::DuplicateMember(part))),
        Parsed::NotJson => Err(malformed(Malformation::Json(part))),
    }
}

fn parse_header(bytes: &[u8]) -> Result<Header, JwtError> {
    let mut map = object(bytes, TokenPart::Header)?;
    if map.contains_key("crit") {
        return Err(malformed(Malformation::CriticalHeader));
    }
    if map.contains_key("b64") {
        return Err(malformed(Malformation::UnencodedPayload));
    }
    let alg = match map.get("alg") {
        Some(Value::String(name)) => {
            Algorithm::from_name(name).ok_or_else(|| JwtError::UnsupportedAlgorithm {
                alg: truncated(name),
            })?
        }
        _ => return Err(malformed(Malformation::MissingAlgorithm)),
    };
    Ok(Header {
        alg,
        kid: string_member(&mut map, "kid")?,
        typ: string_member(&mut map, "typ")?,
        cty: string_member(&mut map, "cty")?,
    })
}

fn string_member(
    map: &mut Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, JwtError> {
    match map.remove(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(malformed(Malformation::HeaderMember(name))),
    }
}
