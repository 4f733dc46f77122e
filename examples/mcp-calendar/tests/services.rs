//! The example's services, driven as Portcullis (the OAuth client) and an MCP server (the API
//! caller) use them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use portcullis_example_calendar::{Config, READ, Running, start};
use serde_json::{Value, json};

const REDIRECT: &str = "http://127.0.0.1:9/v1/outbound/callback";
const VERIFIER: &str = "a-pkce-verifier-that-is-long-enough-0123456789";

async fn services() -> Running {
    start(
        "127.0.0.1:0".parse().unwrap(),
        Config {
            client_id: "portcullis".into(),
            client_secret: "s3cret".into(),
            redirect_uris: vec![REDIRECT.into()],
            crm_keys: vec!["crm-key-vera".into()],
            idp: None,
        },
    )
    .await
    .unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The authorization request's answer: the query of the redirect back.
async fn authorize(s: &Running, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let challenge = portcullis_crypto::pkce::challenge_s256(VERIFIER);
    let mut query = vec![
        ("response_type", "code"),
        ("client_id", "portcullis"),
        ("redirect_uri", REDIRECT),
        ("scope", "calendar.readonly calendar.events"),
        ("state", "st4te"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("login_hint", "vera"),
    ];
    for (k, v) in extra {
        query.retain(|(q, _)| q != k);
        query.push((k, v));
    }
    let resp = http()
        .get(format!("{}/oauth/authorize", s.base_url))
        .query(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        303,
        "{}",
        resp.text().await.unwrap()
    );
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT), "{location}");
    url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

async fn token(s: &Running, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = http()
        .post(format!("{}/oauth/token", s.base_url))
        .basic_auth("portcullis", Some("s3cret"))
        .form(form)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn calendar(s: &Running, token: &str, event: Option<Value>) -> (u16, Value) {
    let req = match event {
        Some(e) => http()
            .post(format!("{}/calendar/events", s.base_url))
            .json(&e),
        None => http().get(format!("{}/calendar/events", s.base_url)),
    };
    let resp = req.bearer_auth(token).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn the_code_flow_issues_tokens_the_calendar_accepts_within_their_scopes() {
    let s = services().await;
    let back = authorize(&s, &[]).await;
    assert_eq!(param(&back, "state"), Some("st4te"));
    let code = param(&back, "code").unwrap().to_owned();
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let (status, t) = token(&s, &exchange).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["scope"], "calendar.readonly calendar.events");
    let (access, refresh) = (
        t["access_token"].as_str().unwrap().to_owned(),
        t["refresh_token"].as_str().unwrap().to_owned(),
    );
    // A code is spent once.
    let (status, e) = token(&s, &exchange).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));

    // The token writes and reads vera's calendar.
    let (status, created) = calendar(
        &s,
        &access,
        Some(json!({"title": "Standup", "start": "2026-12-07T09:00:00Z"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (status, listed) = calendar(&s, &access, None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["items"][0]["title"], "Standup");
    assert_eq!(s.events_of("vera").len(), 1);

    // A refresh may narrow: the narrowed token reads and may not write.
    let (status, narrowed) = token(
        &s,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("scope", READ),
        ],
    )
    .await;
    assert_eq!(status, 200, "{narrowed}");
    assert_eq!(narrowed["scope"], READ);
    let reader = narrowed["access_token"].as_str().unwrap();
    assert_eq!(calendar(&s, reader, None).await.0, 200);
    let (status, denied) = calendar(&s, reader, Some(json!({"title": "x", "start": "now"}))).await;
    assert_eq!(
        (status, denied["error"].as_str()),
        (403, Some("insufficient_scope"))
    );
    // ... and never widen.
    let (status, e) = token(
        &s,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("scope", "calendar.readonly admin"),
        ],
    )
    .await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_scope")));
    assert_eq!(s.refreshes(), 1);

    // Anything but a live token of this provider: 401.
    for bad in ["", "made-up", code.as_str()] {
        assert_eq!(calendar(&s, bad, None).await.0, 401, "{bad}");
    }
}

#[tokio::test]
async fn the_provider_refuses_what_an_authorization_server_must() {
    let s = services().await;
    // Without PKCE S256, or with an unknown scope: an error sent back to the client.
    let back = authorize(&s, &[("code_challenge_method", "plain")]).await;
    assert_eq!(param(&back, "error"), Some("invalid_request"));
    let back = authorize(&s, &[("scope", "calendar.readonly mail")]).await;
    assert_eq!(param(&back, "error"), Some("invalid_scope"));
    // An unknown client or redirect URI is never redirected to.
    for (k, v) in [
        ("client_id", "someone"),
        ("redirect_uri", "http://127.0.0.1:9/v1/outbound/callback/x"),
    ] {
        let resp = http()
            .get(format!("{}/oauth/authorize", s.base_url))
            .query(&[
                ("response_type", "code"),
                ("client_id", "portcullis"),
                ("redirect_uri", REDIRECT),
                (k, v),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400);
    }
    // The code is bound to its verifier and redirect URI; a wrong secret is not a client.
    let code = param(&authorize(&s, &[]).await, "code").unwrap().to_owned();
    let (status, e) = token(
        &s,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            (
                "code_verifier",
                "another-verifier-that-is-long-enough-0123456789",
            ),
        ],
    )
    .await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    let resp = http()
        .post(format!("{}/oauth/token", s.base_url))
        .basic_auth("portcullis", Some("wrong"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test]
async fn the_crm_takes_its_api_keys_only() {
    let s = services().await;
    let lookup = |key: &'static str| {
        let url = format!("{}/crm/customers/Acme", s.base_url);
        async move { http().get(url).bearer_auth(key).send().await.unwrap() }
    };
    let resp = lookup("crm-key-vera").await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["account"], "Acme Inc.");
    assert_eq!(lookup("crm-key-mallory").await.status().as_u16(), 401);
}
