//! TLS for the store's connections (the pool's and the listener's alike): rustls on the aws-lc-rs
//! provider, configured from the URL's [`TlsPolicy`].
//!
//! `verify-full` is rustls's ordinary WebPKI verification. The two weaker modes that libpq has
//! need verifiers of their own, each named for what it gives up:
//! - [`DangerAcceptAnyServerCertificate`] (`require`): no certificate check at all;
//! - [`DangerIgnoreServerName`] (`verify-ca`): the chain is checked, the host name is not.
//!
//! Both still check the handshake's signature against the certificate presented, so the server
//! must at least hold that certificate's key.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod};
use futures_util::Stream;
use portcullis_domain::StoreError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::{AsyncMessage, Client, Connection, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{TlsPolicy, TrustedRoots};

/// The ALPN protocol PostgreSQL 17 expects of TLS clients (libpq sends it; older servers ignore
/// it).
const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// Opens connections as a [`TlsPolicy`] says. Cheap to clone (the TLS configuration is shared).
#[derive(Clone)]
pub(crate) enum Connector {
    /// Plain TCP.
    Plain,
    /// TLS, with the verification the policy asked for built into the configuration.
    Tls(MakeRustlsConnect),
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Plain => "Connector::Plain",
            Self::Tls(_) => "Connector::Tls",
        })
    }
}

/// The asynchronous messages of one connection (notifications, notices), whatever its transport.
pub(crate) type Messages =
    Pin<Box<dyn Stream<Item = Result<AsyncMessage, tokio_postgres::Error>> + Send>>;

impl Connector {
    /// The connector for `policy`: reads the trusted roots now, so that a missing or unreadable
    /// `sslrootcert` fails at start (`Unavailable`, naming the file).
    pub(crate) fn new(policy: &TlsPolicy) -> Result<Self, StoreError> {
        Ok(match client_config(policy)? {
            None => Self::Plain,
            Some(config) => Self::Tls(MakeRustlsConnect::new(config)),
        })
    }

    /// The pool's connection manager.
    pub(crate) fn manager(&self, config: tokio_postgres::Config) -> Manager {
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        match self {
            Self::Plain => Manager::from_config(config, NoTls, manager_config),
            Self::Tls(tls) => Manager::from_config(config, tls.clone(), manager_config),
        }
    }

    /// Opens one connection outside the pool: its client, and the stream of its messages (which
    /// must be polled for the connection to make progress).
    pub(crate) async fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> Result<(Client, Messages), tokio_postgres::Error> {
        match self {
            Self::Plain => {
                let (client, connection) = config.connect(NoTls).await?;
                Ok((client, messages(connection)))
            }
            Self::Tls(tls) => {
                let (client, connection) = config.connect(tls.clone()).await?;
                Ok((client, messages(connection)))
            }
        }
    }
}

fn messages<S, T>(mut connection: Connection<S, T>) -> Messages
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    Box::pin(futures_util::stream::poll_fn(move |cx| {
        connection.poll_message(cx)
    }))
}

/// The rustls configuration for `policy` (none for plain connections).
pub(crate) fn client_config(policy: &TlsPolicy) -> Result<Option<ClientConfig>, StoreError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Backend(format!("cannot set up TLS: {e}")))?;
    let mut config = match policy {
        TlsPolicy::Plain => return Ok(None),
        TlsPolicy::Unauthenticated => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(DangerAcceptAnyServerCertificate::new(
                &provider,
            )))
            .with_no_client_auth(),
        TlsPolicy::VerifyCa(roots) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(DangerIgnoreServerName::new(
                load_roots(roots)?,
                &provider,
            )))
            .with_no_client_auth(),
        TlsPolicy::VerifyFull(roots) => builder
            .with_root_certificates(load_roots(roots)?)
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    Ok(Some(config))
}

/// The roots a chain must end in. Never empty.
fn load_roots(roots: &TrustedRoots) -> Result<RootCertStore, StoreError> {
    match roots {
        TrustedRoots::File(path) => roots_from_file(path),
        TrustedRoots::System => system_roots(),
    }
}

/// Every certificate of a PEM file (`sslrootcert`); each must be usable as a root.
fn roots_from_file(path: &Path) -> Result<RootCertStore, StoreError> {
    let unusable = |why: String| {
        StoreError::Unavailable(format!(
            "the database's root certificate file (sslrootcert) {} {why}",
            path.display()
        ))
    };
    let pem = std::fs::read(path).map_err(|e| unusable(format!("cannot be read: {e}")))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unusable(format!("is not a PEM file of certificates: {e}")))?;
    if certificates.is_empty() {
        return Err(unusable("holds no PEM certificate".into()));
    }
    let mut store = RootCertStore::empty();
    for certificate in certificates {
        store
            .add(certificate)
            .map_err(|e| unusable(format!("holds a certificate that cannot be a root: {e}")))?;
    }
    Ok(store)
}

/// The operating system's trusted roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured).
fn system_roots() -> Result<RootCertStore, StoreError> {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::debug!(%error, "a system root certificate could not be loaded");
    }
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(StoreError::Unavailable(format!(
            "the system's trust store holds no usable root certificate{why}; name the database's root certificate with sslrootcert"
        )));
    }
    Ok(store)
}

/// `sslmode=require`: accepts whatever certificate the server presents. The connection is
/// encrypted, but anyone able to intercept it can impersonate the server (and read everything).
#[derive(Debug)]
pub(crate) struct DangerAcceptAnyServerCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl DangerAcceptAnyServerCertificate {
    pub(crate) fn new(provider: &CryptoProvider) -> Self {
        Self {
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for DangerAcceptAnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `sslmode=verify-ca`: the certificate must chain to a trusted root (and be valid now, for
/// server authentication), but may name any host: any server holding a certificate from these
/// roots is accepted as this one.
#[derive(Debug)]
pub(crate) struct DangerIgnoreServerName {
    roots: RootCertStore,
    algorithms: WebPkiSupportedAlgorithms,
}

impl DangerIgnoreServerName {
    pub(crate) fn new(roots: RootCertStore, provider: &CryptoProvider) -> Self {
        Self {
            roots,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for DangerIgnoreServerName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let certificate = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &certificate,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType,
        date_time_ymd,
    };
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::{ClientConnection, ServerConfig, ServerConnection};

    use super::*;

    /// A certificate authority, its certificate also written to a PEM file.
    struct Ca {
        issuer: CertifiedIssuer<'static, KeyPair>,
        file: PathBuf,
    }

    fn ca_params(name: &str) -> CertificateParams {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
    }

    fn root(dir: &Path, name: &str) -> Ca {
        let issuer =
            CertifiedIssuer::self_signed(ca_params(name), KeyPair::generate().unwrap()).unwrap();
        let file = dir.join(format!("{name}.pem"));
        std::fs::write(&file, issuer.pem()).unwrap();
        Ca { issuer, file }
    }

    /// A server's chain and key: a certificate for `names` (DNS names or IP addresses) signed by
    /// `issuer`, then `intermediates`.
    struct Server {
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    }

    fn server(
        issuer: &CertifiedIssuer<'static, KeyPair>,
        names: &[&str],
        expired: bool,
        intermediates: &[&CertifiedIssuer<'static, KeyPair>],
    ) -> Server {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*n).try_into().unwrap()),
            })
            .collect();
        if expired {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let leaf = params.signed_by(&key, issuer).unwrap();
        let mut chain = vec![leaf.der().clone()];
        chain.extend(intermediates.iter().map(|i| i.der().clone()));
        Server {
            chain,
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }

    /// Feeds `bytes` to a connection; its error, if any.
    fn feed<C, D>(conn: &mut C, mut bytes: &[u8]) -> Result<(), rustls::Error>
    where
        C: std::ops::DerefMut<Target = rustls::ConnectionCommon<D>>,
        D: rustls::SideData,
    {
        while !bytes.is_empty() {
            conn.read_tls(&mut bytes).unwrap();
            conn.process_new_packets()?;
        }
        Ok(())
    }

    /// A TLS handshake in memory between a client configured for `policy`, connecting to `name`,
    /// and a server presenting `server`: the client's verdict.
    fn handshake(policy: &TlsPolicy, name: &str, server: Server) -> Result<(), rustls::Error> {
        let client_config = client_config(policy).unwrap().unwrap();
        let server_config = ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(server.chain, server.key)
        .unwrap();
        let mut client = ClientConnection::new(
            Arc::new(client_config),
            ServerName::try_from(name.to_owned()).unwrap(),
        )?;
        let mut server = ServerConnection::new(Arc::new(server_config)).unwrap();
        for _ in 0..10 {
            let mut bytes = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut bytes).unwrap();
            }
            // The server's own verdict on what the client sent (an alert) is not the question.
            let _ = feed(&mut server, &bytes);
            bytes.clear();
            while server.wants_write() {
                server.write_tls(&mut bytes).unwrap();
            }
            feed(&mut client, &bytes)?;
            if !client.is_handshaking() {
                assert_eq!(client.alpn_protocol(), None, "the test server has no ALPN");
                return Ok(());
            }
        }
        panic!("the handshake did not finish");
    }

    fn invalid_certificate(result: Result<(), rustls::Error>) -> String {
        match result {
            Err(rustls::Error::InvalidCertificate(e)) => format!("{e:?}"),
            other => panic!("expected an invalid certificate, got {other:?}"),
        }
    }

    struct Pki {
        _dir: tempfile::TempDir,
        a: Ca,
        b: Ca,
    }

    fn pki() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let a = root(dir.path(), "Root A");
        let b = root(dir.path(), "Root B");
        Pki { _dir: dir, a, b }
    }

    #[test]
    fn verify_full_checks_the_chain_and_the_name() {
        let pki = pki();
        let policy = TlsPolicy::VerifyFull(TrustedRoots::File(pki.a.file.clone()));
        let good = || server(&pki.a.issuer, &["db.example", "127.0.0.1"], false, &[]);
        handshake(&policy, "db.example", good()).unwrap();
        handshake(&policy, "127.0.0.1", good()).unwrap();
        let e = invalid_certificate(handshake(&policy, "other.example", good()));
        assert!(e.contains("NotValidForName"), "{e}");
        let e = invalid_certificate(handshake(&policy, "127.0.0.2", good()));
        assert!(e.contains("NotValidForName"), "{e}");
        let by_b = server(&pki.b.issuer, &["db.example"], false, &[]);
        let e = invalid_certificate(handshake(&policy, "db.example", by_b));
        assert_eq!(e, "UnknownIssuer");
        let expired = server(&pki.a.issuer, &["db.example"], true, &[]);
        let e = invalid_certificate(handshake(&policy, "db.example", expired));
        assert!(e.contains("Expired"), "{e}");
    }

    #[test]
    fn verify_ca_checks_the_chain_but_not_the_name() {
        let pki = pki();
        let policy = TlsPolicy::VerifyCa(TrustedRoots::File(pki.a.file.clone()));
        let good = || server(&pki.a.issuer, &["db.example"], false, &[]);
        handshake(&policy, "db.example", good()).unwrap();
        handshake(&policy, "other.example", good()).unwrap();
        handshake(&policy, "192.0.2.1", good()).unwrap();
        // Through an intermediate the server sends.
        let intermediate = CertifiedIssuer::signed_by(
            ca_params("Intermediate A"),
            KeyPair::generate().unwrap(),
            &pki.a.issuer,
        )
        .unwrap();
        let chained = server(&intermediate, &["db.example"], false, &[&intermediate]);
        handshake(&policy, "anything.example", chained).unwrap();
        // Not without it.
        let unchained = server(&intermediate, &["db.example"], false, &[]);
        let e = invalid_certificate(handshake(&policy, "db.example", unchained));
        assert_eq!(e, "UnknownIssuer");
        let by_b = server(&pki.b.issuer, &["db.example"], false, &[]);
        let e = invalid_certificate(handshake(&policy, "db.example", by_b));
        assert_eq!(e, "UnknownIssuer");
        let expired = server(&pki.a.issuer, &["db.example"], true, &[]);
        let e = invalid_certificate(handshake(&policy, "db.example", expired));
        assert!(e.contains("Expired"), "{e}");
    }

    #[test]
    fn require_accepts_any_certificate() {
        let pki = pki();
        for name in ["db.example", "other.example", "192.0.2.1"] {
            for (issuer, expired) in [(&pki.a.issuer, false), (&pki.b.issuer, true)] {
                let presented = server(issuer, &["db.example"], expired, &[]);
                handshake(&TlsPolicy::Unauthenticated, name, presented).unwrap();
            }
        }
    }

    #[test]
    fn plain_has_no_tls_configuration_and_tls_offers_postgresql() {
        assert!(client_config(&TlsPolicy::Plain).unwrap().is_none());
        let config = client_config(&TlsPolicy::Unauthenticated).unwrap().unwrap();
        assert_eq!(config.alpn_protocols, [b"postgresql".to_vec()]);
        assert!(matches!(
            Connector::new(&TlsPolicy::Plain),
            Ok(Connector::Plain)
        ));
    }

    #[test]
    fn root_files_must_hold_usable_certificates() {
        let pki = pki();
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        // Several roots in one file: each is trusted.
        let both = write(
            "both.pem",
            &format!("{}{}", pki.a.issuer.pem(), pki.b.issuer.pem()),
        );
        assert_eq!(roots_from_file(&both).unwrap().len(), 2);
        let policy = TlsPolicy::VerifyFull(TrustedRoots::File(both));
        for issuer in [&pki.a.issuer, &pki.b.issuer] {
            handshake(
                &policy,
                "db.example",
                server(issuer, &["db.example"], false, &[]),
            )
            .unwrap();
        }
        let cases = [
            (dir.path().join("missing.pem"), "cannot be read"),
            (dir.path().to_path_buf(), "cannot be read"),
            (write("empty.pem", ""), "holds no PEM certificate"),
            (
                write("key.pem", &KeyPair::generate().unwrap().serialize_pem()),
                "holds no PEM certificate",
            ),
            (
                write(
                    "bad.pem",
                    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                ),
                "cannot be a root",
            ),
            (
                write(
                    "broken.pem",
                    "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
                ),
                "is not a PEM file",
            ),
        ];
        for (path, says) in cases {
            let policy = TlsPolicy::VerifyCa(TrustedRoots::File(path.clone()));
            match Connector::new(&policy) {
                Err(StoreError::Unavailable(m)) => {
                    assert!(m.contains(says), "{}: {m}", path.display());
                    assert!(m.contains(&path.display().to_string()), "{m}");
                }
                other => panic!("{}: expected unavailable, got {other:?}", path.display()),
            }
        }
    }
}
