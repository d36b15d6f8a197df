//! pay-service: orders, WeChat Pay APIv2 (unifiedorder, orderquery,
//! closeorder, refund, refundquery), payment and refund notifications,
//! reconciliation and merchant events (API.md §4).
//!
//! Layers, each depending only on those below it:
//! `http` (routes, handlers) → `domain` (the rules; `PayState`) → `db`
//! (diesel, one module per table group) and `wechat` (the Pay client, one
//! typed request and reply per call); `jobs` (reconciliation, event
//! dispatch) → `domain`. `startup` puts the server and the workers together.
//! `config`, `error` and `metrics` are shared by all. `tests/layers.rs`
//! keeps the imports that way.

mod config;
mod db;
mod domain;
mod error;
mod http;
mod jobs;
mod metrics;
mod startup;
mod wechat;

pub use config::{DEFAULT_PORT, PayConfig, RefundConfig, SERVICE, WebhookConfig};
pub use db::migrations;
/// Diesel's view of the tables, for tests that set up a row's state by hand.
pub use db::schema;
pub use domain::{PayState, RefundStatus, Status, TradeType};
pub use error::PayError;
pub use http::configure;
pub use jobs::{DispatchReport, ReconcileReport, Workers, dispatch_once, reconcile_once};
pub use startup::Application;

/// What operators and tests read back from the database; nothing here
/// changes it.
pub mod inspect {
    pub use crate::db::notifications::{Notification, list as notifications};
    pub use crate::db::orders::{Order, count_by_status, get as order};
    pub use crate::db::outbox::{Event, of_order as events};
    pub use crate::db::refunds::{Refund, get as refund};
    pub use crate::db::transitions::{Transition, of_order as transitions};
}
