//! What a run found: one row per endpoint, one per process, as a table for
//! people and JSON for comparing runs.

use std::time::Duration;

use serde::Serialize;

use crate::load::LoadResult;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub endpoint: String,
    pub service: String,
    pub concurrency: usize,
    pub requests: usize,
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: usize,
    /// Calls the sandbox counted on WeChat's endpoints during the load.
    pub upstream_calls: u64,
    /// requests/s over /healthz's requests/s of the same process in this run.
    pub ratio_to_healthz: f64,
}

impl Row {
    pub fn new(endpoint: &str, service: &str, load: &LoadResult, upstream_calls: u64) -> Row {
        Row {
            endpoint: endpoint.to_owned(),
            service: service.to_owned(),
            concurrency: load.concurrency,
            requests: load.requests,
            requests_per_second: load.requests_per_second(),
            p50_ms: millis(load.percentile(0.50)),
            p99_ms: millis(load.percentile(0.99)),
            errors: load.errors,
            upstream_calls,
            ratio_to_healthz: 1.0,
        }
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessFigures {
    pub service: String,
    pub pid: u32,
    /// Spawn to the first 200 on /readyz.
    pub ready_ms: f64,
    pub rss_idle_kib: u64,
    /// The peak sampled while its endpoints were under load.
    pub rss_load_kib: u64,
}

impl ProcessFigures {
    pub fn new(service: &str, pid: u32, ready: Duration, rss_idle_kib: u64) -> Self {
        ProcessFigures {
            service: service.to_owned(),
            pid,
            ready_ms: millis(ready),
            rss_idle_kib,
            rss_load_kib: rss_idle_kib,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub backend: String,
    /// "binaries" (one process each) or "in-process" (memory and start
    /// figures are then this process's, not a service's).
    pub launch: String,
    pub requests: usize,
    pub concurrency: usize,
    pub cpus: usize,
    pub started_at: String,
    pub rows: Vec<Row>,
    pub processes: Vec<ProcessFigures>,
    /// Orders found PAID after the notification load (should equal the
    /// number of notifications).
    pub notifications_applied: usize,
}

impl Report {
    pub fn table(&self) -> String {
        let mut out = format!(
            "backend {} ({}), {} requests per endpoint, concurrency {}, {} CPUs\n\n",
            self.backend, self.launch, self.requests, self.concurrency, self.cpus
        );
        out += &format!(
            "{:<26} {:<14} {:>5} {:>10} {:>9} {:>9} {:>7} {:>9} {:>9}\n",
            "endpoint",
            "service",
            "conc",
            "req/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "upstream",
            "/healthz"
        );
        for r in &self.rows {
            out += &format!(
                "{:<26} {:<14} {:>5} {:>10.0} {:>9.2} {:>9.2} {:>7} {:>9} {:>9.2}\n",
                r.endpoint,
                r.service,
                r.concurrency,
                r.requests_per_second,
                r.p50_ms,
                r.p99_ms,
                r.errors,
                r.upstream_calls,
                r.ratio_to_healthz
            );
        }
        out += &format!(
            "\n{:<14} {:>8} {:>10} {:>14} {:>14}\n",
            "process", "pid", "ready ms", "RSS idle KiB", "RSS load KiB"
        );
        for p in &self.processes {
            out += &format!(
                "{:<14} {:>8} {:>10.1} {:>14} {:>14}\n",
                p.service, p.pid, p.ready_ms, p.rss_idle_kib, p.rss_load_kib
            );
        }
        out += &format!(
            "\nnotifications applied: {} (orders PAID afterwards)\n",
            self.notifications_applied
        );
        out
    }
}
