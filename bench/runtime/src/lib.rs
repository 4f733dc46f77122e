//! Benchmarks of the running system; see `benches/` and `load.sh`.

#![allow(clippy::expect_used, reason = "a benchmark driver")]

use std::collections::HashMap;
use std::process::Command;

/// What one `wrk` run measured.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// Requests per second.
    pub requests_per_sec: f64,
    /// Latency percentiles, as wrk prints them.
    pub p50: String,
    /// 90th percentile.
    pub p90: String,
    /// 99th percentile.
    pub p99: String,
    /// Answers that were not 2xx.
    pub non_2xx: u64,
}

/// Runs `wrk` with one thread and 16 connections for `seconds` against `url` (with a Lua
/// `script`, if any).
pub fn wrk(url: &str, script: Option<&str>, seconds: u64) -> Run {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t",
        "1",
        "-c",
        "16",
        "-d",
        &format!("{seconds}s"),
        "--latency",
    ]);
    if let Some(s) = script {
        cmd.args(["-s", s]);
    }
    let out = cmd
        .arg(url)
        .output()
        .expect("wrk runs (apt-get install wrk)");
    // What the script reports (a refused request's answer) goes on.
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let find = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .map(|l| l.split_whitespace().last().unwrap_or("").to_owned())
            .unwrap_or_default()
    };
    let non_2xx = text
        .lines()
        .find(|l| l.contains("Non-2xx"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Run {
        requests_per_sec: find("Requests/sec:").parse().unwrap_or(0.0),
        p50: find("50%"),
        p90: find("90%"),
        p99: find("99%"),
        non_2xx,
    }
}

/// A release `portcullis serve` started for a benchmark: rate limits out of reach, logs at warn.
pub struct Server {
    /// Its base URL.
    pub base: String,
    /// Its bootstrap admin key.
    pub admin: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts `bin` on SQLite in a temporary directory, with `env` added (a database URL...).
    pub fn start(bin: &str, env: &[(&str, &str)]) -> Self {
        use std::io::{BufRead, BufReader};
        let dir = tempfile::tempdir().expect("a temporary directory");
        let admin = format!("bench-admin-{}", portcullis_crypto::random_token(24));
        let master = portcullis_crypto::envelope::MasterKey::generate("bench")
            .expect("a master key")
            .encode()
            .expose()
            .to_owned();
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .env("PORTCULLIS_DATA_DIR", dir.path())
            .env("PORTCULLIS_LISTEN", "127.0.0.1:0")
            .env("PORTCULLIS_BOOTSTRAP_ADMIN_KEY", &admin)
            .env("PORTCULLIS_MASTER_KEY", &master)
            .env("PORTCULLIS_LOG_FORMAT", "json")
            // The limiters run on every request, at rates this load never reaches.
            .env("PORTCULLIS_RATE_LIMIT_PER_ADDRESS", "10000000")
            .env("PORTCULLIS_RATE_LIMIT_PER_SUBJECT", "10000000")
            .env("PORTCULLIS_LOG_LEVEL", "warn,portcullis_cli=info")
            .stderr(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the server starts");
        let stderr = child.stderr.take().expect("its log");
        let mut lines = BufReader::new(stderr).lines();
        let addr = loop {
            let line = lines.next().expect("the server logs").expect("a log line");
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["fields"]["message"] == "Portcullis is listening"
            {
                break v["fields"]["addr"].as_str().unwrap_or_default().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Self {
            base: format!("http://{addr}"),
            admin,
            child,
            _dir: dir,
        }
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Prints runs as a Markdown table.
pub fn print_table(title: &str, runs: &[(&str, &Run)]) {
    println!("| {title} | requests/s | p50 | p90 | p99 | non-2xx |");
    println!("|---|---|---|---|---|---|");
    for (name, r) in runs {
        println!(
            "| {name} | {:.0} | {} | {} | {} | {} |",
            r.requests_per_sec, r.p50, r.p90, r.p99, r.non_2xx
        );
    }
}

/// A user's code flow through Portcullis's real pages.
#[derive(Debug, Clone, Copy)]
pub struct CodeFlow<'a> {
    /// The public client.
    pub client_id: &'a str,
    /// Its redirect URI.
    pub redirect_uri: &'a str,
    /// The resource the token is for.
    pub resource: &'a str,
    /// The scopes asked for (the resource's, when `None`).
    pub scope: Option<&'a str>,
    /// The user's login.
    pub login: &'a str,
    /// The user's password.
    pub password: &'a str,
}

/// Runs a code flow with PKCE through the sign-in and consent pages (signing in when asked,
/// consenting with "remember"), keeping the browser's `cookies`: the token endpoint's answer.
pub async fn code_flow(
    http: &reqwest::Client,
    base: &str,
    flow: &CodeFlow<'_>,
    cookies: &mut HashMap<String, String>,
) -> serde_json::Value {
    let verifier = portcullis_crypto::pkce::new_verifier();
    let challenge = portcullis_crypto::pkce::challenge_s256(verifier.expose());
    let mut url = format!(
        "{base}/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256&resource={}",
        urlencode(flow.client_id),
        urlencode(flow.redirect_uri),
        urlencode(flow.resource)
    );
    if let Some(scope) = flow.scope {
        url.push_str(&format!("&scope={}", urlencode(scope)));
    }
    let mut resp = browse(http.get(&url), cookies).await;
    let mut steps = 0;
    while resp.0 == 200 {
        steps += 1;
        assert!(steps < 4, "the pages do not end: {}", resp.2);
        let page = &resp.2;
        let action = if page.contains("Sign in") {
            "sign_in"
        } else {
            "allow"
        };
        let form = [
            ("request", field(page, "request")),
            ("csrf", field(page, "csrf")),
            ("action", action.to_owned()),
            ("login", flow.login.to_owned()),
            ("password", flow.password.to_owned()),
            ("remember", "1".to_owned()),
        ];
        resp = browse(
            http.post(format!("{base}/oauth2/authorize")).form(&form),
            cookies,
        )
        .await;
    }
    let location = resp.1.expect("a redirect with the code");
    let code = location
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("code="))
        .expect("a code")
        .to_owned();
    http.post(format!("{base}/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", flow.client_id),
            ("code", &code),
            ("redirect_uri", flow.redirect_uri),
            ("code_verifier", verifier.expose()),
        ])
        .send()
        .await
        .expect("the token endpoint answers")
        .json()
        .await
        .expect("a JSON answer")
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A hidden field's value on a page.
pub fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect("the field") + marker.len();
    let end = start + html[start..].find('"').expect("the field's end");
    html[start..end].replace("&amp;", "&")
}

/// Sends `req` as a browser holding `cookies` (keeping those set): the status, the
/// `Location`, the body.
pub async fn browse(
    req: reqwest::RequestBuilder,
    cookies: &mut HashMap<String, String>,
) -> (u16, Option<String>, String) {
    let jar: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let resp = req
        .header("cookie", jar.join("; "))
        .send()
        .await
        .expect("the server answers");
    for set in resp.headers().get_all("set-cookie") {
        if let Some((k, v)) = set
            .to_str()
            .ok()
            .and_then(|s| s.split(';').next())
            .and_then(|p| p.split_once('='))
        {
            cookies.insert(k.to_owned(), v.to_owned());
        }
    }
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, location, resp.text().await.unwrap_or_default())
}
