//! How fast the audit log takes events: batches of 1,000 decisions appended to SQLite and, when
//! `PORTCULLIS_BENCH_DATABASE_URL` names a PostgreSQL database (it gets Portcullis's schema and
//! keeps the events), to PostgreSQL. The decisions name 1,000 apps (or one) and 10,000 users at
//! random (with 1,000 apps the per-app index takes scattered inserts) and carry real event ids; each is either made with
//! a token of its own (its inputs stored with it: the worst case) or with its user's one token
//! (a token is presented many times: its inputs are stored once a day).
//!
//! `cargo bench -p portcullis-bench-runtime --bench audit`; `PORTCULLIS_BENCH_AUDIT_BATCH=100` for
//! the batches the server's audit writer makes (at most 100 events).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark"
)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use portcullis_domain::{
    AuditEvent, AuditOutcome, DecisionInputs, PolicyVerdict, Stores, Timestamp,
};

/// The `n`th decision, for one of `apps` apps, made with a token of its own or with its user's one
/// token (`reused`).
fn event(n: u64, apps: u64, reused: bool) -> AuditEvent {
    // A cheap, fixed scramble: apps and users drawn evenly, the same every run.
    let r = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16;
    let user = r % 10_000;
    let token = if reused { user } else { n };
    let at = Timestamp::from_millis(1_795_000_000_000 + (n / 10) as i64);
    AuditEvent {
        id: portcullis_core::new_event_id(at),
        at,
        action: "token".into(),
        app_id: Some(format!("app-{}", (r >> 20) % apps)),
        user_id: Some(format!("user-{user}")),
        tenant_id: None,
        client_id: Some("mcp-client".into()),
        issuer: Some("https://idp.example".into()),
        requested_scopes: vec!["calendar.readonly".into()],
        granted_scopes: vec!["calendar.readonly".into()],
        outcome: AuditOutcome::Allowed,
        reason: None,
        deciding_policies: vec!["pol_01jd8x5m3q9v7s2k4n6p8r0t2w".into()],
        considered_policies: (0..10)
            .map(|i| PolicyVerdict {
                id: format!("pol_01jd8x5m3q9v7s2k4n6p8r0t{i:02}"),
                matched: i == 7,
                shadow: false,
            })
            .collect(),
        shadow_outcome: None,
        latency_us: 12,
        // What a typical access token's claims and a user's roles weigh.
        inputs: Some(DecisionInputs::capture(
            &["Viewer".to_owned(), "Staff".to_owned()],
            serde_json::json!({
                "iss": "https://idp.example", "sub": format!("user-{user}"),
                "aud": "https://mcp.example/mcp", "client_id": "mcp-client",
                "scope": "calendar.read outbound.token.fetch", "iat": 1_795_000_000,
                "exp": 1_795_003_600, "jti": format!("{token:022}"), "department": "sales",
            })
            .as_object()
            .expect("an object"),
            &[],
            true,
            vec!["calendar.readonly".into()],
        )),
    }
}

fn audit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = portcullis_store_sqlite::SqliteStore::open(&dir.path().join("a.db")).unwrap();
    let feed = Arc::new(store.change_feed());
    let mut backends = vec![("SQLite", Stores::from_backend(Arc::new(store), feed))];
    if let Ok(url) = std::env::var("PORTCULLIS_BENCH_DATABASE_URL") {
        let store = rt
            .block_on(portcullis_store_postgres::PostgresStore::connect(
                &url,
                portcullis_store_postgres::PgOptions::default(),
            ))
            .unwrap();
        let feed = Arc::new(store.change_feed());
        backends.push(("PostgreSQL", Stores::from_backend(Arc::new(store), feed)));
    }
    let size: u64 = std::env::var("PORTCULLIS_BENCH_AUDIT_BATCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1000);
    let mut n = 0u64;
    let mut group = c.benchmark_group("audit");
    group.throughput(Throughput::Elements(size));
    group.measurement_time(Duration::from_secs(10));
    for (name, stores) in backends {
        for (apps, tokens, reused) in [
            (1000, "a token each", false),
            (1000, "tokens reused", true),
            (1, "tokens reused", true),
        ] {
            let label = format!("append {size} events to {name}, {apps} apps, {tokens}");
            group.bench_function(label, |b| {
                // The batch is made outside the measurement: this times the store.
                b.to_async(&rt).iter_batched(
                    || {
                        let batch: Vec<AuditEvent> = (0..size)
                            .map(|_| {
                                n += 1;
                                event(n, apps, reused)
                            })
                            .collect();
                        Arc::<[AuditEvent]>::from(batch)
                    },
                    |batch| {
                        let stores = stores.clone();
                        async move { stores.audit.append_audit(batch).await.unwrap() }
                    },
                    BatchSize::SmallInput,
                );
            });
        }
    }
    group.finish();
}

criterion_group!(benches, audit);
criterion_main!(benches);
