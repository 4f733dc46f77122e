//! Load on Portcullis's own authorization server: `wrk` at 16 connections against the token
//! endpoint's `client_credentials` grant (an ES256 access token each time), the `refresh_token`
//! grant (a pool of refresh tokens: each request spends one, each answer's rotated token goes
//! back), and `/oauth2/introspect` (a confidential client asking about an access token).
//! Prints requests/s and latency percentiles.
//!
//! Then, in the same run, panva's `oidc-provider` (OpenID Certified; `bench/oidc-provider`,
//! on the Node 22 it installs) answers the same `client_credentials` requests with the same kind of token, an
//! ES256 JWT access token (RFC 9068, through its resource indicators), in one process and in a
//! `node:cluster` of two workers; a second table puts it beside Portcullis, with the ratio of
//! their requests/s. Without `node` or `bench/oidc-provider/node_modules` a line says so, and
//! how to install it, instead.
//!
//! `bench/oauth-load.sh [--seconds N] [--database-url postgres://...]` builds and runs this.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark driver"
)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use portcullis_bench_runtime::{CodeFlow, Run, Server, code_flow, print_table, urlencode, wrk};
use serde_json::{Value, json};

const RESOURCE: &str = "https://mcp.bench.example/mcp";
const REDIRECT: &str = "http://127.0.0.1/cb";

/// One code flow through the real pages (signing in once; the consent remembered): a refresh
/// token for the public client.
async fn refresh_token(
    http: &reqwest::Client,
    base: &str,
    cookies: &mut HashMap<String, String>,
) -> String {
    let t = code_flow(
        http,
        base,
        &CodeFlow {
            client_id: "app",
            redirect_uri: REDIRECT,
            resource: RESOURCE,
            scope: None,
            login: "alice",
            password: "bench password",
        },
        cookies,
    )
    .await;
    t["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(10);
    let database = arg("--database-url");
    let bin =
        std::env::var("PORTCULLIS_BIN").unwrap_or_else(|_| "target/release/portcullis".into());
    let mut env = vec![];
    if let Some(url) = &database {
        env.push(("PORTCULLIS_DATABASE_URL", url.as_str()));
    }
    let server = Server::start(&bin, &env);
    let (base, admin) = (server.base.clone(), server.admin.clone());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let admin_call = |method: reqwest::Method, path: &str, body: Value| {
        let req = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(&admin)
            .json(&body);
        async move {
            let resp = req.send().await.unwrap();
            assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
            resp.json::<Value>().await.unwrap_or(Value::Null)
        }
    };
    let post = reqwest::Method::POST;
    admin_call(
        post.clone(),
        "/v1/mgmt/resources",
        json!({"id": "mcp", "uri": RESOURCE, "name": "MCP",
        "scopes": [{"name": "tools.read"}, {"name": "tools.write"}]}),
    )
    .await;
    admin_call(post.clone(), "/v1/mgmt/users", json!({"id": "alice"})).await;
    admin_call(
        reqwest::Method::PUT,
        "/v1/mgmt/users/alice/password",
        json!({"password": "bench password"}),
    )
    .await;
    admin_call(
        post.clone(),
        "/v1/mgmt/clients",
        json!({"id": "app", "name": "App",
        "redirectUris": [REDIRECT], "tokenEndpointAuthMethod": "none"}),
    )
    .await;
    let gateway = admin_call(
        post.clone(),
        "/v1/mgmt/clients",
        json!({"id": "gateway", "name": "Gateway",
        "grantTypes": ["client_credentials"]}),
    )
    .await;
    let secret = gateway["clientSecret"].as_str().unwrap().to_owned();

    // A pool of refresh tokens four times deeper than the connections: a request may be made
    // before the answer that refills the pool is read.
    let mut cookies = HashMap::new();
    let mut tokens = Vec::new();
    for _ in 0..64 {
        tokens.push(refresh_token(&http, &base, &mut cookies).await);
    }
    // An access token to introspect.
    let cc: Value = http
        .post(format!("{base}/oauth2/token"))
        .basic_auth("gateway", Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("resource", RESOURCE)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = cc["access_token"]
        .as_str()
        .expect("client credentials work")
        .to_owned();
    assert_eq!(jwt_alg(&access).as_deref(), Some("ES256"), "{access}");

    let dir = tempfile::tempdir().unwrap();
    let basic = base64_basic("gateway", &secret);
    let write = |name: &str, lua: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, lua).unwrap();
        p.display().to_string()
    };
    let cc_script = write(
        "cc.lua",
        format!(
            "wrk.method = \"POST\"\nwrk.body = \"grant_type=client_credentials&resource={}\"\nwrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\nwrk.headers[\"Authorization\"] = \"{basic}\"\n",
            urlencode(RESOURCE)
        ),
    );
    let introspect_script = write(
        "introspect.lua",
        format!(
            "wrk.method = \"POST\"\nwrk.body = \"token={access}\"\nwrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\nwrk.headers[\"Authorization\"] = \"{basic}\"\n"
        ),
    );
    // Each answer's refresh token goes back to the pool the next requests take from.
    let pool: Vec<String> = tokens.iter().map(|t| format!("\"{t}\"")).collect();
    let refresh_script = write(
        "refresh.lua",
        format!(
            r#"local pool = {{{}}}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
request = function()
  local t = table.remove(pool, 1)
  if t == nil then t = "pcr_exhausted" end
  return wrk.format(nil, nil, nil, "grant_type=refresh_token&client_id=app&refresh_token=" .. t)
end
local reported = false
response = function(status, headers, body)
  local t = string.match(body, '"refresh_token":"([^"]+)"')
  if t then
    table.insert(pool, t)
  elseif not reported then
    reported = true
    io.stderr:write("first refused refresh: " .. status .. " " .. body .. "\n")
  end
end
"#,
            pool.join(", ")
        ),
    );

    let url = format!("{base}/oauth2/token");
    let run = |url: String, script: String, secs: u64| {
        tokio::task::spawn_blocking(move || wrk(&url, Some(&script), secs))
    };
    run(url.clone(), cc_script.clone(), 2).await.unwrap();
    let client_credentials = run(url.clone(), cc_script.clone(), seconds).await.unwrap();
    let refresh = run(url.clone(), refresh_script, seconds).await.unwrap();
    let introspection = run(
        format!("{base}/oauth2/introspect"),
        introspect_script,
        seconds,
    )
    .await
    .unwrap();
    drop(server);
    let others = oidc_provider(&http, &secret, &cc_script, seconds).await;
    let store = if database.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    print_table(
        &format!("grant on {store} (16 connections, {seconds} s, wrk on the same 2 cores)"),
        &[
            (
                "client_credentials (ES256 access token)",
                &client_credentials,
            ),
            ("refresh_token (rotated)", &refresh),
            ("introspection (access token)", &introspection),
        ],
    );
    if others.is_empty() {
        return;
    }
    println!();
    let portcullis = format!("Portcullis ({store})");
    let mut rows = vec![(portcullis.as_str(), &client_credentials)];
    rows.extend(others.iter().map(|(name, run)| (name.as_str(), run)));
    print_table(
        &format!(
            "client_credentials, ES256 JWT access token (16 connections, {seconds} s, wrk on the same 2 cores)"
        ),
        &rows,
    );
    println!();
    for (name, run) in &others {
        println!(
            "{portcullis} / {name}: {:.2}x the requests/s",
            client_credentials.requests_per_sec / run.requests_per_sec.max(1.0)
        );
    }
}

/// Where `bench/oauth-load.sh` installs `oidc-provider` (the driver runs at the repository's
/// root).
const OIDC_PROVIDER: &str = "bench/oidc-provider";

/// The `client_credentials` load of `script` on `oidc-provider`, in one Node process and in a
/// `node:cluster` of two workers, its client `gateway` holding `secret`: a row for each. None,
/// with a line saying why, without Node or the package, or when it does not answer with an
/// ES256 JWT.
async fn oidc_provider(
    http: &reqwest::Client,
    secret: &str,
    script: &str,
    seconds: u64,
) -> Vec<(String, Run)> {
    let Ok(node) = Command::new(node_binary()).arg("--version").output() else {
        println!("oidc-provider skipped: `node` is not on the PATH");
        return vec![];
    };
    let node = String::from_utf8_lossy(&node.stdout).trim().to_owned();
    let Ok(package) = std::fs::read_to_string(format!(
        "{OIDC_PROVIDER}/node_modules/oidc-provider/package.json"
    )) else {
        println!(
            "oidc-provider skipped: not installed (npm ci --prefix {OIDC_PROVIDER} --no-audit --no-fund)"
        );
        return vec![];
    };
    let version = serde_json::from_str::<Value>(&package).unwrap()["version"]
        .as_str()
        .unwrap_or("?")
        .to_owned();
    let mut rows = vec![];
    for workers in [1, 2] {
        let name = match workers {
            1 => format!("oidc-provider {version} (Node {node}, 1 process)"),
            n => format!("oidc-provider {version} (Node {node}, cluster of {n} workers)"),
        };
        let Some(server) = OidcProvider::start(workers, secret) else {
            println!("{name} skipped: server.mjs did not start");
            continue;
        };
        let url = format!("{}/token", server.base);
        if let Err(why) = es256_access_token(http, &url, secret).await {
            println!("{name} skipped: {why}");
            continue;
        }
        let run = |secs: u64| {
            let (url, script) = (url.clone(), script.to_owned());
            tokio::task::spawn_blocking(move || wrk(&url, Some(&script), secs))
        };
        run(2).await.unwrap();
        rows.push((name, run(seconds).await.unwrap()));
    }
    rows
}

/// The Node the comparison runs on: the one `bench/oidc-provider` installs (the `node` package,
/// Node 22, what oidc-provider supports), else the one on the PATH.
fn node_binary() -> String {
    let pinned = format!("{OIDC_PROVIDER}/node_modules/.bin/node");
    if std::path::Path::new(&pinned).exists() {
        pinned
    } else {
        "node".to_owned()
    }
}

/// `node bench/oidc-provider/server.mjs` on a free port, `workers` processes; killed when
/// dropped.
struct OidcProvider {
    base: String,
    child: Child,
}

impl OidcProvider {
    /// Waits for its ready line; `None` if it ends first.
    fn start(workers: u32, secret: &str) -> Option<Self> {
        let mut child = Command::new(node_binary())
            .arg(format!("{OIDC_PROVIDER}/server.mjs"))
            .args(["0", &workers.to_string()])
            .env("CLIENT_SECRET", secret)
            .env("RESOURCE", RESOURCE)
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        let stdout = child.stdout.take().unwrap();
        let mut server = Self {
            base: String::new(),
            child,
        };
        let mut lines = BufReader::new(stdout).lines();
        server.base = lines.by_ref().map_while(Result::ok).find_map(|line| {
            let rest = line.strip_prefix("oidc-provider listening on ")?;
            rest.split_whitespace().next().map(str::to_owned)
        })?;
        std::thread::spawn(move || for _ in lines {});
        Some(server)
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        // Its cluster workers leave when their primary does.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `client_credentials` grant at `url`, as the load asks for it: `Err` unless the answer
/// is an access token that is a JWT signed with ES256.
async fn es256_access_token(http: &reqwest::Client, url: &str, secret: &str) -> Result<(), String> {
    let answer: Value = http
        .post(url)
        .basic_auth("gateway", Some(secret))
        .form(&[("grant_type", "client_credentials"), ("resource", RESOURCE)])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    match answer["access_token"].as_str().and_then(jwt_alg) {
        Some(alg) if alg == "ES256" => Ok(()),
        _ => Err(format!("not an ES256 JWT access token: {answer}")),
    }
}

/// The `alg` of a JWS in compact form.
fn jwt_alg(token: &str) -> Option<String> {
    use base64::Engine;
    let [header, _, _] = token.split('.').collect::<Vec<_>>()[..] else {
        return None;
    };
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let header: Value = serde_json::from_slice(&header).ok()?;
    header["alg"].as_str().map(str::to_owned)
}

fn base64_basic(id: &str, secret: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}
