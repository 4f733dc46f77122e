//! A refresh token the provider rotated is never lost: when writing the refreshed tokens fails
//! after the provider answered, the write is retried while the lease is held, so the next refresh
//! presents the rotated token (the old one no longer works at a rotating provider).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use portcullis_core::manage::{AppInput, UserInput};
use portcullis_core::{ImportToken, Settings};
use portcullis_domain::{
    Ciphertext, ConnectionKey, ConnectionRecord, ConnectionStore, PageRequest, RefreshFailure,
    StoreError, Timestamp, TokenSet,
};
use portcullis_store_sqlite::SqliteStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A token endpoint that rotates refresh tokens: answer `n` carries `rt-n`; it records the
/// refresh tokens it was given.
async fn rotating_provider() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() < end + 4 + length {
                        continue;
                    }
                    let body =
                        String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
                    buf.drain(..end + 4 + length);
                    let rt = url::form_urlencoded::parse(body.as_bytes())
                        .find(|(k, _)| k == "refresh_token")
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default();
                    let n = {
                        let mut log = log.lock().unwrap();
                        log.push(rt);
                        log.len()
                    };
                    let json = format!(
                        r#"{{"access_token":"at-{n}","refresh_token":"rt-{n}","token_type":"Bearer","expires_in":3600}}"#
                    );
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}",
                        json.len()
                    );
                    if sock.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

/// The SQLite connection store, whose next `complete_refresh` fails when asked to.
struct FailOnce {
    inner: Arc<SqliteStore>,
    fail_next_write: AtomicBool,
}

#[async_trait]
impl ConnectionStore for FailOnce {
    async fn connection(
        &self,
        key: &ConnectionKey,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        self.inner.connection(key).await
    }
    async fn connection_by_id(&self, id: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        self.inner.connection_by_id(id).await
    }
    async fn put_connection(&self, c: &ConnectionRecord) -> Result<ConnectionRecord, StoreError> {
        self.inner.put_connection(c).await
    }
    async fn put_connections(
        &self,
        cs: &[ConnectionRecord],
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        self.inner.put_connections(cs).await
    }
    async fn connections_for_app(
        &self,
        app_id: &str,
        page: &PageRequest,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        self.inner.connections_for_app(app_id, page).await
    }
    async fn connections_for_user(
        &self,
        user_id: &str,
        page: &PageRequest,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        self.inner.connections_for_user(user_id, page).await
    }
    async fn delete_connection(&self, id: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        self.inner.delete_connection(id).await
    }
    async fn delete_user_connections(
        &self,
        user_id: &str,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        self.inner.delete_user_connections(user_id).await
    }
    async fn acquire_refresh_lease(
        &self,
        id: &str,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        self.inner
            .acquire_refresh_lease(id, owner, now, until)
            .await
    }
    async fn complete_refresh(
        &self,
        id: &str,
        owner: &str,
        expected_version: i64,
        tokens: &TokenSet,
        now: Timestamp,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        if self.fail_next_write.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the database went away".into()));
        }
        self.inner
            .complete_refresh(id, owner, expected_version, tokens, now)
            .await
    }
    async fn fail_refresh(
        &self,
        id: &str,
        owner: &str,
        failure: &RefreshFailure,
    ) -> Result<bool, StoreError> {
        self.inner.fail_refresh(id, owner, failure).await
    }
    async fn release_refresh_lease(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        self.inner.release_refresh_lease(id, owner).await
    }
    async fn touch_connections(&self, used: &[(String, Timestamp)]) -> Result<(), StoreError> {
        self.inner.touch_connections(used).await
    }
    async fn connections_sealed_with_other_key(
        &self,
        key_id: u32,
        limit: u32,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        self.inner
            .connections_sealed_with_other_key(key_id, limit)
            .await
    }
    async fn reseal_connection(
        &self,
        id: &str,
        expected_version: i64,
        access: &Ciphertext,
        refresh: Option<&Ciphertext>,
    ) -> Result<bool, StoreError> {
        self.inner
            .reseal_connection(id, expected_version, access, refresh)
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_refresh_token_survives_a_failed_write() {
    let (provider, seen) = rotating_provider().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut stores, sqlite, _) = support::sqlite_stores(dir.path());
    let flaky = Arc::new(FailOnce {
        inner: sqlite,
        fail_next_write: AtomicBool::new(false),
    });
    stores.connections = flaky.clone();
    let core = support::start(stores, Settings::default()).await;
    let app: AppInput = serde_json::from_value(serde_json::json!({
        "id": "cal", "name": "Cal", "type": "oauth", "clientId": "c", "clientSecret": "s",
        "authorizationUrl": format!("{provider}/authorize"), "tokenUrl": format!("{provider}/token"),
        "scopes": [{"name": "read"}]
    }))
    .unwrap();
    core.create_app(&app).await.unwrap();
    let user: UserInput = serde_json::from_value(serde_json::json!({"id": "alice"})).unwrap();
    core.create_user(&user).await.unwrap();
    let import: ImportToken = serde_json::from_value(serde_json::json!({
        "userId": "alice", "accessToken": "at-0", "refreshToken": "rt-0", "scopes": ["read"]
    }))
    .unwrap();
    let conn = core
        .import_tokens("cal", &[import], "test")
        .await
        .unwrap()
        .remove(0);

    // The provider rotates rt-0 into rt-1; the first write of it fails.
    flaky.fail_next_write.store(true, Ordering::SeqCst);
    core.force_refresh_connection(&conn.id).await.unwrap();
    assert!(
        !flaky.fail_next_write.load(Ordering::SeqCst),
        "the write failed once"
    );
    // The next refresh presents the rotated token.
    core.force_refresh_connection(&conn.id).await.unwrap();
    assert_eq!(*seen.lock().unwrap(), ["rt-0", "rt-1"]);
}
