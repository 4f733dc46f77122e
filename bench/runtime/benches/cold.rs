//! The cold path of a token request in the store: what a request reads when its user, identity
//! and connection are in none of Portcullis's caches — the identity with the user it links (its
//! roles and tenants), then the connection by key — and, apart, its app with the app's
//! policies; on a data set made by `scale-data`. Where the store's reads overlap (PostgreSQL), also
//! the read the token path makes there: the identity and user beside the connection read by the
//! identity.
//!
//! `PORTCULLIS_BENCH_SCALE=<SQLite data directory | postgres://...>` names the data set; its
//! manifest is `scale.json` in the directory, or `PORTCULLIS_BENCH_SCALE_MANIFEST`. Without it the
//! benchmark says so and measures nothing. Users are drawn uniformly, so nearly every read meets
//! rows no earlier iteration read (the database's own page cache and the OS's are what they are
//! after the warm-up). The signature check is not part of the cold path (a token's verification
//! is cached by the token); compiling the policies and opening the sealed credential are in the
//! `decision` benchmark.
//!
//! `PORTCULLIS_BENCH_SCALE=target/scale/sqlite cargo bench -p portcullis-bench-runtime --bench cold`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark"
)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_bench_runtime::scale::{self, Model, Rng, user_id};
use portcullis_domain::{ConnectionKey, ConnectionRecord, Stores, UserRecord};

/// One iteration's reads.
type Reads = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// The allocator of the `portcullis` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn cold(c: &mut Criterion) {
    let Ok(data) = std::env::var("PORTCULLIS_BENCH_SCALE") else {
        eprintln!("cold: set PORTCULLIS_BENCH_SCALE to a data set made by scale-data");
        return;
    };
    let manifest_path = std::env::var("PORTCULLIS_BENCH_SCALE_MANIFEST")
        .unwrap_or_else(|_| format!("{data}/scale.json"));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).expect("the manifest"))
            .expect("a JSON manifest");
    let model = Model::new(scale::params_of(&manifest)).unwrap();
    let issuer = manifest["issuer"].as_str().unwrap().to_owned();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (name, stores) = if data.starts_with("postgres") {
        let store = rt
            .block_on(portcullis_store_postgres::PostgresStore::connect(
                &data,
                portcullis_store_postgres::PgOptions::default(),
            ))
            .unwrap();
        let feed = Arc::new(store.change_feed());
        ("PostgreSQL", Stores::from_backend(Arc::new(store), feed))
    } else {
        let store = portcullis_store_sqlite::SqliteStore::open(
            &std::path::Path::new(&data).join("portcullis.db"),
        )
        .unwrap();
        let feed = Arc::new(store.change_feed());
        ("SQLite", Stores::from_backend(Arc::new(store), feed))
    };
    // A user with a connection of their own: its subject and the connection's key.
    let mut rng = Rng::new(0x00c0_1d00);
    let mut draw = move || loop {
        let u = rng.below(u64::from(model.p.users)) as u32;
        if model.connections_of(u) == 0 {
            continue;
        }
        let profile = model.profile(u);
        let conn = model.connection(u, 0, &profile);
        break (
            scale::subject(u),
            ConnectionKey {
                app_id: scale::app_id(conn.app),
                user_id: Some(user_id(u)),
                tenant_id: conn.tenant.map(scale::tenant_id),
            },
        );
    };
    let mut group = c.benchmark_group("cold path");
    group.measurement_time(Duration::from_secs(10));
    let mut bench = |label: &str, read: &dyn Fn(Stores, String, ConnectionKey) -> Reads| {
        group.bench_function(format!("{name}: {label}"), |b| {
            b.to_async(&rt).iter_batched(
                &mut draw,
                |(subject, key)| read(stores.clone(), subject, key),
                criterion::BatchSize::SmallInput,
            );
        });
    };
    let linked = |user: Option<UserRecord>, subject: &str| {
        assert!(user.is_some(), "{subject} has no identity link");
    };
    let found = |conn: Option<ConnectionRecord>, key: &ConnectionKey| {
        assert!(conn.is_some(), "no connection {key:?}");
    };
    bench(
        "identity and user, then connection; users drawn uniformly",
        &|stores, subject, key| {
            let issuer = issuer.clone();
            Box::pin(async move {
                let user = stores.directory.user_by_identity(&issuer, &subject).await;
                linked(user.unwrap(), &subject);
                found(stores.connections.connection(&key).await.unwrap(), &key);
            })
        },
    );
    // What the token path does where reads overlap (PostgreSQL): the connection read by the
    // identity, beside the user's read.
    if stores.connections.reads_overlap() {
        bench(
            "identity and user, beside the connection by identity",
            &|stores, subject, key| {
                let issuer = issuer.clone();
                Box::pin(async move {
                    let (user, conn) = tokio::join!(
                        stores.directory.user_by_identity(&issuer, &subject),
                        stores.connections.connection_by_identity(
                            &key.app_id,
                            &issuer,
                            &subject,
                            key.tenant_id.as_deref()
                        )
                    );
                    linked(user.unwrap(), &subject);
                    found(conn.unwrap(), &key);
                })
            },
        );
    }
    // Apps are few (the app cache holds 10,000 by default): read again only after a change.
    bench("an app with its policies", &|stores, _, key| {
        Box::pin(async move {
            let app = stores.apps.app_with_policies(&key.app_id).await.unwrap();
            assert!(app.is_some(), "no app {}", key.app_id);
        })
    });
    group.finish();
}

criterion_group!(benches, cold);
criterion_main!(benches);
