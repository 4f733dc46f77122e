//! TLS: `sslmode` and `sslrootcert` with libpq's meaning, for the pool and the listener alike.
//!
//! The test server must offer TLS (`ssl = on`; Debian's default, with its self-signed "snakeoil"
//! certificate). The certificate it presents is read from its own settings (`ssl_cert_file`) and,
//! being self-signed, serves as the root that signed it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::Duration;

use portcullis_domain::{Change, ChangeEvent, StoreError};
use portcullis_store_postgres::{PgOptions, PostgresStore};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::ParsedCertificate;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

use crate::support::{TestDb, app, raw_client, server_address, server_url, stores_of};

/// The certificate file of the test server (checking that it offers TLS at all).
async fn server_certificate() -> PathBuf {
    let raw = raw_client(&server_url()).await;
    let setting = |name: &'static str| {
        let raw = &raw;
        async move {
            raw.query_one(&format!("SHOW {name}"), &[])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    assert_eq!(
        setting("ssl").await,
        "on",
        "the test PostgreSQL server does not offer TLS: set `ssl = on` (with a certificate) in \
         its postgresql.conf, as Debian does by default"
    );
    let mut path = PathBuf::from(setting("ssl_cert_file").await);
    if path.is_relative() {
        path = PathBuf::from(setting("data_directory").await).join(path);
    }
    assert!(
        path.is_file(),
        "the test server's certificate {} is not readable here",
        path.display()
    );
    path
}

/// `sslrootcert=<the server's own certificate>`, percent-encoded.
async fn own_root() -> String {
    format!(
        "sslrootcert={}",
        crate::support::encode(&server_certificate().await.display().to_string())
    )
}

/// A name that the server's certificate is valid for and that resolves here to loopback
/// addresses only (the machine's host name, or `localhost`), if there is one.
async fn certificate_host_name(certificate: &Path) -> Option<String> {
    let der = CertificateDer::from_pem_file(certificate).unwrap();
    let parsed = ParsedCertificate::try_from(&der).unwrap();
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty());
    for name in host_name.into_iter().chain(["localhost".to_owned()]) {
        let Ok(server_name) = ServerName::try_from(name.clone()) else {
            continue;
        };
        if rustls::client::verify_server_name(&parsed, &server_name).is_err() {
            continue;
        }
        let Ok(addresses) = tokio::net::lookup_host((name.as_str(), server_address().1)).await
        else {
            continue;
        };
        let addresses: Vec<_> = addresses.collect();
        if !addresses.is_empty() && addresses.iter().all(|a| a.ip().is_loopback()) {
            return Some(name);
        }
    }
    None
}

/// A throwaway self-signed CA named `name`, written as PEM: a root that signed nothing the
/// server has. With an RSA key and the name of the server's (self-signed, RSA) certificate, it
/// differs from it by its key only.
fn other_root(dir: &Path, file: &str, name: &str, rsa: bool) -> PathBuf {
    let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = if rsa {
        KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap()
    } else {
        KeyPair::generate().unwrap()
    };
    let certificate = params.self_signed(&key).unwrap();
    let path = dir.join(file);
    std::fs::write(&path, certificate.pem()).unwrap();
    path
}

/// The URL with a password the errors must not repeat (trust authentication ignores it; the
/// failures tested happen before authentication anyway).
fn with_secret(url: &str) -> String {
    url.replacen("://postgres@", "://postgres:hunter2@", 1)
}

/// Connecting to `url` fails as unavailable; the message, which must not repeat the password.
async fn unavailable(url: &str) -> String {
    match PostgresStore::connect(&with_secret(url), PgOptions::default()).await {
        Err(StoreError::Unavailable(m)) => {
            assert!(!m.contains("hunter2"), "{m}");
            m
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
}

/// Checks, per `pg_stat_ssl`, that the store's listener session and every pooled session on the
/// database (there is at least one) use TLS, or all do not.
async fn assert_sessions_use_tls(db: &TestDb, store: &PostgresStore, tls: bool) {
    let rows = db
        .raw()
        .await
        .query(
            "SELECT a.application_name, s.ssl FROM pg_stat_activity a
             JOIN pg_stat_ssl s ON s.pid = a.pid
             WHERE a.datname = $1 AND a.pid <> pg_backend_pid()",
            &[&db.name],
        )
        .await
        .unwrap();
    let listener_name = format!("portcullis-listener-{}", store.node_id());
    let (mut pool, mut listener) = (Vec::new(), Vec::new());
    for row in rows {
        let (name, ssl): (String, bool) = (row.get(0), row.get(1));
        if name == listener_name {
            listener.push(ssl);
        } else if name == "portcullis" {
            pool.push(ssl);
        }
    }
    assert_eq!(listener, [tls], "the listener's session");
    assert!(!pool.is_empty(), "no pooled session");
    assert!(pool.iter().all(|s| *s == tls), "pooled sessions: {pool:?}");
}

async fn next_event(rx: &mut broadcast::Receiver<ChangeEvent>) -> ChangeEvent {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an event within 5 s")
        .expect("the feed works")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_sslmode_every_session_is_plain() {
    let db = TestDb::create().await;
    for url in [db.url.clone(), db.url_with("sslmode=prefer")] {
        let store = PostgresStore::connect(&url, PgOptions::default())
            .await
            .unwrap();
        stores_of(&store).health.ping().await.unwrap();
        // The same check as below, which sees plain sessions for what they are.
        assert_sessions_use_tls(&db, &store, false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_encrypts_the_pool_and_the_listener_even_once_reconnected() {
    let db = TestDb::create().await;
    let store = PostgresStore::connect(&db.url_with("sslmode=require"), PgOptions::default())
        .await
        .unwrap();
    stores_of(&store).health.ping().await.unwrap();
    assert_sessions_use_tls(&db, &store, true).await;

    // The listener, lost and reconnected, is still encrypted.
    let feed = store.change_feed();
    let mut rx = stores_of(&store).changes.subscribe();
    let killed = db
        .raw()
        .await
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&format!("portcullis-listener-{}", store.node_id())],
        )
        .await
        .unwrap();
    assert_eq!(killed, 1);
    assert_eq!(next_event(&mut rx).await, ChangeEvent::Reset);
    assert_eq!(next_event(&mut rx).await, ChangeEvent::Reset);
    assert!(portcullis_domain::ChangeFeed::is_live(&feed));
    assert_sessions_use_tls(&db, &store, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_feed_crosses_nodes_over_tls() {
    let db = TestDb::create().await;
    let a = PostgresStore::connect(&db.url_with("sslmode=require"), PgOptions::default())
        .await
        .unwrap();
    let verified = format!("sslmode=verify-ca&{}", own_root().await);
    let b = PostgresStore::connect(&db.url_with(&verified), PgOptions::default())
        .await
        .unwrap();
    let (sa, sb) = (stores_of(&a), stores_of(&b));
    let (mut rx_a, mut rx_b) = (sa.changes.subscribe(), sb.changes.subscribe());
    sa.apps.insert_app(&app("from-a")).await.unwrap();
    assert_eq!(
        next_event(&mut rx_b).await,
        ChangeEvent::Changed(Change::App("from-a".into()))
    );
    sb.apps.insert_app(&app("from-b")).await.unwrap();
    assert_eq!(
        next_event(&mut rx_a).await,
        ChangeEvent::Changed(Change::App("from-a".into()))
    );
    assert_eq!(
        next_event(&mut rx_a).await,
        ChangeEvent::Changed(Change::App("from-b".into()))
    );
    assert_sessions_use_tls(&db, &a, true).await;
    assert_sessions_use_tls(&db, &b, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_ca_accepts_the_root_that_signed_the_server_whatever_its_name() {
    let db = TestDb::create().await;
    // 127.0.0.1 is not a name the certificate has: verify-ca does not care.
    let url = db.url_with(&format!("sslmode=verify-ca&{}", own_root().await));
    let store = PostgresStore::connect(&url, PgOptions::default())
        .await
        .unwrap();
    stores_of(&store).health.ping().await.unwrap();
    assert_sessions_use_tls(&db, &store, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_roots_are_refused() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let certificate = server_certificate().await;
    let name = certificate_host_name(&certificate)
        .await
        .unwrap_or_else(|| "localhost".to_owned());
    // A root of another name, and an impostor of the server's own name with another key (RSA, as
    // Debian's snakeoil key is: the server's signature is then checked, and found bad).
    let roots = [
        (
            other_root(dir.path(), "other.pem", "Portcullis Test Other CA", false),
            "UnknownIssuer",
        ),
        (
            other_root(dir.path(), "impostor.pem", &name, true),
            "BadSignature",
        ),
    ];
    for (root, reason) in roots {
        let root = crate::support::encode(&root.display().to_string());
        // require with a root file verifies the chain, as libpq's does.
        for mode in ["verify-ca", "verify-full", "require"] {
            let url = db.url_with(&format!("sslmode={mode}&sslrootcert={root}"));
            let m = unavailable(&url).await;
            assert!(
                m.contains("cannot connect to the database (with TLS"),
                "{m}"
            );
            assert!(m.contains("invalid peer certificate"), "{mode}: {m}");
            assert!(m.contains(reason), "{mode}: {m}");
        }
    }
}

#[tokio::test]
async fn unusable_root_files_are_unavailable_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let missing = dir.path().join("missing.pem");
    for (file, says) in [
        (&missing, "cannot be read"),
        (&not_pem, "holds no PEM certificate"),
        (&garbage, "cannot be a root"),
        (&dir.path().to_path_buf(), "cannot be read"),
    ] {
        let url = format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            server_url(),
            crate::support::encode(&file.display().to_string())
        );
        let m = unavailable(&url).await;
        assert!(m.contains(&file.display().to_string()), "{m}");
        assert!(m.contains("sslrootcert"), "{m}");
        assert!(m.contains(says), "{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_checks_the_host_name() {
    let db = TestDb::create().await;
    let certificate = server_certificate().await;
    let root = own_root().await;
    let (host, port) = server_address();

    // By address: the certificate names no IP address.
    let m = unavailable(&db.url_with(&format!("sslmode=verify-full&{root}"))).await;
    assert!(m.contains("not valid for name"), "{m}");
    assert!(m.contains(&host), "{m}");

    // By the name in the certificate: verified.
    let Some(name) = certificate_host_name(&certificate).await else {
        eprintln!(
            "SKIPPED: verify-full by name: neither this machine's host name nor localhost is a \
             name of {} that resolves here to loopback addresses only",
            certificate.display()
        );
        return;
    };
    let store = PostgresStore::connect(
        &db.url_at(&name, port, &format!("sslmode=verify-full&{root}")),
        PgOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("verify-full to {name}: {e}"));
    stores_of(&store).health.ping().await.unwrap();
    assert_sessions_use_tls(&db, &store, true).await;
}

/// The URLs that trust the system's store (no `sslrootcert`, or `sslrootcert=system`), to the
/// name of the server's certificate.
async fn system_store_urls(db: &TestDb) -> Vec<String> {
    let certificate = server_certificate().await;
    let (_, port) = server_address();
    let name = certificate_host_name(&certificate)
        .await
        .unwrap_or_else(|| "localhost".to_owned());
    [
        "sslmode=verify-full",
        "sslmode=verify-ca",
        "sslrootcert=system",
    ]
    .iter()
    .map(|query| db.url_at(&name, port, query))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_root_file_the_machines_trust_store_decides() {
    let db = TestDb::create().await;
    let server = CertificateDer::from_pem_file(server_certificate().await).unwrap();
    // What OpenSSL (and so libpq) trusts too: SSL_CERT_FILE / SSL_CERT_DIR, or the distribution's
    // bundle and certificate directory. Debian's hashes every PEM file in /etc/ssl/certs, the
    // snakeoil certificate included.
    let trusted = rustls_native_certs::load_native_certs()
        .certs
        .contains(&server);
    println!("the machine's trust store holds the test server's certificate: {trusted}");
    for url in system_store_urls(&db).await {
        if trusted {
            let store = PostgresStore::connect(&url, PgOptions::default())
                .await
                .unwrap();
            assert_sessions_use_tls(&db, &store, true).await;
        } else {
            let m = unavailable(&url).await;
            assert!(m.contains("UnknownIssuer"), "{m}");
        }
    }
}

/// Set (to a PEM file) in a child run of this test binary: the trust store it is to see.
const CHILD_TRUST_STORE: &str = "PORTCULLIS_TEST_CHILD_TRUST_STORE";

/// Runs [`system_store_child`] in a child process whose system trust store is only `pem`
/// (`SSL_CERT_FILE`; the environment cannot be changed in this multi-threaded process), and
/// checks that it ran and passed.
fn run_child_with_trust_store(pem: &Path, expect: &str) {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "tls::system_store_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SSL_CERT_FILE", pem)
        .env_remove("SSL_CERT_DIR")
        .env(CHILD_TRUST_STORE, expect)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains("1 passed"), "the child ran no test: {text}");
}

#[test]
fn a_system_store_without_the_servers_root_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = other_root(dir.path(), "store.pem", "Portcullis Test Public CA", false);
    run_child_with_trust_store(&store, "UnknownIssuer");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    run_child_with_trust_store(
        &empty,
        "the system's trust store holds no usable root certificate",
    );
}

/// The child half of [`a_system_store_without_the_servers_root_is_refused`]; passes at once when
/// not run as its child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_store_child() {
    let Ok(expected) = std::env::var(CHILD_TRUST_STORE) else {
        return;
    };
    let db = TestDb::create().await;
    for url in system_store_urls(&db).await {
        let m = unavailable(&url).await;
        assert!(m.contains(&expected), "{m}");
    }
}

#[tokio::test]
async fn a_server_without_tls_is_refused_never_used_in_plain() {
    // A server that answers the TLS request with "no".
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 8];
        socket.read_exact(&mut request).await.unwrap();
        socket.write_all(b"N").await.unwrap();
        // Whatever the client sends once told "no TLS", until it closes.
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut rest)).await;
        (request, rest)
    });
    let m = unavailable(&format!(
        "postgres://postgres@127.0.0.1:{port}/postgres?sslmode=require"
    ))
    .await;
    assert!(m.contains("does not support TLS"), "{m}");
    let (request, rest) = server.await.unwrap();
    // SSLRequest: length 8, code 80877103.
    assert_eq!(request, [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
    assert!(
        rest.is_empty(),
        "the client went on in plain text: {rest:?}"
    );
}

/// Every warning of this crate, with the thread that logged it.
static WARNINGS: Mutex<Vec<(ThreadId, String)>> = Mutex::new(Vec::new());

/// The process-wide subscriber filling [`WARNINGS`]. (A thread's own subscriber would miss the
/// call sites that other tests' threads reached first: tracing caches their interest
/// process-wide.)
struct Warnings;

struct Message<'a>(&'a mut String);

impl tracing::field::Visit for Message<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            *self.0 = format!("{value:?}");
        }
    }
}

impl tracing::Subscriber for Warnings {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() == tracing::Level::WARN
            && metadata.target().starts_with("portcullis_store_postgres")
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = String::new();
        event.record(&mut Message(&mut text));
        WARNINGS
            .lock()
            .unwrap()
            .push((std::thread::current().id(), text));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// The warnings logged so far on this thread that contain `text`.
fn warnings_here(text: &str) -> Vec<String> {
    let here = std::thread::current().id();
    WARNINGS
        .lock()
        .unwrap()
        .iter()
        .filter(|(thread, w)| *thread == here && w.contains(text))
        .map(|(_, w)| w.clone())
        .collect()
}

// One thread: the store's tasks log on this test's thread.
#[tokio::test(flavor = "current_thread")]
async fn require_warns_once_that_the_server_is_not_authenticated() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| tracing::subscriber::set_global_default(Warnings).unwrap());
    let db = TestDb::create().await;
    let about_require = || warnings_here("not authenticated");

    let verified = db.url_with(&format!("sslmode=verify-ca&{}", own_root().await));
    drop(
        PostgresStore::connect(&verified, PgOptions::default())
            .await
            .unwrap(),
    );
    assert_eq!(about_require(), Vec::<String>::new());

    let store = PostgresStore::connect(&db.url_with("sslmode=require"), PgOptions::default())
        .await
        .unwrap();
    // More connections: several pooled ones, a listener reconnected.
    let stores = stores_of(&store);
    let pings = (0..4).map(|_| stores.health.ping());
    for ping in futures_util::future::join_all(pings).await {
        ping.unwrap();
    }
    let mut rx = stores.changes.subscribe();
    db.raw()
        .await
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&format!("portcullis-listener-{}", store.node_id())],
        )
        .await
        .unwrap();
    assert_eq!(next_event(&mut rx).await, ChangeEvent::Reset);
    assert_eq!(next_event(&mut rx).await, ChangeEvent::Reset);
    let said = about_require();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].contains("sslmode=verify-full"), "{}", said[0]);
}
