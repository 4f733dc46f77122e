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
