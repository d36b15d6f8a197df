//! The sandbox's stores and the value types several areas share: plain data
//! and its bookkeeping, no handlers and no `SandboxState` (the `state` module
//! above holds these, one lock each). The areas that serve requests read and
//! change them from their own `impl SandboxState` blocks.

mod bills;
mod cashier;
mod faults;
mod mp;
mod oauth;
mod orders;
mod refunds;
mod tokens;

pub(crate) use bills::{BillStore, Download};
pub use bills::{Plant, PlantKind};
pub(crate) use cashier::{CashierStore, CashierTicket};
pub use faults::FaultKind;
pub(crate) use faults::{CallCounts, Faults, GARBAGE_BODY};
pub(crate) use mp::MpStore;
pub(crate) use oauth::{Grant, OauthStore, Scope, UserToken};
pub use orders::{DeliveryAttempt, OrderSnapshot, PayApi, TradeState};
pub(crate) use orders::{Order, OrderStore, rfc3339};
pub(crate) use refunds::{Refund, RefundStore};
pub use refunds::{RefundSnapshot, RefundStatus};
pub(crate) use tokens::{TICKET_TTL, TOKEN_TTL, Ticket, TicketType, TokenStore};
