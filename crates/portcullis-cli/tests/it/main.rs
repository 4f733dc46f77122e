//! End-to-end tests: a real Portcullis server (in this process on an ephemeral port, or as
//! separate `portcullis` processes), driven over HTTP as its users would, on SQLite and on
//! PostgreSQL, against a real OAuth provider (oauth2-mock-server) and a real JWKS-publishing IdP.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failed expectation is a failed test"
)]

mod support;

mod abuse;
mod apply;
mod authz;
mod bad_input;
mod cli;
mod cluster;
mod connect_links;
mod console;
mod crash;
mod findings;
mod identity;
mod inbound;
mod mcp;
mod mgmt;
mod plane;
mod replay;
mod resources;
mod secrets;
mod signing;
mod sso;
mod vault;
