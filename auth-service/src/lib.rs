//! auth-service: users and sessions for wxpay. Official-account web OAuth
//! (`/api/wechat/*`), mini-program login (`/api/mp/*`) and `/api/auth/*`, as
//! API.md §4 fixes them. Sessions are `shared::session` tokens, verified by
//! every service on its own, and revocable through the shared cache.
//!
//! Layers, each depending only on the ones after it:
//! `http` (actix: routes, handlers, cookies) → `state` (wiring) → `domain`
//! (the rules: OAuth state and browser binding, return URLs, profiles,
//! sessions, rate limit) → `db` (diesel: schema and queries) and `wechat` (the
//! WeChat calls and their typed replies). `config` reads the environment;
//! `metrics` counts logins. `tests/layers.rs` holds the layers to this.

use std::net::TcpListener;

use shared::startup::{StartupError, listen, server_settings};

pub mod config;
mod db;
mod domain;
mod http;
mod metrics;
mod state;
mod wechat;

pub use config::AuthConfig;
pub use db::migrations;
pub use domain::AuthError;
pub use http::openapi::openapi;
pub use http::{configure, with_openapi};
pub use shared::startup::Application;
pub use state::AuthState;

/// Builds the state and serves on `LISTEN_ADDR`.
pub async fn build(config: AuthConfig) -> Result<Application, StartupError> {
    let listener = listen(config.common.listen_addr)?;
    with_listener(config, listener).await
}

/// Serves on a listener bound beforehand (tests bind port 0, so that
/// `PUBLIC_BASE_URL` can name the port).
pub async fn with_listener(
    config: AuthConfig,
    listener: TcpListener,
) -> Result<Application, StartupError> {
    let state = AuthState::build(config, None).await?;
    with_state(state, listener)
}

/// Serves an already built state (tests hand in a cache of their own).
pub fn with_state(state: AuthState, listener: TcpListener) -> Result<Application, StartupError> {
    let settings = server_settings(&state.config.common);
    let readiness = state.readiness();
    Application::serve(listener, settings, readiness, with_openapi(state))
}
