//! Fault tests (issue #8): Redis killed under load, PostgreSQL cut while a
//! notification arrives, WeChat failing or hanging, and a client sending its
//! body too slowly. Real parts throughout: redis-server, PostgreSQL behind a
//! proxy, the sandbox and the services on port 0.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod common;
mod postgres_cut;
mod redis_outage;
mod slow_body;
mod wechat_faults;
