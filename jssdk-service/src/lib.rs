//! jssdk-service: the one place that holds the official account's access_token
//! and jsapi_ticket, and signs `wx.config` for pages (API.md §4, jssdk-service).
//!
//! Layers, each using only the ones below it:
//! - `http`: the route table and handlers (the only actix code);
//! - `state`: the domain, [`JssdkState`] (`wx_config`, `internal_access_token`),
//!   over `signature` (page URL rules and the signature) and `tokens` (the
//!   token manager: cache, fetch coordination, background renewal, and the
//!   WeChat calls in `tokens::upstream`);
//! - beside them: `config` (environment), `clock`, `error`, `metrics`, and
//!   `startup` (build → bind → serve with `shared::startup`).
//!
//! `tests/layers.rs` keeps actix inside `http` and `startup`.

mod clock;
mod config;
mod error;
mod http;
mod metrics;
mod signature;
mod startup;
mod state;
mod tokens;

pub use clock::{Clock, SystemClock};
pub use config::{DEFAULT_PORT, JssdkConfig, TokenEndpoint, TokenPolicy};
pub use error::TokenError;
pub use http::openapi::openapi;
pub use http::{configure, with_openapi};
pub use shared::startup::Application;
pub use signature::WxConfig;
pub use startup::{build, with_listener, with_state};
pub use state::{AccessToken, JssdkState};
pub use tokens::{Entry, TokenManager};
