//! Reconciliation: orders still NOTPAY some time after creation are settled by
//! asking WeChat (orderquery), through the same transitions a notification
//! makes; expired ones are closed at WeChat, then here. Open refunds are
//! seen to too: a PENDING one (WeChat's answer unknown) is sent again under
//! the same out_refund_no, the others are asked about (refundquery).

use std::time::Duration;

use serde::Serialize;

use super::worker;
use crate::domain::trade::{self, Applied};
use crate::domain::{Cause, Order, PayState, refunds};
use crate::error::PayError;
use crate::metrics;

/// SQLite has no row locks to skip: passes are serialised by this cache lock.
const LOCK_KEY: &str = "pay:reconcile:lock";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// Another replica held the pass lock; nothing was done.
    pub skipped: bool,
    pub checked: usize,
    pub paid: usize,
    pub closed: usize,
    pub errors: usize,
    /// Open refunds that changed: PENDING ones sent to WeChat again under
    /// their own number and now accepted or definitely refused, others
    /// settled by refundquery (succeeded, released, or CHANGE).
    pub refunds_settled: usize,
}

/// One pass over the orders whose check is due. Safe to run on many replicas
/// at once: each order, and each open refund, is claimed by one pass.
pub async fn reconcile_once(state: &PayState) -> Result<ReconcileReport, PayError> {
    let report = worker::exclusive(state, LOCK_KEY, "reconcile", pass(state)).await?;
    Ok(report.unwrap_or(ReconcileReport {
        skipped: true,
        ..Default::default()
    }))
}

async fn pass(state: &PayState) -> Result<ReconcileReport, PayError> {
    let due = trade::claim_due(state).await?;
    let mut report = ReconcileReport::default();
    // One id for the pass, in every transition and audit line it writes.
    let cause = Cause::pass("reconcile");
    for order in due {
        check_order(state, &order, &cause, &mut report).await;
    }
    if state.refund_client.is_some() {
        match refunds::reconcile(state, &cause).await {
            Ok(n) => report.refunds_settled = n,
            Err(e) => {
                report.errors += 1;
                tracing::warn!(error = %e, "refund reconciliation failed");
            }
        }
    }
    count_orders(state).await;
    if report.checked > 0 || report.refunds_settled > 0 {
        tracing::info!(?report, pass = %cause.request_id, "reconciliation pass");
    }
    Ok(report)
}

/// Asks WeChat about one claimed order and counts what became of it.
async fn check_order(state: &PayState, order: &Order, cause: &Cause, report: &mut ReconcileReport) {
    report.checked += 1;
    let label = match trade::reconcile_order(state, order, cause).await {
        Ok(Applied::Paid) => {
            report.paid += 1;
            "paid"
        }
        Ok(Applied::Closed) => {
            report.closed += 1;
            "closed"
        }
        Ok(Applied::Unchanged) => "unchanged",
        Err(e) => {
            report.errors += 1;
            tracing::warn!(out_trade_no = %order.out_trade_no, error = %e, "reconciliation failed for an order; retried later");
            "error"
        }
    };
    metrics::RECONCILED.with_label_values(&[label]).inc();
}

/// Sets the orders-by-status gauge.
async fn count_orders(state: &PayState) {
    match trade::count_by_status(state).await {
        Ok(counts) => {
            for (status, n) in counts {
                metrics::ORDERS_BY_STATUS
                    .with_label_values(&[status.as_str()])
                    .set(n);
            }
        }
        Err(e) => tracing::warn!(error = %e, "orders not counted"),
    }
}

/// Runs passes every `interval` until the task is aborted.
pub(super) async fn run(state: PayState, interval: Duration) {
    let trace = worker::PassTrace::EachPass;
    worker::every(
        state,
        interval,
        "reconciliation",
        trace,
        |state| async move { reconcile_once(&state).await },
    )
    .await
}
