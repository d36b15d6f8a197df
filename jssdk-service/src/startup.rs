//! Build → bind → serve, with shared's one startup
//! ([`shared::startup::Application`]).

use std::net::TcpListener;

use shared::startup::{Application, StartupError, listen, server_settings};

use crate::config::JssdkConfig;
use crate::http::with_openapi;
use crate::state::JssdkState;

/// Builds the state and serves on `LISTEN_ADDR`.
pub async fn build(config: JssdkConfig) -> Result<Application, StartupError> {
    let listener = listen(config.common.listen_addr)?;
    with_listener(config, listener).await
}

/// Serves on a listener bound beforehand (tests bind port 0).
pub async fn with_listener(
    config: JssdkConfig,
    listener: TcpListener,
) -> Result<Application, StartupError> {
    let state = JssdkState::build(config, None).await?;
    with_state(state, listener)
}

/// Serves a state built beforehand (tests: their own cache prefix or clock).
pub fn with_state(state: JssdkState, listener: TcpListener) -> Result<Application, StartupError> {
    let settings = server_settings(&state.config.common);
    let readiness = state.readiness();
    Application::serve(listener, settings, readiness, with_openapi(state))
}
