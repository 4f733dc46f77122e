//! Time-dependent behaviour on a manual clock, without sleeping: a verified token is remembered
//! only until it expires (plus the issuer's leeway), and a pending consent is refused once its
//! time has passed.

#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use std::sync::Arc;

use portcullis_core::manage::{AppInput, ResourceInput, UserInput};
use portcullis_core::{CallbackOutcome, CallbackParams, Settings};
use portcullis_domain::{ConnectionKey, ManualClock, Timestamp};
use serde_json::json;

const T0: Timestamp = Timestamp::from_secs(1_800_000_000);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_token_is_remembered_only_until_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let (stores, _, _) = support::sqlite_stores(dir.path());
    let clock = Arc::new(ManualClock::new(T0));
    let core = support::start_with_clock(stores, Settings::default(), clock.clone()).await;
    // Portcullis's own tokens, for a registered resource, are inbound tokens with no
    // configuration; its leeway is the signing keys' clock skew (60 s).
    core.create_resource(&ResourceInput {
        id: Some("mcp".into()),
        uri: "http://127.0.0.1:9000/mcp".into(),
        name: "MCP".into(),
        description: None,
        scopes: Vec::new(),
    })
    .await
    .unwrap();
    let iss = core.settings().public_url.clone();
    let aud = "http://127.0.0.1:9000/mcp";
    let now = T0.as_secs();
    let sign = |iat: i64, exp: i64| {
        core.sign_jwt(
            &json!({"iss": iss, "aud": aud, "sub": "alice", "iat": iat, "exp": exp}),
            Some("at+jwt"),
        )
        .unwrap()
    };
    let token = sign(now, now + 60);
    assert!(core.verify_inbound(&token).await.is_ok());
    // Within the leeway past `exp`, still valid; past it, refused even though it was cached.
    clock.advance_secs(60 + 60);
    assert!(core.verify_inbound(&token).await.is_ok());
    clock.advance_secs(1);
    let refused = core.verify_inbound(&token).await.unwrap_err();
    assert_eq!(refused.code(), "expired");
    // A token issued in the future (beyond the leeway) is refused.
    let ahead = sign(now + 1000, now + 2000);
    assert_eq!(
        core.verify_inbound(&ahead).await.unwrap_err().code(),
        "issued_in_future"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_consent_expires_with_its_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let (stores, _, _) = support::sqlite_stores(dir.path());
    let clock = Arc::new(ManualClock::new(T0));
    let settings = Settings {
        consent_ttl_secs: 600,
        ..Settings::default()
    };
    let core = support::start_with_clock(stores, settings, clock.clone()).await;
    let app: AppInput = serde_json::from_value(json!({
        "id": "cal", "name": "Cal", "type": "oauth", "clientId": "c", "clientSecret": "s",
        "authorizationUrl": "https://provider.example/authorize",
        "tokenUrl": "https://provider.example/token", "scopes": [{"name": "read"}]
    }))
    .unwrap();
    core.create_app(&app).await.unwrap();
    let user: UserInput = serde_json::from_value(json!({"id": "alice"})).unwrap();
    core.create_user(&user).await.unwrap();
    let record = core.app_snapshot("cal").await.unwrap().unwrap();
    let link = || {
        let core = core.clone();
        let app = record.app.clone();
        async move {
            let url = core
                .consent_link(
                    &app,
                    ConnectionKey::user("cal", "alice", None),
                    vec!["read".into()],
                    None,
                    "user:alice",
                )
                .await
                .unwrap();
            // The link's page continued: the provider's URL and this browser's binding.
            let ticket = url.rsplit('/').next().unwrap().to_owned();
            let start = core.continue_connect_link(&ticket).await.unwrap();
            let state = url::Url::parse(&start.location)
                .unwrap()
                .query_pairs()
                .find(|(k, _)| k == "state")
                .unwrap()
                .1
                .into_owned();
            (state, start.cookie_value.expose().to_owned())
        }
    };
    let complete = |(state, binding): (String, String)| {
        let core = core.clone();
        async move {
            core.complete_connect(
                &CallbackParams {
                    state: Some(state.into()),
                    code: None,
                    error: Some("access_denied".into()),
                    error_description: None,
                    iss: None,
                    binding: Some(binding.into()),
                },
                Some("cal"),
            )
            .await
        }
    };
    // Within its time, the flow is still pending: the provider's answer is taken (here, a
    // refusal, which changes nothing).
    let state = link().await;
    clock.advance_secs(599);
    match complete(state).await {
        CallbackOutcome::Page { title, .. } => assert_eq!(title, "Not connected"),
        CallbackOutcome::Redirect(_) => panic!("no return URL was given"),
    }
    // Past it, the link has expired.
    let state = link().await;
    clock.advance_secs(601);
    match complete(state).await {
        CallbackOutcome::Page { status, title, .. } => {
            assert_eq!((status, title), (400, "Link expired"));
        }
        CallbackOutcome::Redirect(_) => panic!("no return URL was given"),
    }
}
