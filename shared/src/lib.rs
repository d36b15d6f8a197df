//! What every wxpay service shares: configuration, the response envelope and
//! errors, WeChat signing, the Pay XML codec, money, the WeChat HTTP client,
//! database and cache access, sessions, telemetry and metrics, and how a
//! service starts. The module map is in README.md; test helpers live in the
//! dev-only `testkit` crate.

pub mod bill;
pub mod cache;
pub mod config;
pub mod crypto;
pub mod db;
pub mod error;
pub mod http;
pub mod http_client;
pub mod metrics;
pub mod money;
pub mod openapi;
pub mod query;
pub mod random;
pub mod session;
pub mod sign;
pub mod startup;
pub mod telemetry;
pub mod traces;
pub mod wechat;
pub mod wechatpay_v3;
pub mod xml;
