//! The load generator: a fixed number of requests spread over a fixed number
//! of concurrent workers, each timing its own requests.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What one run of one endpoint measured.
#[derive(Debug, Clone)]
pub struct LoadResult {
    pub requests: usize,
    pub concurrency: usize,
    pub errors: usize,
    pub elapsed: Duration,
    /// Every request's latency, sorted.
    latencies: Vec<Duration>,
}

impl LoadResult {
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency below which `p` (0..=1) of the requests finished
    /// (nearest rank).
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = (p * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }
}

/// Runs `job(i)` for i in 0..requests on `concurrency` workers; a job answers
/// whether its request succeeded.
pub async fn drive<F, Fut>(concurrency: usize, requests: usize, job: F) -> LoadResult
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let concurrency = concurrency.clamp(1, requests.max(1));
    let job = Arc::new(job);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (job, next) = (job.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let t = Instant::now();
                let ok = job(i).await;
                latencies.push(t.elapsed());
                if !ok {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::with_capacity(requests);
    let mut errors = 0;
    for w in workers {
        // A worker ends only by finishing or by its job panicking (nothing
        // aborts it): a panic is the job's bug, and goes on as that panic.
        let (l, e) = w
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    LoadResult {
        requests,
        concurrency,
        errors,
        elapsed,
        latencies,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_request_runs_once_and_failures_are_counted() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        let result = drive(3, 10, move |i| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push(i);
                i % 4 != 0
            }
        })
        .await;
        let mut seen = seen.lock().unwrap().clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!((result.requests, result.errors), (10, 3));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let r = LoadResult {
            requests: 4,
            concurrency: 1,
            errors: 0,
            elapsed: Duration::from_secs(2),
            latencies: [1, 2, 3, 4].map(Duration::from_millis).to_vec(),
        };
        assert_eq!(r.percentile(0.5), Duration::from_millis(2));
        assert_eq!(r.percentile(0.99), Duration::from_millis(4));
        assert_eq!(r.requests_per_second(), 2.0);
    }
}
