//! The connection URL and the store's options.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use portcullis_domain::StoreError;
use tokio_postgres::config::SslMode;

use crate::error::describe;

/// How the store connects and how its pool and listener behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// Most pooled connections this node opens (default 16). Each node also holds one listener
    /// connection besides these.
    pub pool_size: usize,
    /// How long opening one connection may take before the server counts as unreachable
    /// (default 5 s).
    pub connect_timeout: Duration,
    /// How long a call waits for a pooled connection before failing as unavailable (default 10 s).
    pub acquire_timeout: Duration,
    /// How often the listener connection proves that it is alive (default 5 s). A listener that
    /// does not answer within this long is treated as lost: the feed goes not live and resets.
    /// So a silently dead connection is noticed within twice this.
    pub listener_heartbeat: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(10),
            listener_heartbeat: Duration::from_secs(5),
        }
    }
}

/// The `application_name` of pooled connections when the URL names none.
const APPLICATION_NAME: &str = "portcullis";

/// Where the certificates trusted to sign the server's come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TrustedRoots {
    /// The PEM file named by the URL's `sslrootcert`.
    File(PathBuf),
    /// The operating system's trust store (`sslrootcert` absent, or `sslrootcert=system`).
    System,
}

/// How the store's connections are secured: the URL's `sslmode` and `sslrootcert`, with libpq's
/// meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TlsPolicy {
    /// No TLS (`disable`, `allow`, `prefer`, or no `sslmode`): we never try TLS, so we never fall
    /// back from it either.
    Plain,
    /// TLS whose server certificate is not verified (`require` without `sslrootcert`): encrypted,
    /// but anyone on the path can impersonate the server.
    Unauthenticated,
    /// TLS whose certificate chain is verified, but not the host name (`verify-ca`, and `require`
    /// with `sslrootcert`, as in libpq).
    VerifyCa(TrustedRoots),
    /// TLS whose certificate chain and host name are verified (`verify-full`).
    VerifyFull(TrustedRoots),
}

impl TlsPolicy {
    /// Whether connections use TLS at all.
    pub(crate) fn is_tls(&self) -> bool {
        !matches!(self, Self::Plain)
    }
}

impl std::fmt::Display for TlsPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let roots = |roots: &TrustedRoots| match roots {
            TrustedRoots::File(path) => format!("the roots in {}", path.display()),
            TrustedRoots::System => "the system's trusted roots".to_owned(),
        };
        match self {
            Self::Plain => f.write_str("without TLS"),
            Self::Unauthenticated => f.write_str("with TLS, the server not verified"),
            Self::VerifyCa(r) => write!(
                f,
                "with TLS, the server's certificate verified against {} (its host name not checked)",
                roots(r)
            ),
            Self::VerifyFull(r) => write!(
                f,
                "with TLS, the server's certificate and host name verified against {}",
                roots(r)
            ),
        }
    }
}

/// A parsed database URL: the driver's configuration, and how to secure its connections.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls: TlsPolicy,
}

/// The `sslmode` values libpq knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

fn sslmode(value: &str) -> Result<Mode, StoreError> {
    match value {
        "disable" => Ok(Mode::Disable),
        "allow" => Ok(Mode::Allow),
        "prefer" => Ok(Mode::Prefer),
        "require" => Ok(Mode::Require),
        "verify-ca" => Ok(Mode::VerifyCa),
        "verify-full" => Ok(Mode::VerifyFull),
        _ => Err(StoreError::Backend(format!(
            "the database URL has an unknown sslmode {value:?}"
        ))),
    }
}

/// libpq's reading of `sslmode` and `sslrootcert` together:
/// - no `sslmode` means `prefer`, except with `sslrootcert=system`, where it means `verify-full`;
/// - `sslrootcert=system` (the system's trust store, by name) allows `verify-full` only;
/// - `require` with an `sslrootcert` file verifies the chain, as `verify-ca` does;
/// - `verify-ca` and `verify-full` without `sslrootcert` trust the system's store (libpq would
///   look for `~/.postgresql/root.crt`; a service has no such home);
/// - `allow` and `prefer` are plain here: we do not try TLS (so there is nothing to fall back
///   from), and `sslrootcert` is then unused.
fn tls_policy(mode: Option<Mode>, root: Option<String>) -> Result<TlsPolicy, StoreError> {
    let root = match root.as_deref() {
        None => None,
        Some("") => {
            return Err(StoreError::Backend(
                "the database URL has an empty sslrootcert".into(),
            ));
        }
        Some("system") => Some(TrustedRoots::System),
        Some(path) => Some(TrustedRoots::File(PathBuf::from(path))),
    };
    if root == Some(TrustedRoots::System) {
        return match mode {
            None | Some(Mode::VerifyFull) => Ok(TlsPolicy::VerifyFull(TrustedRoots::System)),
            Some(weak) => Err(StoreError::Backend(format!(
                "the database URL has sslrootcert=system with sslmode {:?}: the system's trust store may only be used with sslmode=verify-full",
                mode_name(weak)
            ))),
        };
    }
    Ok(match (mode.unwrap_or(Mode::Prefer), root) {
        (Mode::Disable | Mode::Allow | Mode::Prefer, _) => TlsPolicy::Plain,
        (Mode::Require, None) => TlsPolicy::Unauthenticated,
        (Mode::Require | Mode::VerifyCa, Some(root)) => TlsPolicy::VerifyCa(root),
        (Mode::VerifyCa, None) => TlsPolicy::VerifyCa(TrustedRoots::System),
        (Mode::VerifyFull, root) => TlsPolicy::VerifyFull(root.unwrap_or(TrustedRoots::System)),
    })
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Disable => "disable",
        Mode::Allow => "allow",
        Mode::Prefer => "prefer",
        Mode::Require => "require",
        Mode::VerifyCa => "verify-ca",
        Mode::VerifyFull => "verify-full",
    }
}

/// Parses a `postgres://` or `postgresql://` URL into the driver's configuration and the TLS
/// policy of its `sslmode` and `sslrootcert` (see [`tls_policy`]). Each of those two may be given
/// once (a second one, which libpq would let win, is refused: a URL that says two things about its
/// security is a mistake). The URL itself is never repeated in an error: it may hold a password.
pub(crate) fn parse_url(url: &str, options: &PgOptions) -> Result<Target, StoreError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(StoreError::Backend(
            "the database URL must start with postgres:// or postgresql://".into(),
        ));
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let (mut mode, mut root) = (None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key);
        let repeated = match key.as_str() {
            "sslmode" => mode.replace(sslmode(&percent_decode(value))?).is_some(),
            "sslrootcert" => root.replace(percent_decode(value)).is_some(),
            _ => {
                kept.push(pair);
                continue;
            }
        };
        if repeated {
            return Err(StoreError::Backend(format!(
                "the database URL gives {key} more than once"
            )));
        }
    }
    let tls = tls_policy(mode, root)?;
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config = tokio_postgres::Config::from_str(&rest).map_err(|e| {
        StoreError::Backend(format!("the database URL is invalid: {}", describe(&e)))
    })?;
    // INVARIANT: a TLS policy always means `Require` to the driver: a server that does not offer
    // TLS fails the connection, which then never continues in plain text.
    config.ssl_mode(if tls.is_tls() {
        SslMode::Require
    } else {
        SslMode::Disable
    });
    config.connect_timeout(options.connect_timeout);
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(30));
    // Data the server never acknowledges (a partition) fails the connection after this long,
    // rather than after the kernel's retransmissions (a quarter of an hour).
    config.tcp_user_timeout(Duration::from_secs(30));
    if config.get_application_name().is_none() {
        config.application_name(APPLICATION_NAME);
    }
    Ok(Target { config, tls })
}

/// The listener connection's configuration: the pool's, with a name that tells it apart in
/// `pg_stat_activity` and shorter keepalives (it must notice a dead peer fast).
pub(crate) fn listener_config(
    pool: &tokio_postgres::Config,
    node_id: &str,
) -> tokio_postgres::Config {
    let mut config = pool.clone();
    config.application_name(format!("portcullis-listener-{node_id}"));
    config.keepalives_idle(Duration::from_secs(5));
    config.keepalives_interval(Duration::from_secs(2));
    config.keepalives_retries(3);
    config.tcp_user_timeout(Duration::from_secs(10));
    config
}

/// Decodes `%XX` escapes (anything else is kept as it is).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes.get(i), bytes.get(i + 1), bytes.get(i + 2)) {
            (Some(b'%'), Some(&h), Some(&l)) => hex(h).zip(hex(l)).map(|(h, l)| (h << 4) | l),
            _ => None,
        };
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Target, StoreError> {
        parse_url(url, &PgOptions::default())
    }

    fn policy(query: &str) -> Result<TlsPolicy, StoreError> {
        parse(&format!("postgres://u:hunter2@h/d?{query}")).map(|t| t.tls)
    }

    fn file(path: &str) -> TrustedRoots {
        TrustedRoots::File(PathBuf::from(path))
    }

    #[test]
    fn both_schemes_are_accepted() {
        let t = parse("postgres://alice:secret@db.example:6543/portcullis").unwrap();
        let c = &t.config;
        assert_eq!(c.get_user(), Some("alice"));
        assert_eq!(c.get_dbname(), Some("portcullis"));
        assert_eq!(c.get_ports(), [6543]);
        assert_eq!(c.get_ssl_mode(), SslMode::Disable);
        assert_eq!(c.get_application_name(), Some("portcullis"));
        assert_eq!(t.tls, TlsPolicy::Plain);
        let c = parse("postgresql://alice@db.example/other").unwrap().config;
        assert_eq!(c.get_dbname(), Some("other"));
    }

    #[test]
    fn other_forms_are_refused() {
        for url in [
            "mysql://x@y/z",
            "host=localhost dbname=x",
            "POSTGRES://x@y/z",
            "",
        ] {
            assert!(
                matches!(parse(url), Err(StoreError::Backend(m)) if m.contains("must start with")),
                "{url}"
            );
        }
    }

    #[test]
    fn sslmodes_mean_what_they_mean_to_libpq() {
        let table = [
            ("", TlsPolicy::Plain),
            ("sslmode=disable", TlsPolicy::Plain),
            ("sslmode=allow", TlsPolicy::Plain),
            ("sslmode=prefer", TlsPolicy::Plain),
            // Unused where TLS is not even tried.
            ("sslmode=prefer&sslrootcert=/ca.pem", TlsPolicy::Plain),
            ("sslrootcert=/ca.pem", TlsPolicy::Plain),
            ("sslmode=require", TlsPolicy::Unauthenticated),
            // libpq: with a root file, require verifies the chain.
            (
                "sslmode=require&sslrootcert=/ca.pem",
                TlsPolicy::VerifyCa(file("/ca.pem")),
            ),
            (
                "sslmode=verify-ca",
                TlsPolicy::VerifyCa(TrustedRoots::System),
            ),
            (
                "sslmode=verify-ca&sslrootcert=/ca.pem",
                TlsPolicy::VerifyCa(file("/ca.pem")),
            ),
            (
                "sslmode=verify-full",
                TlsPolicy::VerifyFull(TrustedRoots::System),
            ),
            (
                "sslrootcert=/ca.pem&sslmode=verify-full",
                TlsPolicy::VerifyFull(file("/ca.pem")),
            ),
            // libpq 16: the system's store by name, verify-full by default.
            (
                "sslrootcert=system",
                TlsPolicy::VerifyFull(TrustedRoots::System),
            ),
            (
                "sslmode=verify-full&sslrootcert=system",
                TlsPolicy::VerifyFull(TrustedRoots::System),
            ),
            // However spelled, and wherever it stands.
            ("%73slmode=%72equire", TlsPolicy::Unauthenticated),
            (
                "application_name=x&sslmode=verify-ca&connect_timeout=3&sslrootcert=%2Fetc%2Fa%20b.pem",
                TlsPolicy::VerifyCa(file("/etc/a b.pem")),
            ),
        ];
        for (query, expected) in table {
            let target = parse(&format!("postgres://u@h/d?{query}")).unwrap();
            assert_eq!(target.tls, expected, "{query}");
            let driver = if expected.is_tls() {
                SslMode::Require
            } else {
                SslMode::Disable
            };
            assert_eq!(target.config.get_ssl_mode(), driver, "{query}");
        }
    }

    #[test]
    fn the_rest_of_the_url_still_reaches_the_driver() {
        let t = parse("postgres://u@h/d?sslrootcert=/ca.pem&application_name=n1&sslmode=verify-ca")
            .unwrap();
        assert_eq!(t.config.get_application_name(), Some("n1"));
        assert_eq!(t.config.get_dbname(), Some("d"));
    }

    #[test]
    fn contradictions_and_unknowns_are_errors_that_hide_the_password() {
        for (query, says) in [
            ("sslmode=sometimes", "unknown sslmode"),
            ("sslmode=", "unknown sslmode"),
            ("sslmode=REQUIRE", "unknown sslmode"),
            ("sslmode=disable&sslmode=require", "more than once"),
            ("sslmode=require&%73slmode=require", "more than once"),
            (
                "sslrootcert=/a.pem&sslrootcert=/b.pem&sslmode=verify-ca",
                "more than once",
            ),
            ("sslrootcert=&sslmode=verify-ca", "empty sslrootcert"),
            (
                "sslrootcert=system&sslmode=verify-ca",
                "only be used with sslmode=verify-full",
            ),
            (
                "sslrootcert=system&sslmode=require",
                "only be used with sslmode=verify-full",
            ),
            (
                "sslrootcert=system&sslmode=disable",
                "only be used with sslmode=verify-full",
            ),
            ("no_such_option=1", "invalid"),
        ] {
            match policy(query) {
                Err(StoreError::Backend(m)) => {
                    assert!(m.contains(says), "{query}: {m}");
                    assert!(!m.contains("hunter2"), "{query}: {m}");
                }
                other => panic!("{query}: expected an error, got {other:?}"),
            }
        }
    }

    #[test]
    fn policies_describe_themselves_without_secrets() {
        assert_eq!(
            TlsPolicy::VerifyFull(file("/ca.pem")).to_string(),
            "with TLS, the server's certificate and host name verified against the roots in /ca.pem"
        );
        assert!(
            TlsPolicy::VerifyCa(TrustedRoots::System)
                .to_string()
                .contains("host name not checked")
        );
        assert!(
            TlsPolicy::Unauthenticated
                .to_string()
                .contains("not verified")
        );
    }

    #[test]
    fn options_reach_the_driver() {
        let options = PgOptions {
            connect_timeout: Duration::from_millis(1500),
            ..PgOptions::default()
        };
        let c = parse_url("postgres://u@h/d", &options).unwrap().config;
        assert_eq!(c.get_connect_timeout(), Some(&Duration::from_millis(1500)));
        let l = listener_config(&c, "abc");
        assert_eq!(l.get_application_name(), Some("portcullis-listener-abc"));
        assert_eq!(l.get_connect_timeout(), Some(&Duration::from_millis(1500)));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
