//! Open-loop load: requests start on a fixed schedule (`rate` per second)
//! whatever the answers do, and each latency counts from the moment its
//! request was *due*, not from when it was sent. A closed loop (each worker
//! waiting for its answer, as [`crate::load::drive`]) sends less while the
//! service is slow, so the slow moments hide in fewer samples: coordinated
//! omission. Counting from the schedule puts the wait a real client would have
//! had back in, as wrk2 and oha do. The latencies go into an HDR histogram
//! (microseconds, 3 significant digits).
//!
//! The schedule runs on a thread of its own with `std::thread::sleep` (tens of
//! microseconds late at worst on Linux; tokio's timer wheel ticks per
//! millisecond, which would add up to a millisecond to every sample). At most
//! `max_in_flight` requests are outstanding: past that the schedule waits, and
//! the wait is in the latencies, since they count from the due time.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};

/// Latencies above this are recorded as this (a minute: nothing in a bench
/// waits longer, the client times out at 30 s).
const HIGHEST_MICROS: u64 = 60_000_000;

/// What one fixed-rate run measured.
#[derive(Debug, Clone)]
pub struct RateResult {
    pub target_rate: f64,
    pub requests: u64,
    pub errors: u64,
    /// From the first due time to the last answer.
    pub elapsed: Duration,
    /// Microseconds from each request's due time to its answer.
    pub histogram: Histogram<u64>,
}

impl RateResult {
    /// Answers per second over the run (below `target_rate` when the
    /// service, or the bench itself, could not keep up).
    pub fn achieved_rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at quantile `q` (0..=1), in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.histogram.value_at_quantile(q) as f64 / 1000.0
    }

    /// Whether the run held its rate within `p99`: no errors, p99 under
    /// it, and answers at 95 % of the target rate or better.
    pub fn holds(&self, p99: Duration) -> bool {
        self.errors == 0
            && self.quantile_ms(0.99) < p99.as_secs_f64() * 1000.0
            && self.achieved_rate() >= 0.95 * self.target_rate
    }
}

/// Runs `job(i)` for `rate * duration` requests, request i due at
/// `start + i / rate`. A job answers whether its request succeeded.
pub async fn drive_rate<F, Fut>(
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
    job: F,
) -> anyhow::Result<RateResult>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    anyhow::ensure!(
        rate > 0.0 && rate.is_finite(),
        "rate must be a positive number"
    );
    let total = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let handle = tokio::runtime::Handle::current();
    let slots = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let (tx, mut rx) = mpsc::unbounded_channel::<(Duration, bool)>();
    let scheduler = std::thread::Builder::new()
        .name("bench-schedule".into())
        .spawn(move || {
            let start = Instant::now() + Duration::from_millis(5);
            for i in 0..total {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                let Ok(slot) = handle.block_on(slots.clone().acquire_owned()) else {
                    break;
                };
                let request = job(i);
                let tx = tx.clone();
                handle.spawn(async move {
                    let ok = request.await;
                    let _ = tx.send((due.elapsed(), ok));
                    drop(slot);
                });
            }
            start
        })?;
    let mut histogram = Histogram::<u64>::new_with_bounds(1, HIGHEST_MICROS, 3)?;
    let (mut requests, mut errors) = (0, 0);
    // Ends once the scheduler and every request have dropped their senders.
    while let Some((latency, ok)) = rx.recv().await {
        histogram.saturating_record((latency.as_micros() as u64).clamp(1, HIGHEST_MICROS));
        requests += 1;
        if !ok {
            errors += 1;
        }
    }
    let start = tokio::task::spawn_blocking(move || scheduler.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the schedule thread panicked"))?;
    Ok(RateResult {
        target_rate: rate,
        requests,
        errors,
        elapsed: start.elapsed(),
        histogram,
    })
}

/// The highest rate found to hold p99 under `slo`, and every step tried.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MaxRate {
    pub endpoint: String,
    pub slo_p99_ms: f64,
    /// 0 when not even the first rate held.
    pub rate: f64,
    pub steps: Vec<StepFigures>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepFigures {
    pub target_rate: f64,
    pub achieved_rate: f64,
    pub p99_ms: f64,
    pub errors: u64,
    pub held: bool,
}

/// A short search: from `first`, double the rate while it holds (up to
/// `ceiling`), then halve the gap between the last rate that held and the
/// first that did not `bisections` times. A step that fails is run once more
/// (the better of the two counts).
pub async fn find_max_rate<R, Fut>(
    endpoint: &str,
    first: f64,
    ceiling: f64,
    bisections: usize,
    slo: Duration,
    mut run: R,
) -> anyhow::Result<MaxRate>
where
    R: FnMut(f64) -> Fut,
    Fut: Future<Output = anyhow::Result<RateResult>>,
{
    let mut steps = Vec::new();
    let (mut good, mut bad) = (0.0, None);
    let mut rate = first;
    while rate <= ceiling {
        if step(&mut run, rate, slo, &mut steps).await? {
            good = rate;
            rate *= 2.0;
        } else {
            bad = Some(rate);
            break;
        }
    }
    if let Some(mut bad) = bad {
        for _ in 0..bisections {
            let mid = ((good + bad) / 2.0).round();
            if mid <= good || mid >= bad {
                break;
            }
            if step(&mut run, mid, slo, &mut steps).await? {
                good = mid;
            } else {
                bad = mid;
            }
        }
    }
    Ok(MaxRate {
        endpoint: endpoint.to_owned(),
        slo_p99_ms: slo.as_secs_f64() * 1000.0,
        rate: good,
        steps,
    })
}

/// Runs one step of the search; whether it held.
async fn step<R, Fut>(
    run: &mut R,
    rate: f64,
    slo: Duration,
    steps: &mut Vec<StepFigures>,
) -> anyhow::Result<bool>
where
    R: FnMut(f64) -> Fut,
    Fut: Future<Output = anyhow::Result<RateResult>>,
{
    let mut r = run(rate).await?;
    if !r.holds(slo) {
        // Once more before giving the rate up: on a shared machine one stall
        // of another process (a compiler, say) is enough to lift a short
        // step's p99 past the bound.
        let again = run(rate).await?;
        if again.holds(slo) || again.quantile_ms(0.99) < r.quantile_ms(0.99) {
            r = again;
        }
    }
    let held = r.holds(slo);
    steps.push(StepFigures {
        target_rate: rate,
        achieved_rate: r.achieved_rate(),
        p99_ms: r.quantile_ms(0.99),
        errors: r.errors,
        held,
    });
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_request_runs_on_schedule_and_failures_are_counted() {
        let r = drive_rate(1000.0, Duration::from_millis(100), 16, |i| async move {
            i % 10 != 0
        })
        .await
        .unwrap();
        assert_eq!((r.requests, r.errors), (100, 10));
        assert!(r.histogram.len() == 100);
        // 100 requests at 1000/s take about 0.1 s, not less.
        assert!(r.elapsed >= Duration::from_millis(99), "{:?}", r.elapsed);
    }

    /// A service that answers one request at a time and takes 10 ms each,
    /// driven at 200/s: it keeps up with 100/s only, so requests queue. A
    /// closed loop would report 10 ms for every one; counted from the
    /// schedule, the queue shows.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_queue_behind_a_slow_service_shows_in_the_latencies() {
        let server = Arc::new(tokio::sync::Mutex::new(()));
        let r = drive_rate(200.0, Duration::from_millis(500), 64, move |_| {
            let server = server.clone();
            async move {
                let _busy = server.lock().await;
                tokio::time::sleep(Duration::from_millis(10)).await;
                true
            }
        })
        .await
        .unwrap();
        assert_eq!(r.requests, 100);
        // The last request is due at 0.5 s and served at about 1 s.
        assert!(r.quantile_ms(0.99) > 300.0, "p99 {}", r.quantile_ms(0.99));
        assert!(r.quantile_ms(0.0) >= 9.0);
        assert!(!r.holds(Duration::from_millis(50)));
    }

    #[tokio::test]
    async fn the_search_doubles_then_bisects() {
        // A fake endpoint that holds up to 3000/s.
        let fake = |rate: f64| async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, HIGHEST_MICROS, 3)?;
            histogram.record(if rate <= 3000.0 { 1_000 } else { 100_000 })?;
            Ok(RateResult {
                target_rate: rate,
                requests: rate as u64,
                errors: 0,
                elapsed: Duration::from_secs(1),
                histogram,
            })
        };
        let found = find_max_rate("x", 1000.0, 1e6, 3, Duration::from_millis(50), fake)
            .await
            .unwrap();
        let tried: Vec<f64> = found.steps.iter().map(|s| s.target_rate).collect();
        assert_eq!(tried, [1000.0, 2000.0, 4000.0, 3000.0, 3500.0, 3250.0]);
        assert_eq!(found.rate, 3000.0);
    }
}
