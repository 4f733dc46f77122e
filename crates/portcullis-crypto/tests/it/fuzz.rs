//! Fuzz targets on the stable toolchain: structure-aware, proptest-driven loops over the parsers of
//! untrusted input — the compact JWS/JWT parser (valid tokens mutated byte by byte, segment by
//! segment) and the JWK/JWKS parser (key members of every kind with arbitrary values). None may
//! panic, none may accept what it should not, and input past its limit is refused before it is
//! read. `PROPTEST_CASES` sets the number of cases (default: a few seconds in a debug build).

use portcullis_crypto::jws::{
    Algorithm, JwkSet, JwtError, KeySet, SigningKey, Unverified, VerifyingKey,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::common::{b64, claims, validation};

/// The number of cases of each target: `PROPTEST_CASES`, else `default`.
pub(crate) fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn signer() -> &'static (SigningKey, String) {
    static S: std::sync::LazyLock<(SigningKey, String)> = std::sync::LazyLock::new(|| {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let token = key.sign_jwt(&claims(), Some("at+jwt")).unwrap();
        (key, token)
    });
    &S
}

/// A mutation of a valid token.
#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the byte at a position.
    Set(usize, u8),
    /// Remove a range.
    Cut(usize, usize),
    /// Insert bytes at a position.
    Insert(usize, Vec<u8>),
    /// Replace one segment (0 header, 1 payload, 2 signature) with the base64url of arbitrary
    /// bytes.
    Segment(usize, Vec<u8>),
    /// Repeat the whole token, or its dots.
    Repeat(u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), 0usize..32).prop_map(|(i, n)| Mutation::Cut(i, n)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (0usize..3, prop::collection::vec(any::<u8>(), 0..96))
            .prop_map(|(s, v)| Mutation::Segment(s, v)),
        (1u8..4).prop_map(Mutation::Repeat),
    ]
}

fn apply(token: &str, m: &Mutation) -> Vec<u8> {
    let mut bytes = token.as_bytes().to_vec();
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match m {
        Mutation::Set(i, b) => {
            let i = at(*i, bytes.len());
            bytes[i] = *b;
        }
        Mutation::Cut(i, n) => {
            let i = at(*i, bytes.len());
            let end = (i + n).min(bytes.len());
            bytes.drain(i..end);
        }
        Mutation::Insert(i, v) => {
            let i = at(*i, bytes.len() + 1);
            bytes.splice(i..i, v.iter().copied());
        }
        Mutation::Segment(s, v) => {
            let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
            parts[*s] = b64(v);
            bytes = parts.join(".").into_bytes();
        }
        Mutation::Repeat(n) => {
            bytes = vec![token; usize::from(*n) + 1].join(".").into_bytes();
        }
    }
    bytes
}

/// JWK members of every key type, with well-formed or arbitrary values.
fn jwk() -> impl Strategy<Value = Value> {
    let b64_bytes = prop::collection::vec(any::<u8>(), 0..300).prop_map(|v| Value::from(b64(&v)));
    let member = prop_oneof![
        b64_bytes.clone(),
        ".{0,16}".prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(Value::Null),
        Just(json!([])),
        Just(json!({})),
    ];
    let kty = prop_oneof![
        Just("RSA"),
        Just("EC"),
        Just("OKP"),
        Just("oct"),
        Just(""),
        Just("rsa")
    ];
    let crv = prop_oneof![
        Just("P-256"),
        Just("P-384"),
        Just("P-521"),
        Just("Ed25519"),
        Just("X25519"),
        Just("secp256k1")
    ];
    let alg = prop_oneof![
        Just("RS256"),
        Just("PS256"),
        Just("ES256"),
        Just("ES384"),
        Just("EdDSA"),
        Just("HS256"),
        Just("none"),
    ];
    (
        kty,
        crv,
        alg,
        prop::collection::btree_map(
            prop_oneof![
                Just("n"),
                Just("e"),
                Just("x"),
                Just("y"),
                Just("d"),
                Just("k"),
                Just("kid"),
                Just("use"),
                Just("key_ops"),
                Just("x5c"),
            ],
            member,
            0..8,
        ),
    )
        .prop_map(|(kty, crv, alg, members)| {
            let mut m = Map::new();
            m.insert("kty".into(), kty.into());
            m.insert("crv".into(), crv.into());
            m.insert("alg".into(), alg.into());
            for (k, v) in members {
                m.insert(k.to_owned(), v);
            }
            Value::Object(m)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(2048)))]

    /// A valid token mutated anywhere: parsing never panics; whatever still parses and verifies
    /// under the signer's key is the original token (a signature binds every byte).
    #[test]
    fn mutated_tokens_never_panic_nor_verify(m in mutation()) {
        let (key, token) = signer();
        let bytes = apply(token, &m);
        let Ok(text) = String::from_utf8(bytes) else {
            return Ok(());
        };
        if let Ok(parsed) = Unverified::parse(&text, 8192) {
            let _ = parsed.validate(&validation());
            let verifying = key.verifying_key().unwrap();
            if parsed.verify(&verifying).is_ok() {
                prop_assert_eq!(&text, token);
            }
        }
    }

    /// Input past the limit is refused as oversized before it is read.
    #[test]
    fn oversized_input_is_refused_unread(extra in 1usize..4096, fill in any::<u8>()) {
        let limit = 512;
        let text: String = std::iter::repeat_n(char::from(b'a' + fill % 26), limit + extra).collect();
        prop_assert_eq!(
            Unverified::parse(&text, limit).err(),
            Some(JwtError::Oversized { max_len: limit })
        );
    }

    /// JWKs of every type with arbitrary members: a JWKS document parses or is refused, each
    /// key is usable or skipped with a reason, and a thumbprint is computed or refused — never a
    /// panic. A usable key never verifies a token it did not sign.
    #[test]
    fn jwks_never_panic(keys in prop::collection::vec(jwk(), 0..6)) {
        let doc = json!({"keys": keys});
        let Ok(set) = serde_json::from_value::<JwkSet>(doc.clone()) else {
            return Ok(());
        };
        let (usable, _skipped) = KeySet::from_jwks(&set);
        for k in &set.keys {
            let _ = k.thumbprint();
            if let Ok(v) = VerifyingKey::from_jwk(k) {
                let (_, token) = signer();
                let parsed = Unverified::parse(token, 8192).unwrap();
                prop_assert!(parsed.verify(&v).is_err());
            }
        }
        prop_assert!(usable.len() <= set.keys.len());
        // The same document as bytes, cut anywhere, never panics the JSON layer either.
        let bytes = doc.to_string().into_bytes();
        for cut in [bytes.len() / 3, bytes.len() / 2, bytes.len().saturating_sub(1)] {
            let _ = serde_json::from_slice::<JwkSet>(&bytes[..cut]);
        }
    }
}
