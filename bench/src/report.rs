//! What a run found: one row per endpoint, one per process, as a table for
//! people and JSON for comparing runs.

use std::time::Duration;

use serde::Serialize;

use crate::load::LoadResult;
use crate::notify_steps::NotificationSteps;
use crate::open_loop::{MaxRate, RateResult};
use crate::pgbench::PgbenchFigures;

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

/// One fixed-rate (open-loop) run; latencies count from each request's due
/// time.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenLoopRow {
    pub endpoint: String,
    pub service: String,
    pub target_rate: f64,
    pub achieved_rate: f64,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl OpenLoopRow {
    pub fn new(endpoint: &str, service: &str, r: &RateResult) -> Self {
        OpenLoopRow {
            endpoint: endpoint.to_owned(),
            service: service.to_owned(),
            target_rate: r.target_rate,
            achieved_rate: r.achieved_rate(),
            requests: r.requests,
            errors: r.errors,
            p50_ms: r.quantile_ms(0.50),
            p99_ms: r.quantile_ms(0.99),
            p999_ms: r.quantile_ms(0.999),
            max_ms: r.histogram.max() as f64 / 1000.0,
        }
    }
}

/// One endpoint through the real nginx gateway, beside its direct figure.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRow {
    pub endpoint: String,
    pub requests: usize,
    pub errors: usize,
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The same endpoint straight to the service, in this run.
    pub direct_requests_per_second: Option<f64>,
}

impl GatewayRow {
    pub fn new(endpoint: &str, direct: Option<f64>, load: &LoadResult) -> Self {
        GatewayRow {
            endpoint: endpoint.to_owned(),
            requests: load.requests,
            errors: load.errors,
            requests_per_second: load.requests_per_second(),
            p50_ms: millis(load.percentile(0.50)),
            p99_ms: millis(load.percentile(0.99)),
            direct_requests_per_second: direct,
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
    /// Idle: of the RSS, what the process allocated itself, and its
    /// proportional share of all it maps ([`crate::memory::anon_and_pss_kib`]).
    pub anon_idle_kib: u64,
    pub pss_idle_kib: u64,
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
            anon_idle_kib: 0,
            pss_idle_kib: 0,
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
    pub open_loop: Vec<OpenLoopRow>,
    pub max_rates: Vec<MaxRate>,
    /// `pgbench -N` at the notification load's concurrency and duration.
    pub pgbench: Option<PgbenchFigures>,
    /// Notifications applied per second over pgbench's TPS.
    pub notify_to_pgbench: Option<f64>,
    pub notify_steps: Option<NotificationSteps>,
    /// Through the real nginx gateway (deploy/nginx/gateway.conf).
    pub gateway: Vec<GatewayRow>,
    /// APIv3 beside v2 (issue #13 point 8).
    pub v3: Option<crate::v3::V3Figures>,
    /// The light pair's CPU per request (issue #16 goal 1).
    pub light_cpu: Option<LightCpu>,
    /// What was not measured, and why.
    pub notes: Vec<String>,
}

/// The light pair's CPU per request over all its rounds ([`crate::cpu`]):
/// what each answer costs the service and the client, apart, where the
/// req/s ratio mixes the two (they share the machine's CPUs).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LightCpu {
    pub rounds: usize,
    /// jssdk-service's µs per `/healthz` and per jssdkConfig; None when the
    /// services run inside the bench.
    pub service_us: Option<[f64; 2]>,
    /// The bench's µs per request of each (the light client, and whatever
    /// else the bench's threads did meanwhile; in process, the services too).
    pub bench_us: Option<[f64; 2]>,
}

impl LightCpu {
    fn line(&self) -> String {
        let pair = |us: Option<[f64; 2]>| {
            us.map_or("-".to_owned(), |[h, j]| {
                format!(
                    "/healthz {h:.2} µs, jssdkConfig {j:.2} µs (/healthz / jssdkConfig = {:.2})",
                    h / j.max(1e-9)
                )
            })
        };
        format!(
            "light pair, CPU per request over its {} rounds each: jssdk-service {}; the bench's client {}\n",
            self.rounds,
            pair(self.service_us),
            pair(self.bench_us)
        )
    }
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
        if let Some(cpu) = &self.light_cpu {
            out += &cpu.line();
        }
        out += &format!(
            "\n{:<14} {:>8} {:>10} {:>14} {:>10} {:>10} {:>14}\n",
            "process", "pid", "ready ms", "RSS idle KiB", "anon KiB", "PSS KiB", "RSS load KiB"
        );
        for p in &self.processes {
            out += &format!(
                "{:<14} {:>8} {:>10.1} {:>14} {:>10} {:>10} {:>14}\n",
                p.service,
                p.pid,
                p.ready_ms,
                p.rss_idle_kib,
                p.anon_idle_kib,
                p.pss_idle_kib,
                p.rss_load_kib
            );
        }
        out += &format!(
            "\nnotifications applied: {} (orders PAID afterwards)\n",
            self.notifications_applied
        );
        out += &self.extras_table();
        out
    }

    fn extras_table(&self) -> String {
        let mut out = String::new();
        if let (Some(p), Some(ratio)) = (&self.pgbench, self.notify_to_pgbench) {
            out += &format!(
                "pgbench -N, {} clients, {} s, same PostgreSQL: {:.0} TPS; notifications applied / pgbench TPS = {:.2}\n",
                p.clients, p.seconds, p.tps, ratio
            );
        }
        if let Some(s) = &self.notify_steps {
            out += &format!(
                "\none notification, {} sent one at a time (means, ms):\n",
                s.notifications
            );
            let mut line = |what: &str, ms: f64| out += &format!("  {what:<52} {ms:>8.3}\n");
            line("end to end", s.end_to_end_ms);
            line(
                "HTTP round trip (/healthz, same process)",
                s.http_round_trip_ms,
            );
            line(
                "parse + verify (XML, MD5 sign; in the bench)",
                s.parse_verify_ms,
            );
            if let (Some(on), Some(off)) = (s.commit_ms, s.commit_async_ms) {
                line("commit of a one-row INSERT (synchronous_commit on)", on);
                line("  the same, synchronous_commit off", off);
            }
            line("rest: statements, pool, web::block hops", s.rest_ms);
            for t in &s.tables {
                out += &format!(
                    "  {:<28} per notification: {:.2} inserts, {:.2} updates, {:.2} index scans, {:.2} seq scans\n",
                    t.table, t.inserts, t.updates, t.index_scans, t.seq_scans
                );
            }
        }
        if !self.open_loop.is_empty() {
            out += &format!(
                "\nopen loop (fixed rate; latency from each request's due time, HDR histogram)\n{:<22} {:>9} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8}\n",
                "endpoint", "target/s", "got/s", "errors", "p50 ms", "p99 ms", "p99.9 ms", "max ms"
            );
            for r in &self.open_loop {
                out += &format!(
                    "{:<22} {:>9.0} {:>9.0} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2}\n",
                    r.endpoint,
                    r.target_rate,
                    r.achieved_rate,
                    r.errors,
                    r.p50_ms,
                    r.p99_ms,
                    r.p999_ms,
                    r.max_ms
                );
            }
        }
        for m in &self.max_rates {
            let steps: Vec<String> = m
                .steps
                .iter()
                .map(|s| format!("{:.0}{}", s.target_rate, if s.held { "✓" } else { "✗" }))
                .collect();
            out += &format!(
                "highest rate with p99 < {:.0} ms: {:<22} {:>8.0}/s  (tried {})\n",
                m.slo_p99_ms,
                m.endpoint,
                m.rate,
                steps.join(" ")
            );
        }
        if !self.gateway.is_empty() {
            out += &format!(
                "\nthrough the nginx gateway (closed loop, same concurrency)\n{:<30} {:>10} {:>10} {:>8} {:>8} {:>7}\n",
                "endpoint", "req/s", "direct", "p50 ms", "p99 ms", "errors"
            );
            for g in &self.gateway {
                let direct = g
                    .direct_requests_per_second
                    .map_or("-".to_owned(), |d| format!("{d:.0}"));
                out += &format!(
                    "{:<30} {:>10.0} {:>10} {:>8.2} {:>8.2} {:>7}\n",
                    g.endpoint, g.requests_per_second, direct, g.p50_ms, g.p99_ms, g.errors
                );
            }
        }
        if let Some(v3) = &self.v3 {
            out += &crate::v3::table(v3);
        }
        let highest = |e: &str| {
            self.max_rates
                .iter()
                .find(|m| m.endpoint == e)
                .map(|m| m.rate)
        };
        if let (Some(h), Some(j)) = (highest("jssdk /healthz"), highest("jssdkConfig (warm)"))
            && h > 0.0
        {
            out += &format!(
                "  jssdkConfig (warm) / jssdk /healthz, highest rates: {:.2}\n",
                j / h
            );
        }
        for n in &self.notes {
            out += &format!("note: {n}\n");
        }
        out
    }
}
