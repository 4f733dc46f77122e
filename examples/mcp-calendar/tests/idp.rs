//! The example's OpenID provider, driven as Portcullis's single sign-on drives it: discovery, the
//! sign-in page, the code flow with PKCE, an id_token that verifies with the published keys and
//! carries the person's groups — and the refusals an OpenID provider owes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use portcullis_crypto::jws::{Algorithm, JwkSet, KeySet, Unverified, Validation};
use portcullis_example_calendar::browser::Browser;
use portcullis_example_calendar::{Config, Running, idp, start, story};
use serde_json::Value;

const REDIRECT: &str = "http://127.0.0.1:9/oauth2/sso/callback";
const VERIFIER: &str = "a-pkce-verifier-that-is-long-enough-0123456789";

async fn provider() -> (Running, String) {
    let s = start(
        "127.0.0.1:0".parse().unwrap(),
        Config {
            client_id: "portcullis".into(),
            client_secret: "s3cret".into(),
            redirect_uris: vec![],
            crm_keys: vec![],
            idp: Some(idp::Config {
                client_id: "sso-client".into(),
                client_secret: "sso-s3cret".into(),
                redirect_uris: vec![REDIRECT.into()],
                people: story::people(),
            }),
        },
    )
    .await
    .unwrap();
    let issuer = s.issuer().unwrap();
    (s, issuer)
}

fn authorize_url(issuer: &str, extra: &[(&str, &str)]) -> String {
    let challenge = portcullis_crypto::pkce::challenge_s256(VERIFIER);
    let mut url = url::Url::parse(&format!("{issuer}/authorize")).unwrap();
    let mut query = vec![
        ("response_type", "code"),
        ("client_id", "sso-client"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid email profile"),
        ("state", "st4te"),
        ("nonce", "n0nce"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        query.retain(|(q, _)| q != k);
        query.push((k, v));
    }
    url.query_pairs_mut().extend_pairs(query);
    url.to_string()
}

/// Signs `person` in; the redirect back's location.
async fn sign_in(b: &mut Browser, issuer: &str, person: &str) -> String {
    let page = b.get(&authorize_url(issuer, &[])).await.unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Vera Viewer"), "{}", page.body);
    let back = b
        .post(
            &format!("{issuer}/authorize/as"),
            &[("flow", &page.field("flow").unwrap()), ("person", person)],
        )
        .await
        .unwrap();
    assert_eq!(back.status, 303, "{}", back.body);
    assert_eq!(back.param("state").as_deref(), Some("st4te"));
    assert_eq!(back.param("iss").as_deref(), Some(issuer));
    back.location.unwrap()
}

fn code_of(location: &str) -> String {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned()
}

async fn redeem(issuer: &str, secret: &str, code: &str, verifier: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{issuer}/token"))
        .basic_auth("sso-client", Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn a_person_signs_in_and_the_id_token_carries_their_groups() {
    let (_s, issuer) = provider().await;
    let http = reqwest::Client::new();
    let discovery: Value = http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], issuer.as_str());
    assert_eq!(discovery["code_challenge_methods_supported"][0], "S256");

    let mut b = Browser::new();
    let back = sign_in(&mut b, &issuer, "eddie").await;
    assert!(back.starts_with(REDIRECT), "{back}");
    let code = code_of(&back);
    let (status, t) = redeem(&issuer, "sso-s3cret", &code, VERIFIER).await;
    assert_eq!(status, 200, "{t}");

    // The id_token verifies with the JWKS the discovery names, for this client, with the nonce.
    let jwks: JwkSet = http
        .get(discovery["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (keys, skipped) = KeySet::from_jwks(&jwks);
    assert!(skipped.is_empty());
    let token = Unverified::parse(t["id_token"].as_str().unwrap(), 16_384).unwrap();
    token.verify_with(&keys).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    token
        .validate(&Validation {
            issuer: &issuer,
            audiences: &["sso-client".to_owned()],
            algorithms: &[Algorithm::ES256],
            leeway_secs: 0,
            now: i64::try_from(now).unwrap(),
            require_sub: true,
        })
        .unwrap();
    let claims = token.claims();
    assert_eq!(claims["sub"], "eddie");
    assert_eq!(claims["nonce"], "n0nce");
    assert_eq!(claims["email"], "eddie@example.com");
    assert_eq!(
        claims["groups"],
        serde_json::json!([story::EDITORS_GROUP, "everyone"])
    );

    // A code is used once.
    let (status, t) = redeem(&issuer, "sso-s3cret", &code, VERIFIER).await;
    assert_eq!((status, t["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn the_provider_refuses_what_an_openid_provider_must() {
    let (_s, issuer) = provider().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap() }
    };
    // An unregistered redirect URI or client is never redirected to.
    for extra in [
        [("redirect_uri", "http://127.0.0.1:9/elsewhere")],
        [("client_id", "someone-else")],
    ] {
        let resp = get(authorize_url(&issuer, &extra)).await;
        assert_eq!(resp.status().as_u16(), 400);
        assert!(resp.headers().get("location").is_none());
    }
    // No PKCE S256, or no openid: an error sent back to the client.
    for extra in [
        [("code_challenge_method", "plain")],
        [("scope", "email profile")],
    ] {
        let resp = get(authorize_url(&issuer, &extra)).await;
        assert_eq!(resp.status().as_u16(), 303);
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with(REDIRECT), "{location}");
        assert!(location.contains("error="), "{location}");
    }

    let mut b = Browser::new();
    // A sign-in is chosen once, and only for a known person.
    let page = b.get(&authorize_url(&issuer, &[])).await.unwrap();
    let flow = page.field("flow").unwrap();
    let nobody = b
        .post(
            &format!("{issuer}/authorize/as"),
            &[("flow", &flow), ("person", "mallory")],
        )
        .await
        .unwrap();
    assert_eq!(nobody.status, 400);
    let again = b
        .post(
            &format!("{issuer}/authorize/as"),
            &[("flow", &flow), ("person", "vera")],
        )
        .await
        .unwrap();
    assert_eq!(again.status, 400, "a sign-in is used once");

    // A wrong secret redeems nothing and leaves the code; a wrong verifier spends it.
    let code = code_of(&sign_in(&mut b, &issuer, "vera").await);
    let (status, t) = redeem(&issuer, "wrong", &code, VERIFIER).await;
    assert_eq!((status, t["error"].as_str()), (401, Some("invalid_client")));
    let (status, t) = redeem(
        &issuer,
        "sso-s3cret",
        &code,
        "another-verifier-long-enough-0123456789",
    )
    .await;
    assert_eq!((status, t["error"].as_str()), (400, Some("invalid_grant")));
    let (status, _) = redeem(&issuer, "sso-s3cret", &code, VERIFIER).await;
    assert_eq!(status, 400);
}
