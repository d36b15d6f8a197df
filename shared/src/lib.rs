//! What every wxpay service shares: configuration, the response envelope and
//! errors, WeChat signing, the Pay XML codec, money, the WeChat HTTP client,
//! database and cache access, sessions and telemetry.

pub mod cache;
pub mod config;
pub mod crypto;
pub mod db;
pub mod error;
pub mod http;
pub mod money;
pub mod random;
pub mod session;
pub mod sign;
pub mod startup;
pub mod telemetry;
pub mod testing;
pub mod wechat;
pub mod xml;
