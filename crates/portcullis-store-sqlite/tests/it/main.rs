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

/// Audit events an older version kept in the main database move into the audit log's own file
/// when the store opens — every field, inputs or none, across days — and the old table is gone.
#[tokio::test]
async fn audit_events_of_an_older_version_move_into_the_audit_log() {
    use portcullis_domain::{AuditOutcome, AuditQuery};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("../../migrations/0001_init.sql"))
            .unwrap();
        conn.execute_batch(include_str!("../../migrations/0021_audit_inputs.sql"))
            .unwrap();
        conn.execute_batch(include_str!("../../migrations/0022_audit_by_time.sql"))
            .unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
             INSERT INTO schema_migrations VALUES (1, 0), (21, 0), (22, 0);
             INSERT INTO audit_events VALUES ('evt_a', 1790000000000, 'token', 'cal', 'ada', NULL, 'mcp',
               'https://idp.example', '[\"read\"]', '[\"read\"]', 'allowed', NULL, '[\"p1\"]',
               '[{\"id\":\"p1\",\"matched\":true},{\"id\":\"p2\",\"matched\":false,\"shadow\":true}]',
               'denied', 42,
               '{\"roles\":[\"Viewer\"],\"claims\":{\"sub\":\"ada\",\"dept\":[\"eng\"]},\"allowed\":true,\"scopes\":[\"read\"]}');
             INSERT INTO audit_events VALUES ('evt_b', 1790100000000, 'check', NULL, NULL, 't1', NULL,
               NULL, '[]', '[]', 'invalid_request', 'bad', '[]', '[]', NULL, 7, NULL);",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let stores = Stores::from_backend(Arc::new(store.clone()), Arc::new(store.change_feed()));
    let got = stores
        .audit
        .audit(&AuditQuery {
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let ids: Vec<_> = got.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["evt_b", "evt_a"]);
    let a = &got[1];
    assert_eq!(a.outcome, AuditOutcome::Allowed);
    assert_eq!(a.deciding_policies, ["p1"]);
    assert_eq!(a.considered_policies.len(), 2);
    assert!(a.considered_policies[1].shadow && !a.considered_policies[1].matched);
    assert_eq!(a.shadow_outcome.as_deref(), Some("denied"));
    let inputs = a.inputs.as_ref().unwrap();
    assert_eq!(
        (
            inputs.roles.as_slice(),
            inputs.allowed,
            inputs.claims["dept"][0].as_str()
        ),
        (&["Viewer".to_owned()][..], true, Some("eng"))
    );
    let b = &got[0];
    assert_eq!(
        (
            b.tenant_id.as_deref(),
            b.reason.as_deref(),
            b.inputs.is_none(),
            b.latency_us
        ),
        (Some("t1"), Some("bad"), true, 7)
    );
    drop((stores, store));
    let conn = rusqlite::Connection::open(&path).unwrap();
    let legacy: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'audit_events'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(legacy, 0);
    assert!(dir.path().join("portcullis-audit.db").exists());
}

/// The audit log keeps a table per day: a list pages newest first across days, a summary bucket
/// spans days, and retention drops the days wholly past its cutoff as whole tables.
#[tokio::test]
async fn the_audit_log_is_kept_a_day_a_table() {
    use portcullis_domain::{AuditEvent, AuditOutcome, AuditQuery, Timestamp};
    const DAY: i64 = 86_400_000;
    let d0 = 20_000 * DAY; // 2024-10-04, midnight UTC
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.db");
    let store = SqliteStore::open(&path).unwrap();
    let stores = Stores::from_backend(Arc::new(store.clone()), Arc::new(store.change_feed()));
    let event = |i: i64| AuditEvent {
        id: format!("evt_{i:02}"),
        at: Timestamp::from_millis(d0 + (i / 3) * DAY + (i % 3) * 1000),
        action: "token".into(),
        app_id: Some(if i % 2 == 0 { "even" } else { "odd" }.into()),
        user_id: Some("ada".into()),
        tenant_id: None,
        client_id: None,
        issuer: None,
        requested_scopes: vec!["read".into()],
        granted_scopes: vec![],
        outcome: AuditOutcome::Denied,
        reason: Some("no_policy_matched".into()),
        deciding_policies: vec![],
        considered_policies: vec![],
        shadow_outcome: None,
        latency_us: u64::try_from(i).unwrap(),
        inputs: None,
    };
    let events: Vec<AuditEvent> = (0..9).map(event).collect();
    stores.audit.append_audit(events.into()).await.unwrap();
    let page = |before: Option<&str>, app: Option<&str>| {
        let q = AuditQuery {
            before_id: before.map(str::to_owned),
            app_id: app.map(str::to_owned),
            limit: 4,
            ..AuditQuery::default()
        };
        let audit = stores.audit.clone();
        async move {
            audit
                .audit(&q)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        page(None, None).await,
        ["evt_08", "evt_07", "evt_06", "evt_05"]
    );
    assert_eq!(
        page(Some("evt_05"), None).await,
        ["evt_04", "evt_03", "evt_02", "evt_01"]
    );
    assert_eq!(page(Some("evt_01"), None).await, ["evt_00"]);
    assert_eq!(
        page(None, Some("odd")).await,
        ["evt_07", "evt_05", "evt_03", "evt_01"]
    );
    // One bucket of two days: days 0 and 1, summed across their tables.
    let summary = stores
        .audit
        .audit_summary(
            Timestamp::from_millis(d0),
            Timestamp::from_millis(d0 + 2 * DAY),
            2 * DAY,
        )
        .await
        .unwrap();
    let even = summary
        .iter()
        .find(|r| r.app_id.as_deref() == Some("even"))
        .unwrap();
    assert_eq!(
        (
            even.bucket,
            even.count,
            even.latency_sum_us,
            even.latency_max_us
        ),
        (0, 3, 2 + 4, 4)
    );
    // Cutoff one second into day 2: days 0 and 1 go whole; of day 2, the event at 0 s.
    let cutoff = Timestamp::from_millis(d0 + 2 * DAY + 1000);
    assert_eq!(stores.audit.prune_audit(cutoff, 100).await.unwrap(), 7);
    assert_eq!(stores.audit.prune_audit(cutoff, 100).await.unwrap(), 0);
    assert_eq!(page(None, None).await, ["evt_08", "evt_07"]);
    let log = rusqlite::Connection::open(dir.path().join("portcullis-audit.db")).unwrap();
    let tables: Vec<String> = log
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        tables,
        [
            "app_runs_20241006",
            "blobs_20241006",
            "events_20241006",
            "runs_20241006",
            "user_runs_20241006"
        ]
    );
}

/// A day the previous layout wrote (B-tree indexes on the events table, no runs) gets its index
/// runs when the store opens: searches by app and by user find its events, and the old indexes
/// are gone.
#[tokio::test]
async fn a_day_of_the_previous_layout_is_searched_by_app_and_user() {
    use portcullis_domain::{AuditEvent, AuditOutcome, AuditQuery, Timestamp};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.db");
    let log_path = dir.path().join("portcullis-audit.db");
    let event = |i: u32| AuditEvent {
        id: format!("evt_{i:02}"),
        at: Timestamp::from_millis(1_728_000_000_000 + i64::from(i)),
        action: "token".into(),
        app_id: Some(format!("app{}", i % 2)),
        user_id: Some(format!("user{}", i % 3)),
        tenant_id: None,
        client_id: None,
        issuer: None,
        requested_scopes: vec![],
        granted_scopes: vec![],
        outcome: AuditOutcome::Allowed,
        reason: None,
        deciding_policies: vec![],
        considered_policies: vec![],
        shadow_outcome: None,
        latency_us: 1,
        inputs: None,
    };
    {
        let store = SqliteStore::open(&path).unwrap();
        let stores = Stores::from_backend(Arc::new(store.clone()), Arc::new(store.change_feed()));
        let events: Vec<AuditEvent> = (0..12).map(event).collect();
        stores.audit.append_audit(events.into()).await.unwrap();
    }
    // Back to the previous layout: the indexes on the table, no runs.
    rusqlite::Connection::open(&log_path)
        .unwrap()
        .execute_batch(
            "DROP TABLE runs_20241004; DROP TABLE app_runs_20241004; DROP TABLE user_runs_20241004;
             CREATE INDEX events_20241004_by_app ON events_20241004 (app_id, id);
             CREATE INDEX events_20241004_by_user ON events_20241004 (user_id, id);",
        )
        .unwrap();
    let store = SqliteStore::open(&path).unwrap();
    let stores = Stores::from_backend(Arc::new(store.clone()), Arc::new(store.change_feed()));
    let ids = |app: Option<&str>, user: Option<&str>| {
        let q = AuditQuery {
            app_id: app.map(str::to_owned),
            user_id: user.map(str::to_owned),
            limit: 100,
            ..AuditQuery::default()
        };
        let audit = stores.audit.clone();
        async move {
            let got = audit.audit(&q).await.unwrap();
            got.into_iter().map(|e| e.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        ids(Some("app1"), None).await,
        ["evt_11", "evt_09", "evt_07", "evt_05", "evt_03", "evt_01"]
    );
    assert_eq!(
        ids(None, Some("user2")).await,
        ["evt_11", "evt_08", "evt_05", "evt_02"]
    );
    assert_eq!(ids(Some("app0"), Some("user0")).await, ["evt_06", "evt_00"]);
    // New events of the same day join it as runs of their own.
    stores
        .audit
        .append_audit(vec![event(13)].into())
        .await
        .unwrap();
    assert_eq!(ids(Some("app1"), None).await[..2], ["evt_13", "evt_11"]);
    let indexes: i64 = rusqlite::Connection::open(&log_path)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'events%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 0);
}
