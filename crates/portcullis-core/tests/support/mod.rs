//! What the core tests share: services on a SQLite store in a temporary directory, a stand-in
//! for an identity provider's JWKS and an OAuth provider's token endpoint that counts what it is
//! asked, a connection store that counts lease attempts, and a world of one user connected to one
//! app on a manual clock.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test support: each test uses a part"
)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use portcullis_core::manage::{AppInput, IssuerInput, UserInput};
use portcullis_core::{
    Core, CoreOptions, Granted, ImportToken, Refusal, Settings, Surface, TokenRequest,
};
use portcullis_crypto::envelope::MasterKey;
use portcullis_crypto::jws::{Algorithm, JwkSet, SigningKey};
use portcullis_domain::{
    Ciphertext, ConnectionKey, ConnectionRecord, ConnectionStore, LocalChangeFeed, ManualClock,
    PageRequest, RefreshFailure, StoreError, Stores, SystemClock, Timestamp, TokenSet,
};
use portcullis_store_sqlite::SqliteStore;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A SQLite store at `dir/p.db`: the set of stores, the backend, and its change feed.
pub fn sqlite_stores(dir: &std::path::Path) -> (Stores, Arc<SqliteStore>, Arc<LocalChangeFeed>) {
    let store = Arc::new(SqliteStore::open(&dir.join("p.db")).unwrap());
    let feed = Arc::new(store.change_feed());
    (
        Stores::from_backend(store.clone(), feed.clone()),
        store,
        feed,
    )
}

/// The services on `stores`, with `settings` and a fresh master key.
pub async fn start(stores: Stores, settings: Settings) -> Arc<Core> {
    start_with_clock(stores, settings, Arc::new(SystemClock)).await
}

/// The same on the clock given (a [`portcullis_domain::ManualClock`] for time-dependent tests).
pub async fn start_with_clock(
    stores: Stores,
    settings: Settings,
    clock: Arc<dyn portcullis_domain::Clock>,
) -> Arc<Core> {
    Core::start(
        stores,
        CoreOptions {
            settings,
            master_keys: vec![MasterKey::generate("test").unwrap()],
            config_issuers: vec![],
            clock,
        },
    )
    .await
    .unwrap()
}

/// Where the manual clock of the tests starts.
pub const T0: Timestamp = Timestamp::from_secs(1_800_000_000);

/// The issuer of the world's inbound tokens.
pub const ISSUER: &str = "https://issuer.test";

/// The scope an inbound token needs to fetch outbound tokens (the default setting).
pub const FETCH_SCOPE: &str = "outbound.token.fetch";

/// A stand-in on a loopback port for an identity provider's JWKS (`GET /jwks`, the keys last
/// published) and an OAuth provider's token endpoint (`POST /token`, which rotates refresh
/// tokens: its answer `n` carries `at-n` and `rt-n`, valid an hour). It counts both.
#[derive(Clone)]
pub struct Fake {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    jwks: Arc<Mutex<JwkSet>>,
    jwks_fetches: Arc<AtomicUsize>,
    refresh_tokens: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    /// Listens until the test ends.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = Self {
            url: format!("http://{}", listener.local_addr().unwrap()),
            jwks: Arc::default(),
            jwks_fetches: Arc::default(),
            refresh_tokens: Arc::default(),
        };
        let server = fake.clone();
        tokio::spawn(async move {
            loop {
                let (sock, _) = listener.accept().await.unwrap();
                tokio::spawn(server.clone().serve(sock));
            }
        });
        fake
    }

    /// Publishes these keys (only these) in the JWKS.
    pub fn publish(&self, keys: &[&SigningKey]) {
        *self.jwks.lock().unwrap() = JwkSet {
            keys: keys.iter().map(|k| k.public_jwk()).collect(),
        };
    }

    /// How many times the JWKS was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }

    /// The refresh tokens presented to the token endpoint, in order.
    pub fn refreshes(&self) -> Vec<String> {
        self.refresh_tokens.lock().unwrap().clone()
    }

    /// Answers the requests of one connection (HTTP/1.1, kept alive).
    async fn serve(self, mut sock: tokio::net::TcpStream) {
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
            let path = text
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
            buf.drain(..end + 4 + length);
            let (status, json) = self.answer(&path, &body);
            let resp = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}",
                json.len()
            );
            if sock.write_all(resp.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    fn answer(&self, path: &str, body: &str) -> (&'static str, String) {
        match path {
            "/jwks" => {
                self.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                let set = self.jwks.lock().unwrap().clone();
                ("200 OK", serde_json::to_string(&set).unwrap())
            }
            "/token" => {
                let rt = url::form_urlencoded::parse(body.as_bytes())
                    .find(|(k, _)| k == "refresh_token")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let n = {
                    let mut seen = self.refresh_tokens.lock().unwrap();
                    seen.push(rt);
                    seen.len()
                };
                (
                    "200 OK",
                    format!(
                        r#"{{"access_token":"at-{n}","refresh_token":"rt-{n}","token_type":"Bearer","expires_in":3600}}"#
                    ),
                )
            }
            _ => ("404 Not Found", "{}".to_owned()),
        }
    }
}

/// The SQLite connection store, counting the refresh leases and the reads asked of it; its next
/// `complete_refresh` fails when asked to; it says its reads overlap when told to (as a
/// database server's do).
pub struct ObservedConnections {
    inner: Arc<SqliteStore>,
    /// Fail the next `complete_refresh` (once).
    pub fail_next_write: AtomicBool,
    /// What `reads_overlap` answers.
    pub overlap: AtomicBool,
    lease_attempts: AtomicUsize,
    by_key: AtomicUsize,
    by_identity: AtomicUsize,
}

impl ObservedConnections {
    /// Observes `inner`.
    pub fn new(inner: Arc<SqliteStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            fail_next_write: AtomicBool::new(false),
            overlap: AtomicBool::new(false),
            lease_attempts: AtomicUsize::new(0),
            by_key: AtomicUsize::new(0),
            by_identity: AtomicUsize::new(0),
        })
    }

    /// How many connections were read by key and by identity so far.
    pub fn reads(&self) -> (usize, usize) {
        (
            self.by_key.load(Ordering::SeqCst),
            self.by_identity.load(Ordering::SeqCst),
        )
    }

    /// How many times a refresh lease was asked for (taken or not).
    pub fn lease_attempts(&self) -> usize {
        self.lease_attempts.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl ConnectionStore for ObservedConnections {
    async fn connection(
        &self,
        key: &ConnectionKey,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        self.by_key.fetch_add(1, Ordering::SeqCst);
        self.inner.connection(key).await
    }
    async fn connection_by_identity(
        &self,
        app_id: &str,
        issuer: &str,
        subject: &str,
        tenant_id: Option<&str>,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        self.by_identity.fetch_add(1, Ordering::SeqCst);
        self.inner
            .connection_by_identity(app_id, issuer, subject, tenant_id)
            .await
    }
    fn reads_overlap(&self) -> bool {
        self.overlap.load(Ordering::SeqCst)
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
        self.lease_attempts.fetch_add(1, Ordering::SeqCst);
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
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        self.inner
            .connections_sealed_with_other_key(key_id, after, limit)
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

/// Creates the OAuth app `cal` (scope `read`) on the fake's token endpoint, and the user
/// `alice`, linked to the subject `alice` of [`ISSUER`].
pub async fn app_and_user(core: &Core, fake: &Fake) {
    let app: AppInput = serde_json::from_value(json!({
        "id": "cal", "name": "Cal", "type": "oauth", "clientId": "c", "clientSecret": "s",
        "authorizationUrl": format!("{}/authorize", fake.url),
        "tokenUrl": format!("{}/token", fake.url),
        "scopes": [{"name": "read"}]
    }))
    .unwrap();
    core.create_app(&app).await.unwrap();
    let user: UserInput = serde_json::from_value(json!({
        "id": "alice", "identities": [{"issuer": ISSUER, "subject": "alice"}]
    }))
    .unwrap();
    core.create_user(&user).await.unwrap();
}

/// Imports alice's tokens for `cal` (`at-0`, `rt-0`), the access token expiring at `expires_at`;
/// returns the connection's id.
pub async fn import_alice(core: &Core, expires_at: Option<Timestamp>) -> String {
    let import: ImportToken = serde_json::from_value(json!({
        "userId": "alice", "accessToken": "at-0", "refreshToken": "rt-0", "scopes": ["read"],
        "expiresAt": expires_at,
    }))
    .unwrap();
    core.import_tokens("cal", &[import], "test")
        .await
        .unwrap()
        .remove(0)
        .id
}

/// Trusts [`ISSUER`], whose keys are the fake's JWKS (audience `mcp`, ES256).
pub async fn trust_issuer(core: &Core, fake: &Fake) {
    let issuer: IssuerInput = serde_json::from_value(json!({
        "issuer": ISSUER, "jwksUrl": format!("{}/jwks", fake.url),
        "audiences": ["mcp"], "algorithms": ["ES256"]
    }))
    .unwrap();
    core.create_issuer(&issuer).await.unwrap();
}

/// A token of [`ISSUER`] for `alice`, signed with `key`, carrying `scope`, issued at [`T0`]
/// and valid for a day.
pub fn inbound_token(key: &SigningKey, scope: &str) -> String {
    let now = T0.as_secs();
    key.sign_jwt(
        &json!({"iss": ISSUER, "aud": "mcp", "sub": "alice", "scope": scope,
                "iat": now, "exp": now + 86_400}),
        None,
    )
    .unwrap()
}

/// A new ES256 signing key (a kid of its own).
pub fn signing_key() -> SigningKey {
    SigningKey::generate(Algorithm::ES256).unwrap()
}

/// Asks for a `read` token of `cal` with the bearer token given.
pub async fn fetch(core: &Core, bearer: &str) -> Result<Granted, Refusal> {
    core.fetch_token(
        Some(bearer),
        &TokenRequest {
            app_id: "cal".into(),
            scopes: vec!["read".into()],
            tenant_id: None,
            force_refresh: false,
        },
        &Surface::TokenEndpoint,
    )
    .await
}

/// The access token handed out.
pub fn access_token(granted: &Granted) -> &str {
    granted.token.access_token.as_ref().unwrap().expose()
}

/// Services on a manual clock at [`T0`], over a SQLite store whose connection store is observed,
/// trusting [`ISSUER`] (keys on the fake), with the app `cal` and the user `alice`.
pub struct World {
    /// The services.
    pub core: Arc<Core>,
    /// Their clock.
    pub clock: Arc<ManualClock>,
    /// The issuer's JWKS and the provider.
    pub fake: Fake,
    /// A second handle on the database, as another node would have.
    pub store: Arc<SqliteStore>,
    /// The connection store the services use.
    pub connections: Arc<ObservedConnections>,
    /// The issuer's signing key, published in its JWKS.
    pub key: SigningKey,
    _dir: tempfile::TempDir,
}

impl World {
    /// Builds it with `settings`.
    pub async fn start(settings: Settings) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (mut stores, store, _) = sqlite_stores(dir.path());
        let connections = ObservedConnections::new(store.clone());
        stores.connections = connections.clone();
        let clock = Arc::new(ManualClock::new(T0));
        let core = start_with_clock(stores, settings, clock.clone()).await;
        let fake = Fake::start().await;
        let key = signing_key();
        fake.publish(&[&key]);
        trust_issuer(&core, &fake).await;
        app_and_user(&core, &fake).await;
        Self {
            core,
            clock,
            fake,
            store,
            connections,
            key,
            _dir: dir,
        }
    }

    /// A token for alice allowed to fetch outbound tokens.
    pub fn token(&self) -> String {
        inbound_token(&self.key, FETCH_SCOPE)
    }
}

/// Yields to the background tasks until `done` holds; fails the test if it does not within ten
/// seconds (something is stuck).
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
