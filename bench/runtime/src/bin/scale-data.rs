//! A data set at scale, reproducible from a seed: fills a fresh database through the product's own
//! paths, as fast as they go, and prints how long each kind of row took.
//!
//! - roles, tenants, users (with their identities at a trusted issuer, roles, tenant
//!   memberships) and apps with their access control policies: `Core::apply`, what
//!   `POST /v1/mgmt/apply` runs (checked whole, one transaction and one management event per
//!   batch of at most 1000 entries; each app's client secret sealed);
//! - connections: `Core::import_tokens`, what `POST /v1/mgmt/outbound-apps/{app}/tokens` runs
//!   (at most 1000 per call, one app per call; every access and refresh token sealed with the
//!   deployment's data key, one transaction per call);
//! - recorded decisions: `AuditStore::append_audit` in large batches, each event as the token
//!   path records it (the inputs the policies read, every policy's verdict, the shadow outcome),
//!   its decision the one the app's policies make for that user.
//!
//! The database is then servable: `portcullis serve` on the same data directory (SQLite; the
//! master key is written where serve's development mode reads it) or with
//! `PORTCULLIS_DATABASE_URL` and `PORTCULLIS_MASTER_KEY_FILE` (PostgreSQL); an admin key is
//! created and printed, and a manifest (`scale.json`) records the counts, the seed, the admin key
//! and the trusted issuer for `http-load --zipf`.
//!
//! ```text
//! scale-data [--backend sqlite|postgres] [--path DIR] [--database-url URL] [--manifest FILE]
//!            [--users 100000] [--apps 1000] [--tenants 10000] [--connections 1000000]
//!            [--audit 10000000] [--seed N] [--jobs N] [--audit-batch 10000]
//!            [--master-key ID:BASE64] [--admin-key KEY]
//! ```
//!
//! Only what the product makes at random differs between two runs with the same seed: ids of
//! policies and connections, the data key, the nonces of sealed secrets.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark driver"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_bench_runtime::scale::{self, Model, Params, Rng, kind};
use portcullis_core::admin::AdminScope;
use portcullis_core::apply::ApplyInput;
use portcullis_core::manage::IssuerInput;
use portcullis_core::{AdminIdentity, Core, CoreOptions, ImportToken, Settings};
use portcullis_crypto::SecretString;
use portcullis_crypto::envelope::MasterKey;
use portcullis_domain::{
    AuditEvent, AuditOutcome, Clock, DecisionInputs, PageRequest, PolicyVerdict, Stores,
    SystemClock, Timestamp,
};
use serde_json::{Value, json};
use tokio::task::JoinSet;

/// The allocator of the `portcullis` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DAY_MS: i64 = 24 * 3_600_000;

struct Options {
    postgres: Option<String>,
    dir: PathBuf,
    manifest: PathBuf,
    params: Params,
    audit: u64,
    jobs: usize,
    audit_batch: u64,
    master_key: Option<String>,
    admin_key: Option<String>,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let num = |name: &str, default: u64| {
        arg(name).map_or(default, |v| {
            v.replace(['_', ','], "")
                .parse()
                .unwrap_or_else(|_| panic!("{name} takes a number, not {v}"))
        })
    };
    let backend = arg("--backend").unwrap_or_else(|| {
        if arg("--database-url").is_some() {
            "postgres".into()
        } else {
            "sqlite".into()
        }
    });
    let postgres = match backend.as_str() {
        "sqlite" => None,
        "postgres" => Some(
            arg("--database-url")
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/portcullis_scale".into()),
        ),
        other => panic!("--backend sqlite|postgres, not {other}"),
    };
    let dir = PathBuf::from(arg("--path").unwrap_or_else(|| {
        if postgres.is_some() {
            "target/scale-postgres".into()
        } else {
            "target/scale-sqlite".into()
        }
    }));
    let manifest = arg("--manifest").map_or_else(|| dir.join("scale.json"), PathBuf::from);
    let to_u32 = |name: &str, default: u64| {
        u32::try_from(num(name, default)).unwrap_or_else(|_| panic!("{name} is too large"))
    };
    Options {
        params: Params {
            seed: num("--seed", scale::DEFAULT_SEED),
            users: to_u32("--users", 100_000),
            apps: to_u32("--apps", 1_000),
            tenants: to_u32("--tenants", 10_000),
            connections: num("--connections", 1_000_000),
        },
        audit: num("--audit", 10_000_000),
        jobs: num("--jobs", if postgres.is_some() { 4 } else { 2 }).max(1) as usize,
        audit_batch: num("--audit-batch", 10_000).clamp(1, 100_000),
        master_key: arg("--master-key"),
        admin_key: arg("--admin-key"),
        postgres,
        dir,
        manifest,
    }
}

/// Writes a file only its owner reads.
fn write_private(path: &Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    f.write_all(text.as_bytes()).unwrap();
}

/// What one kind of row took.
struct Timing {
    what: &'static str,
    rows: u64,
    took: Duration,
}

impl Timing {
    fn print(&self) {
        println!(
            "{:<28} {:>11} rows {:>8.1} s {:>10.0} rows/s",
            self.what,
            self.rows,
            self.took.as_secs_f64(),
            self.rows as f64 / self.took.as_secs_f64().max(1e-9)
        );
    }
}

/// Prints a line of progress on stderr each time `done` passes a tenth of `total`.
fn progress(what: &str, before: u64, done: u64, total: u64, started: Instant) {
    let step = (total / 10).max(1);
    if before / step != done / step {
        let s = started.elapsed().as_secs_f64();
        eprintln!(
            "  {what}: {done}/{total} in {s:.1} s ({:.0}/s)",
            done as f64 / s.max(1e-9)
        );
    }
}

/// Runs `apply` over `entries` of `section`, `chunk` per call, `jobs` calls at a time.
async fn apply_all(
    core: &Arc<Core>,
    section: &'static str,
    entries: Vec<Value>,
    chunk: usize,
    jobs: usize,
) {
    let actor = AdminIdentity {
        actor_id: "scale-data".into(),
        name: "scale-data".into(),
        scopes: vec![AdminScope::Admin],
        request_id: None,
    };
    let total = entries.len() as u64;
    let started = Instant::now();
    let mut running = JoinSet::new();
    let mut done = 0u64;
    let mut chunks = entries
        .chunks(chunk)
        .map(<[Value]>::to_vec)
        .collect::<Vec<_>>();
    chunks.reverse();
    loop {
        while running.len() < jobs
            && let Some(batch) = chunks.pop()
        {
            let (core, actor) = (core.clone(), actor.clone());
            running.spawn(async move {
                let n = batch.len() as u64;
                let mut input = ApplyInput::default();
                match section {
                    "roles" => input.roles = batch,
                    "tenants" => input.tenants = batch,
                    "users" => input.users = batch,
                    _ => input.apps = batch,
                }
                if let Err(e) = core.apply(&actor, input).await {
                    panic!("applying {section} failed: {e} {e:?}");
                }
                n
            });
        }
        let Some(finished) = running.join_next().await else {
            break;
        };
        let before = done;
        done += finished.unwrap();
        if total >= 10_000 {
            progress(section, before, done, total, started);
        }
    }
}

/// The audit event id layout (`evt_` + ULID: 48 bits of milliseconds, 80 random bits).
fn event_id(at_ms: i64, rng: &mut Rng) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let random = (u128::from(rng.next_u64()) << 16) | u128::from(rng.next_u64() & 0xFFFF);
    let value = (u128::from(at_ms as u64 & 0xFFFF_FFFF_FFFF) << 80) | random;
    let mut out = String::with_capacity(30);
    out.push_str("evt_");
    for i in (0..26).rev() {
        out.push(char::from(ALPHABET[((value >> (5 * i)) & 0x1F) as usize]));
    }
    out
}

/// The `n`-th recorded decision of `total`, made at `at_ms`: a user drawn by activity (Zipf), one
/// of the user's connections (the first ones busiest; 3% an app the user never connected),
/// `read` or (20%) `read write` asked for, decided by the app's policies.
fn event(m: &Model, policy_ids: &[Vec<String>], n: u64, at_ms: i64) -> AuditEvent {
    let mut rng = Rng::stream(m.p.seed, kind::AUDIT, n);
    let u = m.user_of_rank(m.activity.sample(&mut rng));
    let profile = m.profile(u);
    let conns = m.connections_of(u);
    let (conn, connected) = if conns == 0 || rng.chance(0.03) {
        (
            scale::Conn {
                app: rng.below(u64::from(m.p.apps)) as u32,
                tenant: None,
            },
            false,
        )
    } else {
        let k = m.slot(conns, &mut rng);
        (m.connection(u, k, &profile), true)
    };
    let requested: Vec<&'static str> = if rng.chance(0.2) {
        vec!["read", "write"]
    } else {
        vec!["read"]
    };
    let mut claims = m.claims(u, &profile);
    let iat = at_ms / 1000 - rng.below(3000) as i64;
    claims.insert("iat".into(), json!(iat));
    claims.insert("exp".into(), json!(iat + 3600));
    claims.insert("jti".into(), json!(rng.token_chars(22)));
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
    let mut e = AuditEvent {
        id: event_id(at_ms, &mut rng),
        at: Timestamp::from_millis(at_ms),
        action: "token".into(),
        app_id: Some(scale::app_id(conn.app)),
        user_id: Some(scale::user_id(u)),
        tenant_id: conn.tenant.map(scale::tenant_id),
        client_id: Some(scale::CLIENT.into()),
        issuer: Some(scale::ISSUER.into()),
        requested_scopes: strings(&requested),
        granted_scopes: vec![],
        outcome: AuditOutcome::Denied,
        reason: None,
        deciding_policies: vec![],
        considered_policies: vec![],
        shadow_outcome: None,
        latency_us: 35 + rng.below(250) + if rng.chance(0.05) { 2_000 } else { 0 },
        inputs: None,
    };
    if profile.disabled {
        e.reason = Some("user_disabled".into());
        return e;
    }
    let d = m.decide(conn.app, u, &profile, conn.tenant, &requested);
    let ids = &policy_ids[conn.app as usize];
    e.considered_policies = (0..scale::POLICIES_PER_APP)
        .map(|i| PolicyVerdict {
            id: ids[i].clone(),
            matched: d.matched[i],
            shadow: scale::is_shadow(i),
        })
        .collect();
    e.deciding_policies = (0..scale::POLICIES_PER_APP)
        .filter(|&i| d.allowed && d.matched[i] && !scale::is_shadow(i))
        .map(|i| ids[i].clone())
        .collect();
    e.shadow_outcome = Some(
        if d.shadow_allowed {
            "allowed"
        } else {
            "denied"
        }
        .into(),
    );
    let roles = strings(&scale::effective_roles(&profile, conn.tenant));
    e.inputs = Some(DecisionInputs::capture(
        &roles,
        &claims,
        &[],
        d.allowed,
        if d.allowed {
            strings(&requested)
        } else {
            vec![]
        },
    ));
    let grant = m.grant(conn.app, u, &profile, conn.tenant);
    (e.outcome, e.reason) = if !d.allowed {
        (AuditOutcome::Denied, d.reason.map(str::to_owned))
    } else if !connected {
        (AuditOutcome::NotConnected, Some("no_connection".into()))
    } else if requested.iter().any(|r| !grant.contains(r)) {
        (AuditOutcome::NotConnected, Some("missing_scopes".into()))
    } else {
        e.granted_scopes = strings(&grant);
        (AuditOutcome::Allowed, None)
    };
    e
}

/// One connection to import: the user (none: the tenant's), the tenant, the grant's scopes.
#[derive(Clone, Copy)]
struct Planned {
    user: Option<u32>,
    tenant: Option<u32>,
    write: bool,
}

/// The tokens of a connection, as a provider would have issued them.
fn import_token(m: &Model, app: u32, index: u64, c: Planned, now: Timestamp) -> ImportToken {
    let mut rng = Rng::stream(
        m.p.seed,
        kind::CONNECTION.wrapping_mul(1 << 40),
        (u64::from(app) << 32) | index,
    );
    let access = format!("ya29.a0{}", rng.token_chars(170));
    let refresh = rng
        .chance(0.8)
        .then(|| SecretString::from(format!("1//0g{}", rng.token_chars(98))));
    let expires_at =
        (!rng.chance(0.1)).then(|| now.add_secs(30 * 86_400 + rng.below(335 * 86_400) as i64));
    let mut scopes = vec!["read".to_owned()];
    if c.write {
        scopes.push("write".into());
    }
    ImportToken {
        user_id: c.user.map(scale::user_id),
        tenant_id: c.tenant.map(scale::tenant_id),
        access_token: SecretString::from(access),
        refresh_token: refresh,
        token_type: None,
        expires_at,
        scopes,
        provider_subject: Some(format!("{}", 100_000_000_000 + rng.below(900_000_000_000))),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let o = options();
    let model = Arc::new(Model::new(o.params).unwrap_or_else(|e| panic!("{e}")));
    let p = o.params;
    std::fs::create_dir_all(&o.dir).unwrap();
    if let Some(parent) = o.manifest.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    let db_file = o.dir.join("portcullis.db");

    // The database, fresh.
    let stores = match &o.postgres {
        None => {
            assert!(
                !db_file.exists(),
                "{} exists: the generator fills a fresh database (remove it first)",
                db_file.display()
            );
            let path = db_file.clone();
            let store = tokio::task::spawn_blocking(move || {
                portcullis_store_sqlite::SqliteStore::open(&path)
            })
            .await
            .unwrap()
            .expect("the SQLite database");
            let feed = Arc::new(store.change_feed());
            Stores::from_backend(Arc::new(store), feed)
        }
        Some(url) => {
            let store = portcullis_store_postgres::PostgresStore::connect(
                url,
                portcullis_store_postgres::PgOptions {
                    pool_size: o.jobs + 4,
                    ..Default::default()
                },
            )
            .await
            .expect("the PostgreSQL database");
            let feed = Arc::new(store.change_feed());
            let stores = Stores::from_backend(Arc::new(store), feed);
            let one = PageRequest {
                after: None,
                limit: 1,
            };
            assert!(
                stores.apps.apps(&one).await.unwrap().is_empty()
                    && stores.directory.users(&one).await.unwrap().is_empty(),
                "{url} holds data: the generator fills a fresh database (drop and create it first)"
            );
            stores
        }
    };

    // The master key: where `portcullis serve` reads it (SQLite: the data directory, as its
    // development mode does; PostgreSQL: a file beside the manifest, for
    // PORTCULLIS_MASTER_KEY_FILE).
    let master_text = match &o.master_key {
        Some(k) => k.clone(),
        None => MasterKey::generate("scale-1")
            .unwrap()
            .encode()
            .expose()
            .to_owned(),
    };
    let master_file = match &o.postgres {
        None => o.dir.join("master.key"),
        Some(_) => o
            .manifest
            .parent()
            .unwrap_or(Path::new("."))
            .join("master.key"),
    };
    write_private(&master_file, &master_text);
    let core = Core::start(
        stores.clone(),
        CoreOptions {
            settings: Settings::default(),
            master_keys: MasterKey::parse_ring(&master_text).expect("a master key ring"),
            config_issuers: vec![],
            clock: Arc::new(SystemClock),
        },
    )
    .await
    .expect("the core");
    let admin_key = match &o.admin_key {
        Some(k) => {
            let k = SecretString::from(k.clone());
            core.bootstrap_admin_key(Some(&k))
                .await
                .expect("the admin key");
            k
        }
        None => core
            .bootstrap_admin_key(None)
            .await
            .expect("the admin key")
            .expect("a fresh database has no admin key"),
    };
    if o.postgres.is_none() {
        write_private(&o.dir.join("bootstrap-admin-key"), admin_key.expose());
    }
    let issuer: IssuerInput = serde_json::from_value(json!({
        "issuer": scale::ISSUER, "jwksUrl": "http://127.0.0.1:9/jwks.json",
        "audiences": [scale::AUDIENCE], "algorithms": ["ES256", "RS256"]}))
    .unwrap();
    let issuer_id = core.create_issuer(&issuer).await.expect("the issuer").id;

    println!(
        "scale-data: {} users, {} apps x {} policies, {} tenants, {} connections, {} audit events; seed {:#x}; {} ({} jobs)",
        p.users,
        p.apps,
        scale::POLICIES_PER_APP,
        p.tenants,
        p.connections,
        o.audit,
        p.seed,
        o.postgres
            .as_deref()
            .map_or_else(|| db_file.display().to_string(), str::to_owned),
        o.jobs,
    );
    let all = Instant::now();
    let mut timings = Vec::new();

    // Roles and tenants.
    let started = Instant::now();
    let roles = scale::ROLES
        .iter()
        .map(|r| json!({"name": r, "description": format!("The {r} role")}))
        .collect();
    apply_all(&core, "roles", roles, 1000, 1).await;
    let tenants = (0..p.tenants)
        .map(|t| scale::tenant_json(p.seed, t))
        .collect();
    apply_all(&core, "tenants", tenants, 1000, o.jobs).await;
    timings.push(Timing {
        what: "roles + tenants (apply)",
        rows: p.tenants as u64 + scale::ROLES.len() as u64,
        took: started.elapsed(),
    });
    timings.last().unwrap().print();

    // Users.
    let started = Instant::now();
    let users = (0..p.users)
        .map(|u| scale::user_json(u, &model.profile(u)))
        .collect();
    apply_all(&core, "users", users, 1000, o.jobs).await;
    timings.push(Timing {
        what: "users (apply)",
        rows: u64::from(p.users),
        took: started.elapsed(),
    });
    timings.last().unwrap().print();

    // Apps with their policies.
    let started = Instant::now();
    let apps = (0..p.apps).map(scale::app_json).collect();
    apply_all(&core, "apps", apps, 100, o.jobs).await;
    timings.push(Timing {
        what: "apps + policies (apply)",
        rows: u64::from(p.apps) * (1 + scale::POLICIES_PER_APP as u64),
        took: started.elapsed(),
    });
    timings.last().unwrap().print();
    // The policies' ids, by app and place.
    let mut policy_ids: Vec<Vec<String>> = Vec::with_capacity(p.apps as usize);
    for a in 0..p.apps {
        let stored = stores
            .apps
            .policies(
                &scale::app_id(a),
                &PageRequest {
                    after: None,
                    limit: 100,
                },
            )
            .await
            .unwrap();
        policy_ids.push(
            (0..scale::POLICIES_PER_APP)
                .map(|i| {
                    let name = scale::policy_name(a, i);
                    stored
                        .iter()
                        .find(|s| s.document.name == name)
                        .map(|s| s.id.clone())
                        .unwrap_or_else(|| panic!("policy {name} of app {a}"))
                })
                .collect(),
        );
    }
    let policy_ids = Arc::new(policy_ids);

    // Connections, by app (an import is for one app).
    let started = Instant::now();
    let mut by_app: Vec<Vec<Planned>> = vec![Vec::new(); p.apps as usize];
    for u in 0..p.users {
        let profile = model.profile(u);
        for k in 0..model.connections_of(u) {
            let c = model.connection(u, k, &profile);
            let grant = model.grant(c.app, u, &profile, c.tenant);
            by_app[c.app as usize].push(Planned {
                user: Some(u),
                tenant: c.tenant,
                write: grant.contains(&"write"),
            });
        }
    }
    for i in 0..model.tenant_connections() {
        let c = model.tenant_connection(i);
        by_app[c.app as usize].push(Planned {
            user: None,
            tenant: c.tenant,
            write: false,
        });
    }
    let planned = started.elapsed();
    let mut batches: Vec<(u32, u64, Vec<Planned>)> = Vec::new();
    for (a, list) in by_app.into_iter().enumerate() {
        for (i, chunk) in list.chunks(1000).enumerate() {
            batches.push((a as u32, i as u64 * 1000, chunk.to_vec()));
        }
    }
    batches.reverse();
    let now = core.now();
    let mut running = JoinSet::new();
    let mut done = 0u64;
    loop {
        while running.len() < o.jobs
            && let Some((app, first, chunk)) = batches.pop()
        {
            let (core, model) = (core.clone(), model.clone());
            running.spawn(async move {
                let items: Vec<ImportToken> = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, c)| import_token(&model, app, first + i as u64, *c, now))
                    .collect();
                core.import_tokens(&scale::app_id(app), &items, "import:scale-data")
                    .await
                    .unwrap_or_else(|e| panic!("importing into app {app}: {e}"))
                    .len() as u64
            });
        }
        let Some(finished) = running.join_next().await else {
            break;
        };
        let before = done;
        done += finished.unwrap();
        progress("connections", before, done, p.connections, started);
    }
    assert_eq!(done, p.connections, "every connection is stored");
    timings.push(Timing {
        what: "connections (import, sealed)",
        rows: done,
        took: started.elapsed(),
    });
    timings.last().unwrap().print();
    eprintln!(
        "  (planning the connections took {:.1} s of it)",
        planned.as_secs_f64()
    );

    // Recorded decisions, oldest first over the last 30 days.
    let started = Instant::now();
    let now_ms = SystemClock.now().as_millis();
    let span = 30 * DAY_MS;
    let total = o.audit;
    let mut next = 0u64;
    let mut done = 0u64;
    let mut running = JoinSet::new();
    loop {
        while running.len() < o.jobs + 1 && next < total {
            let (first, end) = (next, (next + o.audit_batch).min(total));
            next = end;
            let (stores, model, ids) = (stores.clone(), model.clone(), policy_ids.clone());
            running.spawn(async move {
                let batch: Arc<[AuditEvent]> = (first..end)
                    .map(|n| {
                        let at = now_ms - span
                            + i64::try_from(u128::from(n) * span as u128 / u128::from(total))
                                .unwrap_or(0);
                        event(&model, &ids, n, at)
                    })
                    .collect();
                stores.audit.append_audit(batch).await.expect("written");
                end - first
            });
        }
        let Some(finished) = running.join_next().await else {
            break;
        };
        let before = done;
        done += finished.unwrap();
        progress("audit events", before, done, total, started);
    }
    timings.push(Timing {
        what: "audit events (append_audit)",
        rows: done,
        took: started.elapsed(),
    });
    timings.last().unwrap().print();
    let took = all.elapsed();
    // The seal count is written every second by the core: let it.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let manifest = json!({
        "backend": if o.postgres.is_some() { "postgres" } else { "sqlite" },
        "dataDir": o.dir, "databaseUrl": o.postgres,
        "masterKeyFile": master_file, "adminKey": admin_key.expose(),
        "issuer": scale::ISSUER, "issuerId": issuer_id, "audience": scale::AUDIENCE,
        "seed": p.seed, "users": p.users, "apps": p.apps, "tenants": p.tenants,
        "connections": p.connections, "audit": o.audit,
        "seconds": timings
            .iter()
            .map(|t| (t.what.to_owned(), json!(t.took.as_secs_f64())))
            .collect::<serde_json::Map<_, _>>(),
        "totalSeconds": took.as_secs_f64(),
    });
    write_private(
        &o.manifest,
        &serde_json::to_string_pretty(&manifest).unwrap(),
    );

    println!("\n| rows | count | seconds | rows/s |\n|---|---|---|---|");
    for t in &timings {
        println!(
            "| {} | {} | {:.1} | {:.0} |",
            t.what,
            t.rows,
            t.took.as_secs_f64(),
            t.rows as f64 / t.took.as_secs_f64().max(1e-9)
        );
    }
    let rows: u64 = timings.iter().map(|t| t.rows).sum();
    println!(
        "| total | {rows} | {:.1} | {:.0} |",
        took.as_secs_f64(),
        rows as f64 / took.as_secs_f64()
    );
    if o.postgres.is_none() {
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let wal = o.dir.join("portcullis.db-wal");
        println!(
            "\ndatabase: {} ({:.1} MiB, WAL {:.1} MiB)",
            db_file.display(),
            size(&db_file) as f64 / 1_048_576.0,
            size(&wal) as f64 / 1_048_576.0
        );
    }
    println!("manifest: {}", o.manifest.display());
    println!(
        "admin key: {} (Authorization: Bearer ...)",
        admin_key.expose()
    );
    match &o.postgres {
        None => println!(
            "serve it:  PORTCULLIS_DATA_DIR={} portcullis serve   (the master key is {})",
            o.dir.display(),
            master_file.display()
        ),
        Some(url) => println!(
            "serve it:  PORTCULLIS_DATABASE_URL={url} PORTCULLIS_MASTER_KEY_FILE={} portcullis serve",
            master_file.display()
        ),
    }
    println!(
        "load it:   http-load --zipf --database {} --manifest {}",
        o.postgres
            .as_deref()
            .map_or_else(|| o.dir.display().to_string(), str::to_owned),
        o.manifest.display()
    );
    std::process::exit(0);
}
