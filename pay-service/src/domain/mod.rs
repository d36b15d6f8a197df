//! The domain: the rules of orders, payments, refunds and merchant events.
//! It decides; `db` stores and `wechat` asks WeChat. Nothing here knows HTTP
//! (handlers are `http`'s) or diesel (queries are `db`'s): a change that
//! spans tables runs in a transaction opened here, over `db` functions.
//!
//! Where a change happens: [`settle`] (PAID, CLOSED) and [`refund_rules`]
//! (reserve, release, REFUND), each writing its transition row and merchant
//! event ([`events`]) in the changing transaction, then logged by [`audit`].

pub mod admin_sessions;
pub mod audit;
pub mod bills;
pub mod charts;
pub mod console;
pub mod events;
mod gateway;
pub mod idempotency;
pub mod limits;
pub mod notifications;
pub mod orders;
mod prepay;
pub mod refund_notifications;
pub mod refund_rules;
pub mod refunds;
pub mod settle;
pub mod state;
pub mod trade;
pub mod v3_notifications;

/// The rows the domain hands out.
pub use crate::db::orders::Order;
pub use crate::db::outbox::{Event, EventFilter};
/// The typed columns, defined with the columns they type (`db::types`).
pub use crate::db::{ApiVersion, RefundStatus, Status, TradeType};
pub use audit::Cause;
pub use state::PayState;
