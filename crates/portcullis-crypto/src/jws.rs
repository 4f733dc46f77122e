//! JSON Web Signatures and JSON Web Tokens (RFC 7515, 7517, 7518, 7519, 7638, 8037), following the
//! JWT best current practices of RFC 8725.
//!
//! - Only asymmetric algorithms are implemented ([`Algorithm`]). HMAC and `none` do not exist in
//!   this module, so a token that names them is rejected at parse time: the classic
//!   "HMAC keyed with the public key" confusion cannot happen.
//! - Verification keys are built once from a JWK ([`VerifyingKey::from_jwk`]) and pinned to the
//!   algorithms their type and curve allow (narrowed further by the JWK `alg` member).
//! - A token is parsed exactly once ([`Unverified::parse`]); signature and claims are then
//!   checked without re-parsing ([`Unverified::verify`], [`Unverified::validate`]).
//! - Headers that try to carry their own key (`jwk`, `jku`, `x5u`, `x5c`) are ignored: keys come
//!   only from the caller's [`KeySet`].

mod algorithm;
mod error;
mod json;
mod jwk;
mod jwt;
mod key_set;
mod signing_key;
mod verifying_key;

pub use algorithm::Algorithm;
pub use error::{JwsError, JwtError, Malformation, TokenPart};
pub use jwk::{Jwk, JwkSet};
pub use jwt::{Header, Unverified, Validation};
pub use key_set::{KeySet, SkippedKey};
pub use signing_key::SigningKey;
pub use verifying_key::{KeyType, VerifyingKey};
