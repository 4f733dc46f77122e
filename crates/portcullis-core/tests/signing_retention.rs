//! A retired signing key stays published exactly as long as a token it signed may be valid (the
//! access-token lifetime plus the clock skew), on a manual clock; a later rotation deletes it.

#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use std::sync::Arc;

use portcullis_core::{Settings, TOKEN_CLOCK_SKEW_SECS};
use portcullis_domain::{ManualClock, Timestamp};

const T0: Timestamp = Timestamp::from_secs(1_800_000_000);

fn kids(jwks: &serde_json::Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_key_is_published_until_its_tokens_have_expired() {
    let dir = tempfile::tempdir().unwrap();
    let (stores, store, _) = support::sqlite_stores(dir.path());
    let clock = Arc::new(ManualClock::new(T0));
    let settings = Settings {
        access_token_ttl_secs: 300,
        ..Settings::default()
    };
    let core = support::start_with_clock(stores, settings, clock.clone()).await;
    let first = kids(&core.jwks());
    assert_eq!(first.len(), 1);

    let after = core.rotate_signing_key().await.unwrap();
    assert_eq!(after.len(), 2);
    assert_eq!(after[0].kid, first[0]);
    assert_eq!(after[0].state, "retired");
    assert_eq!(
        after[0].published_until,
        Some(T0.add_secs(300 + TOKEN_CLOCK_SKEW_SECS))
    );
    let second = after[1].kid.clone();
    assert_eq!(kids(&core.jwks()), vec![first[0].clone(), second.clone()]);

    // Published until the last token it signed may have expired, then not.
    clock.advance_secs(300 + TOKEN_CLOCK_SKEW_SECS - 1);
    assert_eq!(kids(&core.jwks()).len(), 2);
    clock.advance_secs(1);
    assert_eq!(kids(&core.jwks()), vec![second.clone()]);

    // The next rotation deletes it from the database.
    let after = core.rotate_signing_key().await.unwrap();
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(after[0].kid, second);
    use portcullis_domain::SigningKeyStore;
    let stored = store.signing_keys().await.unwrap();
    assert!(stored.iter().all(|k| k.kid != first[0]), "purged");
    // What is stored is sealed: no PKCS#8 structure in the clear.
    for k in &stored {
        assert!(
            !k.private_key
                .bytes
                .windows(3)
                .any(|w| w == [0x30, 0x81, 0x87]),
            "the private key is sealed"
        );
    }
}
