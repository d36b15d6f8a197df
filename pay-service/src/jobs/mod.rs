//! Background jobs: reconciliation (orders and open refunds whose
//! notification never came) and the dispatch of merchant events, each a
//! pass ([`reconcile_once`], [`dispatch_once`]) run on a timer by
//! [`Workers`]. They act through the domain only.

mod bills;
mod dispatch;
mod reconcile;
mod webhook;
mod worker;

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::domain::PayState;

pub use bills::{
    BillPassOutcome, BillPassReport, bills_once, reconcile_day, table as reconciliation_table,
};
pub use dispatch::{DispatchReport, dispatch_once};
pub use reconcile::{ReconcileReport, reconcile_once};

/// The running background workers; dropping this (the last clone) stops
/// them. The application holds it exactly as long as its server.
#[derive(Clone, Default)]
pub struct Workers {
    tasks: Vec<Arc<AbortOnDrop>>,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("tasks", &self.tasks.len())
            .finish()
    }
}

impl Workers {
    /// Starts the reconciliation worker unless `RECONCILE_INTERVAL_SECONDS`
    /// is 0, and the event dispatcher when `MERCHANT_WEBHOOK_URL` is set and
    /// `WEBHOOK_INTERVAL_MS` is not 0. Call it inside a Tokio runtime.
    pub fn start(state: &PayState) -> Self {
        let mut tasks = Vec::new();
        let interval = state.config.reconcile_interval;
        if !interval.is_zero() {
            let handle = tokio::spawn(reconcile::run(state.clone(), interval));
            tasks.push(Arc::new(AbortOnDrop(handle)));
        }
        let bill_interval = state.config.bill_interval;
        if !bill_interval.is_zero() {
            let handle = tokio::spawn(bills::run(state.clone(), bill_interval));
            tasks.push(Arc::new(AbortOnDrop(handle)));
        }
        if let Some(w) = &state.webhook
            && !w.config.interval.is_zero()
        {
            let handle = tokio::spawn(dispatch::run(state.clone(), w.config.interval));
            tasks.push(Arc::new(AbortOnDrop(handle)));
        }
        Workers { tasks }
    }
}
