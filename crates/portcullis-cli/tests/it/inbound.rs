//! Inbound tokens: every way a token is refused at the token endpoint, and the JWKS cache.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use portcullis_crypto::jws::Algorithm;
use serde_json::{Value, json};

use crate::support::{Backend, Idp, TestServer};

async fn setup() -> (TestServer, Idp) {
    with_keyed_app(TestServer::start(Backend::Sqlite).await).await
}

/// The same, with an issuer's JWKS refetched at most once a second; the configuration file lives
/// in the returned directory.
async fn setup_with_fast_refetch() -> (TestServer, Idp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("p.toml");
    std::fs::write(&config, "[inbound]\njwks_min_refetch_seconds = 1\n").unwrap();
    let s = TestServer::start_with(Backend::Sqlite, |env| {
        env.insert("PORTCULLIS_CONFIG".into(), config.display().to_string());
    })
    .await;
    let (s, idp) = with_keyed_app(s).await;
    (s, idp, dir)
}

async fn with_keyed_app(s: TestServer) -> (TestServer, Idp) {
    let idp = Idp::start().await;
    s.trust(&idp).await;
    // An API-key app with an app-wide key: a token that passes verification gets the key.
    s.must_post(
        "/v1/mgmt/outbound-apps",
        json!({"id": "keyed", "name": "Keyed", "type": "apiKey"}),
    )
    .await;
    s.must_post(
        "/v1/mgmt/outbound-apps/keyed/api-keys",
        json!({"apiKey": "k-123"}),
    )
    .await;
    (s, idp)
}

async fn refused(s: &TestServer, token: &str) -> (u16, String, Value) {
    let (status, body, headers) = s.fetch(Some(token), "keyed", json!({})).await;
    let challenge = headers
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, challenge, body)
}

fn assert_refused(result: (u16, String, Value), reason: &str) {
    let (status, challenge, body) = result;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_token", "{body}");
    assert_eq!(body["details"]["reason"], reason, "{body}");
    assert!(challenge.starts_with("Bearer"), "{challenge}");
}

fn forge(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        B64.encode(serde_json::to_vec(header).unwrap()),
        B64.encode(serde_json::to_vec(claims).unwrap()),
        B64.encode(signature)
    )
}

/// An issuer may require a `typ` (RFC 8725 §3.11): `at+jwt` access tokens pass (with or without
/// `application/`), an ID token or an untyped token of the same issuer does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_may_require_a_token_type() {
    let (s, idp) = setup().await;
    let claims = idp.claims("alice");
    let untyped = idp.sign_typed(None, &claims);
    let id_token = idp.sign_typed(Some("JWT"), &claims);
    // No requirement: any typ.
    assert_eq!(refused(&s, &untyped).await.0, 200);
    let (_, list) = s.get("/v1/mgmt/issuers").await;
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    let mut registration = idp.registration();
    registration["requiredTyp"] = json!("at+jwt");
    let (status, body) = s.put(&format!("/v1/mgmt/issuers/{id}"), registration).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["requiredTyp"], "at+jwt");
    for t in [
        idp.sign_typed(Some("at+jwt"), &claims),
        idp.sign_typed(Some("application/AT+JWT"), &claims),
    ] {
        assert_eq!(refused(&s, &t).await.0, 200);
    }
    assert_refused(refused(&s, &untyped).await, "wrong_type");
    assert_refused(refused(&s, &id_token).await, "wrong_type");
    let mut bad = idp.registration();
    bad["requiredTyp"] = json!("at jwt");
    assert_eq!(s.put(&format!("/v1/mgmt/issuers/{id}"), bad).await.0, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_supported_algorithm_is_accepted() {
    let (s, idp) = setup().await;
    for alg in [Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA] {
        let t = idp.token_with(alg, "alice", json!({}));
        let (status, body, _) = s.fetch(Some(&t), "keyed", json!({})).await;
        assert_eq!(status, 200, "{alg:?}: {body}");
        assert_eq!(body["token"]["apiKey"], "k-123");
        assert_eq!(body["token"]["userId"], idp.principal("alice").as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_foreign_credential_is_a_401_with_a_challenge() {
    let (s, _idp) = setup().await;
    let (status, body, headers) = s.fetch(None, "keyed", json!({})).await;
    assert_eq!(status, 401);
    assert_eq!(body["details"]["reason"], "missing_token");
    assert_eq!(headers["www-authenticate"], "Bearer");
    // Basic credentials are not a bearer token.
    let resp = s
        .http
        .post(format!("{}/v1/outbound/apps/keyed/token", s.url))
        .header("authorization", "Basic YWxpY2U6cHc=")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_signature_is_refused() {
    let (s, idp) = setup().await;
    let t = idp.token("alice");
    let (head, sig) = t.rsplit_once('.').unwrap();
    let mut bytes = B64.decode(sig).unwrap();
    bytes[10] ^= 0x01;
    assert_refused(
        refused(&s, &format!("{head}.{}", B64.encode(bytes))).await,
        "bad_signature",
    );
    // A payload changed under a valid signature.
    let parts: Vec<&str> = t.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = json!("mallory");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    assert_refused(refused(&s, &forged).await, "bad_signature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alg_none_is_refused() {
    let (s, idp) = setup().await;
    let claims = idp.claims("alice");
    let t = forge(&json!({"alg": "none", "typ": "JWT"}), &claims, b"");
    let (status, _, body) = refused(&s, &t).await;
    assert_eq!(status, 401, "{body}");
    let t = forge(&json!({"alg": "None"}), &claims, b"");
    assert_eq!(refused(&s, &t).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hmac_signed_with_the_public_key_is_refused() {
    let (s, idp) = setup().await;
    let jwks: Value = reqwest::get(&idp.jwks_url)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rsa = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kty"] == "RSA")
        .unwrap()
        .clone();
    let claims = idp.claims("alice");
    for secret in [
        serde_json::to_vec(&rsa).unwrap(),
        B64.decode(rsa["n"].as_str().unwrap()).unwrap(),
    ] {
        let header = json!({"alg": "HS256", "kid": rsa["kid"]});
        let input = format!(
            "{}.{}",
            B64.encode(serde_json::to_vec(&header).unwrap()),
            B64.encode(serde_json::to_vec(&claims).unwrap())
        );
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        let t = format!("{input}.{}", B64.encode(tag.as_ref()));
        let (status, _, body) = refused(&s, &t).await;
        assert_eq!(status, 401, "{body}");
        assert_ne!(body["token"]["apiKey"], "k-123");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_are_checked() {
    let (s, idp) = setup().await;
    let now = idp.claims("x")["iat"].as_i64().unwrap();
    let cases = [
        (json!({"exp": now - 60}), "expired"),
        (json!({"nbf": now + 600}), "not_yet_valid"),
        (json!({"iat": now + 600}), "issued_in_future"),
        (
            json!({"aud": "https://someone-else.example"}),
            "wrong_audience",
        ),
        (json!({"sub": null}), "missing_subject"),
        (json!({"sub": ""}), "missing_subject"),
        (json!({"exp": null}), "missing_expiry"),
    ];
    for (extra, reason) in cases {
        let t = idp.token_with(Algorithm::ES256, "alice", extra.clone());
        let (status, _, body) = refused(&s, &t).await;
        assert_eq!(status, 401, "{extra}: {body}");
        assert_eq!(body["details"]["reason"], reason, "{extra}: {body}");
    }
    // An issuer nobody trusts, even with a valid signature.
    let t = idp.token_with(
        Algorithm::ES256,
        "alice",
        json!({"iss": "https://evil.example"}),
    );
    assert_refused(refused(&s, &t).await, "unknown_issuer");
    // Within the configured leeway (5 s) an expired token still passes.
    let t = idp.token_with(Algorithm::ES256, "alice", json!({"exp": now - 2}));
    assert_eq!(s.fetch(Some(&t), "keyed", json!({})).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_tokens_are_refused() {
    let (s, idp) = setup().await;
    for t in [
        "abc",
        "a.b",
        "a.b.c.d",
        "....",
        "eyJhbGciOiJFUzI1NiJ9.e30.@@@",
        "é.é.é",
    ] {
        let (status, _, body) = refused(&s, t).await;
        assert_eq!(status, 401, "{t}: {body}");
        assert_eq!(body["error"], "invalid_token");
    }
    let huge = idp.token_with(
        Algorithm::ES256,
        "alice",
        json!({"pad": "x".repeat(20_000)}),
    );
    assert_refused(refused(&s, &huge).await, "oversized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_the_fetch_scope_is_forbidden() {
    let (s, idp) = setup().await;
    let t = idp.token_with(
        Algorithm::ES256,
        "alice",
        json!({"scope": "openid profile"}),
    );
    let (status, body, headers) = s.fetch(Some(&t), "keyed", json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "insufficient_scope");
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("insufficient_scope") && challenge.contains("outbound.token.fetch"),
        "{challenge}"
    );
    // `scp` as an array (Entra ID, Okta) counts too.
    let t = idp.token_with(
        Algorithm::ES256,
        "alice",
        json!({"scope": null, "scp": ["outbound.token.fetch"]}),
    );
    assert_eq!(s.fetch(Some(&t), "keyed", json!({})).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_refetches_the_jwks_at_most_once_per_interval() {
    let (s, idp, _dir) = setup_with_fast_refetch().await;
    // Warm: the first token fetches the JWKS once.
    assert_eq!(
        s.fetch(Some(&idp.token("alice")), "keyed", json!({}))
            .await
            .0,
        200
    );
    let warm = idp.jwks_fetches();
    assert_eq!(warm, 1);
    // A key the IdP has not published yet: a burst of such tokens causes at most one fetch.
    let kid = idp.add_key(Algorithm::ES256, false);
    let unknown = idp.sign_with_kid(&kid, &idp.claims("alice"));
    let mut burst = Vec::new();
    for _ in 0..10 {
        burst.push(refused(&s, &unknown));
    }
    for r in futures_util::future::join_all(burst).await {
        assert_refused(r, "unknown_key");
    }
    assert!(
        idp.jwks_fetches() - warm <= 1,
        "fetches: {}",
        idp.jwks_fetches()
    );
    // The IdP rotates the key in; after the interval the token is accepted.
    idp.publish(&kid);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body, _) = s.fetch(Some(&unknown), "keyed", json!({})).await;
    assert_eq!(status, 200, "{body}");
    // A repeat presentation is served from the verification cache: no more fetches.
    let before = idp.jwks_fetches();
    for _ in 0..5 {
        assert_eq!(s.fetch(Some(&unknown), "keyed", json!({})).await.0, 200);
    }
    assert_eq!(idp.jwks_fetches(), before);
}

/// When a refetched JWKS no longer holds a key, tokens verified with it are verified again (and
/// refused), not served from the verification cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_removed_from_the_jwks_drops_its_cached_verifications() {
    let (s, idp, _dir) = setup_with_fast_refetch().await;
    let old = idp.token("alice");
    assert_eq!(refused(&s, &old).await.0, 200);
    // The IdP rotates: a new key in, the old one out.
    let kid = idp.add_key(Algorithm::ES256, true);
    idp.unpublish(&idp.kid_of(Algorithm::ES256));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let new = idp.sign_with_kid(&kid, &idp.claims("alice"));
    assert_eq!(refused(&s, &new).await.0, 200, "the new key is fetched");
    assert_refused(refused(&s, &old).await, "unknown_key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_an_issuer_refuses_its_tokens_on_the_next_request() {
    let (s, idp) = setup().await;
    let t = idp.token("alice");
    assert_eq!(s.fetch(Some(&t), "keyed", json!({})).await.0, 200);
    let (_, list) = s.get("/v1/mgmt/issuers").await;
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(s.delete(&format!("/v1/mgmt/issuers/{id}")).await.0, 204);
    assert_refused(refused(&s, &t).await, "unknown_issuer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_finds_the_keys() {
    let s = TestServer::start(Backend::Sqlite).await;
    let idp = Idp::start().await;
    let mut reg = idp.registration();
    reg["jwksUrl"] = Value::Null;
    reg["discoveryUrl"] = json!(format!("{}/.well-known/openid-configuration", idp.issuer));
    s.must_post("/v1/mgmt/issuers", reg).await;
    s.must_post(
        "/v1/mgmt/outbound-apps",
        json!({"id": "keyed", "name": "Keyed", "type": "apiKey"}),
    )
    .await;
    s.must_post(
        "/v1/mgmt/outbound-apps/keyed/api-keys",
        json!({"apiKey": "k-1"}),
    )
    .await;
    let (status, body, _) = s
        .fetch(
            Some(&idp.token_with(Algorithm::RS256, "bob", json!({}))),
            "keyed",
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}
