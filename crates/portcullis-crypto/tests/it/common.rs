//! Shared helpers: cached signing keys, standard claims, hand-built tokens.

use std::collections::HashMap;
use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_crypto::jws::{Algorithm, JwkSet, KeySet, SigningKey, Validation};
use serde_json::{Value, json};

/// The "current time" of every test.
pub const NOW: i64 = 1_800_000_000;
pub const ISSUER: &str = "https://auth.portcullis.test";
pub const AUDIENCE: &str = "https://mcp.example.com/mcp";
pub const MAX_LEN: usize = 8 * 1024;

/// One signing key per algorithm; the six RSA algorithms share one RSA key (loaded through
/// PKCS#8, which exercises `from_pkcs8`), so the suite generates only four keys.
static KEYS: LazyLock<HashMap<Algorithm, SigningKey>> = LazyLock::new(|| {
    let rsa = SigningKey::generate(Algorithm::RS256)
        .unwrap()
        .to_pkcs8()
        .unwrap();
    let mut keys = HashMap::new();
    for alg in Algorithm::RSA {
        keys.insert(alg, SigningKey::from_pkcs8(alg, rsa.expose()).unwrap());
    }
    for alg in [Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA] {
        keys.insert(alg, SigningKey::generate(alg).unwrap());
    }
    keys
});

/// A second, unrelated set of keys ("the attacker's").
static OTHER_KEYS: LazyLock<HashMap<Algorithm, SigningKey>> = LazyLock::new(|| {
    let rsa = SigningKey::generate(Algorithm::RS256)
        .unwrap()
        .to_pkcs8()
        .unwrap();
    let mut keys = HashMap::new();
    for alg in Algorithm::RSA {
        keys.insert(alg, SigningKey::from_pkcs8(alg, rsa.expose()).unwrap());
    }
    for alg in [Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA] {
        keys.insert(alg, SigningKey::generate(alg).unwrap());
    }
    keys
});

pub fn key(alg: Algorithm) -> &'static SigningKey {
    &KEYS[&alg]
}

pub fn other_key(alg: Algorithm) -> &'static SigningKey {
    &OTHER_KEYS[&alg]
}

/// The key set an issuer using `keys` would publish.
pub fn key_set(keys: &[&SigningKey]) -> KeySet {
    let jwks = JwkSet {
        keys: keys.iter().map(|k| k.public_jwk()).collect(),
    };
    let (set, skipped) = KeySet::from_jwks(&jwks);
    assert!(skipped.is_empty(), "{skipped:?}");
    set
}

/// Claims that pass [`validation`].
pub fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "exp": NOW + 300,
        "scope": "calendar.read",
    })
}

/// `claims()` with `changes` applied (a `null` removes the claim).
pub fn claims_with(changes: Value) -> Value {
    let mut claims = claims();
    let map = claims.as_object_mut().unwrap();
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            map.remove(name);
        } else {
            map.insert(name.clone(), value.clone());
        }
    }
    claims
}

pub static AUDIENCES: LazyLock<Vec<String>> = LazyLock::new(|| vec![AUDIENCE.to_owned()]);

pub fn validation() -> Validation<'static> {
    Validation {
        issuer: ISSUER,
        audiences: &AUDIENCES,
        algorithms: &Algorithm::ALL,
        leeway_secs: 0,
        now: NOW,
        require_sub: true,
    }
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

/// A token with an arbitrary header, validly signed by `key` (so a rejection can only come from
/// the header or claims, not from the signature).
pub fn forge(header: &Value, claims: &Value, key: &SigningKey) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64(&signature))
}

/// A token from raw header and payload bytes, signed by `key`.
pub fn forge_raw(header: &[u8], payload: &[u8], key: &SigningKey) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let signature = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64(&signature))
}

/// The standard header for `key`.
pub fn header(key: &SigningKey) -> Value {
    json!({"alg": key.algorithm(), "kid": key.kid()})
}
