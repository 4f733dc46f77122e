//! Connecting: URLs, unreachable servers, migrations on reopen, health.

use std::time::{Duration, Instant};

use portcullis_domain::{PageRequest, Role, StoreError};
use portcullis_store_postgres::{PgOptions, PostgresStore};

use crate::support::{T0, TestDb, server_url, stores_of};

#[tokio::test]
async fn malformed_urls_are_refused() {
    for url in [
        "mysql://root@127.0.0.1/x",
        "postgres://postgres@127.0.0.1:5432/postgres?sslmode=sometimes",
        "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&sslmode=require",
    ] {
        assert!(
            matches!(
                PostgresStore::connect(url, PgOptions::default()).await,
                Err(StoreError::Backend(_))
            ),
            "{url}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_sslmodes_and_both_schemes_connect() {
    let db = TestDb::create().await;
    for suffix in ["&sslmode=disable", "&sslmode=prefer", ""] {
        let url = format!("{}{suffix}", db.url);
        let store = PostgresStore::connect(&url, PgOptions::default())
            .await
            .unwrap();
        stores_of(&store).health.ping().await.unwrap();
    }
    if let Some(rest) = db.url.strip_prefix("postgres://") {
        let store = PostgresStore::connect(&format!("postgresql://{rest}"), PgOptions::default())
            .await
            .unwrap();
        assert_eq!(stores_of(&store).health.backend(), "postgres");
    }
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    // Nothing listens on port 1 of the loopback: refused at once.
    let started = Instant::now();
    let options = PgOptions {
        connect_timeout: Duration::from_secs(2),
        ..PgOptions::default()
    };
    match PostgresStore::connect("postgres://postgres@127.0.0.1:1/postgres", options).await {
        Err(StoreError::Unavailable(m)) => assert!(!m.is_empty()),
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn an_unknown_database_is_not_a_panic() {
    let separator = if server_url().contains('?') { '&' } else { '?' };
    let url = format!(
        "{}{separator}dbname=portcullis_no_such_database",
        server_url()
    );
    assert!(
        PostgresStore::connect(&url, PgOptions::default())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_keeps_data_and_skips_applied_migrations() {
    let db = TestDb::create().await;
    {
        let store = db.connect().await;
        stores_of(&store)
            .directory
            .insert_role(&Role {
                name: "viewer".into(),
                description: None,
                created_at: T0,
                updated_at: T0,
            })
            .await
            .unwrap();
    }
    let store = db.connect().await;
    assert!(
        stores_of(&store)
            .directory
            .role("viewer")
            .await
            .unwrap()
            .is_some()
    );
    let applied: i64 = db
        .raw()
        .await
        .query_one("SELECT COUNT(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        applied,
        i64::try_from(crate::support::migration_versions().len()).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_pooled_connections_are_unavailable_then_replaced() {
    let db = TestDb::create().await;
    let store = db
        .connect_with(PgOptions {
            pool_size: 2,
            ..PgOptions::default()
        })
        .await;
    let stores = stores_of(&store);
    stores.health.ping().await.unwrap();
    // Kill every session of the pool (not the listener, not ours).
    db.raw()
        .await
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = $1 AND application_name = 'portcullis'",
            &[&db.name],
        )
        .await
        .unwrap();
    let mut answers = Vec::new();
    for _ in 0..5 {
        let answer = stores
            .directory
            .roles(&PageRequest {
                after: None,
                limit: 5,
            })
            .await;
        let ok = answer.is_ok();
        answers.push(answer);
        if ok {
            break;
        }
    }
    assert!(
        answers
            .iter()
            .all(|a| matches!(a, Ok(_) | Err(StoreError::Unavailable(_)))),
        "{answers:?}"
    );
    assert!(answers.last().unwrap().is_ok(), "{answers:?}");
}

/// A database made by the first release (migration 1 only, with a user in it) is migrated in
/// place: the later migrations apply, the user is kept, without identity links until an admin
/// adds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_the_first_release_is_migrated_in_place() {
    let db = TestDb::create().await;
    db.raw()
        .await
        .batch_execute(&format!(
            "{}
             CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);
             INSERT INTO schema_migrations VALUES (1, 0);
             INSERT INTO users (id, email, email_key, name, attributes, disabled, created_at, updated_at)
             VALUES ('alice', NULL, NULL, 'Alice', '{{}}', false, 1, 1);",
            include_str!("../../migrations/0001_init.sql")
        ))
        .await
        .unwrap();
    let store = db.connect().await;
    let stores = stores_of(&store);
    let mut alice = stores.directory.user("alice").await.unwrap().unwrap();
    assert_eq!(alice.name.as_deref(), Some("Alice"));
    assert!(alice.identities.is_empty());
    alice.identities = vec![portcullis_domain::Identity {
        issuer: "https://idp".into(),
        subject: "alice".into(),
    }];
    stores.directory.update_user(&alice).await.unwrap();
    assert_eq!(
        stores
            .directory
            .user_by_identity("https://idp", "alice")
            .await
            .unwrap(),
        Some(alice)
    );
}

/// Every user id compares bytewise, as `users.id` does: a join between two columns of different
/// collations cannot use their indexes (a user read scanned every identity until migration 22).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_user_id_column_compares_bytewise() {
    let db = TestDb::create().await;
    let _store = db.connect().await;
    let rows = db
        .raw()
        .await
        .query(
            "SELECT table_name::text, coalesce(collation_name::text, 'default') \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND column_name = 'user_id' \
               AND data_type = 'text'",
            &[],
        )
        .await
        .unwrap();
    assert!(rows.len() >= 5, "the user_id columns are found");
    let other: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .filter(|(_, collation): &(String, String)| collation != "C")
        .collect();
    assert!(other.is_empty(), "user_id columns not in \"C\": {other:?}");
}
