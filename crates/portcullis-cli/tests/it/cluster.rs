//! Several Portcullis processes on one PostgreSQL database: one refresh per connection across the
//! cluster, and how soon a policy change made on one node decides on another.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::pg::FreshDatabase;
use crate::support::{Idp, Provider};

/// A `portcullis serve` process.
struct Node {
    url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The settings every node of a test cluster shares.
fn cluster_env(db: &FreshDatabase) -> HashMap<String, String> {
    let mut env = HashMap::new();
    env.insert("PORTCULLIS_DATABASE_URL".into(), db.url.clone());
    env.insert(
        "PORTCULLIS_MASTER_KEY".into(),
        portcullis_crypto::envelope::MasterKey::generate("cluster-1")
            .unwrap()
            .encode()
            .expose()
            .to_owned(),
    );
    env.insert(
        "PORTCULLIS_BOOTSTRAP_ADMIN_KEY".into(),
        format!("cluster-admin-{}", portcullis_crypto::random_token(24)),
    );
    env.insert("PORTCULLIS_LISTEN".into(), "127.0.0.1:0".into());
    env.insert("PORTCULLIS_LOG_FORMAT".into(), "json".into());
    env.insert("PORTCULLIS_LOG_LEVEL".into(), "info".into());
    env
}

async fn spawn_node(env: &HashMap<String, String>) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("serve")
        .envs(env)
        .env("PORTCULLIS_DATA_DIR", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let addr = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stderr);
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap() == 0 {
                panic!("the node exited before listening");
            }
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["fields"]["message"] == "Portcullis is listening"
            {
                let addr = v["fields"]["addr"].as_str().unwrap().to_owned();
                // Keep draining the node's log so that it never blocks on a full pipe.
                std::thread::spawn(move || for _ in reader.lines() {});
                return addr;
            }
        }
    })
    .await
    .unwrap();
    Node {
        url: format!("http://{addr}"),
        child,
        _dir: dir,
    }
}

struct Cluster {
    nodes: Vec<Node>,
    admin: String,
    http: reqwest::Client,
    _db: FreshDatabase,
}

impl Cluster {
    async fn start(n: usize) -> Self {
        let db = FreshDatabase::create().await;
        let env = cluster_env(&db);
        let mut nodes = Vec::new();
        for _ in 0..n {
            nodes.push(spawn_node(&env).await);
        }
        Self {
            nodes,
            admin: env["PORTCULLIS_BOOTSTRAP_ADMIN_KEY"].clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            _db: db,
        }
    }

    async fn admin(
        &self,
        node: usize,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> (u16, Value) {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.nodes[node].url))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn fetch(&self, node: usize, token: &str, app: &str, scopes: &[&str]) -> (u16, Value) {
        let resp = self
            .http
            .post(format!(
                "{}/v1/outbound/apps/{app}/token",
                self.nodes[node].url
            ))
            .bearer_auth(token)
            .json(&json!({"scopes": scopes}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Trusts the IdP, registers the provider's app `cal`, and connects `user` through node 0.
    async fn with_connected_user(&self, idp: &Idp, provider: &Provider, user: &str) {
        let post = reqwest::Method::POST;
        assert_eq!(
            self.admin(0, post.clone(), "/v1/mgmt/issuers", idp.registration())
                .await
                .0,
            201
        );
        assert_eq!(
            self.admin(
                0,
                post,
                "/v1/mgmt/outbound-apps",
                provider.app("cal", &["calendar.readonly", "calendar"])
            )
            .await
            .0,
            201
        );
        let resp = self
            .http
            .post(format!(
                "{}/v1/outbound/apps/cal/connect",
                self.nodes[0].url
            ))
            .bearer_auth(idp.token(user))
            .json(&json!({"scopes": ["calendar.readonly"]}))
            .send()
            .await
            .unwrap();
        let link = resp.json::<Value>().await.unwrap()["url"]
            .as_str()
            .unwrap()
            .to_owned();
        let (url, cookies) = crate::support::server::continue_link(&self.http, &link)
            .await
            .expect("the link leads to the provider");
        assert_eq!(
            crate::support::server::finish_at_provider(&self.http, &url, &cookies).await,
            Some(200)
        );
        // Every node has heard of the new issuer (a notification away) before the test goes on.
        let token = idp.token(user);
        for node in 0..self.nodes.len() {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let (status, _) = self
                    .admin(
                        node,
                        reqwest::Method::POST,
                        "/v1/mgmt/decisions/simulate",
                        json!({"token": token, "appId": "cal"}),
                    )
                    .await;
                if status == 200 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {node} never trusted the issuer"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// 50 concurrent requests for one expired token, spread over 3 nodes: exactly one call reaches
/// the provider's token endpoint, and all 50 get the new token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refresh_per_connection_across_the_cluster() {
    let cluster = Cluster::start(3).await;
    let idp = Idp::start().await;
    let provider = Provider::start().await;
    // The token stored at consent lives one second; wait until it has expired.
    provider.set(json!({"expiresIn": 1})).await;
    cluster.with_connected_user(&idp, &provider, "alice").await;
    provider.set(json!({"expiresIn": 3600})).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, conns) = cluster
        .admin(
            0,
            reqwest::Method::GET,
            &format!("/v1/mgmt/users/{}/connections", idp.principal("alice")),
            json!(null),
        )
        .await;
    let expires = conns["items"][0]["expiresAt"].as_str().unwrap();
    assert!(
        portcullis_domain::Timestamp::parse_rfc3339(expires)
            .unwrap()
            .as_millis()
            < std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64,
        "the stored token has expired: {expires}"
    );
    let before = provider.refresh_calls().await;
    let token = idp.token("alice");
    let mut requests = Vec::new();
    for i in 0..50 {
        requests.push(cluster.fetch(i % 3, &token, "cal", &["calendar.readonly"]));
    }
    let answers = futures_util::future::join_all(requests).await;
    let refreshes = provider.refresh_calls().await - before;
    let mut tokens = std::collections::HashSet::new();
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        tokens.insert(body["token"]["accessToken"].as_str().unwrap().to_owned());
    }
    println!(
        "50 concurrent requests over 3 nodes: {refreshes} provider refresh call(s), {} distinct token(s)",
        tokens.len()
    );
    assert_eq!(refreshes, 1, "exactly one refresh reached the provider");
    assert_eq!(tokens.len(), 1, "all 50 got the same, new token");
    // The new token is stored: more requests on any node do not refresh again.
    for n in 0..3 {
        assert_eq!(
            cluster
                .fetch(n, &token, "cal", &["calendar.readonly"])
                .await
                .0,
            200
        );
    }
    assert_eq!(provider.refresh_calls().await - before, 1);
}

/// A policy changed through one node decides on another at once: the time from the change's
/// answer to the other node's first different decision, measured over 20 changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_change_reaches_every_node_at_once() {
    let cluster = Cluster::start(2).await;
    let idp = Idp::start().await;
    let provider = Provider::start().await;
    cluster.with_connected_user(&idp, &provider, "alice").await;
    let token = idp.token_with(
        portcullis_crypto::jws::Algorithm::ES256,
        "alice",
        json!({"department": "eng"}),
    );
    let policy = |department: &str| json!({"name": "Engineering", "conditions": [{"source": "jwtClaims", "claim": "department", "operator": "equals", "value": department}], "scopes": "all"});
    let (status, created) = cluster
        .admin(
            0,
            reqwest::Method::POST,
            "/v1/mgmt/outbound-apps/cal/policies",
            policy("eng"),
        )
        .await;
    assert_eq!(status, 201);
    let path = format!(
        "/v1/mgmt/outbound-apps/cal/policies/{}",
        created["id"].as_str().unwrap()
    );
    // Warm node 1's caches.
    assert_eq!(
        cluster
            .fetch(1, &token, "cal", &["calendar.readonly"])
            .await
            .0,
        200
    );
    let mut lags = Vec::new();
    for i in 0..20 {
        let allow = i % 2 == 1;
        let expected = if allow { 200 } else { 403 };
        let (status, _) = cluster
            .admin(
                0,
                reqwest::Method::PUT,
                &path,
                policy(if allow { "eng" } else { "sales" }),
            )
            .await;
        assert_eq!(status, 200);
        let changed = Instant::now();
        loop {
            let (status, _) = cluster
                .fetch(1, &token, "cal", &["calendar.readonly"])
                .await;
            if status == expected {
                break;
            }
            assert!(
                changed.elapsed() < Duration::from_secs(5),
                "node 1 still decides with the old policy after 5 s"
            );
        }
        lags.push(changed.elapsed());
    }
    lags.sort();
    let p50 = lags[lags.len() / 2];
    let max = lags[lags.len() - 1];
    println!("cross-node staleness after a policy change (20 changes): p50 {p50:?}, max {max:?}");
    assert!(max < Duration::from_secs(2), "max {max:?}");
}

/// A node whose change listener is cut does not keep serving from its caches: while it is not
/// listening it reads the database, and when it listens again it forgets its caches, so a change
/// made elsewhere meanwhile decides on it within moments (bounded; measured).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_loses_its_listener_fails_closed() {
    let cluster = Cluster::start(2).await;
    let idp = Idp::start().await;
    let provider = Provider::start().await;
    cluster.with_connected_user(&idp, &provider, "alice").await;
    let token = idp.token("alice");
    assert_eq!(
        cluster
            .fetch(1, &token, "cal", &["calendar.readonly"])
            .await
            .0,
        200
    );
    // Cut every listener session of this database.
    let (client, conn) =
        tokio_postgres::connect(&crate::support::pg::server_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    let db_name = cluster._db.url.rsplit('/').next().unwrap().to_owned();
    let cut = client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'portcullis-listener-%'",
            &[&db_name],
        )
        .await
        .unwrap();
    assert_eq!(cut.len(), 2, "both nodes' listeners were cut");
    // A policy that denies everyone, made on node 0 while node 1's listener is down.
    let (status, _) = cluster
        .admin(
            0,
            reqwest::Method::POST,
            "/v1/mgmt/outbound-apps/cal/policies",
            json!({"name": "Nobody", "conditions": [{"source": "userRoles", "operator": "contains", "value": "no-such-role"}], "scopes": "all"}),
        )
        .await;
    assert_eq!(status, 201);
    let changed = Instant::now();
    loop {
        let (status, _) = cluster
            .fetch(1, &token, "cal", &["calendar.readonly"])
            .await;
        if status == 403 {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(3),
            "node 1 kept serving its cached decision"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "after losing its listener, node 1 decided with the new policy after {:?}",
        changed.elapsed()
    );
    // Once it listens again, changes flow as usual.
    let deadline = Instant::now() + Duration::from_secs(5);
    while reqwest::get(format!("{}/readyz", cluster.nodes[1].url))
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(Instant::now() < deadline, "node 1 never listened again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, list) = cluster
        .admin(
            0,
            reqwest::Method::GET,
            "/v1/mgmt/outbound-apps/cal/policies",
            json!(null),
        )
        .await;
    assert_eq!(status, 200);
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = cluster
        .admin(
            0,
            reqwest::Method::DELETE,
            &format!("/v1/mgmt/outbound-apps/cal/policies/{id}"),
            json!(null),
        )
        .await;
    assert_eq!(status, 204);
    let changed = Instant::now();
    while cluster
        .fetch(1, &token, "cal", &["calendar.readonly"])
        .await
        .0
        != 200
    {
        assert!(
            changed.elapsed() < Duration::from_secs(3),
            "node 1 missed a change after listening again"
        );
    }
}

/// A revoked admin key stops working on every node at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_admin_key_dies_on_every_node_at_once() {
    let cluster = Cluster::start(2).await;
    let (st, created) = cluster
        .admin(
            0,
            reqwest::Method::POST,
            "/v1/mgmt/admin-keys",
            json!({"name": "ci", "scopes": ["read"]}),
        )
        .await;
    assert_eq!(st, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    let read = |node: usize| {
        cluster
            .http
            .get(format!("{}/v1/mgmt/outbound-apps", cluster.nodes[node].url))
            .bearer_auth(&key)
            .send()
    };
    // Both nodes know (and cache) the key.
    for node in [0, 1] {
        assert_eq!(read(node).await.unwrap().status().as_u16(), 200);
    }
    let (st, _) = cluster
        .admin(
            0,
            reqwest::Method::DELETE,
            &format!("/v1/mgmt/admin-keys/{id}"),
            json!(null),
        )
        .await;
    assert_eq!(st, 204);
    // The other node refuses it from the next request on: give the notification a bounded time.
    let started = std::time::Instant::now();
    loop {
        let st = read(1).await.unwrap().status().as_u16();
        if st == 401 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "node 1 still accepts a revoked key"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(read(0).await.unwrap().status().as_u16(), 401);
}

/// Two nodes on one database agree on one signing key (the first start creates it), and a rotation on
/// one node is published by the other within moments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_key_rotation_reaches_every_node() {
    let cluster = Cluster::start(2).await;
    let jwks = |node: usize| {
        let url = format!("{}/.well-known/jwks.json", cluster.nodes[node].url);
        let http = cluster.http.clone();
        async move {
            let v: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            let mut kids: Vec<String> = v["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect();
            kids.sort();
            kids
        }
    };
    let first = jwks(0).await;
    assert_eq!(first.len(), 1, "one key for the cluster: {first:?}");
    assert_eq!(jwks(1).await, first);
    let (st, rotated) = cluster
        .admin(
            0,
            reqwest::Method::POST,
            "/v1/mgmt/signing-keys/rotate",
            json!(null),
        )
        .await;
    assert_eq!(st, 200, "{rotated}");
    let expected = jwks(0).await;
    assert_eq!(expected.len(), 2);
    let started = std::time::Instant::now();
    while jwks(1).await != expected {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "node 1 does not publish the new key"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
