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

/// How many connections `wrk` keeps open: 16, or `PORTCULLIS_BENCH_CONNECTIONS` (1 measures a
/// request's latency with nothing queued before it).
pub fn connections() -> u32 {
    std::env::var("PORTCULLIS_BENCH_CONNECTIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(16)
}

/// Runs `wrk` with one thread and [`connections`] connections for `seconds` against `url` (with
/// a Lua `script`, if any).
pub fn wrk(url: &str, script: Option<&str>, seconds: u64) -> Run {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t",
        "1",
        "-c",
        &connections().to_string(),
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

/// The scale data set of `scale-data` (users, tenants, apps with their policies, connections,
/// recorded decisions), as pure functions of a seed and the counts: the generator writes it, and
/// `http-load --zipf` draws its requests from it without reading the database.
pub mod scale {
    use serde_json::{Map, Value, json};

    /// The `iss` of the data set's users' tokens (their identities' issuer).
    pub const ISSUER: &str = "https://idp.scale.bench.example";
    /// The audience those tokens are for.
    pub const AUDIENCE: &str = "https://mcp.scale.bench.example/mcp";
    /// The MCP client the tokens were issued to (`azp`).
    pub const CLIENT: &str = "mcp-client";
    /// The default seed.
    pub const DEFAULT_SEED: u64 = 0x5CA1_E0DA_7A5E_7001;
    /// The roles of the directory.
    pub const ROLES: [&str; 8] = [
        "viewer",
        "editor",
        "admin",
        "developer",
        "billing",
        "auditor",
        "contractor",
        "support-agent",
    ];
    /// The scopes every app offers.
    pub const APP_SCOPES: [&str; 3] = ["read", "write", "admin"];
    /// Policies per app.
    pub const POLICIES_PER_APP: usize = 10;
    /// The Zipf exponent of user activity (requests and recorded decisions).
    pub const ACTIVITY_S: f64 = 1.1;
    const DEPARTMENTS: [(&str, f64); 6] = [
        ("eng", 0.35),
        ("ops", 0.10),
        ("sales", 0.20),
        ("support", 0.15),
        ("finance", 0.10),
        ("hr", 0.10),
    ];
    const PROVIDERS: [&str; 12] = [
        "Google Calendar",
        "Slack",
        "GitHub",
        "Jira",
        "Salesforce",
        "Notion",
        "Zendesk",
        "HubSpot",
        "Dropbox",
        "Linear",
        "Asana",
        "Figma",
    ];

    /// Kinds of entity, each with its own random stream.
    pub mod kind {
        /// A user.
        pub const USER: u64 = 1;
        /// A tenant.
        pub const TENANT: u64 = 2;
        /// A user's connection.
        pub const CONNECTION: u64 = 3;
        /// A tenant-wide connection.
        pub const TENANT_CONNECTION: u64 = 4;
        /// A recorded decision.
        pub const AUDIT: u64 = 5;
        /// The permutation of users by activity.
        pub const ACTIVITY: u64 = 6;
        /// A load sample.
        pub const SAMPLE: u64 = 7;
        /// A user's token.
        pub const TOKEN: u64 = 8;
    }

    /// SplitMix64's output function.
    pub const fn mix64(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// SplitMix64: a tiny, fast, reproducible generator (not for secrets).
    #[derive(Debug, Clone)]
    pub struct Rng(u64);

    impl Rng {
        /// A generator from a seed.
        pub const fn new(seed: u64) -> Self {
            Self(seed)
        }

        /// The generator of the `n`-th entity of `kind`: independent of every other, so that
        /// anything can be regenerated alone and in any order.
        pub fn stream(seed: u64, kind: u64, n: u64) -> Self {
            Self(mix64(seed ^ mix64(kind.wrapping_add(mix64(n)))))
        }

        /// The next 64 bits.
        pub fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            mix64(self.0)
        }

        /// Uniform in `0..n` (`n` > 0).
        pub fn below(&mut self, n: u64) -> u64 {
            ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
        }

        /// Uniform in `[0, 1)`.
        pub fn unit(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }

        /// True with probability `p`.
        pub fn chance(&mut self, p: f64) -> bool {
            self.unit() < p
        }

        /// `n` characters of base64url.
        pub fn token_chars(&mut self, n: usize) -> String {
            const A: &[u8; 64] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            (0..n)
                .map(|_| char::from(A[(self.next_u64() & 63) as usize]))
                .collect()
        }
    }

    /// A Zipf distribution over ranks `0..n`: rank `k` drawn with weight `1/(k+1)^s`.
    #[derive(Debug, Clone)]
    pub struct Zipf {
        cdf: Vec<f64>,
    }

    impl Zipf {
        /// The distribution over `n` (> 0) ranks with exponent `s`.
        pub fn new(n: usize, s: f64) -> Self {
            let mut acc = 0.0;
            let mut cdf: Vec<f64> = (1..=n.max(1))
                .map(|k| {
                    acc += (k as f64).powf(-s);
                    acc
                })
                .collect();
            for c in &mut cdf {
                *c /= acc;
            }
            Self { cdf }
        }

        /// A rank.
        pub fn sample(&self, rng: &mut Rng) -> usize {
            let u = rng.unit();
            self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
        }

        /// The probability of rank 0.
        pub fn top(&self) -> f64 {
            self.cdf[0]
        }
    }

    /// The counts of a data set, and its seed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Params {
        /// The seed.
        pub seed: u64,
        /// Users.
        pub users: u32,
        /// Outbound apps.
        pub apps: u32,
        /// Tenants.
        pub tenants: u32,
        /// Connections, user and tenant-wide.
        pub connections: u64,
    }

    /// A user, as the data set draws them.
    #[derive(Debug, Clone)]
    pub struct Profile {
        /// Roles held everywhere.
        pub roles: Vec<&'static str>,
        /// `department` claim.
        pub department: &'static str,
        /// `employment` claim: `employee` or `contractor`.
        pub employment: &'static str,
        /// `org.tier` claim.
        pub tier: &'static str,
        /// Whether `amr` holds `mfa`.
        pub mfa: bool,
        /// The tenant the user belongs to, with the roles held in it.
        pub tenant: Option<(u32, Vec<&'static str>)>,
        /// Disabled users get no token.
        pub disabled: bool,
        /// The app of the user's first connection (the others follow it by a stride).
        pub first_app: u32,
    }

    /// One connection: its app, and the tenant it is within (user connections) or of.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Conn {
        /// The app's index.
        pub app: u32,
        /// The tenant's index.
        pub tenant: Option<u32>,
    }

    /// What the policies of one app decide for one request.
    #[derive(Debug, Clone)]
    pub struct Decided {
        /// Each policy's verdict, in order.
        pub matched: [bool; POLICIES_PER_APP],
        /// Whether the request is allowed.
        pub allowed: bool,
        /// The denial's reason.
        pub reason: Option<&'static str>,
        /// The scopes the matching enforcing policies allow (`None`: all).
        pub allowed_scopes: Option<Vec<&'static str>>,
        /// What the decision would be with the shadow policies enforcing.
        pub shadow_allowed: bool,
    }

    /// A user id.
    pub fn user_id(u: u32) -> String {
        format!("u{u:07}")
    }
    /// A user's subject at [`ISSUER`].
    pub fn subject(u: u32) -> String {
        format!("sub-{u:07}")
    }
    /// A tenant id.
    pub fn tenant_id(t: u32) -> String {
        format!("t{t:05}")
    }
    /// An app id.
    pub fn app_id(a: u32) -> String {
        format!("app-{a:04}")
    }
    /// Whether a policy is a shadow one.
    pub const fn is_shadow(i: usize) -> bool {
        i == 5 || i == 9
    }

    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 { a } else { gcd(b, a % b) }
    }

    /// The data set: its parameters and what is precomputed to draw from it.
    #[derive(Debug, Clone)]
    pub struct Model {
        /// The parameters.
        pub p: Params,
        app_popularity: Zipf,
        tenant_size: Zipf,
        /// Users by activity rank.
        pub activity: Zipf,
        slot_zipf: Vec<Zipf>,
        stride: u32,
        user_perm: (u64, u64),
    }

    impl Model {
        /// The model of `p`; `Err` when the counts cannot make a data set.
        pub fn new(p: Params) -> Result<Self, String> {
            if p.users == 0 || p.apps == 0 {
                return Err("--users and --apps must be at least 1".into());
            }
            if p.users > 9_999_999 || p.apps > 9_999 || p.tenants > 99_999 {
                return Err("at most 9,999,999 users, 9,999 apps and 99,999 tenants".into());
            }
            let stride = (7919u32..)
                .find(|s| gcd(u64::from(*s), u64::from(p.apps)) == 1)
                .unwrap_or(1);
            let mut m = Self {
                p,
                app_popularity: Zipf::new(p.apps as usize, 1.0),
                tenant_size: Zipf::new(p.tenants.max(1) as usize, 1.0),
                activity: Zipf::new(p.users as usize, ACTIVITY_S),
                slot_zipf: Vec::new(),
                stride,
                user_perm: (1, 0),
            };
            let max = m.connections_of(0);
            if u64::from(max) > u64::from(p.apps) {
                return Err(format!(
                    "{} user connections over {} users is {max} per user, more than the {} apps",
                    m.user_connections(),
                    p.users,
                    p.apps
                ));
            }
            m.slot_zipf = (0..=max as usize)
                .map(|n| Zipf::new(n.max(1), ACTIVITY_S))
                .collect();
            // Activity rank -> user: an affine permutation, so that the busiest users are spread.
            let mut rng = Rng::stream(p.seed, kind::ACTIVITY, 0);
            let n = u64::from(p.users);
            let mul = loop {
                let c = 1 + rng.below(n);
                if gcd(c, n) == 1 {
                    break c;
                }
            };
            m.user_perm = (mul, rng.below(n));
            Ok(m)
        }

        /// Tenant-wide connections (2% of the connections, at most one per tenant).
        pub fn tenant_connections(&self) -> u64 {
            (self.p.connections / 50).min(u64::from(self.p.tenants))
        }

        /// User connections.
        pub fn user_connections(&self) -> u64 {
            self.p.connections - self.tenant_connections()
        }

        /// How many connections user `u` has.
        pub fn connections_of(&self, u: u32) -> u32 {
            let c = self.user_connections();
            let n = u64::from(self.p.users);
            (c / n + u64::from(u64::from(u) < c % n)) as u32
        }

        /// The user of activity rank `r`.
        pub fn user_of_rank(&self, r: usize) -> u32 {
            let n = u64::from(self.p.users);
            ((r as u64 * self.user_perm.0 + self.user_perm.1) % n) as u32
        }

        /// User `u`.
        pub fn profile(&self, u: u32) -> Profile {
            let mut rng = Rng::stream(self.p.seed, kind::USER, u64::from(u));
            let mut x = rng.unit();
            let department = DEPARTMENTS
                .iter()
                .find(|(_, w)| {
                    x -= w;
                    x < 0.0
                })
                .map_or("eng", |(d, _)| d);
            let contractor = rng.chance(0.10);
            let mut roles: Vec<&'static str> = match rng.unit() {
                r if r < 0.35 => vec![],
                r if r < 0.75 => vec!["viewer"],
                r if r < 0.93 => vec!["editor"],
                _ => vec!["admin"],
            };
            if department == "eng" && rng.chance(0.6) {
                roles.push("developer");
            }
            if matches!(department, "finance" | "sales") && rng.chance(0.3) {
                roles.push("billing");
            }
            if rng.chance(0.02) {
                roles.push("auditor");
            }
            if department == "support" && rng.chance(0.5) {
                roles.push("support-agent");
            }
            if contractor {
                roles.retain(|r| *r != "admin");
                roles.push("contractor");
            }
            let tenant = (self.p.tenants > 0 && rng.chance(0.3)).then(|| {
                let t = self.tenant_size.sample(&mut rng) as u32;
                let r = if rng.chance(0.5) { "editor" } else { "viewer" };
                (t, vec![r])
            });
            let tier = match &tenant {
                Some((t, _)) => tenant_plan(self.p.seed, *t),
                None => match rng.unit() {
                    r if r < 0.5 => "free",
                    r if r < 0.85 => "pro",
                    _ => "enterprise",
                },
            };
            Profile {
                roles,
                department,
                employment: if contractor { "contractor" } else { "employee" },
                tier,
                mfa: rng.chance(0.6),
                tenant,
                disabled: rng.chance(0.005),
                first_app: self.app_popularity.sample(&mut rng) as u32,
            }
        }

        /// User `u`'s `k`-th connection.
        pub fn connection(&self, u: u32, k: u32, profile: &Profile) -> Conn {
            let app = ((u64::from(profile.first_app) + u64::from(k) * u64::from(self.stride))
                % u64::from(self.p.apps)) as u32;
            let mut rng = Rng::stream(
                self.p.seed,
                kind::CONNECTION,
                (u64::from(u) << 16) | u64::from(k),
            );
            let tenant = profile
                .tenant
                .as_ref()
                .filter(|_| rng.chance(0.25))
                .map(|(t, _)| *t);
            Conn { app, tenant }
        }

        /// The `i`-th tenant-wide connection: tenant `i`'s, for one app.
        pub fn tenant_connection(&self, i: u64) -> Conn {
            let mut rng = Rng::stream(self.p.seed, kind::TENANT_CONNECTION, i);
            Conn {
                app: self.app_popularity.sample(&mut rng) as u32,
                tenant: Some(i as u32),
            }
        }

        /// A slot among `n` connections, the first ones busiest.
        pub fn slot(&self, n: u32, rng: &mut Rng) -> u32 {
            self.slot_zipf[(n as usize).min(self.slot_zipf.len() - 1)].sample(rng) as u32
        }

        /// The `groups` claim: everyone's, the department's, and the groups of the apps of the
        /// user's first two connections.
        pub fn groups(&self, u: u32, profile: &Profile) -> Vec<String> {
            let mut g = vec![
                "all-staff".to_owned(),
                format!("dept-{}", profile.department),
            ];
            for k in 0..self.connections_of(u).min(2) {
                g.push(format!(
                    "{}-users",
                    app_id(self.connection(u, k, profile).app)
                ));
            }
            g
        }

        /// The claims of user `u`'s access token, but for `iat`, `exp` and `jti`.
        pub fn claims(&self, u: u32, profile: &Profile) -> Map<String, Value> {
            let tenant = profile.tenant.as_ref().map(|(t, _)| tenant_id(*t));
            let v = json!({
                "iss": ISSUER, "sub": subject(u), "aud": AUDIENCE, "azp": CLIENT,
                "scope": "openid email profile outbound.token.fetch",
                "email": format!("{}@corp.example", user_id(u)), "email_verified": true,
                "name": format!("User {u}"),
                "department": profile.department, "employment": profile.employment,
                "org": {"id": tenant.unwrap_or_else(|| "corp".into()), "tier": profile.tier},
                "amr": if profile.mfa { json!(["pwd", "mfa"]) } else { json!(["pwd"]) },
                "groups": self.groups(u, profile),
            });
            match v {
                Value::Object(m) => m,
                _ => Map::new(),
            }
        }

        /// What app `a`'s policies decide for `profile` (in `tenant`) asking for `requested`.
        pub fn decide(
            &self,
            a: u32,
            u: u32,
            profile: &Profile,
            tenant: Option<u32>,
            requested: &[&str],
        ) -> Decided {
            let roles = effective_roles(profile, tenant);
            let has = |r: &str| roles.contains(&r);
            let groups = self.groups(u, profile);
            let in_group = groups.iter().any(|g| *g == format!("{}-users", app_id(a)));
            let matched = [
                profile.employment == "employee",
                has("editor") || has("admin"),
                has("admin") && profile.mfa,
                profile.department == dev_department(a) && has("developer"),
                in_group,
                profile.employment == "contractor" && !has("admin"),
                paid_tiers(a).contains(&profile.tier),
                has("billing") && matches!(profile.department, "finance" | "sales"),
                profile.department != "hr" && !has("contractor"),
                has("auditor"),
            ];
            let outcome = |with_shadow: bool| {
                let mut any = false;
                let mut all = false;
                let mut scopes: Vec<&'static str> = Vec::new();
                for (i, m) in matched.iter().enumerate() {
                    if !*m || (is_shadow(i) && !with_shadow) {
                        continue;
                    }
                    any = true;
                    match policy_scopes(i) {
                        None => all = true,
                        Some(list) => {
                            for s in list {
                                if !scopes.contains(s) {
                                    scopes.push(s);
                                }
                            }
                        }
                    }
                }
                let covered = all || requested.iter().all(|r| scopes.contains(r));
                let reason = if !any {
                    Some("no_policy_matched")
                } else if !covered {
                    Some("scopes_not_allowed")
                } else {
                    None
                };
                (any && covered, reason, (!all).then_some(scopes))
            };
            let (allowed, reason, allowed_scopes) = outcome(false);
            Decided {
                matched,
                allowed,
                reason,
                allowed_scopes,
                shadow_allowed: outcome(true).0,
            }
        }

        /// The scopes of a connection's grant: what the policies allow of `read` and `write`
        /// (`read` when they allow nothing: the user connected before a policy changed).
        pub fn grant(
            &self,
            a: u32,
            u: u32,
            profile: &Profile,
            tenant: Option<u32>,
        ) -> Vec<&'static str> {
            let d = self.decide(a, u, profile, tenant, &[]);
            let mut g: Vec<&'static str> = ["read", "write"]
                .into_iter()
                .filter(|s| d.allowed_scopes.as_ref().is_none_or(|l| l.contains(s)))
                .collect();
            if g.is_empty() {
                g.push("read");
            }
            g
        }
    }

    /// A tenant's plan (its members' `org.tier`).
    pub fn tenant_plan(seed: u64, t: u32) -> &'static str {
        match Rng::stream(seed, kind::TENANT, u64::from(t)).unit() {
            r if r < 0.3 => "free",
            r if r < 0.7 => "pro",
            _ => "enterprise",
        }
    }

    /// Tenant `t` as `POST /v1/mgmt/tenants` takes it.
    pub fn tenant_json(seed: u64, t: u32) -> Value {
        let mut rng = Rng::stream(seed, kind::TENANT, u64::from(t));
        let _ = rng.next_u64();
        let region =
            ["eu-west-1", "us-east-1", "us-west-2", "ap-southeast-1"][rng.below(4) as usize];
        json!({"id": tenant_id(t), "name": format!("Customer {t}"),
               "attributes": {"plan": tenant_plan(seed, t), "region": region}})
    }

    /// The roles that count for a request in `tenant`.
    pub fn effective_roles(profile: &Profile, tenant: Option<u32>) -> Vec<&'static str> {
        let mut roles = profile.roles.clone();
        if let (Some(t), Some((member_of, extra))) = (tenant, &profile.tenant)
            && t == *member_of
        {
            for r in extra {
                if !roles.contains(r) {
                    roles.push(r);
                }
            }
        }
        roles
    }

    fn dev_department(a: u32) -> &'static str {
        if a.is_multiple_of(3) { "ops" } else { "eng" }
    }

    fn paid_tiers(a: u32) -> &'static [&'static str] {
        if a.is_multiple_of(2) {
            &["enterprise"]
        } else {
            &["pro", "enterprise"]
        }
    }

    /// The scopes policy `i` grants (`None`: all).
    pub fn policy_scopes(i: usize) -> Option<&'static [&'static str]> {
        match i {
            2 => None,
            1 | 3 | 4 | 6 => Some(&["read", "write"]),
            _ => Some(&["read"]),
        }
    }

    /// The name of app `a`'s policy `i`.
    pub fn policy_name(a: u32, i: usize) -> String {
        match i {
            0 => "Employees can read".into(),
            1 => "Editors can write".into(),
            2 => "Admins with MFA".into(),
            3 => format!("Developers in {}", dev_department(a)),
            4 => format!("Members of {}-users", app_id(a)),
            5 => "Contractors can read (trial)".into(),
            6 => "Paid tiers".into(),
            7 => "Billing staff".into(),
            8 => "Everyone but HR and contractors".into(),
            _ => "Auditors (trial)".into(),
        }
    }

    /// App `a`'s policies, as `POST .../policies` takes them.
    pub fn policies_json(a: u32) -> Vec<Value> {
        let roles = |op: &str, v: Value| json!({"source": "userRoles", "operator": op, "value": v});
        let claim = |c: &str, op: &str, v: Value| json!({"source": "jwtClaims", "claim": c, "operator": op, "value": v});
        (0..POLICIES_PER_APP)
            .map(|i| {
                let conditions = match i {
                    0 => vec![claim("employment", "equals", json!("employee"))],
                    1 => vec![roles("in", json!(["editor", "admin"]))],
                    2 => vec![
                        roles("contains", json!("admin")),
                        claim("amr", "contains", json!("mfa")),
                    ],
                    3 => vec![
                        claim("department", "equals", json!(dev_department(a))),
                        roles("contains", json!("developer")),
                    ],
                    4 => vec![claim(
                        "groups",
                        "contains",
                        json!(format!("{}-users", app_id(a))),
                    )],
                    5 => vec![
                        claim("employment", "equals", json!("contractor")),
                        roles("notEquals", json!("admin")),
                    ],
                    6 => vec![claim("org.tier", "in", json!(paid_tiers(a)))],
                    7 => vec![
                        roles("contains", json!("billing")),
                        claim("department", "in", json!(["finance", "sales"])),
                    ],
                    8 => vec![
                        claim("department", "notIn", json!(["hr"])),
                        roles("notEquals", json!("contractor")),
                    ],
                    _ => vec![roles("contains", json!("auditor"))],
                };
                let scopes = match policy_scopes(i) {
                    None => json!("all"),
                    Some(l) => json!(l),
                };
                let mut p =
                    json!({"name": policy_name(a, i), "conditions": conditions, "scopes": scopes});
                if is_shadow(i) {
                    p["mode"] = json!("shadow");
                }
                p
            })
            .collect()
    }

    /// App `a` with its policies, as `POST /v1/mgmt/apply` takes it.
    pub fn app_json(a: u32) -> Value {
        let id = app_id(a);
        let provider = PROVIDERS[a as usize % PROVIDERS.len()];
        json!({
            "id": id, "name": format!("{provider} ({id})"), "type": "oauth",
            "clientId": format!("{id}.apps.provider.example"),
            "clientSecret": format!("secret-{}", Rng::stream(a.into(), 99, 0).token_chars(32)),
            "authorizationUrl": format!("https://{id}.provider.example/oauth/authorize"),
            "tokenUrl": format!("https://{id}.provider.example/oauth/token"),
            "scopes": APP_SCOPES.iter().map(|s| json!({"name": s, "description": format!("{s} access")})).collect::<Vec<_>>(),
            "defaultScopes": ["read"],
            "policies": policies_json(a),
        })
    }

    /// User `u` as `POST /v1/mgmt/users` takes it.
    pub fn user_json(u: u32, profile: &Profile) -> Value {
        let tenants: Vec<Value> = profile
            .tenant
            .iter()
            .map(|(t, roles)| json!({"tenantId": tenant_id(*t), "roles": roles}))
            .collect();
        json!({
            "id": user_id(u),
            "identities": [{"issuer": ISSUER, "subject": subject(u)}],
            "email": format!("{}@corp.example", user_id(u)),
            "name": format!("User {u}"),
            "roles": profile.roles,
            "tenants": tenants,
            "attributes": {"department": profile.department, "employment": profile.employment},
            "disabled": profile.disabled,
        })
    }

    /// Where a generated data set's manifest is: `scale.json` in the SQLite data directory, or
    /// the path given.
    pub fn manifest_path(database: &str, manifest: Option<&str>) -> std::path::PathBuf {
        match manifest {
            Some(m) => m.into(),
            None if database.starts_with("postgres") => "target/scale-postgres/scale.json".into(),
            None => {
                let p = std::path::Path::new(database);
                if p.extension().is_some_and(|e| e == "db") {
                    p.with_file_name("scale.json")
                } else {
                    p.join("scale.json")
                }
            }
        }
    }

    /// Reads the counts and seed from a manifest.
    pub fn params_of(manifest: &Value) -> Params {
        let n = |k: &str| manifest[k].as_u64().unwrap_or(0);
        Params {
            seed: n("seed"),
            users: n("users") as u32,
            apps: n("apps") as u32,
            tenants: n("tenants") as u32,
            connections: n("connections"),
        }
    }
}
