//! Benchmarks of the running system; see `benches/` and `load.sh`.

#![allow(clippy::expect_used, reason = "a benchmark driver")]

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
