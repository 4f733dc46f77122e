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
    // The connection as stored, its last use aside (written in the background).
    let stored = || async {
        let (_, mut v) = s.get("/v1/mgmt/users/alice/connections").await;
        for c in v["items"].as_array_mut().unwrap() {
            c.as_object_mut().unwrap().remove("lastUsedAt");
        }
        v
    };
    let before = stored().await;

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
    assert_eq!(stored().await, before);
}

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

/// Mix-up defence (RFC 9700 §4.4): each app has its own callback, and a provider's answer is
/// accepted only at the callback its connect link named; an app that names its provider's issuer
/// accepts only answers carrying it as `iss` (RFC 9207).
async fn a_provider_answer_is_accepted_only_where_its_link_sent_it(backend: Backend) {
    let s = TestServer::start(backend).await;
    let idp = Idp::start().await;
    let p = Provider::start().await;
    s.trust(&idp).await;
    s.must_post("/v1/mgmt/outbound-apps", p.app("cal", &SCOPES))
        .await;
    s.must_post("/v1/mgmt/outbound-apps", p.app("other", &SCOPES))
        .await;
    s.must_post(
        "/v1/mgmt/users",
        json!({"id": "alice", "identities": idp.identity("alice")}),
    )
    .await;
    let alice = idp.token("alice");
    let url = s
        .connect_url(&alice, "cal", json!({"scopes": SCOPES}))
        .await;
    let redirect = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(redirect, format!("{}/v1/outbound/callback/cal", s.url));
    // The provider answers; the answer is taken to another app's callback.
    let resp = s.http.get(&url).send().await.unwrap();
    let callback = resp.headers()["location"].to_str().unwrap().to_owned();
    let diverted = callback.replace("/v1/outbound/callback/cal", "/v1/outbound/callback/other");
    let (status, page) = s.follow_callback(&diverted).await;
    assert_eq!(status, 400, "{page}");
    // ...and to the shared callback.
    let url = s
        .connect_url(&alice, "cal", json!({"scopes": SCOPES}))
        .await;
    let resp = s.http.get(&url).send().await.unwrap();
    let callback = resp.headers()["location"].to_str().unwrap().to_owned();
    let shared = callback.replace("/v1/outbound/callback/cal", "/v1/outbound/callback");
    assert_eq!(s.follow_callback(&shared).await.0, 400);
    let (_, conns) = s
        .get(&format!("/v1/mgmt/users/{}/connections", "alice"))
        .await;
    assert_eq!(conns["items"].as_array().unwrap().len(), 0, "{conns}");

    // An app naming its issuer: an answer without `iss` is refused, one with it accepted.
    let mut app = p.app("cal", &SCOPES);
    app["issuer"] = json!("https://provider.example");
    assert_eq!(s.put("/v1/mgmt/outbound-apps/cal", app).await.0, 200);
    let url = s
        .connect_url(&alice, "cal", json!({"scopes": SCOPES}))
        .await;
    let resp = s.http.get(&url).send().await.unwrap();
    let callback = resp.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(s.follow_callback(&callback).await.0, 400);
    let url = s
        .connect_url(&alice, "cal", json!({"scopes": SCOPES}))
        .await;
    let resp = s.http.get(&url).send().await.unwrap();
    let callback = resp.headers()["location"].to_str().unwrap().to_owned();
    let with_iss = format!("{callback}&iss=https%3A%2F%2Fprovider.example");
    let (status, page) = s.follow_callback(&with_iss).await;
    assert_eq!(status, 200, "{page}");

    // An app keeping the shared callback uses it.
    let mut app = p.app("other", &SCOPES);
    app["sharedCallback"] = json!(true);
    assert_eq!(s.put("/v1/mgmt/outbound-apps/other", app).await.0, 200);
    let url = s
        .connect_url(&alice, "other", json!({"scopes": SCOPES}))
        .await;
    assert!(url.contains("%2Fv1%2Foutbound%2Fcallback&"), "{url}");
    let (status, page) = s.consent(&url).await;
    assert_eq!(status, 200, "{page}");
}

/// How many pending consents are stored.
async fn pending_consents(s: &TestServer) -> i64 {
    match &s.db {
        None => {
            let c = rusqlite::Connection::open_with_flags(
                s.dir.path().join("portcullis.db"),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .unwrap();
            c.query_row("SELECT count(*) FROM consent_states", [], |r| r.get(0))
                .unwrap()
        }
        Some(db) => {
            let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .query_one("SELECT count(*) FROM consent_states", &[])
                .await
                .unwrap()
                .get(0)
        }
    }
}

/// Asking again and again for an app the user has not connected stores nothing: the connect link
/// is a sealed ticket, and the pending consent is made when the user opens it.
async fn refusals_write_no_pending_consent_until_the_link_is_opened(backend: Backend) {
    let s = TestServer::start(backend).await;
    let idp = Idp::start().await;
    let p = Provider::start().await;
    s.trust(&idp).await;
    s.must_post("/v1/mgmt/outbound-apps", p.app("cal", &SCOPES))
        .await;
    let alice = idp.token("alice");
    let mut link = String::new();
    for _ in 0..20 {
        let (status, body, _) = s.fetch(Some(&alice), "cal", json!({})).await;
        assert_eq!(status, 404, "{body}");
        link = body["connectUrl"].as_str().unwrap().to_owned();
    }
    assert_eq!(pending_consents(&s).await, 0);
    // Opening the link starts the flow (one pending consent), and the flow connects.
    let (status, page) = s.consent(&link).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(s.fetch(Some(&alice), "cal", json!({})).await.0, 200);
    assert_eq!(
        pending_consents(&s).await,
        0,
        "the flow's state was consumed"
    );
    // A link works once: used, it is gone (410).
    let resp = s.http.get(&link).send().await.unwrap();
    assert_eq!(resp.status(), 410);
    // A tampered ticket was never issued: not found (404).
    let mut tampered = link.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let resp = s.http.get(&tampered).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

/// In production mode the URLs Portcullis calls must be https on public addresses (a
/// `danger_`-named switch allows internal ones, for tests); a 401 never says which URL failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_calls_only_public_https_urls_and_401s_say_no_url() {
    let s = TestServer::start_with(Backend::Sqlite, |env| {
        env.insert("PORTCULLIS_PRODUCTION".into(), "true".into());
    })
    .await;
    let app = |id: &str, token_url: &str| {
        json!({"id": id, "name": id, "type": "oauth", "clientId": "c", "clientSecret": "s",
               "authorizationUrl": "https://provider.example/authorize", "tokenUrl": token_url,
               "scopes": [{"name": "read"}]})
    };
    for (n, url) in [
        "http://provider.example/token",
        "https://127.0.0.1:9443/token",
        "https://localhost/token",
        "https://10.0.0.7/token",
        "https://169.254.169.254/token",
        "https://[::1]/token",
    ]
    .iter()
    .enumerate()
    {
        let (status, body) = s
            .post("/v1/mgmt/outbound-apps", app(&format!("a{n}"), url))
            .await;
        assert_eq!(status, 400, "{url}: {body}");
    }
    let (status, body) = s
        .post(
            "/v1/mgmt/outbound-apps",
            app("ok", "https://provider.example/token"),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = s
        .post(
            "/v1/mgmt/issuers",
            json!({"issuer": "https://idp.example", "jwksUrl": "https://192.168.0.1/jwks",
                   "audiences": ["mcp"]}),
        )
        .await;
    assert_eq!(status, 400);
    // The switch for tests.
    let s = s
        .restart_with(|env| {
            env.insert(
                "PORTCULLIS_DANGER_ALLOW_PRIVATE_NETWORK".into(),
                "true".into(),
            );
        })
        .await;
    let (status, body) = s
        .post(
            "/v1/mgmt/outbound-apps",
            app("internal", "https://127.0.0.1:9443/token"),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // Outside production: an issuer whose keys cannot be fetched. The caller learns that the
    // keys are unavailable, not where from nor why.
    let s = TestServer::start(Backend::Sqlite).await;
    let idp = Idp::start().await;
    let mut registration = idp.registration();
    registration["jwksUrl"] = json!("http://127.0.0.1:9/secret-internal-jwks");
    s.must_post("/v1/mgmt/issuers", registration).await;
    let (status, body, _) = s.fetch(Some(&idp.token("alice")), "cal", json!({})).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["details"]["reason"], "keys_unavailable");
    let text = body.to_string();
    assert!(
        !text.contains("127.0.0.1") && !text.contains("secret-internal"),
        "{text}"
    );
}

both_backends!(
    refusals_write_no_pending_consent_until_the_link_is_opened,
    a_disabled_user_is_refused_on_every_path,
    a_provider_answer_is_accepted_only_where_its_link_sent_it,
);
