//! The SQLite backend against the storage conformance suite.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::Arc;

use portcullis_domain::Stores;
use portcullis_store_conformance::{TestStores, conformance_tests};
use portcullis_store_sqlite::SqliteStore;

async fn fresh() -> TestStores {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(&dir.path().join("portcullis.db")).expect("the database opens");
    let feed = Arc::new(store.change_feed());
    TestStores {
        stores: Stores::from_backend(Arc::new(store), feed),
        guard: Box::new(dir),
    }
}

conformance_tests!(fresh);

#[tokio::test]
async fn reopening_keeps_data_and_skips_applied_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        let stores = Stores::from_backend(Arc::new(store.clone()), Arc::new(store.change_feed()));
        stores
            .directory
            .insert_role(&portcullis_domain::Role {
                name: "viewer".into(),
                description: None,
                created_at: portcullis_domain::Timestamp::from_millis(1),
                updated_at: portcullis_domain::Timestamp::from_millis(1),
            })
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let stores = Stores::from_backend(Arc::new(store.clone()), Arc::new(store.change_feed()));
    assert!(stores.directory.role("viewer").await.unwrap().is_some());
}

#[test]
fn a_new_database_is_in_wal_mode_with_16_kib_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.db");
    let _store = SqliteStore::open(&path).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    let journal: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!((page_size, journal.as_str()), (16_384, "wal"));
}

/// A database made by the first release (migration 1 only, with a user in it) opens with this
/// build: the later migrations apply, the user is kept, without identity links until an admin
/// adds them.
#[tokio::test]
async fn a_database_of_the_first_release_is_migrated_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("../../migrations/0001_init.sql"))
            .unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
             INSERT INTO schema_migrations VALUES (1, 0);
             INSERT INTO users (id, email, email_key, name, attributes, disabled, created_at, updated_at)
             VALUES ('alice', NULL, NULL, 'Alice', '{}', 0, 1, 1);",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let stores = Stores::from_backend(Arc::new(store.clone()), Arc::new(store.change_feed()));
    let mut alice = stores.directory.user("alice").await.unwrap().unwrap();
    assert_eq!(alice.name.as_deref(), Some("Alice"));
    assert!(alice.identities.is_empty());
    assert_eq!(
        stores
            .directory
            .user_by_identity("https://idp", "alice")
            .await
            .unwrap(),
        None
    );
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
