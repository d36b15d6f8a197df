//! pay-service: orders, WeChat Pay APIv2 (unifiedorder, orderquery,
//! closeorder), payment notifications and reconciliation (API.md §4).
//!
//! Where to look: `routes` (handlers) → `orders` (placing, syncing, closing) and
//! `notify` (notifications) → `store` (the one transition function per
//! status) and `wxpay` (signed XML calls). `reconcile` settles orders whose
//! notification never came.
//!
//! Refunds: `admin` (routes) → `refunds` (domain) → `refund_store` (reserve,
//! release, settle) and `wxrefund` (`/secapi/pay/refund` with the client
//! certificate, refundquery); `refund_notify` takes WeChat's refund
//! notifications (`req_info` decrypted by `req_info`). Every status change
//! writes a merchant event (`events`, the outbox and its dispatcher) and is
//! logged by `audit`.

pub mod admin;
pub mod audit;
pub mod beijing;
pub mod config;
pub mod error;
pub mod events;
pub mod metrics;
pub mod notify;
pub mod orders;
pub mod reconcile;
pub mod refund_notify;
pub mod refund_store;
pub mod refunds;
pub mod req_info;
pub mod routes;
pub mod schema;
pub mod state;
pub mod store;
mod worker;
pub mod wxpay;
pub mod wxrefund;

use std::net::TcpListener;

use actix_web::web;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use shared::db::Migrations;
use shared::startup::{StartupError, listen, server_settings};

pub use config::PayConfig;
pub use events::{DispatchReport, dispatch_once};
pub use reconcile::{ReconcileReport, reconcile_once};
pub use state::PayState;

const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");

pub fn migrations() -> Migrations {
    Migrations {
        sqlite: SQLITE,
        postgres: POSTGRES,
    }
}

/// Mounts pay-service's routes and app data (not the health routes). Every
/// route is registered by its full path so that `stack` can mount the three
/// services on one App.
pub fn configure(state: PayState) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    move |cfg: &mut web::ServiceConfig| {
        let max_xml = state.config.common.max_xml_bytes;
        cfg.app_data(web::Data::new(state.clone()))
            .app_data(web::Data::new(state.sessions.clone()))
            .route("/api/mp/v2Pay", web::get().to(routes::v2_pay))
            .route("/api/pay/orders", web::post().to(routes::create_order))
            .route(
                "/api/pay/orders/{out_trade_no}",
                web::get().to(routes::get_order),
            )
            .route(
                "/api/pay/orders/{out_trade_no}/close",
                web::post().to(routes::close_order),
            )
            .route(
                "/api/pay/orders/{out_trade_no}/qrcode.svg",
                web::get().to(routes::qrcode_svg),
            )
            .route(
                "/api/pay/admin/orders/{out_trade_no}/refunds",
                web::post().to(admin::create_refund),
            )
            .route(
                "/api/pay/admin/orders/{out_trade_no}/refunds",
                web::get().to(admin::list_refunds),
            )
            .route("/api/pay/admin/events", web::get().to(admin::list_events))
            .service(
                web::resource("/api/pay/refund-notify")
                    .app_data(web::PayloadConfig::new(max_xml))
                    .route(web::post().to(refund_notify::receive)),
            );
        for path in ["/api/pay/notify", "/api/mp/payCallback"] {
            cfg.service(
                web::resource(path)
                    // The raw body is read under this limit; beyond it the
                    // handler answers FAIL without reading further.
                    .app_data(web::PayloadConfig::new(max_xml))
                    .route(web::post().to(notify::receive)),
            );
        }
    }
}

pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    /// Keeps the reconciliation worker alive exactly as long as the server.
    _state: PayState,
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
    /// `reconcile_once`; `stack` builds its own).
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
            _state: state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Application { server, _state, .. } = self;
        let result = server.await;
        drop(_state);
        result
    }
}
