//! Integration tests of `portcullis-crypto`, one binary (see STYLE.md).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;
mod envelope;
mod fuzz;
mod interop;
mod jwt_rejections;
mod jwt_round_trips;
mod keys;
mod perf;
mod props;
