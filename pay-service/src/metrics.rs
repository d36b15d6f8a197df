//! pay-service's Prometheus metrics. Process-wide statics: `stack` hosts every
//! service in one process, so each is registered once. WeChat call latency is
//! recorded by shared's client (`wechat_call_duration_seconds`).

use std::sync::LazyLock;

use prometheus::{IntCounterVec, IntGaugeVec, Opts};
use shared::telemetry::register;

/// Orders created, by trade type.
pub static ORDERS_CREATED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new("pay_orders_created_total", "Orders created, by trade type"),
            &["trade_type"],
        )
        .expect("valid metric"),
    )
});

/// Orders in the database by status, counted by each reconciliation pass.
pub static ORDERS_BY_STATUS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "pay_orders",
                "Orders by status, as of the last reconciliation pass",
            ),
            &["status"],
        )
        .expect("valid metric"),
    )
});

/// Orders entering each status, by what moved them.
pub static ORDER_TRANSITIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "pay_order_transitions_total",
                "Orders entering a status, by status and source",
            ),
            &["status", "source"],
        )
        .expect("valid metric"),
    )
});

/// Payment notifications, by outcome.
pub static NOTIFICATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "pay_notifications_total",
                "Payment notifications by outcome",
            ),
            &["outcome"],
        )
        .expect("valid metric"),
    )
});

/// Orders reconciliation looked at, by result.
pub static RECONCILED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "pay_reconcile_orders_total",
                "Orders checked by reconciliation, by result",
            ),
            &["result"],
        )
        .expect("valid metric"),
    )
});

/// Refund notifications, by outcome.
pub static REFUND_NOTIFICATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "pay_refund_notifications_total",
                "Refund notifications by outcome",
            ),
            &["outcome"],
        )
        .expect("valid metric"),
    )
});

/// Merchant event delivery attempts, by result (`delivered`, `failed`).
pub static EVENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "pay_event_deliveries_total",
                "Merchant event delivery attempts by result",
            ),
            &["result"],
        )
        .expect("valid metric"),
    )
});

pub fn transition(status: &str, source: &str) {
    ORDER_TRANSITIONS.with_label_values(&[status, source]).inc();
}
