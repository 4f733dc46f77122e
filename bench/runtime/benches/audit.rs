//! How fast the audit log takes events: batches of 1,000 decisions appended to SQLite and, when
//! `PORTCULLIS_BENCH_DATABASE_URL` names a PostgreSQL database (it gets Portcullis's schema and
//! keeps the events), to PostgreSQL.
//!
//! `cargo bench -p portcullis-bench-runtime --bench audit`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark"
)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portcullis_domain::{
    AuditEvent, AuditOutcome, DecisionInputs, PolicyVerdict, Stores, Timestamp,
};

fn event(n: u64) -> AuditEvent {
    AuditEvent {
        id: format!("evt_{n:026}"),
        at: Timestamp::from_millis(1_795_000_000_000 + n as i64),
        action: "token".into(),
        app_id: Some("calendar".into()),
        user_id: Some(format!("user-{}", n % 1000)),
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
                "iss": "https://idp.example", "sub": format!("user-{}", n % 1000),
                "aud": "https://mcp.example/mcp", "client_id": "mcp-client",
                "scope": "calendar.read outbound.token.fetch", "iat": 1_795_000_000,
                "exp": 1_795_003_600, "jti": format!("{n:022}"), "department": "sales",
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
    // Ids unique across runs, so that a kept PostgreSQL database takes the next run's events.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let mut n = 0u64;
    let mut group = c.benchmark_group("audit");
    group.throughput(Throughput::Elements(1000));
    group.measurement_time(Duration::from_secs(10));
    for (name, stores) in backends {
        group.bench_function(format!("append 1,000 events to {name}"), |b| {
            b.to_async(&rt).iter(|| {
                let batch: Vec<AuditEvent> = (0..1000)
                    .map(|_| {
                        n += 1;
                        let mut e = event(n);
                        e.id = format!("evt_{run}_{n:016}");
                        e
                    })
                    .collect();
                let stores = stores.clone();
                async move { stores.audit.append_audit(batch.into()).await.unwrap() }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, audit);
criterion_main!(benches);
