//! Secrets at rest: never stored in plaintext, bound to their rows, re-encrypted by key rotation.

use std::process::Command;

use serde_json::json;

use crate::both_backends;
use crate::support::{Backend, Idp, Provider, TestServer};

/// Stores one of every kind of secret; returns the plaintexts to look for.
async fn store_secrets(s: &TestServer, idp: &Idp, p: &Provider) -> Vec<String> {
    let marker = |kind: &str| format!("{kind}-MARKER-{}", portcullis_crypto::random_token(12));
    let app_secret = marker("APPSECRET");
    let api_key = marker("APIKEY");
    let access = marker("ACCESS");
    let refresh = marker("REFRESH");
    s.trust(idp).await;
    let mut app = p.app("cal", &["calendar.readonly"]);
    app["clientSecret"] = json!(app_secret);
    s.must_post("/v1/mgmt/outbound-apps", app).await;
    s.must_post(
        "/v1/mgmt/outbound-apps",
        json!({"id": "crm", "name": "CRM", "type": "apiKey"}),
    )
    .await;
    s.must_post(
        "/v1/mgmt/outbound-apps/crm/api-keys",
        json!({"apiKey": api_key}),
    )
    .await;
    s.must_post(
        "/v1/mgmt/outbound-apps/cal/tokens",
        json!({"tokens": [{"userId": "imported", "accessToken": access, "refreshToken": refresh, "scopes": ["calendar.readonly"]}]}),
    )
    .await;
    // A token obtained through a real consent, fetched through the token endpoint.
    s.connect(&idp.token("alice"), "cal", &["calendar.readonly"])
        .await;
    let (status, body, _) = s
        .fetch(
            Some(&idp.token("alice")),
            "cal",
            json!({"scopes": ["calendar.readonly"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let provider_token = body["token"]["accessToken"].as_str().unwrap().to_owned();
    // A pending consent holds a PKCE verifier; it is sealed too (not visible here, but stored).
    s.connect_url(&idp.token("bob"), "cal", json!({})).await;
    s.flush_audit().await;
    vec![app_secret, api_key, access, refresh, provider_token]
}

fn assert_absent(haystack: &[u8], needles: &[String], what: &str) {
    for n in needles {
        assert!(
            !haystack.windows(n.len()).any(|w| w == n.as_bytes()),
            "{what} holds a secret in plaintext ({}...)",
            &n[..12]
        );
    }
}

async fn no_secret_is_stored_in_plaintext(backend: Backend) {
    let s = TestServer::start(backend).await;
    let idp = Idp::start().await;
    let p = Provider::start().await;
    let secrets = store_secrets(&s, &idp, &p).await;
    match backend {
        Backend::Sqlite => {
            let mut files = 0;
            for entry in std::fs::read_dir(s.dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("portcullis.db")
                {
                    let bytes = std::fs::read(&path).unwrap();
                    assert_absent(&bytes, &secrets, &path.display().to_string());
                    files += 1;
                }
            }
            assert!(files >= 2, "the database and its WAL were read");
        }
        Backend::Postgres => {
            let url = &s.db.as_ref().unwrap().url;
            let out = Command::new("pg_dump")
                .arg("--dbname")
                .arg(url)
                .output()
                .expect("pg_dump runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.stdout.len() > 1000, "the dump has the data");
            assert_absent(&out.stdout, &secrets, "the PostgreSQL dump");
            // The dump does hold the rows: the ciphertexts are there, just not the plaintexts.
            assert!(String::from_utf8_lossy(&out.stdout).contains("COPY public.connections"));
        }
    }
    // And the API never shows them either.
    for path in [
        "/v1/mgmt/outbound-apps/cal".to_owned(),
        "/v1/mgmt/outbound-apps/cal/connections".to_owned(),
        "/v1/mgmt/outbound-apps/crm/connections".to_owned(),
        format!("/v1/mgmt/users/{}/connections", idp.principal("alice")),
    ] {
        let (_, body) = s.get(&path).await;
        assert_absent(body.to_string().as_bytes(), &secrets, &path);
    }
}

async fn a_ciphertext_moved_to_another_row_does_not_open(backend: Backend) {
    let s = TestServer::start(backend).await;
    let idp = Idp::start().await;
    s.trust(&idp).await;
    s.must_post(
        "/v1/mgmt/outbound-apps",
        json!({"id": "crm", "name": "CRM", "type": "apiKey"}),
    )
    .await;
    s.must_post(
        "/v1/mgmt/outbound-apps/crm/api-keys",
        json!({"apiKey": "alice-key", "userId": idp.principal("alice")}),
    )
    .await;
    s.must_post(
        "/v1/mgmt/outbound-apps/crm/api-keys",
        json!({"apiKey": "mallory-key", "userId": idp.principal("mallory")}),
    )
    .await;
    let store = &s.core.stores_for_tests().connections;
    let alice = store
        .connection(&portcullis_domain::ConnectionKey::user(
            "crm",
            &idp.principal("alice"),
            None,
        ))
        .await
        .unwrap()
        .unwrap();
    let mut mallory = store
        .connection(&portcullis_domain::ConnectionKey::user(
            "crm",
            &idp.principal("mallory"),
            None,
        ))
        .await
        .unwrap()
        .unwrap();
    // Someone with write access to the database copies alice's sealed key into mallory's row.
    mallory.access = alice.access.clone();
    store.put_connection(&mallory).await.unwrap();
    let (status, body, _) = s.fetch(Some(&idp.token("mallory")), "crm", json!({})).await;
    assert_eq!(status, 500, "{body}");
    assert!(!body.to_string().contains("alice-key"));
    // Alice's own row still opens.
    let (status, body, _) = s.fetch(Some(&idp.token("alice")), "crm", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["token"]["apiKey"], "alice-key");
}

async fn key_rotation_re_encrypts_everything_without_downtime(backend: Backend) {
    let s = TestServer::start(backend).await;
    let idp = Idp::start().await;
    let p = Provider::start().await;
    store_secrets(&s, &idp, &p).await;
    let before = s.core.sealer_for_tests().active_key_id();
    let out = tokio::task::spawn_blocking({
        let (url, key) = (s.url.clone(), s.admin_key.clone());
        move || {
            Command::new(env!("CARGO_BIN_EXE_portcullis"))
                .args([
                    "keys",
                    "rotate",
                    "--wait",
                    "--output",
                    "json",
                    "--url",
                    &url,
                    "--admin-key",
                    &key,
                ])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let after = status["activeKeyId"].as_u64().unwrap() as u32;
    assert_ne!(after, before);
    assert_eq!(status["reencryption"]["state"], "done", "{status}");
    assert!(
        status["reencryption"]["report"]["connections"]
            .as_u64()
            .unwrap()
            >= 3,
        "{status}"
    );
    assert_eq!(status["reencryption"]["report"]["appSecrets"], 1);
    assert!(
        s.core
            .stores_for_tests()
            .connections
            .connections_sealed_with_other_key(after, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.core
            .stores_for_tests()
            .consent_states
            .states_sealed_with_other_key(after, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Everything still opens.
    let (status, body, _) = s
        .fetch(
            Some(&idp.token("alice")),
            "cal",
            json!({"scopes": ["calendar.readonly"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = s.fetch(Some(&idp.token("anyone")), "crm", json!({})).await;
    assert_eq!(status, 200, "{body}");
    // The app's client secret, re-sealed, still authenticates at the provider: force a refresh.
    let (_, conns) = s
        .get(&format!(
            "/v1/mgmt/users/{}/connections",
            idp.principal("alice")
        ))
        .await;
    let id = conns["items"][0]["id"].as_str().unwrap();
    let (status, body) = s
        .post(&format!("/v1/mgmt/connections/{id}/refresh"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    // The text output for people.
    let text = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "keys",
            "status",
            "--url",
            &s.url,
            "--admin-key",
            &s.admin_key,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains(&format!("active data key: {after}")),
        "{text}"
    );
}

both_backends!(
    no_secret_is_stored_in_plaintext,
    a_ciphertext_moved_to_another_row_does_not_open,
    key_rotation_re_encrypts_everything_without_downtime,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_key_rotates_by_restarting_with_a_new_ring() {
    let s = TestServer::start(Backend::Sqlite).await;
    s.must_post(
        "/v1/mgmt/outbound-apps",
        json!({"id": "crm", "name": "CRM", "type": "apiKey"}),
    )
    .await;
    s.must_post(
        "/v1/mgmt/outbound-apps/crm/api-keys",
        json!({"apiKey": "the-key"}),
    )
    .await;
    let idp = Idp::start().await;
    s.trust(&idp).await;
    let old = s.env["PORTCULLIS_MASTER_KEY"].clone();
    let new = portcullis_crypto::envelope::MasterKey::generate("test-2")
        .unwrap()
        .encode()
        .expose()
        .to_owned();
    // Restart with a new active master key and the old one still listed: data keys are re-wrapped.
    let s = s
        .restart_with(|env| {
            env.insert("PORTCULLIS_MASTER_KEY".into(), format!("{new}\n{old}"));
        })
        .await;
    let keys = s.core.stores_for_tests().keys.data_keys().await.unwrap();
    assert!(keys.iter().all(|k| k.master_key_id == "test-2"), "{keys:?}");
    assert_eq!(
        s.fetch(Some(&idp.token("u")), "crm", json!({})).await.1["token"]["apiKey"],
        "the-key"
    );
    // The old master key can now be retired.
    let s = s
        .restart_with(|env| {
            env.insert("PORTCULLIS_MASTER_KEY".into(), new.clone());
        })
        .await;
    assert_eq!(
        s.fetch(Some(&idp.token("u")), "crm", json!({})).await.1["token"]["apiKey"],
        "the-key"
    );
    // A wrong master key refuses to start rather than serve garbage.
    let mut env = s.env.clone();
    env.insert(
        "PORTCULLIS_MASTER_KEY".into(),
        portcullis_crypto::envelope::MasterKey::generate("test-2")
            .unwrap()
            .encode()
            .expose()
            .to_owned(),
    );
    let (dir, _) = s.stop().await;
    let lookup = |k: &str| env.get(k).cloned();
    let mut config = portcullis_cli::config::Config::load(
        &portcullis_cli::config::ServeFlags::default(),
        &lookup,
    )
    .unwrap();
    config.data_dir = dir.path().to_owned();
    let err = portcullis_cli::serve::start(config).await.unwrap_err();
    assert!(err.to_string().contains("data key"), "{err}");
}

#[test]
fn production_mode_refuses_to_start_without_an_external_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--production", "--listen", "127.0.0.1:0"])
        .env("PORTCULLIS_DATA_DIR", dir.path())
        .env_remove("PORTCULLIS_MASTER_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("master key"), "{err}");
    assert!(
        !dir.path().join("master.key").exists(),
        "no key was generated"
    );
}
