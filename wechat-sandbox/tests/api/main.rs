//! End-to-end tests: each starts a sandbox on port 0 and talks to it over HTTP.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod common;

mod bills;

mod control;
mod faults;
mod jssdk;
mod mp;
mod notify;
mod oauth;
mod pay;
mod refund;
mod scan;
mod tokens;
mod v3;
