//! Smaller security findings, each with its test, on both backends: a disabled user is refused on
//! every user path; every answer carrying a secret or a capability is `Cache-Control: no-store`.

use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, Idp, Provider, TestServer};

const SCOPES: [&str; 1] = ["calendar.readonly"];

async fn exchange(s: &TestServer, client: &str, secret: &str, subject: &str) -> (u16, Value) {
    let resp = s
        .http
        .post(format!("{}/oauth2/token", s.url))
        .basic_auth(client, Some(secret))
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", subject),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("resource", "urn:portcullis:outbound-app:cal"),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn a_disabled_user_is_refused_on_every_path(backend: Backend) {
    let s = TestServer::start(backend).await;
    let idp = Idp::start().await;
    let p = Provider::start().await;
    s.trust(&idp).await;
    s.must_post("/v1/mgmt/outbound-apps", p.app("cal", &SCOPES))
        .await;
    s.must_post(
        "/v1/mgmt/users",
        json!({"id": "alice", "identities": idp.identity("alice")}),
    )
    .await;
    let created = s
        .must_post(
            "/v1/mgmt/clients",
            json!({"id": "mcp", "name": "MCP", "allowedApps": ["cal"]}),
        )
        .await;
    let secret = created["clientSecret"].as_str().unwrap().to_owned();
    let alice = idp.token("alice");
    s.connect(&alice, "cal", &SCOPES).await;
    assert_eq!(exchange(&s, "mcp", &secret, &alice).await.0, 200);
    // A connect link made while she was enabled...
    let pending = s
        .connect_url(&alice, "cal", json!({"scopes": SCOPES}))
        .await;
    let (_, before) = s.get("/v1/mgmt/users/alice/connections").await;

    s.put(
        "/v1/mgmt/users/alice",
        json!({"identities": idp.identity("alice"), "disabled": true}),
    )
    .await;
    // The token endpoint.
    let (status, body, _) = s.fetch(Some(&alice), "cal", json!({})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("user_disabled"))
    );
    // Token exchange.
    let (status, body) = exchange(&s, "mcp", &secret, &alice).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["reason"], "user_disabled");
    // Connect.
    let resp = s
        .http
        .post(format!("{}/v1/outbound/apps/cal/connect", s.url))
        .bearer_auth(&alice)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "user_disabled");
    // ...completes nothing at the callback.
    let (status, page) = s.consent(&pending).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("disabled"), "{page}");
    assert_eq!(s.get("/v1/mgmt/users/alice/connections").await.1, before);
}

both_backends!(a_disabled_user_is_refused_on_every_path);

/// A generated bootstrap admin key is written to a file only its owner reads, in the data
/// directory (whose path is logged), and never appears in the server's output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_bootstrap_key_goes_to_a_private_file_not_the_log() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("PORTCULLIS_DATA_DIR", dir.path())
        .env("PORTCULLIS_LOG_FORMAT", "json")
        .env_remove("PORTCULLIS_BOOTSTRAP_ADMIN_KEY")
        .env_remove("PORTCULLIS_MASTER_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (addr, mut output, mut reader) = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stderr);
        let mut seen = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            assert!(reader.read_line(&mut line).unwrap() > 0, "exited: {seen}");
            seen.push_str(&line);
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["fields"]["message"] == "Portcullis is listening"
            {
                return (
                    v["fields"]["addr"].as_str().unwrap().to_owned(),
                    seen,
                    reader,
                );
            }
        }
    })
    .await
    .unwrap();
    let file = dir.path().join("bootstrap-admin-key");
    assert!(
        output.contains(&file.display().to_string()),
        "the path is logged: {output}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let key = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert!(key.len() >= 32);
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}/v1/mgmt/outbound-apps"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Whatever the server wrote after it started listening too.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    output.push_str(&String::from_utf8_lossy(&out.stdout));
    std::io::Read::read_to_string(&mut reader, &mut output).unwrap();
    assert!(!output.contains(&key), "the key is not in the output");
}
