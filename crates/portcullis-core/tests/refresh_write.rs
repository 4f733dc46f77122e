//! A refresh token the provider rotated is never lost: when writing the refreshed tokens fails
//! after the provider answered, the write is retried while the lease is held, so the next refresh
//! presents the rotated token (the old one no longer works at a rotating provider).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::sync::atomic::Ordering;

use portcullis_core::Settings;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_refresh_token_survives_a_failed_write() {
    let fake = support::Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut stores, sqlite, _) = support::sqlite_stores(dir.path());
    let flaky = support::ObservedConnections::new(sqlite);
    stores.connections = flaky.clone();
    let core = support::start(stores, Settings::default()).await;
    support::app_and_user(&core, &fake).await;
    let conn_id = support::import_alice(&core, None).await;

    // The provider rotates rt-0 into rt-1; the first write of it fails.
    flaky.fail_next_write.store(true, Ordering::SeqCst);
    core.force_refresh_connection(&conn_id).await.unwrap();
    assert!(
        !flaky.fail_next_write.load(Ordering::SeqCst),
        "the write failed once"
    );
    // The next refresh presents the rotated token.
    core.force_refresh_connection(&conn_id).await.unwrap();
    assert_eq!(fake.refreshes(), ["rt-0", "rt-1"]);
}
