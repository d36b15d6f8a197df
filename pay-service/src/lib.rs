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
pub use domain::bills::{
    Comparison, Discrepancy, DiscrepancyKind, LocalDay, LocalPayment, LocalRefund,
    ReconciliationView, compare as compare_bill, stored as stored_reconciliation,
};
pub use domain::{ApiVersion, PayState, RefundStatus, Status, TradeType};
pub use error::PayError;
pub use http::openapi::openapi;
pub use http::{configure, with_openapi};
pub use jobs::{BillPassOutcome, BillPassReport, bills_once, reconcile_day, reconciliation_table};
pub use jobs::{DispatchReport, ReconcileReport, Workers, dispatch_once, reconcile_once};
pub use shared::startup::Application;
pub use startup::{build, with_listener, with_state};

/// What operators and tests read back from the database; nothing here
/// changes it.
pub mod inspect {
    pub use crate::db::notifications::{Notification, list as notifications};
    pub use crate::db::orders::{Order, count_by_status, get as order};
    pub use crate::db::outbox::{Event, of_order as events};
    pub use crate::db::refunds::{Refund, get as refund, of_order as refunds_of};
    pub use crate::db::transitions::{Transition, of_order as transitions};
}
