//! pay-service's Prometheus metrics. Process-wide statics: `stack` hosts every
//! service in one process, so each is registered once. WeChat call latency is
//! recorded by shared's client (`wechat_call_duration_seconds`).

use std::sync::LazyLock;

use prometheus::{IntCounterVec, IntGaugeVec};
use shared::metrics::{counter_vec, gauge_vec};

/// Orders created, by trade type.
pub static ORDERS_CREATED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "pay_orders_created_total",
        "Orders created, by trade type",
        &["trade_type"],
    )
});

/// Orders in the database by status, counted by each reconciliation pass.
pub static ORDERS_BY_STATUS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "pay_orders",
        "Orders by status, as of the last reconciliation pass",
        &["status"],
    )
});

/// Orders entering each status, by what moved them.
pub static ORDER_TRANSITIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "pay_order_transitions_total",
        "Orders entering a status, by status and source",
        &["status", "source"],
    )
});

/// Payment notifications, by outcome.
pub static NOTIFICATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "pay_notifications_total",
        "Payment notifications by outcome",
        &["outcome"],
    )
});

/// Orders reconciliation looked at, by result.
pub static RECONCILED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "pay_reconcile_orders_total",
        "Orders checked by reconciliation, by result",
        &["result"],
    )
});

/// Refund notifications, by outcome.
pub static REFUND_NOTIFICATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "pay_refund_notifications_total",
        "Refund notifications by outcome",
        &["outcome"],
    )
});

/// Merchant event delivery attempts, by result (`delivered`, `failed`).
pub static EVENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "pay_event_deliveries_total",
        "Merchant event delivery attempts by result",
        &["result"],
    )
});

/// Admin requests refused for their token (`missing`, `wrong_token`) or
/// because their address failed too often (`rate_limited`).
pub static ADMIN_LOGIN_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "pay_admin_login_failures_total",
        "Admin requests refused for their token or their address's failures",
        &["reason"],
    )
});

pub fn transition(status: &str, source: &str) {
    ORDER_TRANSITIONS.with_label_values(&[status, source]).inc();
}

/// Discrepancies the last daily bill reconciliation found, by kind
/// (`MISSING_LOCAL`, `MISSING_AT_WECHAT`, `AMOUNT_MISMATCH`, `STATUS_MISMATCH`).
pub static BILL_DISCREPANCIES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "pay_bill_discrepancies",
        "Discrepancies found by the last daily bill reconciliation, by kind",
        &["kind"],
    )
});

/// When a daily bill was last reconciled (Unix seconds).
pub static BILL_LAST_RECONCILED: LazyLock<prometheus::IntGauge> = LazyLock::new(|| {
    shared::metrics::gauge(
        "pay_bill_last_reconciled_timestamp_seconds",
        "When a daily WeChat bill was last downloaded and compared (Unix seconds)",
    )
});
