//! JSAPI cashier tickets.

use std::collections::HashMap;
use std::time::Duration;

/// Cashier tickets: one per `chooseWXPay` that passed its checks.
#[derive(Default)]
pub(crate) struct CashierStore {
    pub(crate) tickets: HashMap<String, CashierTicket>,
}

pub(crate) struct CashierTicket {
    pub(crate) out_trade_no: String,
    pub(crate) issued: Duration,
}
