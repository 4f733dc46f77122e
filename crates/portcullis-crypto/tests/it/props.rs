//! Property tests: parsers of untrusted input never panic, and tampering never goes unnoticed.

use portcullis_crypto::envelope::{DataKey, KeyRing, MasterKey, aad, sealed_key_id};
use portcullis_crypto::jws::{Algorithm, Unverified};
use proptest::prelude::*;
use serde_json::Value;

use crate::common::{b64, claims, key, validation};

fn ring() -> &'static KeyRing {
    static RING: std::sync::LazyLock<KeyRing> = std::sync::LazyLock::new(|| {
        let mut ring = KeyRing::new(DataKey::generate(1));
        ring.insert(DataKey::generate(2));
        ring
    });
    &RING
}

/// Arbitrary JSON values, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("exp"),
            Just("nbf"),
            Just("iat"),
            Just("iss"),
            Just("aud"),
            Just("sub"),
            Just("alg"),
            Just("kid"),
            Just("crit"),
            Just("b64"),
            Just("none"),
            Just("ES256"),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("exp".to_owned()),
                    Just("nbf".to_owned()),
                    Just("iat".to_owned()),
                    Just("iss".to_owned()),
                    Just("aud".to_owned()),
                    Just("sub".to_owned()),
                    Just("alg".to_owned()),
                    Just("kid".to_owned()),
                    Just("typ".to_owned()),
                    ".{0,6}",
                ],
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn parse_never_panics_on_arbitrary_strings(token in ".{0,300}") {
        let _ = Unverified::parse(&token, 8192);
    }

    #[test]
    fn parse_never_panics_on_token_shaped_strings(token in "[A-Za-z0-9_=+/.-]{0,300}") {
        let _ = Unverified::parse(&token, 8192);
    }

    #[test]
    fn parse_never_panics_on_arbitrary_segments(
        header in prop::collection::vec(any::<u8>(), 0..64),
        payload in prop::collection::vec(any::<u8>(), 0..64),
        signature in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        let token = format!("{}.{}.{}", b64(&header), b64(&payload), b64(&signature));
        let _ = Unverified::parse(&token, 8192);
    }

    /// Any JSON in the header and claims: parsing, verifying and validating never panic, and a
    /// token that is not signed by the key is never accepted.
    #[test]
    fn arbitrary_json_tokens_never_panic_nor_verify(
        header in json_value(),
        claims in json_value(),
        signature in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        let token = format!(
            "{}.{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes()),
            b64(&signature)
        );
        if let Ok(parsed) = Unverified::parse(&token, 8192) {
            let _ = parsed.validate(&validation());
            let verifying = key(Algorithm::ES256).verifying_key().unwrap();
            prop_assert!(parsed.verify(&verifying).is_err());
        }
    }

    /// Validation of arbitrary (validly signed) claims never panics.
    #[test]
    fn validate_never_panics(extra in json_value()) {
        let mut all = claims();
        if let (Some(map), Value::Object(extra)) = (all.as_object_mut(), extra) {
            map.extend(extra);
        }
        let token = key(Algorithm::EdDSA).sign_jwt(&all, None).unwrap();
        let parsed = Unverified::parse(&token, 8192).unwrap();
        parsed.verify(&key(Algorithm::EdDSA).verifying_key().unwrap()).unwrap();
        let _ = parsed.validate(&validation());
    }

    #[test]
    fn open_never_panics_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..128),
        aad in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        prop_assert!(ring().open(&bytes, &aad).is_err());
        let _ = sealed_key_id(&bytes);
    }

    /// Arbitrary bytes after a valid header (version 1, a loaded key id) never open.
    #[test]
    fn open_never_accepts_forged_bodies(
        key_id in 1u32..=2,
        body in prop::collection::vec(any::<u8>(), 0..96),
    ) {
        let mut bytes = vec![1];
        bytes.extend_from_slice(&key_id.to_be_bytes());
        bytes.extend_from_slice(&body);
        prop_assert!(ring().open(&bytes, b"").is_err());
    }

    /// Any change to a sealed value (position and xor mask chosen at random) is detected.
    #[test]
    fn any_modification_is_detected(
        plaintext in prop::collection::vec(any::<u8>(), 0..64),
        position in any::<prop::sample::Index>(),
        mask in 1u8..,
    ) {
        let sealed = ring().seal(&plaintext, b"row").unwrap();
        let mut tampered = sealed.bytes.clone();
        let index = position.index(tampered.len());
        tampered[index] ^= mask;
        prop_assert!(ring().open(&tampered, b"row").is_err());
        let opened = ring().open(&sealed.bytes, b"row").unwrap();
        prop_assert_eq!(opened.expose(), &plaintext[..]);
    }

    /// Different lists of parts never give the same associated data.
    #[test]
    fn aad_is_injective(
        a in prop::collection::vec(".{0,5}", 0..5),
        b in prop::collection::vec(".{0,5}", 0..5),
    ) {
        let a_refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let b_refs: Vec<&str> = b.iter().map(String::as_str).collect();
        prop_assert_eq!(a == b, aad(&a_refs) == aad(&b_refs));
    }

    #[test]
    fn master_ring_parsing_never_panics(text in ".{0,200}") {
        let _ = MasterKey::parse_ring(&text);
    }

    #[test]
    fn unwrap_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
        static MASTER: std::sync::LazyLock<MasterKey> =
            std::sync::LazyLock::new(|| MasterKey::generate("m").unwrap());
        prop_assert!(MASTER.unwrap(1, &bytes).is_err());
    }
}
