//! Building Prometheus metrics into the default registry.
//!
//! Every metric of the workspace is a process-wide `LazyLock` static built by
//! one of these functions, so that `stack`, which hosts every service in one
//! process, registers each exactly once:
//!
//! ```
//! use std::sync::LazyLock;
//! use prometheus::IntCounterVec;
//!
//! pub static LOGINS: LazyLock<IntCounterVec> = LazyLock::new(|| {
//!     shared::metrics::counter_vec("doc_logins_total", "Logins by kind and outcome", &["kind", "outcome"])
//! });
//! LOGINS.with_label_values(&["mp", "ok"]).inc();
//! assert_eq!(LOGINS.with_label_values(&["mp", "ok"]).get(), 1);
//! ```

use prometheus::core::Collector;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};

/// A counter without labels.
pub fn counter(name: &str, help: &str) -> IntCounter {
    register(IntCounter::new(name, help))
}

/// A counter with the given label names.
pub fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(IntCounterVec::new(Opts::new(name, help), labels))
}

/// A gauge without labels.
pub fn gauge(name: &str, help: &str) -> IntGauge {
    register(IntGauge::new(name, help))
}

/// A gauge with the given label names.
pub fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(IntGaugeVec::new(Opts::new(name, help), labels))
}

/// A histogram with the given label names and bucket upper bounds (seconds).
pub fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    register(HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    ))
}

/// Registers a freshly built metric in the default registry and hands it back.
#[allow(
    clippy::expect_used,
    reason = "an invalid name or label, or a metric registered twice, is a programming \
              error: every metric is a LazyLock static built on first use, so any test \
              touching it panics here, long before production"
)]
fn register<M: Collector + Clone + 'static>(built: prometheus::Result<M>) -> M {
    built
        .and_then(|metric| {
            prometheus::register(Box::new(metric.clone()))?;
            Ok(metric)
        })
        .expect("metric is valid and registered once")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exported(name: &str) -> bool {
        prometheus::gather()
            .iter()
            .any(|family| family.name() == name)
    }

    #[test]
    fn registers_in_the_default_registry() {
        let hits = counter_vec("shared_test_hits_total", "test hits", &["kind"]);
        hits.with_label_values(&["a"]).inc();
        assert!(exported("shared_test_hits_total"));
        let latency = histogram_vec(
            "shared_test_latency_seconds",
            "test latency",
            &["route"],
            &[0.1, 1.0],
        );
        latency.with_label_values(&["/"]).observe(0.5);
        assert!(exported("shared_test_latency_seconds"));
        gauge("shared_test_gauge", "test gauge").set(3);
        assert!(exported("shared_test_gauge"));
    }

    #[test]
    #[should_panic(expected = "metric is valid and registered once")]
    fn registering_a_name_twice_is_a_programming_error() {
        counter("shared_test_twice_total", "first");
        counter("shared_test_twice_total", "second");
    }

    #[test]
    #[should_panic(expected = "metric is valid and registered once")]
    fn an_invalid_name_is_a_programming_error() {
        counter("not a metric name", "spaces are not allowed");
    }
}
