//! Sign → parse → verify → validate, for every algorithm.

use portcullis_crypto::jws::{Algorithm, KeyType, SigningKey, Unverified, VerifyingKey};
use serde_json::json;

use crate::common::{MAX_LEN, claims, key, key_set, validation};

#[test]
fn every_algorithm_round_trips() {
    for alg in Algorithm::ALL {
        let signer = key(alg);
        assert_eq!(signer.algorithm(), alg);
        let token = signer.sign_jwt(&claims(), Some("at+jwt")).unwrap();

        let parsed = Unverified::parse(&token, MAX_LEN).unwrap();
        assert_eq!(parsed.header().alg(), alg);
        assert_eq!(parsed.header().kid(), Some(signer.kid()));
        assert_eq!(parsed.header().typ(), Some("at+jwt"));
        assert_eq!(parsed.claims(), claims().as_object().unwrap());
        assert_eq!(parsed.issuer(), Some(crate::common::ISSUER));
        assert_eq!(parsed.subject(), Some("user-1"));

        // Directly with the matching key...
        parsed.verify(&signer.verifying_key().unwrap()).unwrap();
        // ...and through a published key set holding every algorithm's key.
        let all: Vec<&SigningKey> = Algorithm::ALL.iter().map(|a| key(*a)).collect();
        let set = key_set(&all);
        let used = parsed.verify_with(&set).unwrap();
        assert!(used.allows(alg));
        assert_eq!(used.kid(), Some(signer.kid()));

        parsed.validate(&validation()).unwrap();
        assert_eq!(parsed.into_claims(), *claims().as_object().unwrap());
    }
}

#[test]
fn tokens_without_typ_or_kid_header() {
    let signer = key(Algorithm::ES256);
    let token = signer.sign_jwt(&claims(), None).unwrap();
    let parsed = Unverified::parse(&token, MAX_LEN).unwrap();
    assert_eq!(parsed.header().typ(), None);

    // No `kid`: the only key that allows the algorithm is used.
    let token = crate::common::forge(&json!({"alg": "ES256"}), &claims(), signer);
    let parsed = Unverified::parse(&token, MAX_LEN).unwrap();
    assert_eq!(parsed.header().kid(), None);
    let set = key_set(&[signer, key(Algorithm::RS256)]);
    parsed.verify_with(&set).unwrap();
}

#[test]
fn pkcs8_round_trip_keeps_the_key() {
    for alg in [
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        let original = key(alg);
        let reloaded = SigningKey::from_pkcs8(alg, original.to_pkcs8().unwrap().expose()).unwrap();
        assert_eq!(reloaded.kid(), original.kid());
        assert_eq!(reloaded.public_jwk(), original.public_jwk());
        let token = reloaded.sign_jwt(&claims(), None).unwrap();
        Unverified::parse(&token, MAX_LEN)
            .unwrap()
            .verify(&original.verifying_key().unwrap())
            .unwrap();
    }
}

#[test]
fn pkcs8_of_the_wrong_kind_is_rejected() {
    let ec = key(Algorithm::ES256).to_pkcs8().unwrap();
    assert!(SigningKey::from_pkcs8(Algorithm::RS256, ec.expose()).is_err());
    assert!(SigningKey::from_pkcs8(Algorithm::ES384, ec.expose()).is_err());
    assert!(SigningKey::from_pkcs8(Algorithm::EdDSA, ec.expose()).is_err());
    assert!(SigningKey::from_pkcs8(Algorithm::ES256, b"not a key").is_err());
}

#[test]
fn public_jwk_shape() {
    for alg in Algorithm::ALL {
        let signer = key(alg);
        let jwk = signer.public_jwk();
        assert_eq!(jwk.alg.as_deref(), Some(alg.as_str()));
        assert_eq!(jwk.use_.as_deref(), Some("sig"));
        assert_eq!(jwk.kid.as_deref(), Some(signer.kid()));
        // The kid is the RFC 7638 thumbprint, which ignores `alg`, `use` and `kid`.
        assert_eq!(jwk.thumbprint().unwrap(), signer.kid());
        let verifying = VerifyingKey::from_jwk(&jwk).unwrap();
        // The published JWK pins the key to its one algorithm.
        assert_eq!(verifying.algorithms().collect::<Vec<_>>(), vec![alg]);
        let expected = match alg {
            Algorithm::ES256 => KeyType::EcP256,
            Algorithm::ES384 => KeyType::EcP384,
            Algorithm::EdDSA => KeyType::Ed25519,
            _ => KeyType::Rsa { bits: 2048 },
        };
        assert_eq!(verifying.key_type(), expected);
    }
}

#[test]
fn signing_key_debug_shows_no_secret() {
    let signer = key(Algorithm::EdDSA);
    let printed = format!("{signer:?}");
    assert_eq!(
        printed,
        format!("SigningKey {{ alg: EdDSA, kid: {:?}, .. }}", signer.kid())
    );
}

#[test]
fn claims_must_be_an_object() {
    let signer = key(Algorithm::ES256);
    assert!(signer.sign_jwt(&json!(["a"]), None).is_err());
    assert!(signer.sign_jwt(&json!("a"), None).is_err());
}

#[test]
fn fractional_dates_are_accepted_and_rounded_safely() {
    let signer = key(Algorithm::ES256);
    let now = crate::common::NOW;
    // exp = now + 0.5: still valid at `now`.
    let token = signer
        .sign_jwt(
            &crate::common::claims_with(json!({"exp": now as f64 + 0.5})),
            None,
        )
        .unwrap();
    Unverified::parse(&token, MAX_LEN)
        .unwrap()
        .validate(&validation())
        .unwrap();
    // exp = now - 0.5: expired at `now`.
    let token = signer
        .sign_jwt(
            &crate::common::claims_with(json!({"exp": now as f64 - 0.5})),
            None,
        )
        .unwrap();
    assert_eq!(
        Unverified::parse(&token, MAX_LEN)
            .unwrap()
            .validate(&validation()),
        Err(portcullis_crypto::jws::JwtError::Expired)
    );
    // nbf = now + 0.5: not valid yet at `now`.
    let token = signer
        .sign_jwt(
            &crate::common::claims_with(json!({"nbf": now as f64 + 0.5})),
            None,
        )
        .unwrap();
    assert_eq!(
        Unverified::parse(&token, MAX_LEN)
            .unwrap()
            .validate(&validation()),
        Err(portcullis_crypto::jws::JwtError::NotYetValid)
    );
}
