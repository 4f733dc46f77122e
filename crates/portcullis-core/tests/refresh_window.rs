//! On a manual clock: a stored access token is refreshed only once it expires within the refresh
//! window, not before, and the refreshed token is then handed out without refreshing again.

#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use portcullis_core::Settings;
use support::{T0, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_refreshed_only_within_the_refresh_window() {
    let settings = Settings {
        refresh_window_secs: 60,
        ..Settings::default()
    };
    let w = World::start(settings).await;
    // The access token expires ten minutes from now.
    support::import_alice(&w.core, Some(T0.add_secs(600))).await;
    let token = w.token();

    let granted = support::fetch(&w.core, &token).await.unwrap();
    assert_eq!(support::access_token(&granted), "at-0");
    // 61 seconds before it expires: outside the window, the stored token is handed out.
    w.clock.advance_secs(600 - 61);
    let granted = support::fetch(&w.core, &token).await.unwrap();
    assert_eq!(support::access_token(&granted), "at-0");
    assert!(w.fake.refreshes().is_empty(), "refreshed before the window");
    assert_eq!(w.connections.lease_attempts(), 0);

    // 60 seconds before: within the window, it is refreshed (once), and the new token handed out.
    w.clock.advance_secs(1);
    let granted = support::fetch(&w.core, &token).await.unwrap();
    assert_eq!(support::access_token(&granted), "at-1");
    assert_eq!(w.fake.refreshes(), ["rt-0"]);
    assert_eq!(
        granted.token.expires_at,
        Some(T0.add_secs(600 - 60 + 3600)),
        "the new token's expiry is read on the clock"
    );

    // The new token lives an hour: no refresh until its own window.
    w.clock.advance_secs(3600 - 61);
    let granted = support::fetch(&w.core, &token).await.unwrap();
    assert_eq!(support::access_token(&granted), "at-1");
    assert_eq!(w.fake.refreshes(), ["rt-0"]);
    w.clock.advance_secs(1);
    let granted = support::fetch(&w.core, &token).await.unwrap();
    assert_eq!(support::access_token(&granted), "at-2");
    assert_eq!(w.fake.refreshes(), ["rt-0", "rt-1"]);
}
