//! jssdk-service: the one place that holds the official account's access_token
//! and jsapi_ticket, and signs `wx.config` for pages (API.md §4, jssdk-service).
//!
//! Where to look: `config` (environment), `tokens` (cache, fetch coordination,
//! background renewal), `signature` (page URL rules and the signature),
//! `routes` (HTTP handlers).

pub mod clock;
pub mod config;
pub mod error;
pub mod metrics;
pub mod routes;
pub mod signature;
pub mod tokens;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::web;
use shared::cache::Cache;
use shared::startup::{Infra, StartupError, listen, server_settings};
use shared::telemetry::{Readiness, configure_health};

pub use clock::{Clock, SystemClock};
pub use config::JssdkConfig;
pub use error::TokenError;
pub use tokens::TokenManager;

/// Everything the handlers need; cheap to clone.
#[derive(Clone)]
pub struct JssdkState {
    pub config: Arc<JssdkConfig>,
    pub tokens: TokenManager,
    readiness: Readiness,
}

impl JssdkState {
    /// Connects the cache (`cache` when given, as `stack` does; else
    /// `REDIS_URL` or the in-process cache) and starts the background refresher
    /// unless it is switched off.
    pub async fn build(config: JssdkConfig, cache: Option<Cache>) -> Result<Self, StartupError> {
        Self::build_with_clock(config, cache, Arc::new(SystemClock)).await
    }

    /// As [`JssdkState::build`], on another clock (tests follow the sandbox's).
    pub async fn build_with_clock(
        config: JssdkConfig,
        cache: Option<Cache>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        // No tables: readiness then checks the cache only.
        let infra = Infra::build(&config.common, None, cache).await?;
        let tokens = TokenManager::new(&config, infra.cache.clone(), infra.wechat.clone(), clock);
        if config.policy.background_refresh {
            tokens.spawn_refresher();
        }
        Ok(JssdkState {
            config: Arc::new(config),
            tokens,
            readiness: infra.readiness(),
        })
    }

    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }
}

/// The service's routes and app data (not the health routes), each by its full
/// path so that `stack` can mount them beside the other services'.
pub fn configure(state: JssdkState) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    let data = web::Data::new(state);
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(data.clone())
            .route(
                "/api/wechat/jssdkConfig",
                web::get().to(routes::jssdk_config),
            )
            .route(
                "/internal/access-token",
                web::get().to(routes::internal_access_token),
            );
    }
}

pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
}

impl Application {
    /// Binds `LISTEN_ADDR`.
    pub async fn build(config: JssdkConfig) -> Result<Self, StartupError> {
        let listener = listen(config.common.listen_addr)?;
        Self::with_listener(config, listener).await
    }

    /// Serves on a listener bound beforehand (tests bind port 0).
    pub async fn with_listener(
        config: JssdkConfig,
        listener: TcpListener,
    ) -> Result<Self, StartupError> {
        let state = JssdkState::build(config, None).await?;
        Self::with_state(state, listener)
    }

    /// Serves a state built beforehand (tests: their own cache prefix or clock).
    pub fn with_state(state: JssdkState, listener: TcpListener) -> Result<Self, StartupError> {
        let addr = listener
            .local_addr()
            .map_err(|source| StartupError::Listen {
                addr: "listener".into(),
                source,
            })?;
        let settings = server_settings(&state.config.common);
        let readiness = state.readiness();
        let routes = configure(state);
        let server = shared::http::serve(listener, settings, move |cfg| {
            routes(cfg);
            configure_health(cfg, readiness.clone());
        })
        .map_err(|source| StartupError::Listen {
            addr: addr.to_string(),
            source,
        })?;
        Ok(Application {
            port: addr.port(),
            server,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
