//! auth-service's own metrics (process-wide: `stack` hosts every service in one process).

use std::sync::LazyLock;

use prometheus::{IntCounterVec, Opts};
use shared::telemetry::register;

/// Logins by kind (`oa`, `mp`) and outcome (`ok`, `error`).
pub static LOGINS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new("auth_logins_total", "Logins by kind and outcome"),
            &["kind", "outcome"],
        )
        .expect("valid metric"),
    )
});

pub fn record_login<T, E>(kind: &str, result: &Result<T, E>) {
    let outcome = if result.is_ok() { "ok" } else { "error" };
    LOGINS.with_label_values(&[kind, outcome]).inc();
}
