//! The application: the state, the HTTP server (routes and health) and the
//! background workers, started together and stopped together. The server
//! itself is the workspace's one startup, [`shared::startup::Application`];
//! what is pay-service's own is that the workers live exactly as long as it.

use std::net::TcpListener;

use shared::startup::{Application, StartupError, listen, server_settings};

use crate::config::PayConfig;
use crate::domain::PayState;
use crate::http::with_openapi;
use crate::jobs::Workers;

/// Builds the state and serves on `LISTEN_ADDR`.
pub async fn build(config: PayConfig) -> Result<Application, StartupError> {
    let listener = listen(config.common.listen_addr)?;
    with_listener(config, listener).await
}

/// Serves on a listener bound beforehand (tests bind port 0 first).
pub async fn with_listener(
    config: PayConfig,
    listener: TcpListener,
) -> Result<Application, StartupError> {
    let state = PayState::build(config, None).await?;
    with_state(state, listener)
}

/// Serves an already built state (tests keep a clone to call
/// `reconcile_once`) and starts its workers, which stop when the server
/// does. Call it inside a Tokio runtime.
pub fn with_state(state: PayState, listener: TcpListener) -> Result<Application, StartupError> {
    let settings = server_settings(&state.config.common);
    let readiness = state.readiness();
    let app = Application::serve(listener, settings, readiness, with_openapi(state.clone()))?;
    Ok(app.keep_alive(Workers::start(&state)))
}
