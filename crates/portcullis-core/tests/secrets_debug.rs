//! Every type that holds a credential keeps it in the secret wrapper: formatting it with `{:?}`
//! (as a log line or a panic message would) never shows the credential.

#![allow(clippy::unwrap_used, reason = "tests")]

use portcullis_core::manage::{AppInput, ClientInput, SimulateInput};
mod support;

use portcullis_core::{
    CallbackParams, ExchangeRequest, ExchangeResponse, ImportToken, OutboundToken, Settings,
    TokenResponse,
};
use portcullis_crypto::SecretString;

const SECRET: &str = "s3cr3t-credential-value";

fn secret() -> SecretString {
    SecretString::from(SECRET)
}

fn assert_redacted(what: &str, debug: String) {
    assert!(
        !debug.contains(SECRET),
        "{what} shows a credential: {debug}"
    );
    assert!(!debug.contains("s3cr3t"), "{what}: {debug}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_is_shown_by_debug() {
    // Subject tokens and actor tokens of token exchange.
    let exchange = ExchangeRequest {
        subject_token: Some(secret()),
        actor_token: Some(secret()),
        ..ExchangeRequest::default()
    };
    assert_redacted("ExchangeRequest", format!("{exchange:?}"));
    // Issued tokens.
    let issued = ExchangeResponse {
        access_token: secret(),
        issued_token_type: "urn:ietf:params:oauth:token-type:access_token",
        token_type: "Bearer".into(),
        expires_in: Some(60),
        scope: None,
    };
    assert_redacted("ExchangeResponse", format!("{issued:?}"));
    let handed_out = OutboundToken {
        access_token: Some(secret()),
        api_key: Some(secret()),
        token_type: Some("Bearer".into()),
        expires_at: None,
        scopes: vec![],
        app_id: "cal".into(),
        user_id: "alice".into(),
        tenant_id: None,
        owner: "user",
    };
    assert_redacted("OutboundToken", format!("{handed_out:?}"));
    // Authorization codes and the state capability.
    let callback = CallbackParams {
        state: Some(secret()),
        code: Some(secret()),
        error: None,
        error_description: None,
        iss: None,
        binding: Some(secret()),
    };
    assert_redacted("CallbackParams", format!("{callback:?}"));
    // A provider's answer: access, refresh and id tokens.
    let provider = TokenResponse {
        access_token: secret(),
        token_type: None,
        expires_in: None,
        refresh_token: Some(secret()),
        scope: None,
        id_token: Some(secret()),
    };
    assert_redacted("TokenResponse", format!("{provider:?}"));
    // Imported tokens, app client secrets, simulated tokens.
    let import: ImportToken = serde_json::from_value(serde_json::json!({
        "userId": "alice", "accessToken": SECRET, "refreshToken": SECRET
    }))
    .unwrap();
    assert_redacted("ImportToken", format!("{import:?}"));
    let app: AppInput = serde_json::from_value(serde_json::json!({
        "id": "cal", "name": "Cal", "type": "oauth", "clientSecret": SECRET
    }))
    .unwrap();
    assert_redacted("AppInput", format!("{app:?}"));
    let simulate: SimulateInput =
        serde_json::from_value(serde_json::json!({"token": SECRET, "appId": "cal"})).unwrap();
    assert_redacted("SimulateInput", format!("{simulate:?}"));

    // Client secrets and admin keys, as created.
    let dir = tempfile::tempdir().unwrap();
    let (stores, _, _) = support::sqlite_stores(dir.path());
    let core = support::start(stores, Settings::default()).await;
    let client = core
        .create_client(&ClientInput {
            id: None,
            name: "MCP".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let debug = format!("{client:?}");
    assert!(
        !debug.contains(client.client_secret.as_ref().unwrap().expose()),
        "{debug}"
    );
    let key = core.bootstrap_admin_key(None).await.unwrap().unwrap();
    assert!(!format!("{key:?}").contains(key.expose()));
}
