//! While the change feed is down, a change made elsewhere may not have been heard of: the admin-key
//! and client caches are bypassed (fail closed), so a key or client deleted on another node stops
//! working here at once.

#![allow(clippy::unwrap_used, reason = "tests")]

use portcullis_core::manage::ClientInput;
mod support;

use portcullis_core::Settings;
use portcullis_domain::{AdminKeyStore, ClientStore};
use portcullis_store_sqlite::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_key_and_client_caches_are_bypassed_while_the_feed_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let (stores, _, feed) = support::sqlite_stores(dir.path());
    let core = support::start(stores, Settings::default()).await;
    let key = core.bootstrap_admin_key(None).await.unwrap().unwrap();
    let key = key.expose().to_owned();
    let client = core
        .create_client(&ClientInput {
            id: Some("mcp".into()),
            name: "MCP".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let secret = client.client_secret.unwrap().expose().to_owned();
    let admin = core.authenticate_admin(Some(&key)).await.unwrap();
    assert!(core.authenticate_client("mcp", Some(&secret)).await.is_ok());

    // Another node (another store on the same database, whose changes this node does not hear)
    // deletes both.
    let other = SqliteStore::open(&path).unwrap();
    other.delete_admin_key(&admin.actor_id).await.unwrap();
    other.delete_client("mcp").await.unwrap();
    // Live: the caches answer (the change has not been heard of).
    assert!(core.authenticate_admin(Some(&key)).await.is_ok());
    assert!(core.authenticate_client("mcp", Some(&secret)).await.is_ok());
    // The feed goes down: the store answers, and both are refused.
    feed.set_live(false);
    assert!(core.authenticate_admin(Some(&key)).await.is_err());
    assert!(
        core.authenticate_client("mcp", Some(&secret))
            .await
            .is_err()
    );
}
