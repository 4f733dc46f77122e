//! Portcullis's own token-signing keys, as a verifier and an operator meet them: the metadata
//! points at the JWK set, the JWK set verifies what Portcullis signs, a rotation keeps the old key
//! published, only a `keys` admin key rotates, and no private part is ever shown.

use portcullis_crypto::jws::{JwkSet, KeySet, Unverified};
use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, TestServer};

/// Fetches a public document without credentials.
async fn public(s: &TestServer, path: &str) -> (u16, Option<String>, Value) {
    let resp = s.http.get(format!("{}{path}", s.url)).send().await.unwrap();
    let status = resp.status().as_u16();
    let cache = resp
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, cache, resp.json().await.unwrap())
}

/// Verifies `token` against the JWK set the server publishes; returns its `kid`.
async fn verify_with_published(s: &TestServer, token: &str) -> Result<String, String> {
    let (_, _, jwks) = public(s, "/.well-known/jwks.json").await;
    let set: JwkSet = serde_json::from_value(jwks).unwrap();
    let (keys, skipped) = KeySet::from_jwks(&set);
    assert!(
        skipped.is_empty(),
        "every published key is usable: {skipped:?}"
    );
    let parsed = Unverified::parse(token, 16 * 1024).unwrap();
    parsed
        .verify_with(&keys)
        .map(|k| k.kid().unwrap_or_default().to_owned())
        .map_err(|e| e.to_string())
}

async fn scoped_key(s: &TestServer, scopes: Value) -> String {
    let (st, k) = s
        .post(
            "/v1/mgmt/admin-keys",
            json!({"name": "operator", "scopes": scopes}),
        )
        .await;
    assert_eq!(st, 201, "{k}");
    k["key"].as_str().unwrap().to_owned()
}

async fn signing_keys_are_published_rotated_and_never_shown(backend: Backend) {
    let s = TestServer::start(backend).await;

    // The metadata names the issuer and the JWK set; it advertises only what is served.
    let (st, cache, meta) = public(&s, "/.well-known/oauth-authorization-server").await;
    assert_eq!(st, 200, "{meta}");
    assert_eq!(cache.as_deref(), Some("public, max-age=60"));
    assert_eq!(meta["issuer"], s.url.trim_end_matches('/'));
    assert_eq!(
        meta["jwks_uri"],
        format!("{}/.well-known/jwks.json", s.url.trim_end_matches('/'))
    );
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(meta["response_types_supported"], json!(["code"]));
    assert_eq!(
        meta["grant_types_supported"],
        json!([
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "urn:ietf:params:oauth:grant-type:jwt-bearer"
        ])
    );

    // The first start created one ES256 key; it is published, without its private part.
    let (st, _, jwks) = public(&s, "/.well-known/jwks.json").await;
    assert_eq!(st, 200);
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    assert_eq!(keys[0]["alg"], "ES256");
    assert_eq!(keys[0]["crv"], "P-256");
    assert_eq!(keys[0]["use"], "sig");
    assert!(keys[0].get("d").is_none(), "no private part: {jwks}");
    let first_kid = keys[0]["kid"].as_str().unwrap().to_owned();

    // What Portcullis signs verifies with what it publishes.
    let claims = json!({"iss": s.url, "sub": "alice", "exp": 4_000_000_000_i64});
    let old_token = s.core.sign_jwt(&claims, Some("at+jwt")).unwrap();
    assert_eq!(
        verify_with_published(&s, &old_token).await.unwrap(),
        first_kid
    );

    // A `read` key lists the keys but cannot rotate them; a `keys` key can.
    let reader = scoped_key(&s, json!(["read"])).await;
    let (st, listed) = s
        .with_key(&reader, Method::GET, "/v1/mgmt/signing-keys", None)
        .await;
    assert_eq!(st, 200, "{listed}");
    assert_eq!(listed[0]["kid"], first_kid.as_str());
    assert_eq!(listed[0]["state"], "active");
    let (st, refused) = s
        .with_key(&reader, Method::POST, "/v1/mgmt/signing-keys/rotate", None)
        .await;
    assert_eq!(st, 403, "{refused}");
    assert_eq!(refused["error"], "insufficient_scope");
    let operator = scoped_key(&s, json!(["keys"])).await;
    let (st, rotated) = s
        .with_key(
            &operator,
            Method::POST,
            "/v1/mgmt/signing-keys/rotate",
            None,
        )
        .await;
    assert_eq!(st, 200, "{rotated}");
    let rotated = rotated.as_array().unwrap().clone();
    assert_eq!(rotated.len(), 2);
    assert_eq!(rotated[0]["kid"], first_kid.as_str());
    assert_eq!(rotated[0]["state"], "retired");
    assert!(rotated[0]["publishedUntil"].is_string());
    assert_eq!(rotated[1]["state"], "active");
    let new_kid = rotated[1]["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, first_kid);
    for k in &rotated {
        let fields: Vec<&String> = k.as_object().unwrap().keys().collect();
        assert!(
            fields.iter().all(|f| [
                "kid",
                "alg",
                "state",
                "createdAt",
                "retiredAt",
                "publishedUntil"
            ]
            .contains(&f.as_str())),
            "nothing private is listed: {k}"
        );
    }

    // The new key signs; the old key's tokens still verify while they may be valid.
    let new_token = s.core.sign_jwt(&claims, Some("at+jwt")).unwrap();
    assert_eq!(
        verify_with_published(&s, &new_token).await.unwrap(),
        new_kid
    );
    assert_eq!(
        verify_with_published(&s, &old_token).await.unwrap(),
        first_kid
    );
    let (_, _, jwks) = public(&s, "/.well-known/jwks.json").await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "{jwks}");

    // The rotation is in the management audit, with who made it.
    let (st, audit) = s
        .get("/v1/mgmt/audit?kind=management&action=signing_key.rotate")
        .await;
    assert_eq!(st, 200, "{audit}");
    let event = &audit["items"][0];
    assert_eq!(event["actorName"], "operator", "{audit}");
    assert_eq!(event["target"], format!("signing_key:{new_kid}"));
    assert!(
        !audit.to_string().contains("\"d\""),
        "no private part is recorded: {audit}"
    );
}

both_backends!(signing_keys_are_published_rotated_and_never_shown);
