//! The application: the state, the HTTP server (routes and health) and the
//! background workers, started together and stopped together.

use std::net::TcpListener;

use shared::startup::{StartupError, listen, server_settings};

use crate::config::PayConfig;
use crate::domain::PayState;
use crate::http::configure;
use crate::jobs::Workers;

pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    /// Keeps the background workers alive exactly as long as the server.
    workers: Workers,
}

impl Application {
    /// Binds `LISTEN_ADDR`.
    pub async fn build(config: PayConfig) -> Result<Self, StartupError> {
        let listener = listen(config.common.listen_addr)?;
        Self::with_listener(config, listener).await
    }

    /// Serves on a listener bound beforehand (tests bind port 0 first).
    pub async fn with_listener(
        config: PayConfig,
        listener: TcpListener,
    ) -> Result<Self, StartupError> {
        let state = PayState::build(config, None).await?;
        Self::with_state(state, listener)
    }

    /// Serves an already built state (tests keep a clone to call
    /// `reconcile_once`) and starts its workers. Call it inside a Tokio
    /// runtime.
    pub fn with_state(state: PayState, listener: TcpListener) -> Result<Self, StartupError> {
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Listen {
                addr: "listener".into(),
                source,
            })?
            .port();
        let settings = server_settings(&state.config.common);
        let routes = configure(state.clone());
        let readiness = state.readiness();
        let server = shared::http::serve(listener, settings, move |cfg| {
            routes(cfg);
            shared::telemetry::configure_health(cfg, readiness.clone());
        })
        .map_err(|source| StartupError::Listen {
            addr: format!("port {port}"),
            source,
        })?;
        Ok(Application {
            port,
            server,
            workers: Workers::start(&state),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Application {
            server, workers, ..
        } = self;
        let result = server.await;
        drop(workers);
        result
    }
}
