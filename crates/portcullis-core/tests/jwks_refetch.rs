//! On a manual clock: a token signed with a key the issuer's JWKS did not have (an unknown `kid`)
//! makes the JWKS be fetched again at most once per refetch interval; once the clock has passed
//! the interval, the next unknown `kid` fetches it again.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::{Core, Refusal, Settings};
use portcullis_crypto::jws::SigningKey;
use portcullis_domain::ManualClock;
use support::{Fake, T0};

/// Whether a token of `key` verifies: one without the fetch scope is refused for that scope once
/// its signature checked out, and for the token itself when it did not.
async fn verifies(core: &Core, key: &SigningKey) -> bool {
    let token = support::inbound_token(key, "openid");
    match support::fetch(core, &token).await {
        Err(Refusal::InsufficientScope { .. }) => true,
        Err(Refusal::InvalidToken { .. }) => false,
        other => panic!("unexpected answer: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_refetches_the_jwks_at_most_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let (stores, _, _) = support::sqlite_stores(dir.path());
    let clock = Arc::new(ManualClock::new(T0));
    let settings = Settings {
        jwks_min_refetch: Duration::from_secs(10),
        jwks_ttl: Duration::from_secs(3600),
        ..Settings::default()
    };
    let core = support::start_with_clock(stores, settings, clock.clone()).await;
    let fake = Fake::start().await;
    let (a, b, c) = (
        support::signing_key(),
        support::signing_key(),
        support::signing_key(),
    );
    fake.publish(&[&a]);
    support::trust_issuer(&core, &fake).await;

    // The first token fetches the keys.
    assert!(verifies(&core, &a).await);
    assert_eq!(fake.jwks_fetches(), 1);

    // The issuer starts signing with b. Right after the fetch, an unknown kid does not fetch
    // again, however often it comes, until the interval has passed on the clock.
    fake.publish(&[&a, &b]);
    for _ in 0..3 {
        assert!(!verifies(&core, &b).await);
    }
    clock.advance_secs(9);
    assert!(!verifies(&core, &b).await);
    assert_eq!(fake.jwks_fetches(), 1, "refetched within the interval");

    // Past the interval, the unknown kid fetches the keys once, and b verifies.
    clock.advance_secs(2);
    assert!(verifies(&core, &b).await);
    assert_eq!(fake.jwks_fetches(), 2);
    assert!(verifies(&core, &a).await, "known keys need no fetch");
    assert_eq!(fake.jwks_fetches(), 2);

    // The same again for the next new key: held off, then fetched once the interval passed.
    fake.publish(&[&a, &b, &c]);
    assert!(!verifies(&core, &c).await);
    clock.advance_secs(9);
    assert!(!verifies(&core, &c).await);
    assert_eq!(fake.jwks_fetches(), 2, "refetched within the interval");
    clock.advance_secs(2);
    assert!(verifies(&core, &c).await);
    assert_eq!(fake.jwks_fetches(), 3);
}
