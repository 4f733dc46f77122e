//! How fast the audit log takes events: batches of 1,000 decisions appended to SQLite, per event.
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
use portcullis_domain::{AuditEvent, AuditOutcome, PolicyVerdict, Stores, Timestamp};

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
    let stores = Stores::from_backend(Arc::new(store), feed);
    let mut n = 0u64;
    let mut group = c.benchmark_group("audit");
    group.throughput(Throughput::Elements(1000));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("append 1,000 events to SQLite", |b| {
        b.to_async(&rt).iter(|| {
            let batch: Vec<AuditEvent> = (0..1000)
                .map(|_| {
                    n += 1;
                    event(n)
                })
                .collect();
            let stores = stores.clone();
            async move { stores.audit.append_audit(&batch).await.unwrap() }
        });
    });
    group.finish();
}

criterion_group!(benches, audit);
criterion_main!(benches);
