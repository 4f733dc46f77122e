//! What-if replay at scale: fills a SQLite database with recorded decisions of one app — each
//! carrying its inputs, as the token path records them — then times `Core::replay_policies`
//! re-deciding all of them with a narrowing draft. Target: 1,000,000 decisions in under 5 s.
//!
//!   cargo run --release -p portcullis-bench-runtime --bin replay -- [decisions] [runs]

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark driver"
)]

use std::sync::Arc;
use std::time::Instant;

use portcullis_core::manage::{AppInput, ReplayInput};
use portcullis_core::{Core, CoreOptions, Settings};
use portcullis_crypto::envelope::MasterKey;
use portcullis_domain::{
    AuditEvent, AuditOutcome, DecisionInputs, PolicyVerdict, Stores, SystemClock, Timestamp,
};
use serde_json::{Value, json};

/// The allocator of the `portcullis` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USERS: u64 = 10_000;
const BATCH: u64 = 10_000;

/// The `n`-th recorded decision: users take turns, a third of them Viewers, a third Editors, a
/// third with no role; claims as a typical access token carries them.
fn event(n: u64, now_ms: i64, total: u64) -> AuditEvent {
    let user = n % USERS;
    let (roles, allowed, scopes): (Vec<String>, bool, Vec<String>) = match user % 3 {
        0 => (vec!["Viewer".into()], true, vec!["read".into()]),
        1 => (vec!["Editor".into()], true, vec!["read".into()]),
        _ => (vec![], false, vec![]),
    };
    // Spread over the last six days, oldest first.
    let at = now_ms - 6 * 24 * 3_600_000 + i64::try_from(n * 500_000_000 / total).unwrap_or(0);
    let claims = json!({
        "iss": "https://idp.example", "sub": format!("user-{user}"),
        "aud": "https://mcp.example/mcp", "client_id": "mcp-client",
        "scope": "calendar.read outbound.token.fetch", "iat": at / 1000,
        "exp": at / 1000 + 3600, "jti": format!("{n:022}"), "department": "sales",
    });
    AuditEvent {
        id: format!("evt_{at:013}{n:012}"),
        at: Timestamp::from_millis(at),
        action: "token".into(),
        app_id: Some("calendar".into()),
        user_id: Some(format!("user-{user}")),
        tenant_id: None,
        client_id: Some("mcp-client".into()),
        issuer: Some("https://idp.example".into()),
        requested_scopes: vec!["read".into()],
        granted_scopes: scopes.clone(),
        outcome: if allowed {
            AuditOutcome::Allowed
        } else {
            AuditOutcome::Denied
        },
        reason: None,
        deciding_policies: vec![],
        considered_policies: vec![PolicyVerdict {
            id: "pol_readers".into(),
            matched: allowed,
            shadow: false,
        }],
        shadow_outcome: None,
        latency_us: 12,
        inputs: Some(DecisionInputs::capture(
            &roles,
            claims.as_object().expect("an object"),
            &[],
            allowed,
            scopes,
        )),
    }
}

fn policy(name: &str, roles: Value) -> Value {
    json!({"name": name, "conditions": [{"source": "userRoles", "operator": "in", "value": roles}], "scopes": ["read"]})
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let total: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let runs: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store =
        portcullis_store_sqlite::SqliteStore::open(&dir.path().join("p.db")).expect("the database");
    let feed = Arc::new(store.change_feed());
    let stores = Stores::from_backend(Arc::new(store), feed);
    let core = Core::start(
        stores.clone(),
        CoreOptions {
            settings: Settings::default(),
            master_keys: vec![MasterKey::generate("bench").expect("a key")],
            config_issuers: vec![],
            clock: Arc::new(SystemClock),
        },
    )
    .await
    .expect("the core");
    let app: AppInput = serde_json::from_value(json!({
        "id": "calendar", "name": "Calendar", "type": "oauth", "clientId": "c", "clientSecret": "s",
        "authorizationUrl": "https://provider.example/authorize",
        "tokenUrl": "https://provider.example/token",
        "scopes": [{"name": "read"}, {"name": "write"}]}))
    .expect("an app");
    core.create_app(&app).await.expect("the app");
    core.create_policy("calendar", &policy("Readers", json!(["Viewer", "Editor"])))
        .await
        .expect("the policy");

    let now_ms = portcullis_domain::Clock::now(&SystemClock).as_millis();
    let started = Instant::now();
    let mut n = 0;
    while n < total {
        let end = (n + BATCH).min(total);
        let batch: Arc<[AuditEvent]> = (n..end).map(|i| event(i, now_ms, total)).collect();
        stores.audit.append_audit(batch).await.expect("written");
        n = end;
    }
    let filled = started.elapsed();
    println!(
        "filled {total} recorded decisions in {:.1} s ({:.0}/s)",
        filled.as_secs_f64(),
        total as f64 / filled.as_secs_f64()
    );

    // The draft: Readers narrowed to Editors. Every Viewer's decision changes.
    let input: ReplayInput = serde_json::from_value(json!({
        "policies": [policy("Readers", json!(["Editor"]))]}))
    .expect("a draft");
    for run in 1..=runs {
        let started = Instant::now();
        let out = core
            .replay_policies("calendar", &input)
            .await
            .expect("the replay");
        let took = started.elapsed();
        assert_eq!(out.replayed, total, "every decision is replayed");
        println!(
            "run {run}: replayed {} decisions in {:.2} s ({:.0}/s): {} would change, {} users would lose access",
            out.replayed,
            took.as_secs_f64(),
            out.replayed as f64 / took.as_secs_f64(),
            out.changed,
            out.losing.users,
        );
    }
}
