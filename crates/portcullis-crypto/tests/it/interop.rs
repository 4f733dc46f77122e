//! Keys and tokens produced by other implementations: the RFC examples, and fixtures generated
//! with Python's `cryptography` (OpenSSL) by `tests/fixtures/independent.py`.

use aws_lc_rs::signature::Ed25519KeyPair;
use portcullis_crypto::jws::{
    Algorithm, Jwk, JwkSet, JwtError, KeySet, Malformation, SigningKey, TokenPart, Unverified,
    Validation, VerifyingKey,
};
use serde_json::{Value, json};

use crate::common::{MAX_LEN, b64, unb64};

/// RFC 7515, appendix A.2: RS256.
const RFC7515_A2_JWK: &str = r#"{"kty":"RSA",
 "n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ",
 "e":"AQAB"}"#;
const RFC7515_A2_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";

/// RFC 7515, appendix A.3: ES256 (the private `d` is left out: only the public key is needed).
const RFC7515_A3_JWK: &str = r#"{"kty":"EC","crv":"P-256",
 "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
 "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
const RFC7515_A3_TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

/// The claims of both RFC 7515 examples.
const RFC7515_EXP: i64 = 1_300_819_380;

/// RFC 8037, appendices A.1 to A.5: Ed25519.
const RFC8037_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
const RFC8037_THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";
const RFC8037_SIGNING_INPUT: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
const RFC8037_SIGNATURE: &str =
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

fn rfc7515_validation(now: i64) -> Validation<'static> {
    static AUDIENCES: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| vec!["https://example.com".to_owned()]);
    Validation {
        issuer: "joe",
        audiences: &AUDIENCES,
        algorithms: &[Algorithm::RS256, Algorithm::ES256],
        leeway_secs: 0,
        now,
        require_sub: false,
    }
}

fn check_rfc7515_example(jwk: &str, token: &str, alg: Algorithm) {
    let jwk: Jwk = serde_json::from_str(jwk).unwrap();
    let key = VerifyingKey::from_jwk(&jwk).unwrap();
    let parsed = Unverified::parse(token, MAX_LEN).unwrap();
    assert_eq!(parsed.header().alg(), alg);
    assert_eq!(parsed.header().kid(), None);
    assert_eq!(parsed.issuer(), Some("joe"));
    assert_eq!(
        parsed.claims().get("http://example.com/is_root"),
        Some(&Value::Bool(true))
    );
    parsed.verify(&key).unwrap();

    // The bare signature check agrees.
    let (input, signature) = token.rsplit_once('.').unwrap();
    key.verify_signature(alg, input.as_bytes(), &unb64(signature))
        .unwrap();

    // The claims go through validation: the example has no `aud`, so with the right time and
    // issuer it fails exactly there; after `exp` it is expired.
    assert_eq!(
        parsed.validate(&rfc7515_validation(RFC7515_EXP - 60)),
        Err(JwtError::WrongAudience)
    );
    assert_eq!(
        parsed.validate(&rfc7515_validation(RFC7515_EXP + 1)),
        Err(JwtError::Expired)
    );

    // The same token with a modified payload no longer verifies.
    let parts: Vec<&str> = token.split('.').collect();
    let forged_payload =
        b64(br#"{"iss":"joe","exp":1300819380,"http://example.com/is_root":false}"#);
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert_eq!(
        Unverified::parse(&forged, MAX_LEN).unwrap().verify(&key),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn rfc7515_a2_rs256() {
    check_rfc7515_example(RFC7515_A2_JWK, RFC7515_A2_TOKEN, Algorithm::RS256);
}

#[test]
fn rfc7515_a3_es256() {
    check_rfc7515_example(RFC7515_A3_JWK, RFC7515_A3_TOKEN, Algorithm::ES256);
}

#[test]
fn rfc7515_examples_through_a_key_set() {
    let jwks: JwkSet = serde_json::from_value(json!({
        "keys": [
            serde_json::from_str::<Value>(RFC7515_A2_JWK).unwrap(),
            serde_json::from_str::<Value>(RFC7515_A3_JWK).unwrap(),
        ]
    }))
    .unwrap();
    let (keys, skipped) = KeySet::from_jwks(&jwks);
    assert!(skipped.is_empty());
    // Neither token has a kid: each algorithm has exactly one candidate key.
    for token in [RFC7515_A2_TOKEN, RFC7515_A3_TOKEN] {
        Unverified::parse(token, MAX_LEN)
            .unwrap()
            .verify_with(&keys)
            .unwrap();
    }
}

fn rfc8037_public_jwk() -> Jwk {
    serde_json::from_value(json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X})).unwrap()
}

#[test]
fn rfc8037_ed25519_verification() {
    let key = VerifyingKey::from_jwk(&rfc8037_public_jwk()).unwrap();
    key.verify_signature(
        Algorithm::EdDSA,
        RFC8037_SIGNING_INPUT.as_bytes(),
        &unb64(RFC8037_SIGNATURE),
    )
    .unwrap();
    let mut bad = unb64(RFC8037_SIGNATURE);
    bad[0] ^= 0x80;
    assert!(
        key.verify_signature(Algorithm::EdDSA, RFC8037_SIGNING_INPUT.as_bytes(), &bad)
            .is_err()
    );
    // The RFC's payload is the text "Example of Ed25519 signing", not a JSON object, so it is a
    // JWS but not a JWT: the JWT parser refuses it.
    let token = format!("{RFC8037_SIGNING_INPUT}.{RFC8037_SIGNATURE}");
    assert_eq!(
        Unverified::parse(&token, MAX_LEN).map(|_| ()),
        Err(JwtError::Malformed(Malformation::Json(TokenPart::Payload)))
    );
}

#[test]
fn rfc8037_ed25519_signing_matches_the_rfc() {
    // Ed25519 is deterministic: our signer must reproduce the RFC's signature byte for byte.
    let pair =
        Ed25519KeyPair::from_seed_and_public_key(&unb64(RFC8037_D), &unb64(RFC8037_X)).unwrap();
    let pkcs8 = pair.to_pkcs8v1().unwrap();
    let signer = SigningKey::from_pkcs8(Algorithm::EdDSA, pkcs8.as_ref()).unwrap();
    assert_eq!(signer.kid(), RFC8037_THUMBPRINT, "RFC 8037 appendix A.3");
    assert_eq!(
        b64(&signer.sign(RFC8037_SIGNING_INPUT.as_bytes()).unwrap()),
        RFC8037_SIGNATURE
    );
    let jwk = signer.public_jwk();
    assert_eq!(jwk.x.as_deref(), Some(RFC8037_X));
    assert_eq!(jwk.thumbprint().unwrap(), RFC8037_THUMBPRINT);
}

#[derive(serde::Deserialize)]
struct Independent {
    claims: Value,
    jwks: JwkSet,
    tokens: std::collections::BTreeMap<String, String>,
}

#[test]
fn tokens_from_python_cryptography_verify_and_validate() {
    let fixtures: Independent =
        serde_json::from_str(include_str!("../fixtures/independent.json")).unwrap();
    let (keys, skipped) = KeySet::from_jwks(&fixtures.jwks);
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(keys.len(), 3);
    assert_eq!(
        keys.find(Some("rsa-1"), Algorithm::PS256)
            .unwrap()
            .algorithms()
            .count(),
        6,
        "an RSA JWK without alg allows RS* and PS*"
    );

    let audiences = vec!["api://portcullis".to_owned()];
    let validation = Validation {
        issuer: "https://idp.example.com",
        audiences: &audiences,
        algorithms: &Algorithm::ALL,
        leeway_secs: 0,
        now: 1_800_000_000,
        require_sub: true,
    };
    let mut seen = Vec::new();
    for (name, token) in &fixtures.tokens {
        let alg: Algorithm = name.parse().unwrap();
        let parsed = Unverified::parse(token, MAX_LEN).unwrap();
        assert_eq!(parsed.header().alg(), alg);
        assert_eq!(parsed.header().typ(), Some("at+jwt"));
        let used = parsed.verify_with(&keys).unwrap();
        assert_eq!(used.kid(), parsed.header().kid());
        parsed.validate(&validation).unwrap();
        assert_eq!(parsed.claims(), fixtures.claims.as_object().unwrap());

        // One flipped signature bit breaks each of them.
        let (input, signature) = token.rsplit_once('.').unwrap();
        let mut signature = unb64(signature);
        signature[5] ^= 0x10;
        let tampered = format!("{input}.{}", b64(&signature));
        assert_eq!(
            Unverified::parse(&tampered, MAX_LEN)
                .unwrap()
                .verify_with(&keys)
                .map(|_| ()),
            Err(JwtError::BadSignature),
            "{name}"
        );
        seen.push(alg);
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::ES384,
            Algorithm::EdDSA
        ]
    );
}
