//! The connection URL and the store's options.

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

/// What an `sslmode` asks for.
#[derive(Debug, PartialEq, Eq)]
enum Tls {
    /// Plain is acceptable (`disable`, `allow`, `prefer`).
    NotRequired,
    /// TLS is required (`require`, `verify-ca`, `verify-full`).
    Required,
}

fn sslmode(value: &str) -> Result<Tls, StoreError> {
    match value {
        "disable" | "allow" | "prefer" => Ok(Tls::NotRequired),
        "require" | "verify-ca" | "verify-full" => Ok(Tls::Required),
        _ => Err(StoreError::Backend(format!(
            "the database URL has an unknown sslmode {value:?}"
        ))),
    }
}

/// Parses a `postgres://` or `postgresql://` URL into the driver's configuration for plain
/// connections. A URL that asks for TLS is refused (fail closed: this build has no TLS, and a
/// connection that was asked to be encrypted must not silently be plain). The URL itself is never
/// repeated in an error: it may hold a password.
pub(crate) fn parse_url(
    url: &str,
    options: &PgOptions,
) -> Result<tokio_postgres::Config, StoreError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(StoreError::Backend(
            "the database URL must start with postgres:// or postgresql://".into(),
        ));
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(key) != "sslmode" {
            kept.push(pair);
            continue;
        }
        let value = percent_decode(value);
        if sslmode(&value)? == Tls::Required {
            return Err(StoreError::Backend(format!(
                "the database URL asks for TLS (sslmode={value}) but this build only connects without TLS; refusing to connect in plain text (use sslmode=disable on a trusted network)"
            )));
        }
    }
    let plain = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config = tokio_postgres::Config::from_str(&plain).map_err(|e| {
        StoreError::Backend(format!("the database URL is invalid: {}", describe(&e)))
    })?;
    config.ssl_mode(SslMode::Disable);
    config.connect_timeout(options.connect_timeout);
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(30));
    // Data the server never acknowledges (a partition) fails the connection after this long,
    // rather than after the kernel's retransmissions (a quarter of an hour).
    config.tcp_user_timeout(Duration::from_secs(30));
    if config.get_application_name().is_none() {
        config.application_name(APPLICATION_NAME);
    }
    Ok(config)
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

    fn parse(url: &str) -> Result<tokio_postgres::Config, StoreError> {
        parse_url(url, &PgOptions::default())
    }

    fn refused_for_tls(url: &str) -> bool {
        matches!(parse(url), Err(StoreError::Backend(m)) if m.contains("asks for TLS"))
    }

    #[test]
    fn both_schemes_are_accepted() {
        let c = parse("postgres://alice:secret@db.example:6543/portcullis").unwrap();
        assert_eq!(c.get_user(), Some("alice"));
        assert_eq!(c.get_dbname(), Some("portcullis"));
        assert_eq!(c.get_ports(), [6543]);
        assert_eq!(c.get_ssl_mode(), SslMode::Disable);
        assert_eq!(c.get_application_name(), Some("portcullis"));
        let c = parse("postgresql://alice@db.example/other").unwrap();
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
    fn tls_is_refused_whenever_it_is_asked_for() {
        for mode in ["require", "verify-ca", "verify-full"] {
            assert!(
                refused_for_tls(&format!("postgres://u@h/d?sslmode={mode}")),
                "{mode}"
            );
            // Wherever it stands, and however it is spelled.
            assert!(refused_for_tls(&format!(
                "postgres://u@h/d?application_name=x&sslmode={mode}&connect_timeout=3"
            )));
        }
        assert!(refused_for_tls("postgres://u@h/d?%73slmode=%72equire"));
        // Asked twice, once for TLS: refused.
        assert!(refused_for_tls(
            "postgres://u@h/d?sslmode=disable&sslmode=require"
        ));
    }

    #[test]
    fn plain_modes_connect_plain() {
        for mode in ["disable", "allow", "prefer"] {
            let c = parse(&format!(
                "postgres://u@h/d?sslmode={mode}&application_name=n1"
            ))
            .unwrap();
            assert_eq!(c.get_ssl_mode(), SslMode::Disable, "{mode}");
            assert_eq!(c.get_application_name(), Some("n1"));
        }
        assert_eq!(
            parse("postgres://u@h/d").unwrap().get_ssl_mode(),
            SslMode::Disable
        );
    }

    #[test]
    fn unknown_sslmodes_and_bad_urls_are_errors_that_hide_the_password() {
        assert!(matches!(
            parse("postgres://u@h/d?sslmode=sometimes"),
            Err(StoreError::Backend(m)) if m.contains("unknown sslmode")
        ));
        match parse("postgres://u:hunter2@h/d?no_such_option=1") {
            Err(StoreError::Backend(m)) => {
                assert!(m.contains("invalid"), "{m}");
                assert!(!m.contains("hunter2"), "{m}");
            }
            other => panic!("expected an invalid URL, got {other:?}"),
        }
    }

    #[test]
    fn options_reach_the_driver() {
        let options = PgOptions {
            connect_timeout: Duration::from_millis(1500),
            ..PgOptions::default()
        };
        let c = parse_url("postgres://u@h/d", &options).unwrap();
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
