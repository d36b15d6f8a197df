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
//!
//! A counter that every request of a hot route bumps is a [`HotCounter`],
//! and the metrics are read with [`gather`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};
use thread_local::ThreadLocal;

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

/// A counter for a route that serves tens of thousands of requests a second
/// on every core. A Prometheus counter is one atomic that every worker
/// thread adds to, so each increment moves its cache line from the core that
/// added last (issue #16: on two cores, perf put such shared writes at about
/// 0.2 µs of the 1.5 µs a warm jssdkConfig costs beyond `/healthz`).
/// Here each thread adds to a line of its own, and what they hold moves into
/// the Prometheus counter when the metrics are read: [`gather`] (which
/// `/metrics` calls), or [`HotCounter::get`]. A well-kept crate has no such
/// counter: `prometheus`'s local counters flush only from the thread that
/// counted, so an idle worker's counts would never show.
pub struct HotCounter {
    counter: IntCounter,
    pending: Arc<Pending>,
}

/// Each thread's count not yet in the Prometheus counter.
type Pending = ThreadLocal<OwnLine>;

/// A cache line (two, where the prefetcher pairs them) to itself.
#[derive(Default)]
#[repr(align(128))]
struct OwnLine(AtomicU64);

/// Every hot counter's pending counts, with where they go.
static PENDING: Mutex<Vec<(IntCounter, Arc<Pending>)>> = Mutex::new(Vec::new());

impl HotCounter {
    /// Counts into `counter` (already registered, as [`counter`] and
    /// [`counter_vec`]'s children are). Made once per counter, in a static.
    pub fn new(counter: IntCounter) -> Self {
        let pending = Arc::new(Pending::new());
        lock_pending().push((counter.clone(), Arc::clone(&pending)));
        HotCounter { counter, pending }
    }

    pub fn inc(&self) {
        self.pending
            .get_or_default()
            .0
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Everything counted so far, on every thread.
    pub fn get(&self) -> u64 {
        flush(&self.counter, &self.pending);
        self.counter.get()
    }
}

fn lock_pending() -> std::sync::MutexGuard<'static, Vec<(IntCounter, Arc<Pending>)>> {
    // The list is only ever pushed to: a panic cannot leave it half-written.
    PENDING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Moves the threads' counts into the counter; a count added meanwhile
/// stays for the next flush, none is lost or moved twice (`swap`).
fn flush(counter: &IntCounter, pending: &Pending) {
    let moved: u64 = pending.iter().map(|c| c.0.swap(0, Ordering::Relaxed)).sum();
    if moved > 0 {
        counter.inc_by(moved);
    }
}

/// Every metric of the default registry, with the [`HotCounter`]s' counts
/// in: what `/metrics` serves.
pub fn gather() -> Vec<MetricFamily> {
    for (counter, pending) in lock_pending().iter() {
        flush(counter, pending);
    }
    prometheus::gather()
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

    fn exported_value(name: &str) -> Option<u64> {
        gather()
            .iter()
            .find(|family| family.name() == name)
            .map(|family| family.get_metric()[0].get_counter().get_value() as u64)
    }

    /// Counts from many threads all arrive, through `gather` and `get`
    /// alike, and none twice.
    #[test]
    fn a_hot_counter_counts_every_thread_once() {
        let hot = HotCounter::new(counter("shared_test_hot_total", "test hot"));
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| (0..1000).for_each(|_| hot.inc()));
            }
        });
        assert_eq!(exported_value("shared_test_hot_total"), Some(4000));
        hot.inc();
        assert_eq!(hot.get(), 4001);
        assert_eq!(exported_value("shared_test_hot_total"), Some(4001));
    }

    /// Without the flush, `prometheus::gather` alone would not see them.
    #[test]
    fn a_hot_count_waits_for_a_flush() {
        let hot = HotCounter::new(counter("shared_test_hot_pending_total", "test hot"));
        // Held from the count to the look: another test's `gather` would
        // flush every hot counter, this one too.
        let no_flush = lock_pending();
        hot.inc();
        let family = prometheus::gather()
            .into_iter()
            .find(|f| f.name() == "shared_test_hot_pending_total")
            .unwrap();
        assert_eq!(family.get_metric()[0].get_counter().get_value(), 0.0);
        drop(no_flush);
        assert_eq!(exported_value("shared_test_hot_pending_total"), Some(1));
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
