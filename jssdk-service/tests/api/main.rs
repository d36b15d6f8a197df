//! jssdk-service over real HTTP against the real sandbox (and real Redis where
//! a test needs one).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod common;
mod coordination;
mod failures;
mod internal;
mod notices;
mod redis_outage;
mod refresh;
mod signature;
