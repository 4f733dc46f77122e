//! Crash safety, on both backends: a `portcullis serve` process killed with SIGKILL during
//! sustained writes (policy edits, connects, forced refreshes, token requests) restarts with every
//! write it acknowledged, nothing half written, and an audit log that lost at most the events
//! still queued in memory; the restarted server, under load, stops within seconds of SIGTERM.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::both_backends;
use crate::support::pg::FreshDatabase;
use crate::support::{Backend, Idp, Provider};

/// How long the audit writer may hold events in memory (`LINGER` of the writer) plus a margin
/// for the batch being written when the process dies.
const QUEUED_FOR: Duration = Duration::from_millis(300);

struct Server {
    url: String,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(env: &HashMap<String, String>, dir: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("serve")
        .envs(env)
        .env("PORTCULLIS_DATA_DIR", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut reader = BufReader::new(stderr);
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "exited early");
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["fields"]["message"] == "Portcullis is listening"
        {
            break v["fields"]["addr"].as_str().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in reader.lines() {});
    Server {
        url: format!("http://{addr}"),
        child,
    }
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

struct Load {
    http: reqwest::Client,
    url: String,
    admin: String,
    token: String,
    /// Policies whose creation was acknowledged.
    policies: Mutex<Vec<String>>,
    /// When each token request (forced refreshes included) was acknowledged (200).
    tokens: Mutex<Vec<Instant>>,
    /// Connects and refreshes acknowledged.
    connects: Mutex<u32>,
    refreshes: Mutex<u32>,
}

impl Load {
    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Option<Value> {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await
            .ok()?;
        resp.status()
            .is_success()
            .then_some(())
            .map(|()| resp)?
            .json()
            .await
            .ok()
    }

    async fn fetch(&self, force: bool) -> bool {
        let Ok(resp) = self
            .http
            .post(format!("{}/v1/outbound/apps/cal/token", self.url))
            .bearer_auth(&self.token)
            .json(&json!({"forceRefresh": force}))
            .send()
            .await
        else {
            return false;
        };
        resp.status() == 200 && resp.bytes().await.is_ok()
    }

    async fn connect(&self) -> bool {
        let Ok(resp) = self
            .http
            .post(format!("{}/v1/outbound/apps/cal/connect", self.url))
            .bearer_auth(&self.token)
            .json(&json!({"scopes": ["calendar.readonly"]}))
            .send()
            .await
        else {
            return false;
        };
        let Ok(v) = resp.json::<Value>().await else {
            return false;
        };
        let Some(link) = v["url"].as_str() else {
            return false;
        };
        let Some((url, cookies)) = crate::support::server::continue_link(&self.http, link).await
        else {
            return false;
        };
        crate::support::server::finish_at_provider(&self.http, &url, &cookies).await == Some(200)
    }

    /// Runs the four kinds of writes until `stop`.
    async fn run(self: Arc<Self>, stop: Arc<std::sync::atomic::AtomicBool>) {
        use std::sync::atomic::Ordering::Relaxed;
        let policies = {
            let l = self.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Relaxed) {
                    n += 1;
                    let body = json!({"name": format!("p{n}"), "conditions": [{"source": "userRoles", "operator": "contains", "value": "nobody"}], "scopes": "all", "mode": "shadow"});
                    if let Some(v) = l
                        .admin(
                            reqwest::Method::POST,
                            "/v1/mgmt/outbound-apps/cal/policies",
                            body,
                        )
                        .await
                    {
                        l.policies
                            .lock()
                            .unwrap()
                            .push(v["id"].as_str().unwrap().to_owned());
                    }
                }
            })
        };
        let tokens = {
            let l = self.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(Relaxed) {
                    if l.fetch(false).await {
                        l.tokens.lock().unwrap().push(Instant::now());
                    }
                }
            })
        };
        let connects = {
            let l = self.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(Relaxed) {
                    if l.connect().await {
                        *l.connects.lock().unwrap() += 1;
                    }
                }
            })
        };
        let refreshes = {
            let l = self.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(Relaxed) {
                    if l.fetch(true).await {
                        *l.refreshes.lock().unwrap() += 1;
                        l.tokens.lock().unwrap().push(Instant::now());
                    }
                }
            })
        };
        for t in [policies, tokens, connects, refreshes] {
            let _ = t.await;
        }
    }
}

async fn a_killed_server_keeps_every_acknowledged_write(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(FreshDatabase::create().await),
    };
    let admin = format!("crash-admin-{}", portcullis_crypto::random_token(24));
    let mut env = HashMap::new();
    env.insert("PORTCULLIS_LISTEN".to_owned(), "127.0.0.1:0".to_owned());
    env.insert("PORTCULLIS_LOG_FORMAT".to_owned(), "json".to_owned());
    env.insert("PORTCULLIS_BOOTSTRAP_ADMIN_KEY".to_owned(), admin.clone());
    env.insert(
        "PORTCULLIS_RATE_LIMIT_PER_SUBJECT".to_owned(),
        "off".to_owned(),
    );
    env.insert(
        "PORTCULLIS_MASTER_KEY".to_owned(),
        portcullis_crypto::envelope::MasterKey::generate("crash-1")
            .unwrap()
            .encode()
            .expose()
            .to_owned(),
    );
    if let Some(db) = &db {
        env.insert("PORTCULLIS_DATABASE_URL".to_owned(), db.url.clone());
    }
    let idp = Idp::start().await;
    let provider = Provider::start().await;
    let server = spawn(&env, dir.path());
    let load = Arc::new(Load {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap(),
        url: server.url.clone(),
        admin: admin.clone(),
        token: idp.token("alice"),
        policies: Mutex::new(Vec::new()),
        tokens: Mutex::new(Vec::new()),
        connects: Mutex::new(0),
        refreshes: Mutex::new(0),
    });
    let post = reqwest::Method::POST;
    load.admin(post.clone(), "/v1/mgmt/issuers", idp.registration())
        .await
        .unwrap();
    load.admin(
        post.clone(),
        "/v1/mgmt/outbound-apps",
        provider.app("cal", &["calendar.readonly", "calendar"]),
    )
    .await
    .unwrap();
    load.admin(
        post,
        "/v1/mgmt/users",
        json!({"id": "alice", "identities": idp.identity("alice")}),
    )
    .await
    .unwrap();
    assert!(load.connect().await);

    // Sustained writes, then SIGKILL in the middle of them.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let running = tokio::spawn(load.clone().run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut server = server;
    signal(&server.child, "-KILL");
    let killed_at = Instant::now();
    let _ = server.child.wait();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    running.await.unwrap();
    let acked_policies = load.policies.lock().unwrap().clone();
    let acked_tokens = load.tokens.lock().unwrap().clone();
    let (connects, refreshes) = (
        *load.connects.lock().unwrap(),
        *load.refreshes.lock().unwrap(),
    );
    assert!(
        !acked_policies.is_empty() && acked_tokens.len() > 10 && connects > 0 && refreshes > 0,
        "the load ran: {} policies, {} tokens, {connects} connects, {refreshes} refreshes",
        acked_policies.len(),
        acked_tokens.len()
    );

    // Restart on the same data.
    let server = spawn(&env, dir.path());
    let load = Arc::new(Load {
        url: server.url.clone(),
        policies: Mutex::new(Vec::new()),
        tokens: Mutex::new(Vec::new()),
        connects: Mutex::new(0),
        refreshes: Mutex::new(0),
        http: load.http.clone(),
        admin: admin.clone(),
        token: load.token.clone(),
    });
    // Every acknowledged policy is there, whole.
    let mut stored = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = load
            .admin(
                reqwest::Method::GET,
                &format!("/v1/mgmt/outbound-apps/cal/policies?limit=100{cursor}"),
                Value::Null,
            )
            .await
            .unwrap();
        for p in page["items"].as_array().unwrap() {
            assert_eq!(p["scopes"], "all", "{p}");
            stored.push(p["id"].as_str().unwrap().to_owned());
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    for id in &acked_policies {
        assert!(stored.contains(id), "acknowledged policy {id} is missing");
    }
    // The app's revision counts every policy written (no policy without its revision bump).
    let app = load
        .admin(
            reqwest::Method::GET,
            "/v1/mgmt/outbound-apps/cal",
            Value::Null,
        )
        .await
        .unwrap();
    assert_eq!(
        app["revision"].as_u64().unwrap(),
        1 + stored.len() as u64,
        "{app}"
    );
    // The connection opens (its ciphertext and its row agree). (A forced refresh may wait for the
    // lease the killed process held, until it expires.)
    assert!(load.fetch(false).await);
    // The audit log lost at most what was queued in memory.
    let recent = acked_tokens
        .iter()
        .filter(|t| killed_at.duration_since(**t) <= QUEUED_FOR)
        .count();
    let mut recorded = 0;
    let mut cursor = String::new();
    loop {
        let page = load
            .admin(
                reqwest::Method::GET,
                &format!("/v1/mgmt/audit?outcome=allowed&limit=1000{cursor}"),
                Value::Null,
            )
            .await
            .unwrap();
        recorded += page["items"].as_array().unwrap().len();
        match page["nextCursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    let acked = acked_tokens.len();
    println!(
        "{backend:?}: {} policies, {} token requests, {connects} connects, {refreshes} refreshes acknowledged; {recorded} allowed decisions recorded, {recent} acknowledged in the last {QUEUED_FOR:?}",
        acked_policies.len(),
        acked_tokens.len()
    );
    assert!(
        recorded + recent >= acked,
        "recorded {recorded} of {acked} (at most {recent} may be lost)"
    );
    if db.is_none() {
        let c = rusqlite::Connection::open(dir.path().join("portcullis.db")).unwrap();
        let check: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }

    // Under load again, SIGTERM stops it within seconds.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let running = tokio::spawn(load.clone().run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut server = server;
    signal(&server.child, "-TERM");
    let asked = Instant::now();
    let exited = tokio::task::spawn_blocking(move || {
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                return Some(status);
            }
            if asked.elapsed() > Duration::from_secs(10) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    running.await.unwrap();
    let took = asked.elapsed();
    assert!(
        exited.is_some(),
        "the server did not stop within 10 s of SIGTERM"
    );
    println!("{backend:?}: stopped {took:?} after SIGTERM under load");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

both_backends!(a_killed_server_keeps_every_acknowledged_write);
