//! The authorization server's time-dependent rules on a manual clock: a dynamically registered
//! client never used within a day is removed, one in use stays until it has gone unused for the
//! configured period; a code expires after 60 s.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

mod support;

use std::sync::Arc;

use portcullis_core::authz::{
    AuthorizeOutcome, AuthorizeParams, OAuthCode, RegistrationRequest, Session, TokenParams,
};
use portcullis_core::manage::{ResourceInput, UserInput};
use portcullis_core::{ClientIdentity, Settings};
use portcullis_crypto::SecretString;
use portcullis_domain::{ManualClock, Timestamp};

const T0: Timestamp = Timestamp::from_secs(1_800_000_000);
const RESOURCE: &str = "http://127.0.0.1:9/mcp";
const REDIRECT: &str = "http://127.0.0.1/cb";

/// A code for `client`, for alice, through the checked request and the user's approval.
async fn code_for(core: &portcullis_core::Core, client: &str, verifier: &str) -> String {
    let params = AuthorizeParams {
        response_type: Some("code".into()),
        client_id: Some(client.into()),
        redirect_uri: Some(REDIRECT.into()),
        code_challenge: Some(portcullis_crypto::pkce::challenge_s256(verifier)),
        code_challenge_method: Some("S256".into()),
        resources: vec![RESOURCE.into()],
        ..AuthorizeParams::default()
    };
    let AuthorizeOutcome::Pending(pending) = core.check_authorization(&params).await.unwrap()
    else {
        panic!("a valid request");
    };
    let now = core.settings().session_ttl_secs;
    let session = Session {
        user_id: "alice".into(),
        auth_time: T0.as_secs(),
        expires_at: T0.as_secs() + now,
        sid: "s".into(),
    };
    let back = core
        .approve_authorization(&session, &pending, false)
        .await
        .unwrap();
    let url = url::Url::parse(&back).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned()
}

fn public(id: &str) -> ClientIdentity {
    ClientIdentity {
        client_id: id.into(),
        allowed_apps: None,
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        public: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unused_registrations_are_removed_and_codes_expire() {
    let dir = tempfile::tempdir().unwrap();
    let (stores, _, _) = support::sqlite_stores(dir.path());
    let clock = Arc::new(ManualClock::new(T0));
    let core = support::start_with_clock(stores, Settings::default(), clock.clone()).await;
    core.create_resource(&ResourceInput {
        id: Some("mcp".into()),
        uri: RESOURCE.into(),
        name: "MCP".into(),
        description: None,
        scopes: Vec::new(),
    })
    .await
    .unwrap();
    core.create_user(
        &serde_json::from_value::<UserInput>(serde_json::json!({"id": "alice"})).unwrap(),
    )
    .await
    .unwrap();
    let register = || async {
        core.register_client(
            &RegistrationRequest {
                redirect_uris: Some(vec![REDIRECT.into()]),
                grant_types: Some(vec!["authorization_code".into(), "refresh_token".into()]),
                ..RegistrationRequest::default()
            },
            None,
            None,
        )
        .await
        .unwrap()
        .client_id
    };
    let idle = register().await;
    let used = register().await;

    // One is used an hour later.
    clock.advance_secs(3600);
    let verifier = portcullis_crypto::pkce::new_verifier();
    let code = code_for(&core, &used, verifier.expose()).await;
    let grant = |code: String| TokenParams {
        code: Some(SecretString::from(code)),
        redirect_uri: Some(REDIRECT.into()),
        code_verifier: Some(verifier.clone()),
        ..TokenParams::default()
    };
    core.grant_authorization_code(&public(&used), &grant(code))
        .await
        .unwrap();

    // A code not redeemed within 60 s has expired.
    let late = code_for(&core, &used, verifier.expose()).await;
    clock.advance_secs(61);
    let e = core
        .grant_authorization_code(&public(&used), &grant(late))
        .await
        .unwrap_err();
    assert_eq!(e.code, OAuthCode::InvalidGrant);
    assert!(e.description.contains("expired"), "{e:?}");

    // A day after registering, the one never used goes; the one in use stays.
    clock.advance_secs(23 * 3600);
    assert_eq!(core.purge_unused_clients().await.unwrap(), 1);
    assert!(core.get_client(&idle).await.is_err());
    assert!(core.get_client(&used).await.is_ok());
    // Unused for the whole period (30 days), it goes too.
    clock.advance_secs(core.settings().unused_client_ttl_secs - 24 * 3600);
    assert_eq!(core.purge_unused_clients().await.unwrap(), 0);
    clock.advance_secs(24 * 3600);
    assert_eq!(core.purge_unused_clients().await.unwrap(), 1);
    assert!(
        core.authenticate_client(&used, None).await.is_err(),
        "a removed client is unknown"
    );
}
