//! Where the store's reads overlap (a database server), a token request whose caller is in no
//! cache reads the caller's connection beside the caller, by the token's identity, and caches it
//! as any load; where they do not, the connection is read by key once the user is known.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::sync::atomic::Ordering;

use portcullis_core::{Refusal, Settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_caller_s_connection_is_read_beside_it() {
    let world = support::World::start(Settings::default()).await;
    let conn_id = support::import_alice(&world.core, None).await;
    world.connections.overlap.store(true, Ordering::SeqCst);
    let before = world.connections.reads();
    let granted = support::fetch(&world.core, &world.token()).await.unwrap();
    assert_eq!(support::access_token(&granted), "at-0");
    let (by_key, by_identity) = world.connections.reads();
    assert_eq!(
        (by_key - before.0, by_identity - before.1),
        (0, 1),
        "read once, by identity, beside the user"
    );

    // Cached as any load: the next request reads nothing.
    let token = world.token();
    support::fetch(&world.core, &token).await.unwrap();
    assert_eq!(world.connections.reads(), (by_key, by_identity));

    // A change to another user drops every identity's read: the identity is read again, but
    // not the connection this token's user already has cached.
    let bob: portcullis_core::manage::UserInput =
        serde_json::from_value(serde_json::json!({"id": "bob"})).unwrap();
    world.core.create_user(&bob).await.unwrap();
    support::fetch(&world.core, &token).await.unwrap();
    assert_eq!(world.connections.reads(), (by_key, by_identity));

    // A change to the connection still reaches it.
    world.core.revoke_connection(&conn_id).await.unwrap();
    let refused = support::fetch(&world.core, &world.token())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Refusal::NotConnected { .. }),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_reads_follow_the_user() {
    let world = support::World::start(Settings::default()).await;
    support::import_alice(&world.core, None).await;
    let before = world.connections.reads();
    support::fetch(&world.core, &world.token()).await.unwrap();
    let (by_key, by_identity) = world.connections.reads();
    assert_eq!((by_key - before.0, by_identity - before.1), (1, 0));
}
