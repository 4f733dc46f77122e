//! A data key is rotated automatically once it has sealed its share of secrets (AES-GCM with
//! random nonces must stay well below 2^32 messages per key); the count is kept in the database,
//! shared by every node, and secrets sealed before the rotation still open.

#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use std::time::{Duration, Instant};

use portcullis_core::Settings;
use portcullis_core::manage::AppInput;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_key_is_rotated_after_its_share_of_seals() {
    let dir = tempfile::tempdir().unwrap();
    let (stores, _, _) = support::sqlite_stores(dir.path());
    let settings = Settings {
        data_key_seal_limit: 8,
        ..Settings::default()
    };
    let core = support::start(stores, settings).await;
    assert_eq!(core.key_status().await.unwrap().active_key_id, 1);
    // Each app's client secret is one seal.
    for i in 0..10 {
        let app: AppInput = serde_json::from_value(serde_json::json!({
            "id": format!("app{i}"), "name": "App", "type": "oauth", "clientId": "c",
            "clientSecret": format!("secret-{i}"),
            "authorizationUrl": "https://provider.example/authorize",
            "tokenUrl": "https://provider.example/token",
        }))
        .unwrap();
        core.create_app(&app).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = core.key_status().await.unwrap();
        if status.active_key_id == 2 {
            break status;
        }
        assert!(Instant::now() < deadline, "the data key was not rotated");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status.keys.len(), 2);
    // Secrets sealed before the rotation still open: re-encryption reads every one of them.
    let report = portcullis_core::reencrypt(core.sealer_for_tests(), core.stores_for_tests())
        .await
        .unwrap();
    assert!(report.app_secrets >= 8, "{report:?}");
}
