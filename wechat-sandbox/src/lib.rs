//! A faithful local stand-in for WeChat's servers: official-account OAuth,
//! mini-program login, access tokens and JS-SDK tickets, and WeChat Pay APIv2
//! and APIv3 (signed JSON, platform certificate or WeChat Pay public key,
//! encrypted notifications) with payment notifications, plus `/sandbox/`
//! controls for tests (pay an order, inject faults, count calls, move the
//! clock, switch v3 signing keys, SIGNTEST probes), and a stand-in for the
//! JS-SDK (`/sandbox/jweixin.js`) with its cashier for pages outside WeChat.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use wechat_sandbox::{Sandbox, SandboxConfig};
//! let sandbox = Sandbox::start(SandboxConfig::for_tests()).await?;
//! let api_base = sandbox.base_url(); // use for WECHAT_API_BASE and friends
//! # let _ = api_base;
//! sandbox.stop().await;
//! # Ok(()) }
//! ```

mod clock;
mod config;
mod control;
mod errors;
mod faults;
mod ids;
mod jssdk;
mod keys;
mod mp;
mod oauth;
mod pages;
mod params;
mod pay;
mod scan;
mod server;
mod state;
mod store;
mod tls;
mod tokens;
mod traced;

pub use config::{
    AppKind, SANDBOX_MCH_API_V3_KEY, SANDBOX_MCH_ID, SANDBOX_MCH_KEY, SANDBOX_MP_APPID,
    SANDBOX_MP_SECRET, SANDBOX_OA_APPID, SANDBOX_OA_SECRET, SandboxApp, SandboxConfig,
    SandboxMerchant, SandboxUser, default_apps, default_merchants, default_users, service_env,
};
pub use keys::{MerchantIdentity, SandboxTls, SignMode, TestPki, V3KeysInfo};
pub use pay::bills::{BILL_READY_HOUR, BillFile, BillType, NoBill};
pub use pay::notify::{MAX_DELIVERY_ATTEMPTS, PayOptions, RETRY_SCHEDULE};
pub use pay::refund::{decrypt_req_info, encrypt_req_info};
pub use server::Sandbox;
pub use state::SandboxState;
pub use store::{
    DeliveryAttempt, FaultKind, OrderSnapshot, PayApi, Plant, PlantKind, RefundSnapshot,
    RefundStatus, TradeState,
};
