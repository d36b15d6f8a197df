//! The audit trail of payment state changes: who moved an order (its source
//! and request id) from which status to which. Every change is a row in
//! `pay_order_transitions` (written in the changing transaction) and, once
//! committed, one `tracing` line with target `audit`.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::db::Status;
use crate::metrics;

/// What caused a change: `source` is one of `notify`, `query`, `reconcile`,
/// `close`, `unifiedorder`, `refund`, `refund_notify`; `request_id` is the
/// HTTP request's id, or a background pass's own (`reconcile-<n>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub source: &'static str,
    pub request_id: String,
}

/// Numbers background passes within this process.
static PASSES: AtomicU64 = AtomicU64::new(1);

impl Cause {
    /// A change made while serving the request `request_id` (its
    /// `x-request-id`, or `-`).
    pub fn request(source: &'static str, request_id: &str) -> Self {
        Cause {
            source,
            request_id: request_id.to_owned(),
        }
    }

    /// A change made by a background pass: `reconcile-<n>`, unique in the process.
    pub fn pass(source: &'static str) -> Self {
        Cause {
            source,
            request_id: format!("{source}-{}", PASSES.fetch_add(1, Ordering::Relaxed)),
        }
    }
}

/// Logs a committed status change and counts it.
pub fn changed(out_trade_no: &str, from: Status, to: Status, cause: &Cause) {
    metrics::transition(to.as_str(), cause.source);
    tracing::info!(
        target: "audit",
        out_trade_no,
        old_status = from.as_str(),
        new_status = to.as_str(),
        source = cause.source,
        request_id = %cause.request_id,
        "order status changed"
    );
}

/// Logs a committed refund release: the amount is refundable again.
pub fn refund_released(out_refund_no: &str, why: &str, cause: &Cause) {
    tracing::info!(
        target: "audit",
        out_refund_no,
        why,
        source = cause.source,
        request_id = %cause.request_id,
        "refund failed; amount released"
    );
}

/// Logs a refund that WeChat could not pay out (CHANGE): an operator must
/// finish it at the merchant platform; its amount stays reserved.
pub fn refund_needs_operator(out_refund_no: &str, why: &str, cause: &Cause) {
    tracing::warn!(
        target: "audit",
        out_refund_no,
        why,
        source = cause.source,
        request_id = %cause.request_id,
        "refund needs an operator; amount stays reserved"
    );
}

/// Logs an admin request whose token is missing or matches no operator
/// (`why`), or that was refused because its address spent its budget of
/// failures, and counts it (`pay_admin_login_failures_total`).
pub fn admin_login_failed(client: &str, why: &'static str, path: &str, request_id: &str) {
    metrics::ADMIN_LOGIN_FAILURES
        .with_label_values(&[why])
        .inc();
    tracing::warn!(
        target: "audit",
        client,
        why,
        path,
        request_id,
        "admin login failed"
    );
}

/// Logs an operator's console session opened or closed (`what`: `signed
/// in`, `signed out`) from `client`.
pub fn admin_session(operator: &str, what: &'static str, client: &str, request_id: &str) {
    tracing::info!(
        target: "audit",
        operator,
        client,
        request_id,
        "admin {what}"
    );
}

/// Logs a console request refused for its CSRF token or Origin (`why`):
/// the session was valid, so it is not a failed login.
pub fn admin_csrf_refused(operator: &str, why: &'static str, path: &str, request_id: &str) {
    tracing::warn!(
        target: "audit",
        operator,
        why,
        path,
        request_id,
        "admin request refused (CSRF)"
    );
}

/// Logs a merchant event an operator made due again.
pub fn event_retried(event_id: i64, out_trade_no: &str, operator: &str, cause: &Cause) {
    tracing::info!(
        target: "audit",
        event_id,
        out_trade_no,
        operator,
        source = cause.source,
        request_id = %cause.request_id,
        "merchant event retry requested"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_get_distinct_ids() {
        let a = Cause::pass("reconcile");
        let b = Cause::pass("reconcile");
        assert!(a.request_id.starts_with("reconcile-"));
        assert_ne!(a.request_id, b.request_id);
    }
}
