//! auth-service's own metrics (process-wide: `stack` hosts every service in one process).

use std::sync::LazyLock;

use prometheus::IntCounterVec;

/// Logins by kind (`oa`, `mp`) and outcome (`ok`, `error`).
pub static LOGINS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    shared::metrics::counter_vec(
        "auth_logins_total",
        "Logins by kind and outcome",
        &["kind", "outcome"],
    )
});

pub fn record_login<T, E>(kind: &str, result: &Result<T, E>) {
    let outcome = if result.is_ok() { "ok" } else { "error" };
    LOGINS.with_label_values(&[kind, outcome]).inc();
}
