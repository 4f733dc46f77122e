//! Every rejection, each with its own test.

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::hmac;
use aws_lc_rs::signature::{KeyPair as _, RsaKeyPair};
use portcullis_crypto::jws::{
    Algorithm, JwtError, Malformation, TokenPart, Unverified, Validation, VerifyingKey,
};
use serde_json::{Value, json};

use crate::common::{
    AUDIENCE, MAX_LEN, NOW, b64, claims, claims_with, forge, forge_raw, header, key, key_set,
    other_key, unb64, validation,
};

fn parse(token: &str) -> Result<Unverified, JwtError> {
    Unverified::parse(token, MAX_LEN)
}

fn validate_with(claims: &Value, v: &Validation<'_>) -> Result<(), JwtError> {
    let token = key(Algorithm::ES256).sign_jwt(claims, None).unwrap();
    let parsed = parse(&token).unwrap();
    parsed
        .verify(&key(Algorithm::ES256).verifying_key().unwrap())
        .unwrap();
    parsed.validate(v)
}

fn validate(claims: &Value) -> Result<(), JwtError> {
    validate_with(claims, &validation())
}

fn malformed(m: Malformation) -> Result<Unverified, JwtError> {
    Err(JwtError::Malformed(m))
}

// --- signatures ---

#[test]
fn flipped_signature_byte_is_a_bad_signature() {
    for alg in Algorithm::ALL {
        let signer = key(alg);
        let token = signer.sign_jwt(&claims(), None).unwrap();
        let (input, signature) = token.rsplit_once('.').unwrap();
        let mut signature = unb64(signature);
        for index in [0, signature.len() / 2, signature.len() - 1] {
            let mut bad = signature.clone();
            bad[index] ^= 0x01;
            let tampered = format!("{input}.{}", b64(&bad));
            let parsed = parse(&tampered).unwrap();
            assert_eq!(
                parsed.verify(&signer.verifying_key().unwrap()),
                Err(JwtError::BadSignature),
                "{alg} byte {index}"
            );
        }
        // Truncated and empty signatures.
        signature.pop();
        for bad in [b64(&signature), String::new()] {
            let parsed = parse(&format!("{input}.{bad}")).unwrap();
            assert_eq!(
                parsed.verify(&signer.verifying_key().unwrap()),
                Err(JwtError::BadSignature),
                "{alg}"
            );
        }
    }
}

#[test]
fn modified_claims_are_a_bad_signature() {
    let signer = key(Algorithm::RS256);
    let token = signer.sign_jwt(&claims(), None).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let elevated = b64(claims_with(json!({"sub": "admin"})).to_string().as_bytes());
    let tampered = format!("{}.{elevated}.{}", parts[0], parts[2]);
    assert_eq!(
        parse(&tampered)
            .unwrap()
            .verify(&signer.verifying_key().unwrap()),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn signature_from_another_key_is_a_bad_signature() {
    for alg in Algorithm::ALL {
        let token = other_key(alg).sign_jwt(&claims(), None).unwrap();
        let parsed = parse(&token).unwrap();
        assert_eq!(
            parsed.verify(&key(alg).verifying_key().unwrap()),
            Err(JwtError::BadSignature),
            "{alg}"
        );
    }
}

#[test]
fn switching_between_algorithms_of_one_key_breaks_the_signature() {
    // An RSA key without `alg` allows RS256 and PS256; relabelling the header changes the
    // signing input, so the signature no longer verifies.
    let signer = key(Algorithm::RS256);
    let mut jwk = signer.public_jwk();
    jwk.alg = None;
    let unpinned = VerifyingKey::from_jwk(&jwk).unwrap();
    let token = signer.sign_jwt(&claims(), None).unwrap();
    let signature = token.rsplit_once('.').unwrap().1;
    let relabelled_header = b64(json!({"alg": "PS256", "kid": signer.kid()})
        .to_string()
        .as_bytes());
    let payload = token.split('.').nth(1).unwrap();
    let relabelled = format!("{relabelled_header}.{payload}.{signature}");
    assert_eq!(
        parse(&relabelled).unwrap().verify(&unpinned),
        Err(JwtError::BadSignature)
    );
}

// --- algorithms ---

#[test]
fn alg_none_is_rejected() {
    for none in ["none", "None", "NONE", "nOnE"] {
        let input = format!(
            "{}.{}",
            b64(json!({"alg": none}).to_string().as_bytes()),
            b64(claims().to_string().as_bytes())
        );
        for token in [format!("{input}."), format!("{input}.{}", b64(b"sig"))] {
            assert_eq!(
                parse(&token).map(|_| ()),
                Err(JwtError::UnsupportedAlgorithm { alg: none.into() })
            );
        }
    }
}

/// The classic confusion attack: the attacker takes the issuer's RSA public key (which is
/// public), uses its bytes as an HMAC secret and sends `alg: HS256`. A library that lets the
/// header pick the algorithm and feeds the RSA key to HMAC accepts the forgery.
#[test]
fn hmac_confusion_with_the_public_key_is_rejected() {
    let signer = key(Algorithm::RS256);
    let rsa = RsaKeyPair::from_pkcs8(signer.to_pkcs8().unwrap().expose()).unwrap();
    let pkcs1_der = rsa.public_key().as_ref().to_vec();
    let spki: PublicKeyX509Der<'static> = rsa.public_key().as_der().unwrap();
    let spki_der = spki.as_ref().to_vec();
    let jwk_json = serde_json::to_vec(&signer.public_jwk()).unwrap();
    let set = key_set(&[signer]);

    for (alg, hmac_alg) in [
        ("HS256", hmac::HMAC_SHA256),
        ("HS384", hmac::HMAC_SHA384),
        ("HS512", hmac::HMAC_SHA512),
    ] {
        for secret in [&pkcs1_der, &spki_der, &jwk_json] {
            let input = format!(
                "{}.{}",
                b64(json!({"alg": alg, "kid": signer.kid()})
                    .to_string()
                    .as_bytes()),
                b64(claims().to_string().as_bytes())
            );
            let tag = hmac::sign(&hmac::Key::new(hmac_alg, secret), input.as_bytes());
            let forged = format!("{input}.{}", b64(tag.as_ref()));
            assert_eq!(
                parse(&forged).map(|_| ()),
                Err(JwtError::UnsupportedAlgorithm { alg: alg.into() })
            );
        }
    }
    // And there is no way to even look up a key for an HMAC algorithm: `Algorithm` has no such
    // variant, so every key in the set answers only to asymmetric algorithms.
    for key in set.iter() {
        assert!(key.algorithms().all(|a| a.as_str().starts_with(['R', 'P'])));
    }
}

#[test]
fn unknown_algorithms_are_unsupported_and_the_name_is_truncated() {
    let long = "X".repeat(100);
    for (alg, expected) in [
        ("ES512", "ES512".to_owned()),
        ("RS1", "RS1".to_owned()),
        ("rs256", "rs256".to_owned()),
        ("", String::new()),
        (long.as_str(), format!("{}…", "X".repeat(64))),
    ] {
        let token = forge(&json!({"alg": alg}), &claims(), key(Algorithm::ES256));
        assert_eq!(
            parse(&token).map(|_| ()),
            Err(JwtError::UnsupportedAlgorithm { alg: expected })
        );
    }
}

#[test]
fn rs256_token_with_an_ec_key_is_not_allowed() {
    let token = key(Algorithm::RS256).sign_jwt(&claims(), None).unwrap();
    let ec_key = key(Algorithm::ES256).verifying_key().unwrap();
    assert_eq!(
        parse(&token).unwrap().verify(&ec_key),
        Err(JwtError::AlgorithmNotAllowed {
            alg: Algorithm::RS256
        })
    );
}

#[test]
fn es256_token_with_an_rsa_key_is_not_allowed() {
    let token = key(Algorithm::ES256).sign_jwt(&claims(), None).unwrap();
    let mut jwk = key(Algorithm::RS256).public_jwk();
    jwk.alg = None; // even an unpinned RSA key allows only RS*/PS*
    let rsa_key = VerifyingKey::from_jwk(&jwk).unwrap();
    assert_eq!(
        parse(&token).unwrap().verify(&rsa_key),
        Err(JwtError::AlgorithmNotAllowed {
            alg: Algorithm::ES256
        })
    );
}

#[test]
fn other_algorithm_mismatches_are_not_allowed() {
    let cases = [
        // A P-256 key never verifies ES384, and vice versa.
        (Algorithm::ES384, Algorithm::ES256),
        (Algorithm::ES256, Algorithm::ES384),
        // An RSA key pinned to RS256 by its JWK does not verify PS256.
        (Algorithm::PS256, Algorithm::RS256),
        (Algorithm::EdDSA, Algorithm::ES256),
        (Algorithm::ES256, Algorithm::EdDSA),
    ];
    for (token_alg, key_alg) in cases {
        let token = key(token_alg).sign_jwt(&claims(), None).unwrap();
        assert_eq!(
            parse(&token)
                .unwrap()
                .verify(&key(key_alg).verifying_key().unwrap()),
            Err(JwtError::AlgorithmNotAllowed { alg: token_alg }),
            "{token_alg} token, {key_alg} key"
        );
    }
}

#[test]
fn algorithm_outside_the_validation_list_is_not_allowed() {
    let v = Validation {
        algorithms: &[Algorithm::RS256],
        ..validation()
    };
    assert_eq!(
        validate_with(&claims(), &v),
        Err(JwtError::AlgorithmNotAllowed {
            alg: Algorithm::ES256
        })
    );
    let v = Validation {
        algorithms: &[],
        ..validation()
    };
    assert_eq!(
        validate_with(&claims(), &v),
        Err(JwtError::AlgorithmNotAllowed {
            alg: Algorithm::ES256
        })
    );
}

// --- keys ---

#[test]
fn unknown_kid_is_an_unknown_key() {
    let signer = key(Algorithm::ES256);
    let set = key_set(&[signer, key(Algorithm::RS256)]);
    let token = forge(
        &json!({"alg": "ES256", "kid": "no-such-key"}),
        &claims(),
        signer,
    );
    assert_eq!(
        parse(&token).unwrap().verify_with(&set).map(|_| ()),
        Err(JwtError::UnknownKey)
    );
    // A known kid whose key does not allow the token's algorithm is no match either.
    let token = forge(
        &json!({"alg": "ES256", "kid": key(Algorithm::RS256).kid()}),
        &claims(),
        signer,
    );
    assert_eq!(
        parse(&token).unwrap().verify_with(&set).map(|_| ()),
        Err(JwtError::UnknownKey)
    );
}

#[test]
fn no_kid_with_several_candidate_keys_is_an_unknown_key() {
    let token = forge(&json!({"alg": "ES256"}), &claims(), key(Algorithm::ES256));
    let set = key_set(&[key(Algorithm::ES256), other_key(Algorithm::ES256)]);
    assert_eq!(
        parse(&token).unwrap().verify_with(&set).map(|_| ()),
        Err(JwtError::UnknownKey)
    );
    let empty = key_set(&[]);
    assert_eq!(
        parse(&token).unwrap().verify_with(&empty).map(|_| ()),
        Err(JwtError::UnknownKey)
    );
}

#[test]
fn right_kid_wrong_key_material_is_a_bad_signature() {
    // The attacker signs with their own key but claims the issuer's kid.
    let issuer = key(Algorithm::ES256);
    let token = forge(&header(issuer), &claims(), other_key(Algorithm::ES256));
    let set = key_set(&[issuer]);
    assert_eq!(
        parse(&token).unwrap().verify_with(&set).map(|_| ()),
        Err(JwtError::BadSignature)
    );
}

// --- time ---

#[test]
fn expired() {
    assert_eq!(
        validate(&claims_with(json!({"exp": NOW - 1}))),
        Err(JwtError::Expired)
    );
    assert_eq!(
        validate(&claims_with(json!({"exp": 0}))),
        Err(JwtError::Expired)
    );
    assert_eq!(
        validate(&claims_with(json!({"exp": -5}))),
        Err(JwtError::Expired)
    );
    // Valid up to and including the second of `exp`.
    assert_eq!(validate(&claims_with(json!({"exp": NOW}))), Ok(()));
}

#[test]
fn issued_in_the_future() {
    assert_eq!(
        validate(&claims_with(json!({"iat": NOW + 1}))),
        Err(JwtError::IssuedInFuture)
    );
    assert_eq!(validate(&claims_with(json!({"iat": NOW}))), Ok(()));
    let with_leeway = Validation {
        leeway_secs: 30,
        ..validation()
    };
    assert_eq!(
        validate_with(&claims_with(json!({"iat": NOW + 30})), &with_leeway),
        Ok(())
    );
    assert_eq!(
        validate_with(&claims_with(json!({"iat": NOW + 31})), &with_leeway),
        Err(JwtError::IssuedInFuture)
    );
}

#[test]
fn not_yet_valid() {
    assert_eq!(
        validate(&claims_with(json!({"nbf": NOW + 1}))),
        Err(JwtError::NotYetValid)
    );
    assert_eq!(validate(&claims_with(json!({"nbf": NOW}))), Ok(()));
    assert_eq!(
        validate(&claims_with(json!({"nbf": null}))),
        Ok(()),
        "nbf is optional"
    );
}

#[test]
fn leeway_is_honoured() {
    let with_leeway = |secs| Validation {
        leeway_secs: secs,
        ..validation()
    };
    let expired_30s_ago = claims_with(json!({"exp": NOW - 30}));
    assert_eq!(validate_with(&expired_30s_ago, &with_leeway(30)), Ok(()));
    assert_eq!(validate_with(&expired_30s_ago, &with_leeway(60)), Ok(()));
    assert_eq!(
        validate_with(&expired_30s_ago, &with_leeway(29)),
        Err(JwtError::Expired)
    );
    let starts_in_30s = claims_with(json!({"nbf": NOW + 30}));
    assert_eq!(validate_with(&starts_in_30s, &with_leeway(30)), Ok(()));
    assert_eq!(
        validate_with(&starts_in_30s, &with_leeway(29)),
        Err(JwtError::NotYetValid)
    );
    // An absurd leeway saturates instead of overflowing.
    assert_eq!(
        validate_with(&expired_30s_ago, &with_leeway(u64::MAX)),
        Ok(())
    );
    let far_future = Validation {
        now: i64::MAX,
        ..validation()
    };
    assert_eq!(
        validate_with(&claims(), &far_future),
        Err(JwtError::Expired)
    );
}

#[test]
fn missing_exp() {
    assert_eq!(
        validate(&claims_with(json!({"exp": null}))),
        Err(JwtError::MissingExpiry)
    );
}

#[test]
fn non_numeric_dates_are_malformed() {
    for (name, value) in [
        ("exp", json!("1900000000")),
        ("exp", json!(true)),
        ("nbf", json!([1])),
        ("iat", json!("yesterday")),
    ] {
        assert_eq!(
            validate(&claims_with(json!({ name: value }))),
            Err(JwtError::Malformed(Malformation::Claim(name))),
            "{name}"
        );
    }
    // Huge integers saturate rather than wrap.
    assert_eq!(validate(&claims_with(json!({"exp": u64::MAX}))), Ok(()));
    assert_eq!(validate(&claims_with(json!({"exp": 1e300}))), Ok(()));
    assert_eq!(
        validate(&claims_with(json!({"exp": -1e300}))),
        Err(JwtError::Expired)
    );
}

// --- issuer, audience, subject ---

#[test]
fn wrong_issuer() {
    for iss in [
        json!("https://evil.example"),
        json!("https://auth.portcullis.test/"),
        json!("HTTPS://AUTH.PORTCULLIS.TEST"),
        json!(""),
        json!(["https://auth.portcullis.test"]),
        json!(null),
    ] {
        assert_eq!(
            validate(&claims_with(json!({ "iss": iss }))),
            Err(JwtError::WrongIssuer),
            "{iss}"
        );
    }
}

#[test]
fn wrong_audience_string_form() {
    assert_eq!(
        validate(&claims_with(
            json!({"aud": "https://other.example.com/mcp"})
        )),
        Err(JwtError::WrongAudience)
    );
    assert_eq!(
        validate(&claims_with(json!({"aud": format!("{AUDIENCE}/")}))),
        Err(JwtError::WrongAudience)
    );
    assert_eq!(validate(&claims_with(json!({"aud": AUDIENCE}))), Ok(()));
}

#[test]
fn wrong_audience_array_form() {
    assert_eq!(
        validate(&claims_with(
            json!({"aud": ["https://a.example", "https://b.example"]})
        )),
        Err(JwtError::WrongAudience)
    );
    assert_eq!(
        validate(&claims_with(json!({"aud": []}))),
        Err(JwtError::WrongAudience)
    );
    assert_eq!(
        validate(&claims_with(
            json!({"aud": ["https://a.example", AUDIENCE]})
        )),
        Ok(())
    );
}

#[test]
fn missing_audience_and_empty_expectations() {
    assert_eq!(
        validate(&claims_with(json!({"aud": null}))),
        Err(JwtError::WrongAudience)
    );
    // Audience validation is mandatory: no expected audience means no token passes.
    let v = Validation {
        audiences: &[],
        ..validation()
    };
    assert_eq!(validate_with(&claims(), &v), Err(JwtError::WrongAudience));
}

#[test]
fn audience_of_the_wrong_type_is_malformed() {
    for aud in [json!(1), json!({"a": 1}), json!([AUDIENCE, 1])] {
        assert_eq!(
            validate(&claims_with(json!({ "aud": aud }))),
            Err(JwtError::Malformed(Malformation::Claim("aud"))),
            "{aud}"
        );
    }
}

#[test]
fn missing_sub() {
    for sub in [json!(null), json!(""), json!(42), json!(["user-1"])] {
        assert_eq!(
            validate(&claims_with(json!({ "sub": sub }))),
            Err(JwtError::MissingSubject),
            "{sub}"
        );
    }
    let optional = Validation {
        require_sub: false,
        ..validation()
    };
    assert_eq!(
        validate_with(&claims_with(json!({"sub": null})), &optional),
        Ok(())
    );
}

// --- size and structure ---

#[test]
fn oversized() {
    let token = key(Algorithm::ES256).sign_jwt(&claims(), None).unwrap();
    assert_eq!(
        Unverified::parse(&token, token.len() - 1).map(|_| ()),
        Err(JwtError::Oversized {
            max_len: token.len() - 1
        })
    );
    assert!(Unverified::parse(&token, token.len()).is_ok());
    // The size check comes before anything else, even for garbage.
    let huge = "!".repeat(MAX_LEN + 1);
    assert_eq!(
        parse(&huge).map(|_| ()),
        Err(JwtError::Oversized { max_len: MAX_LEN })
    );
}

#[test]
fn malformed_segment_counts() {
    let token = key(Algorithm::ES256).sign_jwt(&claims(), None).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    for bad in [
        String::new(),
        parts[0].to_owned(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{token}.{}", parts[2]),
        format!("{token}."),
        format!(
            "{}.{}.{}.{}.{}",
            parts[0], parts[1], parts[2], parts[1], parts[2]
        ),
    ] {
        assert_eq!(
            parse(&bad).map(|_| ()),
            malformed(Malformation::SegmentCount).map(|_| ()),
            "{bad}"
        );
    }
}

#[test]
fn malformed_base64() {
    let token = key(Algorithm::ES256).sign_jwt(&claims(), None).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let cases = [
        (
            format!("{}*.{}.{}", parts[0], parts[1], parts[2]),
            TokenPart::Header,
        ),
        (
            format!("{}.{}+.{}", parts[0], parts[1], parts[2]),
            TokenPart::Payload,
        ),
        (
            format!("{}.{}.{}/", parts[0], parts[1], parts[2]),
            TokenPart::Signature,
        ),
        (
            format!(" {}.{}.{}", parts[0], parts[1], parts[2]),
            TokenPart::Header,
        ),
        (
            format!("{}.{}.{}\n", parts[0], parts[1], parts[2]),
            TokenPart::Signature,
        ),
        // A single base64 character is never a whole byte.
        (format!("{}.{}.A", parts[0], parts[1]), TokenPart::Signature),
    ];
    for (bad, part) in cases {
        assert_eq!(
            parse(&bad).map(|_| ()),
            Err(JwtError::Malformed(Malformation::Base64(part))),
            "{bad}"
        );
    }
}

#[test]
fn malformed_padding() {
    let signer = key(Algorithm::ES256);
    let header = header(signer).to_string();
    let padding = (3 - header.len() % 3) % 3;
    assert!(padding > 0, "pick a header whose base64 needs padding");
    let token = forge_raw(header.as_bytes(), claims().to_string().as_bytes(), signer);
    let (header_b64, rest) = token.split_once('.').unwrap();
    let padded = format!("{header_b64}{}.{rest}", "=".repeat(padding));
    assert!(parse(&token).is_ok());
    assert_eq!(
        parse(&padded).map(|_| ()),
        Err(JwtError::Malformed(Malformation::Base64(TokenPart::Header)))
    );
    let token = key(Algorithm::ES256).sign_jwt(&claims(), None).unwrap();
    let signature_len = token.rsplit_once('.').unwrap().1.len();
    assert_eq!(signature_len % 4, 2, "a 64-byte signature needs padding");
    assert_eq!(
        parse(&format!("{token}==")).map(|_| ()),
        Err(JwtError::Malformed(Malformation::Base64(
            TokenPart::Signature
        )))
    );
}

#[test]
fn malformed_non_json() {
    let signer = key(Algorithm::ES256);
    let payload = claims().to_string();
    for header in [&b"{alg:ES256}"[..], b"", b"{\"alg\":\"ES256\"", b"\xff\xfe"] {
        assert_eq!(
            parse(&forge_raw(header, payload.as_bytes(), signer)).map(|_| ()),
            Err(JwtError::Malformed(Malformation::Json(TokenPart::Header)))
        );
    }
    let header = header(signer).to_string();
    for payload in [&b"not json"[..], b"", b"{\"sub\":1} trailing"] {
        assert_eq!(
            parse(&forge_raw(header.as_bytes(), payload, signer)).map(|_| ()),
            Err(JwtError::Malformed(Malformation::Json(TokenPart::Payload)))
        );
    }
}

#[test]
fn malformed_header_array_and_other_non_objects() {
    let signer = key(Algorithm::ES256);
    let payload = claims().to_string();
    for header in [&br#"[{"alg":"ES256"}]"#[..], b"\"ES256\"", b"null", b"42"] {
        assert_eq!(
            parse(&forge_raw(header, payload.as_bytes(), signer)).map(|_| ()),
            Err(JwtError::Malformed(Malformation::NotObject(
                TokenPart::Header
            )))
        );
    }
    let header = header(signer).to_string();
    for payload in [&b"[1,2]"[..], b"\"claims\"", b"true"] {
        assert_eq!(
            parse(&forge_raw(header.as_bytes(), payload, signer)).map(|_| ()),
            Err(JwtError::Malformed(Malformation::NotObject(
                TokenPart::Payload
            )))
        );
    }
}

#[test]
fn malformed_crit_and_b64() {
    let signer = key(Algorithm::ES256);
    let with = |extra: Value| {
        let mut h = header(signer);
        h.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        forge(&h, &claims(), signer)
    };
    assert_eq!(
        parse(&with(json!({"crit": ["exp"], "exp": 1}))).map(|_| ()),
        malformed(Malformation::CriticalHeader).map(|_| ())
    );
    assert_eq!(
        parse(&with(json!({"crit": []}))).map(|_| ()),
        malformed(Malformation::CriticalHeader).map(|_| ())
    );
    assert_eq!(
        parse(&with(json!({"b64": false, "crit": ["b64"]}))).map(|_| ()),
        malformed(Malformation::CriticalHeader).map(|_| ())
    );
    assert_eq!(
        parse(&with(json!({"b64": true}))).map(|_| ()),
        malformed(Malformation::UnencodedPayload).map(|_| ())
    );
}

#[test]
fn malformed_header_members() {
    let signer = key(Algorithm::ES256);
    assert_eq!(
        parse(&forge(&json!({"kid": signer.kid()}), &claims(), signer)).map(|_| ()),
        malformed(Malformation::MissingAlgorithm).map(|_| ())
    );
    assert_eq!(
        parse(&forge(&json!({"alg": ["ES256"]}), &claims(), signer)).map(|_| ()),
        malformed(Malformation::MissingAlgorithm).map(|_| ())
    );
    for (name, value) in [("kid", json!(1)), ("typ", json!(null)), ("cty", json!({}))] {
        let mut h = header(signer);
        h.as_object_mut().unwrap().insert(name.into(), value);
        assert_eq!(
            parse(&forge(&h, &claims(), signer)).map(|_| ()),
            malformed(Malformation::HeaderMember(name)).map(|_| ()),
            "{name}"
        );
    }
}

#[test]
fn malformed_duplicate_members() {
    let signer = key(Algorithm::ES256);
    // Two parsers that resolve a duplicate `alg` differently would disagree on the algorithm.
    let header = format!(r#"{{"alg":"ES256","kid":"{}","alg":"none"}}"#, signer.kid());
    let token = forge_raw(header.as_bytes(), claims().to_string().as_bytes(), signer);
    assert_eq!(
        parse(&token).map(|_| ()),
        Err(JwtError::Malformed(Malformation::DuplicateMember(
            TokenPart::Header
        )))
    );
    let payload = format!(r#"{{"sub":"user-1","exp":{},"sub":"admin"}}"#, NOW + 60);
    let token = forge_raw(
        crate::common::header(signer).to_string().as_bytes(),
        payload.as_bytes(),
        signer,
    );
    assert_eq!(
        parse(&token).map(|_| ()),
        Err(JwtError::Malformed(Malformation::DuplicateMember(
            TokenPart::Payload
        )))
    );
}

#[test]
fn embedded_keys_in_the_header_are_ignored() {
    // An attacker embeds their own public key (`jwk`) and a `jku`; neither is ever used: the key
    // comes from the issuer's set, so the forgery fails.
    let attacker = other_key(Algorithm::ES256);
    let issuer = key(Algorithm::ES256);
    let h = json!({
        "alg": "ES256",
        "kid": issuer.kid(),
        "jwk": attacker.public_jwk(),
        "jku": "https://evil.example/jwks",
    });
    let token = forge(&h, &claims(), attacker);
    let set = key_set(&[issuer]);
    assert_eq!(
        parse(&token).unwrap().verify_with(&set).map(|_| ()),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn errors_have_stable_codes_and_plain_messages() {
    let cases = [
        (JwtError::Oversized { max_len: 1 }, "oversized"),
        (JwtError::Malformed(Malformation::SegmentCount), "malformed"),
        (
            JwtError::UnsupportedAlgorithm {
                alg: "HS256".into(),
            },
            "unsupported_algorithm",
        ),
        (
            JwtError::AlgorithmNotAllowed {
                alg: Algorithm::RS256,
            },
            "algorithm_not_allowed",
        ),
        (JwtError::UnknownKey, "unknown_key"),
        (JwtError::BadSignature, "bad_signature"),
        (JwtError::Expired, "expired"),
        (JwtError::NotYetValid, "not_yet_valid"),
        (JwtError::WrongIssuer, "wrong_issuer"),
        (JwtError::WrongAudience, "wrong_audience"),
        (JwtError::MissingSubject, "missing_subject"),
        (JwtError::MissingExpiry, "missing_expiry"),
        (JwtError::IssuedInFuture, "issued_in_future"),
        (JwtError::WrongType, "wrong_type"),
    ];
    for (error, code) in cases {
        assert_eq!(error.code(), code);
        let message = error.to_string();
        assert!(message.starts_with(char::is_lowercase), "{message}");
        assert!(!message.ends_with('.'), "{message}");
    }
    assert_eq!(
        JwtError::Malformed(Malformation::Base64(TokenPart::Payload)).to_string(),
        "the token is malformed: the payload is not strict base64url"
    );
}
