//! The PostgreSQL backend against the storage conformance suite, and what only a shared database
//! has: changes crossing nodes, races between nodes, a listener that loses its connection.
//!
//! Needs a PostgreSQL server: `PORTCULLIS_TEST_DATABASE_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/postgres`, offering TLS (`ssl = on`, as Debian's is by
//! default, with its self-signed certificate) for the TLS tests. Each test creates its own
//! database and drops it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failed expectation is a failed test"
)]

mod concurrency;
mod connect;
mod feed;
mod partition;
mod support;
mod tls;

use support::fresh;

portcullis_store_conformance::conformance_tests!(fresh);

/// The whole suite again, every connection over TLS.
mod over_tls {
    portcullis_store_conformance::conformance_tests!(crate::support::fresh_over_tls);
}
