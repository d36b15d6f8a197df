//! auth-service: users and sessions for wxpay. Official-account web OAuth
//! (`/api/wechat/*`), mini-program login (`/api/mp/*`) and `/api/auth/*`, as
//! API.md §4 fixes them. Sessions are `shared::session` tokens, verified by
//! every service on its own.
//!
//! Where things live: `config` (environment), `state` (what handlers share),
//! `routes` (HTTP), `oauth` and `mp` (the two logins), `users` (the table),
//! `return_url` (open-redirect checks), `cookies`, `rate_limit`, `profile`
//! (WeChat's profile shapes), `error`.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::web;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use shared::db::Migrations;
use shared::startup::{listen, server_settings};

pub mod config;
pub mod cookies;
pub mod error;
pub mod metrics;
pub mod mp;
pub mod oauth;
pub mod profile;
pub mod rate_limit;
pub mod return_url;
pub mod routes;
pub mod schema;
pub mod state;
pub mod users;

pub use config::AuthConfig;
pub use error::AuthError;
pub use state::AuthState;

const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// auth-service's migrations (versions `2026-11-25-1000NN`, table `users`).
pub fn migrations() -> Migrations {
    Migrations {
        sqlite: SQLITE,
        postgres: POSTGRES,
    }
}

/// The domain routes and their app data, without health routes: what `stack`
/// mounts next to the other services.
pub fn configure(state: AuthState) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    move |cfg| routes::mount(cfg, state.clone())
}

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Builds the state and listens on `LISTEN_ADDR`.
    pub async fn build(config: AuthConfig) -> anyhow::Result<Self> {
        let listener = listen(config.common.listen_addr)?;
        Self::with_listener(config, listener).await
    }

    /// Serves on a listener bound beforehand (tests bind port 0, so that
    /// `PUBLIC_BASE_URL` can name the port).
    pub async fn with_listener(config: AuthConfig, listener: TcpListener) -> anyhow::Result<Self> {
        let state = AuthState::build(config, None).await?;
        Self::with_state(state, listener)
    }

    /// Serves an already built state (tests hand in a cache of their own).
    pub fn with_state(state: AuthState, listener: TcpListener) -> anyhow::Result<Self> {
        let port = listener.local_addr()?.port();
        let settings = server_settings(&state.config.common);
        let readiness = state.readiness();
        let routes = configure(state);
        let server = shared::http::serve(listener, settings, move |cfg| {
            routes(cfg);
            shared::telemetry::configure_health(cfg, readiness.clone());
        })?;
        Ok(Application { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
