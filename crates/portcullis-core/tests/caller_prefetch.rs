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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlinked_subject_read_again_reads_its_connection_by_key() {
    let world = support::World::start(Settings::default()).await;
    world.connections.overlap.store(true, Ordering::SeqCst);
    let now = support::T0.as_secs();
    let carol = world
        .key
        .sign_jwt(
            &serde_json::json!({"iss": support::ISSUER, "aud": "mcp", "sub": "carol",
                "scope": support::FETCH_SCOPE, "iat": now, "exp": now + 86_400}),
            None,
        )
        .unwrap();
    let not_connected = |r: Result<_, Refusal>| matches!(r, Err(Refusal::NotConnected { .. }));
    let before = world.connections.reads();
    assert!(not_connected(support::fetch(&world.core, &carol).await));
    // First read by identity (it links no one), then by the external principal's key.
    let (by_key, by_identity) = world.connections.reads();
    assert_eq!((by_key - before.0, by_identity - before.1), (1, 1));

    // Read again after a change to a user: by the key the token was found to be, which is
    // cached (as absent), so nothing is read.
    let bob: portcullis_core::manage::UserInput =
        serde_json::from_value(serde_json::json!({"id": "bob"})).unwrap();
    world.core.create_user(&bob).await.unwrap();
    assert!(not_connected(support::fetch(&world.core, &carol).await));
    assert_eq!(world.connections.reads(), (by_key, by_identity));
}
