//! Building verification keys from JWKs and looking them up in key sets.

use portcullis_crypto::jws::{
    Algorithm, Jwk, JwkSet, JwsError, KeySet, KeyType, SigningKey, VerifyingKey,
};
use serde_json::json;

use crate::common::{b64, key, unb64};

fn jwk(value: serde_json::Value) -> Jwk {
    serde_json::from_value(value).unwrap()
}

fn unpinned(alg: Algorithm) -> Jwk {
    let mut jwk = key(alg).public_jwk();
    jwk.alg = None;
    jwk
}

#[test]
fn rsa_without_alg_allows_rs_and_ps() {
    let k = VerifyingKey::from_jwk(&unpinned(Algorithm::RS256)).unwrap();
    assert_eq!(k.algorithms().collect::<Vec<_>>(), Algorithm::RSA.to_vec());
    assert_eq!(k.key_type(), KeyType::Rsa { bits: 2048 });
    assert!(!k.allows(Algorithm::ES256));
    assert!(!k.allows(Algorithm::EdDSA));
}

#[test]
fn ec_and_okp_keys_allow_their_one_algorithm() {
    for (alg, key_type) in [
        (Algorithm::ES256, KeyType::EcP256),
        (Algorithm::ES384, KeyType::EcP384),
        (Algorithm::EdDSA, KeyType::Ed25519),
    ] {
        let k = VerifyingKey::from_jwk(&unpinned(alg)).unwrap();
        assert_eq!(k.algorithms().collect::<Vec<_>>(), vec![alg]);
        assert_eq!(k.key_type(), key_type);
    }
}

#[test]
fn alg_member_pins_or_conflicts() {
    let mut rsa = unpinned(Algorithm::RS256);
    rsa.alg = Some("PS512".into());
    let k = VerifyingKey::from_jwk(&rsa).unwrap();
    assert_eq!(k.algorithms().collect::<Vec<_>>(), vec![Algorithm::PS512]);

    rsa.alg = Some("ES256".into());
    assert_eq!(
        VerifyingKey::from_jwk(&rsa).map(|_| ()),
        Err(JwsError::AlgorithmMismatch {
            alg: Algorithm::ES256
        })
    );
    let mut ec = unpinned(Algorithm::ES256);
    ec.alg = Some("ES384".into());
    assert_eq!(
        VerifyingKey::from_jwk(&ec).map(|_| ()),
        Err(JwsError::AlgorithmMismatch {
            alg: Algorithm::ES384
        })
    );
    for alg in ["HS256", "none", "RSA-OAEP"] {
        rsa.alg = Some(alg.into());
        assert_eq!(
            VerifyingKey::from_jwk(&rsa).map(|_| ()),
            Err(JwsError::UnsupportedAlgorithm { alg: alg.into() })
        );
    }
}

#[test]
fn keys_for_other_uses_are_refused() {
    let mut enc = unpinned(Algorithm::RS256);
    enc.use_ = Some("enc".into());
    assert_eq!(
        VerifyingKey::from_jwk(&enc).map(|_| ()),
        Err(JwsError::NotForSignatures)
    );
    let mut ops = unpinned(Algorithm::RS256);
    ops.key_ops = Some(vec!["encrypt".into(), "wrapKey".into()]);
    assert_eq!(
        VerifyingKey::from_jwk(&ops).map(|_| ()),
        Err(JwsError::NotForSignatures)
    );
    ops.key_ops = Some(vec!["sign".into(), "verify".into()]);
    assert!(VerifyingKey::from_jwk(&ops).is_ok());
}

#[test]
fn symmetric_and_unknown_key_types_are_unsupported() {
    for kty in ["oct", "rsa", "", "EC2"] {
        let k = jwk(json!({"kty": kty, "k": "c2VjcmV0"}));
        assert_eq!(
            VerifyingKey::from_jwk(&k).map(|_| ()),
            Err(JwsError::UnsupportedKeyType { kty: kty.into() })
        );
    }
}

#[test]
fn unsupported_curves() {
    let p256 = key(Algorithm::ES256).public_jwk();
    for crv in ["P-521", "secp256k1", "p-256"] {
        let mut k = p256.clone();
        k.crv = Some(crv.into());
        k.alg = None;
        assert_eq!(
            VerifyingKey::from_jwk(&k).map(|_| ()),
            Err(JwsError::UnsupportedCurve { crv: crv.into() })
        );
    }
    for crv in ["X25519", "Ed448"] {
        let mut k = key(Algorithm::EdDSA).public_jwk();
        k.crv = Some(crv.into());
        k.alg = None;
        assert_eq!(
            VerifyingKey::from_jwk(&k).map(|_| ()),
            Err(JwsError::UnsupportedCurve { crv: crv.into() })
        );
    }
}

/// An odd number of exactly `bits` bits, as base64url.
fn modulus(bits: usize) -> String {
    let mut n = vec![0xa5u8; bits.div_ceil(8)];
    let top_bits = bits - (n.len() - 1) * 8;
    n[0] = (1 << (top_bits - 1)) | 0x01;
    *n.last_mut().unwrap() |= 0x01;
    b64(&n)
}

#[test]
fn small_rsa_keys_are_rejected() {
    for bits in [512, 1024, 2047] {
        let k = jwk(json!({"kty": "RSA", "n": modulus(bits), "e": "AQAB"}));
        assert_eq!(
            VerifyingKey::from_jwk(&k).map(|_| ()),
            Err(JwsError::RsaKeySize { bits })
        );
    }
    let k = jwk(json!({"kty": "RSA", "n": modulus(8200), "e": "AQAB"}));
    assert_eq!(
        VerifyingKey::from_jwk(&k).map(|_| ()),
        Err(JwsError::RsaKeySize { bits: 8200 })
    );
}

#[test]
fn rsa_modulus_with_a_leading_zero_byte_is_accepted() {
    let mut k = unpinned(Algorithm::RS256);
    let mut n = unb64(k.n.as_deref().unwrap());
    n.insert(0, 0);
    k.n = Some(b64(&n));
    let verifying = VerifyingKey::from_jwk(&k).unwrap();
    assert_eq!(verifying.key_type(), KeyType::Rsa { bits: 2048 });
    let token = key(Algorithm::RS256)
        .sign_jwt(&crate::common::claims(), None)
        .unwrap();
    portcullis_crypto::jws::Unverified::parse(&token, crate::common::MAX_LEN)
        .unwrap()
        .verify(&verifying)
        .unwrap();
}

#[test]
fn bad_rsa_exponents_are_invalid() {
    let n = unpinned(Algorithm::RS256).n.unwrap();
    for e in [
        b64(&[1]),
        b64(&[2]),
        b64(&[1, 0, 0]),
        b64(&[0]),
        String::new(),
        b64(&[1, 0, 0, 0, 1]),
    ] {
        let k = jwk(json!({"kty": "RSA", "n": n, "e": e}));
        assert!(
            matches!(VerifyingKey::from_jwk(&k), Err(JwsError::InvalidKey { .. })),
            "e = {e:?}"
        );
    }
    let k = jwk(json!({"kty": "RSA", "n": n, "e": "Aw"}));
    assert!(VerifyingKey::from_jwk(&k).is_ok(), "e = 3");
}

#[test]
fn invalid_key_material() {
    let p256 = unpinned(Algorithm::ES256);
    let rsa = unpinned(Algorithm::RS256);
    let ed = unpinned(Algorithm::EdDSA);
    let mut cases: Vec<Jwk> = Vec::new();
    // Missing members.
    cases.push(Jwk {
        n: None,
        ..rsa.clone()
    });
    cases.push(Jwk {
        e: None,
        ..rsa.clone()
    });
    cases.push(Jwk {
        y: None,
        ..p256.clone()
    });
    cases.push(Jwk {
        x: None,
        ..ed.clone()
    });
    cases.push(Jwk {
        crv: None,
        ..p256.clone()
    });
    // Not base64url (padding, standard alphabet).
    cases.push(Jwk {
        e: Some("AQAB=".into()),
        ..rsa.clone()
    });
    cases.push(Jwk {
        x: Some(format!("{}=", p256.x.clone().unwrap())),
        ..p256.clone()
    });
    cases.push(Jwk {
        x: Some("+/+/".into()),
        ..ed.clone()
    });
    // Wrong lengths.
    let mut short_x = unb64(p256.x.as_deref().unwrap());
    short_x.pop();
    cases.push(Jwk {
        x: Some(b64(&short_x)),
        ..p256.clone()
    });
    cases.push(Jwk {
        x: Some(b64(&[7; 31])),
        ..ed.clone()
    });
    // A point that is not on the curve.
    let mut y = unb64(p256.y.as_deref().unwrap());
    y[31] ^= 1;
    cases.push(Jwk {
        y: Some(b64(&y)),
        ..p256.clone()
    });
    // An even modulus.
    let mut n = unb64(rsa.n.as_deref().unwrap());
    *n.last_mut().unwrap() &= 0xfe;
    cases.push(Jwk {
        n: Some(b64(&n)),
        ..rsa.clone()
    });
    for (index, case) in cases.iter().enumerate() {
        assert!(
            matches!(
                VerifyingKey::from_jwk(case),
                Err(JwsError::InvalidKey { .. })
            ),
            "case {index}: {:?}",
            VerifyingKey::from_jwk(case)
        );
    }
}

#[test]
fn key_set_skips_and_reports_bad_keys() {
    let good_rsa = key(Algorithm::RS256).public_jwk();
    let good_ec = key(Algorithm::ES256).public_jwk();
    let set = JwkSet {
        keys: vec![
            good_rsa.clone(),
            jwk(json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"})),
            Jwk {
                use_: Some("enc".into()),
                kid: Some("enc-key".into()),
                ..unpinned(Algorithm::RS256)
            },
            good_ec.clone(),
            jwk(json!({"kty": "RSA", "kid": "tiny", "n": modulus(1024), "e": "AQAB"})),
            // Same kid as the first key, overlapping algorithm.
            good_rsa.clone(),
        ],
    };
    let (keys, skipped) = KeySet::from_jwks(&set);
    assert_eq!(keys.len(), 2);
    assert!(!keys.is_empty());
    assert_eq!(
        keys.kids().collect::<Vec<_>>(),
        vec![
            good_rsa.kid.as_deref().unwrap(),
            good_ec.kid.as_deref().unwrap()
        ]
    );
    let reasons: Vec<(usize, Option<&str>, &str)> = skipped
        .iter()
        .map(|s| (s.index, s.kid.as_deref(), s.reason.code()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (1, Some("hmac"), "unsupported_key_type"),
            (2, Some("enc-key"), "not_for_signatures"),
            (4, Some("tiny"), "rsa_key_size"),
            (5, good_rsa.kid.as_deref(), "duplicate_key_id"),
        ]
    );
    assert_eq!(
        skipped[2].to_string(),
        "key 4 (`tiny`): an RSA key of 1024 bits is outside the allowed 2048 to 8192 bits"
    );
}

#[test]
fn same_kid_for_disjoint_algorithms_is_allowed() {
    // Some issuers reuse one kid for an RSA and an EC key; lookups by (kid, alg) stay unique.
    let mut ec = key(Algorithm::ES256).public_jwk();
    ec.kid = Some("shared".into());
    let mut rsa = key(Algorithm::RS256).public_jwk();
    rsa.kid = Some("shared".into());
    let (keys, skipped) = KeySet::from_jwks(&JwkSet {
        keys: vec![ec, rsa],
    });
    assert!(skipped.is_empty());
    assert_eq!(
        keys.find(Some("shared"), Algorithm::ES256)
            .unwrap()
            .key_type(),
        KeyType::EcP256
    );
    assert_eq!(
        keys.find(Some("shared"), Algorithm::RS256)
            .unwrap()
            .key_type(),
        KeyType::Rsa { bits: 2048 }
    );
    assert!(
        keys.find(Some("shared"), Algorithm::PS256).is_none(),
        "the RSA JWK pins RS256"
    );
}

#[test]
fn find_by_kid_and_algorithm() {
    let rsa = key(Algorithm::RS256);
    let ec = key(Algorithm::ES256);
    let mut anonymous = key(Algorithm::EdDSA).public_jwk();
    anonymous.kid = None;
    let (keys, _) = KeySet::from_jwks(&JwkSet {
        keys: vec![rsa.public_jwk(), ec.public_jwk(), anonymous],
    });
    assert_eq!(keys.len(), 3);
    assert_eq!(keys.kids().count(), 2);
    assert_eq!(
        keys.find(Some(rsa.kid()), Algorithm::RS256).unwrap().kid(),
        Some(rsa.kid())
    );
    assert!(keys.find(Some(rsa.kid()), Algorithm::ES256).is_none());
    assert!(keys.find(Some("missing"), Algorithm::RS256).is_none());
    // Without a kid: the single compatible key.
    assert_eq!(
        keys.find(None, Algorithm::ES256).unwrap().kid(),
        Some(ec.kid())
    );
    assert_eq!(keys.find(None, Algorithm::EdDSA).unwrap().kid(), None);
    assert!(keys.find(None, Algorithm::ES384).is_none());
    // A kid-less key is not found by a token that names a kid.
    assert!(keys.find(Some("anything"), Algorithm::EdDSA).is_none());
}

#[test]
fn insert_rejects_duplicate_kids() {
    let mut keys = KeySet::default();
    keys.insert(key(Algorithm::ES256).verifying_key().unwrap())
        .unwrap();
    assert_eq!(
        keys.insert(key(Algorithm::ES256).verifying_key().unwrap()),
        Err(JwsError::DuplicateKeyId {
            kid: key(Algorithm::ES256).kid().into()
        })
    );
    assert_eq!(keys.len(), 1);
}

#[test]
fn verifying_key_debug_shows_the_shape() {
    let k = VerifyingKey::from_jwk(&jwk(json!({
        "kty": "OKP", "crv": "Ed25519", "kid": "ed",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    })))
    .unwrap();
    assert_eq!(
        format!("{k:?}"),
        r#"VerifyingKey { kid: Some("ed"), key_type: Ed25519, algorithms: [EdDSA] }"#
    );
}

#[test]
fn generated_keys_are_distinct() {
    let a = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let b = SigningKey::generate(Algorithm::EdDSA).unwrap();
    assert_ne!(a.kid(), b.kid());
}
