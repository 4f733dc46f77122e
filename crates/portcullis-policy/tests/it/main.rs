//! Integration tests of the policy engine: one binary, one module per concern.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod decisions;
mod fuzz;
mod properties;
mod semantics;
mod support;
mod validation;
