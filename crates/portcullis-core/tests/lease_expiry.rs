//! On a manual clock: a refresh lease held by another node blocks this node's refresh until the
//! lease expires on the clock; then this node takes the lease and refreshes, once.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::time::Duration;

use portcullis_core::Settings;
use portcullis_domain::ConnectionStore;
use support::{T0, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_held_elsewhere_blocks_a_refresh_until_it_expires() {
    let settings = Settings {
        refresh_window_secs: 60,
        refresh_lease_secs: 45,
        ..Settings::default()
    };
    let w = World::start(settings).await;
    // The access token expires within the refresh window: the next request refreshes it.
    let id = support::import_alice(&w.core, Some(T0.add_secs(30))).await;
    // Another node took the connection's refresh lease until T0 + 45 s (and never finishes).
    let lease_until = T0.add_secs(45);
    assert!(
        w.store
            .acquire_refresh_lease(&id, "other-node:1", T0, lease_until)
            .await
            .unwrap()
            .is_some()
    );

    let fetch = tokio::spawn({
        let core = w.core.clone();
        let token = w.token();
        async move { support::fetch(&core, &token).await }
    });
    // This node asks for the lease, is refused, and waits, asking again (or, were the lease not
    // respected, refreshes at once).
    support::until("the lease was asked for twice", || {
        w.connections.lease_attempts() >= 2 || fetch.is_finished()
    })
    .await;
    assert!(
        w.fake.refreshes().is_empty(),
        "refreshed under another's lease"
    );
    assert!(!fetch.is_finished());

    // A second before the lease expires, it still holds.
    w.clock.advance_secs(44);
    let seen = w.connections.lease_attempts();
    support::until("the lease was asked for again", || {
        w.connections.lease_attempts() >= seen + 2 || fetch.is_finished()
    })
    .await;
    assert!(
        w.fake.refreshes().is_empty(),
        "refreshed under another's lease"
    );
    assert!(!fetch.is_finished());

    // Past it, this node takes the lease and refreshes.
    w.clock.advance_secs(2);
    let granted = tokio::time::timeout(Duration::from_secs(10), fetch)
        .await
        .expect("the refresh went on waiting after the lease expired")
        .unwrap()
        .unwrap();
    assert_eq!(support::access_token(&granted), "at-1");
    assert_eq!(w.fake.refreshes(), ["rt-0"]);
    let stored = w.store.connection_by_id(&id).await.unwrap().unwrap();
    assert_eq!(stored.lease, None, "the lease was released with the write");
    assert_eq!(stored.last_refresh_at, Some(T0.add_secs(46)));
    assert_eq!(stored.expires_at, Some(T0.add_secs(46 + 3600)));
}
