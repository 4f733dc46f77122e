//! What a refresh-token rotation costs the store: the writer's time per `rotate_refresh` (read
//! the presented token, mark it rotated, insert its successor beside it, in one write transaction) on
//! SQLite, over a pool of 10,000 live refresh-token families, one rotation after another.
//!
//! `cargo bench -p portcullis-bench-runtime --bench grants`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark"
)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portcullis_domain::{RefreshRecord, Rotation, Stores, Timestamp};

const FAMILIES: usize = 10_000;

fn record(hash: String, family: usize, now: Timestamp) -> RefreshRecord {
    RefreshRecord {
        hash,
        family_id: format!("fam{family:012}"),
        client_id: "desktop".into(),
        user_id: format!("user-{}", family % 1000),
        resource: "https://mcp.example.com/mcp".into(),
        scopes: vec!["tools.read".into(), "outbound.token.fetch".into()],
        auth_time: now,
        created_at: now,
        expires_at: now.add_secs(30 * 86_400),
        rotated_at: None,
        revoked_at: None,
    }
}

/// A token hash as the server makes them: 64 hex characters, random order.
fn hash(n: u64) -> String {
    portcullis_crypto::sha256(&n.to_le_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn grants(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = portcullis_store_sqlite::SqliteStore::open(&dir.path().join("g.db")).unwrap();
    let feed = Arc::new(store.change_feed());
    let stores = Stores::from_backend(Arc::new(store), feed);
    let now = Timestamp::from_millis(1_795_000_000_000);
    let mut current: Vec<String> = Vec::with_capacity(FAMILIES);
    rt.block_on(async {
        for f in 0..FAMILIES {
            let h = hash(f as u64);
            stores
                .grants
                .insert_refresh(&record(h.clone(), f, now))
                .await
                .unwrap();
            current.push(h);
        }
    });
    let mut n = FAMILIES as u64;
    let mut group = c.benchmark_group("grants");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("rotate a refresh token (SQLite)", |b| {
        b.to_async(&rt).iter(|| {
            n += 1;
            let family = (n as usize) % FAMILIES;
            let next = record(hash(n), family, now);
            let presented = std::mem::replace(&mut current[family], next.hash.clone());
            let stores = stores.clone();
            let family_id = next.family_id.clone();
            async move {
                match stores
                    .grants
                    .rotate_refresh(
                        &family_id,
                        &presented,
                        &next,
                        now.add_secs(1),
                        Box::new(|_| true),
                    )
                    .await
                    .unwrap()
                {
                    Rotation::Rotated(_) => {}
                    other => panic!("not rotated: {other:?}"),
                }
            }
        });
    });
    group.finish();
}

criterion_group!(benches, grants);
criterion_main!(benches);
