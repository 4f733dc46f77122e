//! Test databases, stores on them, and records to write.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_domain::{
    AppKind, AppRecord, Ciphertext, ConnectionKey, ConnectionRecord, ConnectionStatus,
    CredentialKind, OAuthSettings, Stores, Timestamp,
};
use portcullis_store_conformance::TestStores;
use portcullis_store_postgres::{PgOptions, PostgresStore};
use tokio_postgres::NoTls;
use tokio_postgres::config::Host;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The server the tests run against.
pub fn server_url() -> String {
    std::env::var("PORTCULLIS_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

fn unreachable(e: &tokio_postgres::Error) -> String {
    format!(
        "cannot reach the test PostgreSQL server named by PORTCULLIS_TEST_DATABASE_URL \
         (default {DEFAULT_URL}): {e:?}. Start the local one with \
         `pg_ctlcluster --skip-systemctl-redirect 15 main start` (or `pg_ctlcluster 15 main start`)"
    )
}

/// A plain client of the server (outside any store), for setting up and inspecting.
pub async fn raw_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("{}", unreachable(&e)));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new, empty database, dropped (with its sessions) when this is dropped.
pub struct TestDb {
    /// The database's name.
    pub name: String,
    /// A URL of it.
    pub url: String,
    server: String,
}

impl TestDb {
    pub async fn create() -> Self {
        let server = server_url();
        let name = format!("portcullis_test_{}", random_hex());
        raw_client(&server)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let separator = if server.contains('?') { '&' } else { '?' };
        Self {
            url: format!("{server}{separator}dbname={name}"),
            name,
            server,
        }
    }

    /// A store (a node) on this database.
    pub async fn connect(&self) -> PostgresStore {
        self.connect_with(PgOptions::default()).await
    }

    /// A store with these options.
    pub async fn connect_with(&self, options: PgOptions) -> PostgresStore {
        PostgresStore::connect(&self.url, options)
            .await
            .expect("the store connects")
    }

    /// A URL of this database on `host`:`port` of the test server's user (and password), with
    /// these query parameters.
    pub fn url_at(&self, host: &str, port: u16, query: &str) -> String {
        let server = tokio_postgres::Config::from_str(&self.server).unwrap();
        let user = encode(server.get_user().unwrap_or("postgres"));
        let password = server
            .get_password()
            .map(|p| format!(":{}", encode(&String::from_utf8_lossy(p))))
            .unwrap_or_default();
        format!(
            "postgres://{user}{password}@{host}:{port}/{}?{query}",
            self.name
        )
    }

    /// A URL of this database, with these query parameters added.
    pub fn url_with(&self, query: &str) -> String {
        format!("{}&{query}", self.url)
    }

    /// A plain client of this database.
    pub async fn raw(&self) -> tokio_postgres::Client {
        raw_client(&self.url).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // `Drop` is synchronous and may run on a runtime's thread: drop the database from a thread
        // of its own, with a runtime of its own, and wait for it.
        let (server, name) = (self.server.clone(), self.name.clone());
        let outcome = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&server, NoTls)
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .map_err(|e| format!("{e:?}"))
            })
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop the test database {}: {e}", self.name),
            Err(_) => eprintln!("could not drop the test database {}", self.name),
        }
    }
}

/// Percent-encodes a URL component.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The test server's host and port.
pub fn server_address() -> (String, u16) {
    let server = tokio_postgres::Config::from_str(&server_url()).unwrap();
    let host = match server.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    (host, server.get_ports().first().copied().unwrap_or(5432))
}

/// The stores of one node.
pub fn stores_of(store: &PostgresStore) -> Stores {
    Stores::from_backend(Arc::new(store.clone()), Arc::new(store.change_feed()))
}

/// A fresh, empty set of stores for the conformance suite.
pub async fn fresh() -> TestStores {
    let db = TestDb::create().await;
    let store = db.connect().await;
    TestStores {
        stores: stores_of(&store),
        guard: Box::new(db),
    }
}

/// The same, its connections (pool and listener) over TLS (`sslmode=require`).
pub async fn fresh_over_tls() -> TestStores {
    let db = TestDb::create().await;
    let store = PostgresStore::connect(&db.url_with("sslmode=require"), PgOptions::default())
        .await
        .expect("the store connects over TLS");
    TestStores {
        stores: stores_of(&store),
        guard: Box::new(db),
    }
}

pub const T0: Timestamp = Timestamp::from_millis(1_790_000_000_000);

/// An app to write.
pub fn app(id: &str) -> AppRecord {
    AppRecord {
        id: id.to_owned(),
        name: format!("App {id}"),
        description: None,
        kind: AppKind::OAuth,
        settings: OAuthSettings::default(),
        client_secret: None,
        revision: 1,
        created_at: T0,
        updated_at: T0,
    }
}

/// Waits for `check` to hold, polling, for at most `limit`.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    check()
}

/// A connection to write.
pub fn connection(id: &str, key: ConnectionKey) -> ConnectionRecord {
    ConnectionRecord {
        id: id.to_owned(),
        key,
        kind: CredentialKind::OAuth,
        status: ConnectionStatus::Active,
        scopes: vec!["read".to_owned()],
        token_type: Some("Bearer".to_owned()),
        access: Ciphertext {
            key_id: 1,
            bytes: b"access".to_vec(),
        },
        refresh: None,
        expires_at: None,
        provider_subject: None,
        version: 0,
        lease: None,
        last_refresh_at: None,
        last_refresh_error: None,
        last_used_at: None,
        granted_by: None,
        created_at: T0,
        updated_at: T0,
    }
}

/// The versions of the migrations this build ships (`migrations/NNNN_*.sql`), in order.
pub fn migration_versions() -> Vec<i64> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    let mut versions: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.split('_').next().unwrap().parse().unwrap()
        })
        .collect();
    versions.sort_unstable();
    versions
}
