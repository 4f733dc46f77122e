//! The HTTP crate's integration tests: the router with real services on a temporary SQLite
//! store, driven in process.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failed expectation is a failed test"
)]

mod field_errors;
mod fuzz;
mod openapi;
