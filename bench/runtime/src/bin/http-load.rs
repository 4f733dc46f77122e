//! The HTTP load benchmark: a release `portcullis serve` on SQLite, a JWKS-publishing IdP, an
//! OAuth app with a connected user and ten policies; `wrk` at 16 connections
//! (`PORTCULLIS_BENCH_CONNECTIONS`) against a bare
//! endpoint (`GET /healthz`) and the token endpoint (`POST /v1/outbound/apps/{app}/token`, the
//! same inbound token every time: the warm path) in the same run. Prints requests/s and latency
//! percentiles.
//!
//! `bench/load.sh` builds everything and runs this; `--seconds N` (default 10).
//!
//! On a data set made by `scale-data` (`--database <SQLite data directory | postgres://...>`,
//! `--manifest FILE` when not `scale.json` in the data directory): the server is started on it,
//! the data set's trusted issuer is pointed at this IdP, and tokens are signed for the data set's
//! users (their real identities, with the claims their policies read). The warm single-user run
//! then asks for one allowed (user, app) pair again and again; with `--zipf`, a second run draws
//! `--samples N` (default 50,000) requests, users by activity Zipf-wise (s = 1.1) and for each
//! user one of their connections (the first ones busiest), keeping only requests the policies
//! allow, and wrk cycles through them (after a warm-up on another draw of the same size). With
//! `--rotate` as well, a third run repeats the Zipf run while a data-key rotation
//! (`POST /v1/mgmt/keys/rotate`) re-seals every sealed row. With `--nodes N` (a PostgreSQL data
//! set), N nodes run on the database, a wrk on each, while the first node disables and re-enables
//! a user: how long the others go on answering as before.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark driver"
)]

use portcullis_bench_runtime::{Run, wrk};

use axum::Router;
use axum::routing::get;
use portcullis_crypto::jws::{Algorithm, SigningKey};
use serde_json::{Value, json};

const AUDIENCE: &str = "https://mcp.bench.example/mcp";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let seconds: u64 = std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let bin =
        std::env::var("PORTCULLIS_BIN").unwrap_or_else(|_| "target/release/portcullis".into());
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if let Some(database) = arg("--database") {
        let samples = arg("--samples")
            .and_then(|s| s.parse().ok())
            .unwrap_or(50_000);
        let zipf = args.iter().any(|a| a == "--zipf");
        let rotate = args.iter().any(|a| a == "--rotate");
        let nodes: usize = arg("--nodes").and_then(|s| s.parse().ok()).unwrap_or(1);
        assert!(
            nodes == 1 || (zipf && database.starts_with("postgres")),
            "--nodes N runs N nodes on one PostgreSQL under the Zipf load: add --zipf and a postgres:// data set"
        );
        assert!(
            !rotate || zipf,
            "--rotate measures the Zipf run during a rotation: add --zipf"
        );
        generated::run(
            &bin,
            &database,
            arg("--manifest").as_deref(),
            generated::Runs {
                zipf,
                rotate,
                nodes,
                samples,
                seconds,
            },
        )
        .await;
        return;
    }
    assert!(
        !args.iter().any(|a| a == "--zipf"),
        "--zipf draws from a data set: give it with --database (see scale-data)"
    );

    // The IdP.
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let issuer = serve_jwks(&key).await;

    // The server.
    let server = portcullis_bench_runtime::Server::start(&bin, &[]);
    let (base, admin) = (server.base.clone(), server.admin.clone());
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        let req = http
            .post(format!("{base}{path}"))
            .bearer_auth(&admin)
            .json(&body);
        async move {
            let resp = req.send().await.unwrap();
            assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
        }
    };
    post("/v1/mgmt/issuers", json!({"issuer": issuer, "jwksUrl": format!("{issuer}/jwks.json"), "audiences": [AUDIENCE], "algorithms": ["ES256"], "rolesClaim": "roles"})).await;
    post("/v1/mgmt/outbound-apps", json!({
        "id": "calendar", "name": "Calendar", "type": "oauth", "clientId": "c", "clientSecret": "s",
        "authorizationUrl": "https://provider.example/authorize", "tokenUrl": "https://provider.example/token",
        "scopes": [{"name": "calendar.readonly"}, {"name": "calendar"}],
    })).await;
    for i in 0..10 {
        let role = if i == 7 {
            "Viewer".to_owned()
        } else {
            format!("role-{i}")
        };
        post("/v1/mgmt/outbound-apps/calendar/policies", json!({"name": format!("policy {i}"), "conditions": [
            {"source": "userRoles", "operator": "contains", "value": role},
            {"source": "jwtClaims", "claim": "department", "operator": "in", "value": ["eng", "ops"]}
        ], "scopes": ["calendar.readonly"]})).await;
    }
    post("/v1/mgmt/roles", json!({"name": "Viewer"})).await;
    post(
        "/v1/mgmt/users",
        json!({"id": "alice", "roles": ["Viewer"], "identities": [{"issuer": issuer, "subject": "alice"}]}),
    )
    .await;
    post(
        "/v1/mgmt/outbound-apps/calendar/tokens",
        json!({"tokens": [{"userId": "alice",
        "accessToken": "ya29.a0AfH6SMBx-provider-access-token-of-a-realistic-length-0123456789",
        "scopes": ["calendar.readonly"], "expiresAt": "2099-01-01T00:00:00Z"}]}),
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = key
        .sign_jwt(
            &json!({"iss": issuer, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 3600,
                    "scope": "openid outbound.token.fetch", "department": "eng", "azp": "mcp-client"}),
            Some("at+jwt"),
        )
        .unwrap();
    let check = http
        .post(format!("{base}/v1/outbound/apps/calendar/token"))
        .bearer_auth(&token)
        .json(&json!({"scopes": ["calendar.readonly"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        check.status().as_u16(),
        200,
        "{}",
        check.text().await.unwrap()
    );
    let script = dir.path().join("token.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{{\"scopes\":[\"calendar.readonly\"]}}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"Bearer {token}\"\n"
        ),
    )
    .unwrap();

    let only_token = std::env::args().any(|a| a == "--only-token");
    let warm = |url: String, script: Option<String>| {
        tokio::task::spawn_blocking(move || wrk(&url, script.as_deref(), 2))
    };
    let bare = if only_token {
        Run::default()
    } else {
        warm(format!("{base}/healthz"), None).await.unwrap();
        tokio::task::spawn_blocking({
            let url = format!("{base}/healthz");
            move || wrk(&url, None, seconds)
        })
        .await
        .unwrap()
    };
    warm(
        format!("{base}/v1/outbound/apps/calendar/token"),
        Some(script.display().to_string()),
    )
    .await
    .unwrap();
    let tokens = tokio::task::spawn_blocking({
        let url = format!("{base}/v1/outbound/apps/calendar/token");
        let s = script.display().to_string();
        move || wrk(&url, Some(&s), seconds)
    })
    .await
    .unwrap();
    drop(server);
    portcullis_bench_runtime::print_table(
        &format!(
            "endpoint ({} connections, {seconds} s, wrk on the same 2 cores)",
            portcullis_bench_runtime::connections()
        ),
        &[
            ("GET /healthz (bare)", &bare),
            ("POST /v1/outbound/apps/{app}/token (warm)", &tokens),
        ],
    );
    println!(
        "\ntoken endpoint / bare endpoint throughput: {:.0}%",
        100.0 * tokens.requests_per_sec / bare.requests_per_sec.max(1.0)
    );
}

/// The load on a data set made by `scale-data`.
mod generated {
    use std::collections::{HashMap, HashSet};
    use std::fmt::Write as _;

    use portcullis_bench_runtime::scale::{self, Model, Rng, kind};
    use portcullis_bench_runtime::{Run, Server, print_table, wrk};

    use portcullis_crypto::jws::{Algorithm, SigningKey};
    use serde_json::{Value, json};

    use super::serve_jwks;

    /// One request: whose token, which app, which tenant, which scopes.
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    struct Sample {
        user: u32,
        app: u32,
        tenant: Option<u32>,
        write: bool,
    }

    impl Sample {
        fn path(&self) -> String {
            format!("/v1/outbound/apps/{}/token", scale::app_id(self.app))
        }

        fn body(&self) -> String {
            let scopes = if self.write {
                json!(["read", "write"])
            } else {
                json!(["read"])
            };
            match self.tenant {
                None => json!({"scopes": scopes}),
                Some(t) => json!({"scopes": scopes, "tenantId": scale::tenant_id(t)}),
            }
            .to_string()
        }
    }

    /// Draws a request the policies allow: a user by activity, one of the user's connections.
    /// Returns it with how many draws were refused before it (disabled users, denials).
    fn draw(m: &Model, rng: &mut Rng) -> (Sample, u32) {
        let mut refused = 0;
        loop {
            let u = m.user_of_rank(m.activity.sample(rng));
            let conns = m.connections_of(u);
            let profile = m.profile(u);
            if conns == 0 || profile.disabled {
                refused += 1;
                continue;
            }
            let k = m.slot(conns, rng);
            let c = m.connection(u, k, &profile);
            let grant = m.grant(c.app, u, &profile, c.tenant);
            let write = grant.contains(&"write") && rng.chance(0.2);
            let requested: &[&str] = if write { &["read", "write"] } else { &["read"] };
            if !m.decide(c.app, u, &profile, c.tenant, requested).allowed {
                refused += 1;
                continue;
            }
            return (
                Sample {
                    user: u,
                    app: c.app,
                    tenant: c.tenant,
                    write,
                },
                refused,
            );
        }
    }

    /// Signs the users' tokens, one per user (as a client keeps its token while it lives).
    struct Tokens<'a> {
        model: &'a Model,
        key: SigningKey,
        now: u64,
        by_user: HashMap<u32, String>,
    }

    impl Tokens<'_> {
        fn of(&mut self, u: u32) -> String {
            if let Some(t) = self.by_user.get(&u) {
                return t.clone();
            }
            let profile = self.model.profile(u);
            let mut claims = self.model.claims(u, &profile);
            let mut rng = Rng::stream(self.model.p.seed ^ self.now, kind::TOKEN, u64::from(u));
            claims.insert("iat".into(), json!(self.now));
            claims.insert("exp".into(), json!(self.now + 7200));
            claims.insert("jti".into(), json!(rng.token_chars(22)));
            let token = self
                .key
                .sign_jwt(&Value::Object(claims), Some("at+jwt"))
                .unwrap();
            self.by_user.insert(u, token.clone());
            token
        }
    }

    /// What a draw of samples is like.
    struct Stats {
        users: usize,
        pairs: usize,
        refused: u64,
        tenant: usize,
        write: usize,
    }

    fn stats(samples: &[Sample], refused: u64) -> Stats {
        Stats {
            users: samples.iter().map(|s| s.user).collect::<HashSet<_>>().len(),
            pairs: samples
                .iter()
                .map(|s| (s.user, s.app, s.tenant))
                .collect::<HashSet<_>>()
                .len(),
            refused,
            tenant: samples.iter().filter(|s| s.tenant.is_some()).count(),
            write: samples.iter().filter(|s| s.write).count(),
        }
    }

    /// Writes the requests for the Lua script: the tokens, then one line per request.
    fn write_requests(path: &std::path::Path, samples: &[Sample], tokens: &mut Tokens<'_>) {
        let mut index: HashMap<u32, usize> = HashMap::new();
        let mut head = String::new();
        let mut body = String::new();
        for s in samples {
            let next = index.len() + 1;
            let i = *index.entry(s.user).or_insert_with(|| {
                let _ = writeln!(head, "T\t{}", tokens.of(s.user));
                next
            });
            let _ = writeln!(body, "R\t{i}\t{}\t{}", s.path(), s.body());
        }
        std::fs::write(path, head + &body).unwrap();
    }

    /// A wrk script cycling through the requests in `data`.
    fn script(dir: &std::path::Path, name: &str, data: &std::path::Path) -> String {
        let lua = format!(
            r#"local requests = {{}}
local n = 0
init = function(args)
  local tokens = {{}}
  for line in io.lines("{data}") do
    local kind, rest = line:match("^(%a)\t(.*)$")
    if kind == "T" then
      tokens[#tokens + 1] = rest
    else
      local i, path, body = rest:match("^(%d+)\t([^\t]+)\t(.*)$")
      n = n + 1
      requests[n] = wrk.format("POST", path, {{
        ["Content-Type"] = "application/json",
        ["Authorization"] = "Bearer " .. tokens[tonumber(i)],
      }}, body)
    end
  end
end
local i = 0
request = function()
  i = i % n + 1
  return requests[i]
end
"#,
            data = data.display()
        );
        let path = dir.join(name);
        std::fs::write(&path, lua).unwrap();
        path.display().to_string()
    }

    /// The audit events the server has written so far (its `/metrics`).
    async fn audit_written(http: &reqwest::Client, base: &str) -> u64 {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find(|l| l.starts_with("portcullis_audit_events_written_total"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|n| n.parse::<f64>().ok())
            .map_or(0, |n| n as u64)
    }

    /// Waits until the server has written every recorded decision (the count stops moving), so
    /// that a run does not inherit the previous one's backlog. Returns the count and the wait.
    async fn drain(http: &reqwest::Client, base: &str) -> (u64, f64) {
        let started = std::time::Instant::now();
        let mut last = audit_written(http, base).await;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let now = audit_written(http, base).await;
            if now == last || started.elapsed().as_secs() > 300 {
                return (now, started.elapsed().as_secs_f64() - 0.5);
            }
            last = now;
        }
    }

    /// A management read's JSON answer.
    async fn admin_get(http: &reqwest::Client, url: &str, admin: &str) -> Value {
        http.get(url)
            .bearer_auth(admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Nodes on one PostgreSQL under the Zipf load (a wrk on each), while the first node disables
    /// and re-enables one user, 20 times: how long each other node goes on answering as before
    /// (the user's token request asked again and again until its answer changes), counted from
    /// the moment the change's write returned.
    async fn staleness(
        http: &reqwest::Client,
        bases: &[String],
        admin: &str,
        sample: &Sample,
        token: &str,
        script: &str,
        seconds: u64,
    ) {
        let loads: Vec<_> = bases
            .iter()
            .map(|b| {
                let (url, script) = (b.clone(), script.to_owned());
                tokio::task::spawn_blocking(move || wrk(&url, Some(&script), seconds))
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let user = scale::user_id(sample.user);
        // A PUT replaces the user: send it whole, only `disabled` changed.
        let stored = admin_get(http, &format!("{}/v1/mgmt/users/{user}", bases[0]), admin).await;
        let mut input = serde_json::Map::new();
        for field in [
            "identities",
            "email",
            "name",
            "roles",
            "tenants",
            "attributes",
        ] {
            if let Some(v) = stored.get(field).filter(|v| !v.is_null()) {
                input.insert(field.into(), v.clone());
            }
        }
        let mut stale_ms: Vec<f64> = Vec::new();
        for round in 0..20 {
            let disabled = round % 2 == 0;
            input.insert("disabled".into(), json!(disabled));
            let resp = http
                .put(format!("{}/v1/mgmt/users/{user}", bases[0]))
                .bearer_auth(admin)
                .json(&input)
                .send()
                .await
                .unwrap();
            assert!(
                resp.status().is_success(),
                "updating the user: {}",
                resp.text().await.unwrap_or_default()
            );
            let changed = std::time::Instant::now();
            for b in &bases[1..] {
                loop {
                    let status = http
                        .post(format!("{b}{}", sample.path()))
                        .bearer_auth(token)
                        .header("content-type", "application/json")
                        .body(sample.body())
                        .send()
                        .await
                        .unwrap()
                        .status();
                    if status.is_success() != disabled {
                        break;
                    }
                    assert!(
                        changed.elapsed() < std::time::Duration::from_secs(10),
                        "{b} still answers {status} 10 s after the change"
                    );
                }
                stale_ms.push(changed.elapsed().as_secs_f64() * 1000.0);
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let mut runs = Vec::new();
        for l in loads {
            runs.push(l.await.unwrap());
        }
        stale_ms.sort_by(f64::total_cmp);
        println!(
            "\n{} nodes on one PostgreSQL, a wrk on each (Zipf draw): {} requests/s in all (p99 {}); \
             a user disabled or re-enabled on the first node, 20 times: the other nodes answered as \
             before for p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms after the write returned",
            bases.len(),
            runs.iter().map(|r| r.requests_per_sec).sum::<f64>().round(),
            runs.iter()
                .map(|r| r.p99.clone())
                .collect::<Vec<_>>()
                .join(", "),
            stale_ms[stale_ms.len() / 2],
            stale_ms[(stale_ms.len() * 99 / 100).min(stale_ms.len() - 1)],
            stale_ms[stale_ms.len() - 1],
        );
    }

    /// The Zipf run again while a data-key rotation re-seals every sealed row: the rotation is
    /// started, the run measured; with the rotation's state when the run ended.
    async fn rotate_under(
        http: &reqwest::Client,
        base: &str,
        admin: &str,
        script: String,
        seconds: u64,
    ) -> ((Run, u64, f64), String) {
        let started = http
            .post(format!("{base}/v1/mgmt/keys/rotate"))
            .bearer_auth(admin)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert!(
            started.status().is_success(),
            "keys rotate: {}",
            started.status()
        );
        let run = measure(http, base, script, seconds).await;
        let status = admin_get(http, &format!("{base}/v1/mgmt/keys"), admin).await;
        (run, status["reencryption"].to_string())
    }

    /// A measured run: wrk for `seconds`, then the audit backlog drained. The run, the audit
    /// events written during it, and how long the backlog took to drain after it.
    async fn measure(
        http: &reqwest::Client,
        base: &str,
        script: String,
        seconds: u64,
    ) -> (Run, u64, f64) {
        let (before, _) = drain(http, base).await;
        let url = base.to_owned();
        let run = tokio::task::spawn_blocking(move || wrk(&url, Some(&script), seconds))
            .await
            .unwrap();
        let during = audit_written(http, base).await - before;
        let (_, wait) = drain(http, base).await;
        (run, during, wait)
    }

    /// What to run on a data set.
    pub(super) struct Runs {
        /// The Zipf run after the warm one.
        pub(super) zipf: bool,
        /// The Zipf run again during a data-key rotation.
        pub(super) rotate: bool,
        /// Nodes on the database (more than one: the staleness run).
        pub(super) nodes: usize,
        /// Requests in a Zipf draw.
        pub(super) samples: usize,
        /// Seconds a run.
        pub(super) seconds: u64,
    }

    pub(super) async fn run(bin: &str, database: &str, manifest: Option<&str>, runs: Runs) {
        let Runs {
            zipf,
            rotate,
            nodes,
            samples,
            seconds,
        } = runs;
        let manifest_path = scale::manifest_path(database, manifest);
        let manifest: Value = serde_json::from_str(
            &std::fs::read_to_string(&manifest_path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (make the data set with scale-data, or give --manifest)",
                    manifest_path.display()
                )
            }),
        )
        .unwrap();
        let model = Model::new(scale::params_of(&manifest)).unwrap();
        let master = std::fs::read_to_string(manifest["masterKeyFile"].as_str().unwrap())
            .expect("the data set's master key");
        let admin = manifest["adminKey"].as_str().unwrap().to_owned();

        // The IdP of the data set's users.
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let idp = serve_jwks(&key).await;

        // The server, on the data set.
        let mut env = vec![("PORTCULLIS_MASTER_KEY", master.trim())];
        if database.starts_with("postgres") {
            env.push(("PORTCULLIS_DATABASE_URL", database));
        } else {
            env.push(("PORTCULLIS_DATA_DIR", manifest["dataDir"].as_str().unwrap()));
        }
        let started = std::time::Instant::now();
        let server = Server::start(bin, &env);
        eprintln!(
            "the server started on the data set in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let base = server.base.clone();
        // More nodes on the same database (PostgreSQL), for the staleness run.
        let others: Vec<Server> = (1..nodes).map(|_| Server::start(bin, &env)).collect();
        let http = reqwest::Client::new();
        let resp = http
            .put(format!(
                "{base}/v1/mgmt/issuers/{}",
                manifest["issuerId"].as_str().unwrap()
            ))
            .bearer_auth(&admin)
            .json(
                &json!({"issuer": scale::ISSUER, "jwksUrl": format!("{idp}/jwks.json"),
                "audiences": [scale::AUDIENCE], "algorithms": ["ES256", "RS256"]}),
            )
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "pointing the issuer at the IdP: {}",
            resp.text().await.unwrap()
        );

        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut tokens = Tokens {
            model: &model,
            key,
            now,
            by_user: HashMap::new(),
        };
        let dir = tempfile::tempdir().unwrap();

        // Draws: the hottest allowed request; the measured draw; the warm-up draw.
        let mut rng = Rng::stream(model.p.seed, kind::SAMPLE, 0);
        let hottest = {
            let mut r = Rng::stream(model.p.seed, kind::SAMPLE, 1);
            // Rank 0 first: the busiest user, whose first connection is the busiest.
            (0..model.p.users as usize)
                .find_map(|rank| {
                    let u = model.user_of_rank(rank);
                    let p = model.profile(u);
                    (model.connections_of(u) > 0 && !p.disabled)
                        .then(|| model.connection(u, 0, &p))
                        .filter(|c| model.decide(c.app, u, &p, c.tenant, &["read"]).allowed)
                        .map(|c| Sample {
                            user: u,
                            app: c.app,
                            tenant: c.tenant,
                            write: false,
                        })
                })
                .unwrap_or_else(|| draw(&model, &mut r).0)
        };
        let draw_n = |n: usize, rng: &mut Rng| {
            let mut refused = 0u64;
            let v: Vec<Sample> = (0..n)
                .map(|_| {
                    let (s, r) = draw(&model, rng);
                    refused += u64::from(r);
                    s
                })
                .collect();
            (v, refused)
        };
        let (measured, refused) = if zipf {
            draw_n(samples, &mut rng)
        } else {
            (vec![], 0)
        };
        let (warmup, _) = if zipf {
            draw_n(samples, &mut Rng::stream(model.p.seed, kind::SAMPLE, 2))
        } else {
            (vec![], 0)
        };

        // Every distinct request of a slice of the warm-up answers 200.
        let check: Vec<&Sample> = std::iter::once(&hottest)
            .chain(warmup.iter().collect::<HashSet<_>>().into_iter().take(300))
            .collect();
        let mut failures = 0;
        for s in &check {
            let resp = http
                .post(format!("{base}{}", s.path()))
                .bearer_auth(tokens.of(s.user))
                .header("content-type", "application/json")
                .body(s.body())
                .send()
                .await
                .unwrap();
            if !resp.status().is_success() {
                failures += 1;
                if failures <= 5 {
                    eprintln!(
                        "{s:?} -> {}: {}",
                        resp.status(),
                        resp.text().await.unwrap_or_default()
                    );
                }
            }
        }
        assert_eq!(
            failures,
            0,
            "{failures} of {} checked requests were refused",
            check.len()
        );
        eprintln!("checked {} distinct requests: all 200", check.len());

        let warm_data = dir.path().join("warm.tsv");
        write_requests(&warm_data, std::slice::from_ref(&hottest), &mut tokens);
        let warm_script = script(dir.path(), "warm.lua", &warm_data);
        let url = base.clone();
        let warm = |script: String| {
            let url = url.clone();
            tokio::task::spawn_blocking(move || wrk(&url, Some(&script), 2))
        };
        warm(warm_script.clone()).await.unwrap();
        let single = measure(&http, &base, warm_script, seconds).await;

        let mut zipf_run = None;
        if zipf {
            let signing = std::time::Instant::now();
            let measured_data = dir.path().join("zipf.tsv");
            let warmup_data = dir.path().join("zipf-warmup.tsv");
            write_requests(&warmup_data, &warmup, &mut tokens);
            write_requests(&measured_data, &measured, &mut tokens);
            eprintln!(
                "signed {} users' tokens in {:.1} s",
                tokens.by_user.len(),
                signing.elapsed().as_secs_f64()
            );
            let warmup_script = script(dir.path(), "zipf-warmup.lua", &warmup_data);
            let measured_script = script(dir.path(), "zipf.lua", &measured_data);
            warm(warmup_script).await.unwrap();
            let run = measure(&http, &base, measured_script, seconds).await;
            // How many of the measured draw's requests met a cold (user, app) on the draw's first
            // pass, unless the warm-up drew it too.
            let seen: HashSet<(u32, u32, Option<u32>)> =
                warmup.iter().map(|s| (s.user, s.app, s.tenant)).collect();
            let mut first = HashSet::new();
            let cold = measured
                .iter()
                .filter(|s| {
                    let k = (s.user, s.app, s.tenant);
                    first.insert(k) && !seen.contains(&k)
                })
                .count();
            let rotating = if rotate {
                let again = script(dir.path(), "zipf-rotating.lua", &measured_data);
                Some(rotate_under(&http, &base, &admin, again, seconds).await)
            } else {
                None
            };
            zipf_run = Some((run, stats(&measured, refused), cold, rotating));
            if !others.is_empty() {
                let bases: Vec<String> = std::iter::once(base.clone())
                    .chain(others.iter().map(|o| o.base.clone()))
                    .collect();
                let token = tokens.of(hottest.user);
                let loaded = script(dir.path(), "zipf-nodes.lua", &measured_data);
                staleness(&http, &bases, &admin, &hottest, &token, &loaded, seconds).await;
            }
        }
        drop(others);
        drop(server);

        let title = format!(
            "token endpoint on {} ({} users, {} apps, {} connections; {} connections, {seconds} s)",
            manifest["backend"].as_str().unwrap_or("?"),
            model.p.users,
            model.p.apps,
            model.p.connections,
            portcullis_bench_runtime::connections()
        );
        let mut rows: Vec<(&str, &Run)> = vec![("warm: one user, one app", &single.0)];
        if let Some((run, _, _, rotating)) = &zipf_run {
            rows.push(("Zipf: users s=1.1, their apps", &run.0));
            if let Some((run, _)) = rotating {
                rows.push(("Zipf, during a data-key rotation", &run.0));
            }
        }
        print_table(&title, &rows);
        println!();
        for (name, (run, written, wait)) in std::iter::once(("warm", &single))
            .chain(zipf_run.as_ref().map(|(r, _, _, _)| ("Zipf", r)))
            .chain(
                zipf_run
                    .as_ref()
                    .and_then(|(_, _, _, r)| r.as_ref())
                    .map(|(r, _)| ("Zipf during the rotation", r)),
            )
        {
            println!(
                "{name}: {:.0} requests/s; the audit log took {:.0} decisions/s during the run, and {wait:.1} s more to write the rest",
                run.requests_per_sec,
                *written as f64 / seconds as f64,
            );
        }
        if let Some((_, _, _, Some((_, rotation)))) = &zipf_run {
            println!("the rotation when that run ended: {rotation}");
        }
        if let Some(((run, _, _), st, cold, _)) = &zipf_run {
            let total = run.requests_per_sec * seconds as f64;
            println!(
                "\nZipf draw: {samples} requests over {} users and {} (user, app, tenant) pairs; {} in a tenant, {} asking for write; {} draws refused by the policies or a disabled user were redrawn. About {total:.0} requests were made ({:.1} passes over the draw); {cold} of the draw's requests ({:.1}%) met a pair the warm-up had not drawn, on the first pass.",
                st.users,
                st.pairs,
                st.tenant,
                st.write,
                st.refused,
                total / samples as f64,
                100.0 * *cold as f64 / samples as f64
            );
        }
    }
}

/// Serves `key`'s public JWK set at `/jwks.json` on a loopback port, as an IdP would; its URL.
async fn serve_jwks(key: &SigningKey) -> String {
    let jwks = json!({ "keys": [key.public_jwk()] });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route(
        "/jwks.json",
        get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}
