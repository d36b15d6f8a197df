//! `bench`: starts auth-service, jssdk-service and pay-service on SQLite or on
//! PostgreSQL and Redis, against a WeChat sandbox in this process, drives a
//! fixed number of requests at a fixed concurrency on each endpoint, and
//! reports requests/s, latency, errors and WeChat calls, as a ratio to the
//! same process's `/healthz` in the same run, plus each process's memory and
//! start time. `cargo run --release -p bench -- --help`.
//!
//! The fault tests of issue #8 live in `tests/` beside the smoke test.

pub mod backends;
pub mod load;
pub mod memory;
pub mod report;
pub mod scenarios;
pub mod services;

use std::time::Duration;

use wechat_sandbox::{Sandbox, SandboxConfig};

pub use backends::Backend;
use backends::Storage;
use memory::{PeakSampler, rss_kib};
use report::{ProcessFigures, Report, Row};
pub use services::{Kind, Launch, Service};

#[derive(Debug, Clone)]
pub struct Options {
    pub backend: Backend,
    pub launch: Launch,
    /// Requests per endpoint.
    pub requests: usize,
    pub concurrency: usize,
    /// PostgreSQL to make the run's schema in; None: `BENCH_DATABASE_URL`,
    /// else [`backends::DEFAULT_DATABASE_URL`].
    pub database_url: Option<String>,
    /// Redis for the PostgreSQL run; None: `BENCH_REDIS_URL`, else a
    /// `redis-server` of the run's own.
    pub redis_url: Option<String>,
}

/// The secret every service signs and checks sessions with in a run.
const SESSION_SECRET: &str = "bench-session-secret-0123456789abcdefghij";

/// Variables every service gets (besides LISTEN_ADDR and PUBLIC_BASE_URL).
fn service_vars(kind: Kind, sandbox: &str, storage: &Storage) -> Vec<(String, String)> {
    let mut vars: Vec<(&str, String)> = vec![
        ("SESSION_SECRET", SESSION_SECRET.into()),
        ("DATABASE_URL", storage.database_url(kind.short())),
        // Access logs would measure the terminal; warnings still show.
        ("RUST_LOG", "warn".into()),
        // Every login in the run comes from one address.
        ("LOGIN_RATE_LIMIT", "0".into()),
        // The reconciliation worker would add its own load to pay-service.
        ("RECONCILE_INTERVAL_SECONDS", "0".into()),
    ];
    vars.extend(wechat_sandbox::service_env(sandbox));
    if let Some(url) = storage.redis_url() {
        vars.push(("REDIS_URL", url.into()));
    }
    vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

pub fn client(concurrency: usize) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(concurrency.max(1))
        .timeout(Duration::from_secs(30))
        .build()
}

/// One whole run; the services and storage are gone when it returns.
pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    anyhow::ensure!(
        opts.requests > 0 && opts.concurrency > 0,
        "requests and concurrency must be > 0"
    );
    let started_at = chrono::Utc::now().to_rfc3339();
    let sandbox = Sandbox::start(SandboxConfig::for_tests()).await?;
    let storage = Storage::prepare(opts).await?;
    let client = client(opts.concurrency)?;
    let sb_base = sandbox.base_url();

    let mut services = Vec::new();
    let mut processes = Vec::new();
    for kind in Kind::ALL {
        let vars = service_vars(kind, &sb_base, &storage);
        let service = Service::start(kind, &opts.launch, &vars, &client).await?;
        processes.push(ProcessFigures::new(
            kind.binary(),
            service.pid,
            service.ready_after,
            rss_kib(service.pid).unwrap_or(0),
        ));
        services.push(service);
    }
    let [auth, jssdk, pay] = [0, 1, 2].map(|i| &services[i]);
    let (c, n) = (opts.concurrency, opts.requests);
    let mut rows = Vec::new();

    // Each process's /healthz first: the yardstick for its endpoints.
    for (i, s) in services.iter().enumerate() {
        let (load, calls) = measured(s, &sandbox, &mut processes[i], || {
            scenarios::healthz(&client, &s.base, c, n)
        })
        .await;
        rows.push(Row::new("/healthz", s.kind.binary(), &load, calls));
    }

    // Warm: one request fetches the token and the ticket before the clock starts.
    let warm = scenarios::jssdk_config(&client, &jssdk.base, &sandbox, 1, 1).await;
    anyhow::ensure!(warm.errors == 0, "the warm-up jssdkConfig failed");
    let (load, calls) = measured(jssdk, &sandbox, &mut processes[1], || {
        scenarios::jssdk_config(&client, &jssdk.base, &sandbox, c, n)
    })
    .await;
    rows.push(Row::new(
        "jssdkConfig (warm)",
        jssdk.kind.binary(),
        &load,
        calls,
    ));

    let mut tokens = Vec::new();
    let (load, calls) = measured(auth, &sandbox, &mut processes[0], || async {
        let (load, t) = scenarios::get_session(&client, &auth.base, &sandbox, c, n).await;
        tokens = t;
        load
    })
    .await;
    rows.push(Row::new("getSession", auth.kind.binary(), &load, calls));
    let tokens: Vec<String> = tokens.into_iter().flatten().collect();
    anyhow::ensure!(
        !tokens.is_empty(),
        "no getSession succeeded: nothing to pay with"
    );

    let mut placed = Vec::new();
    let (load, calls) = measured(pay, &sandbox, &mut processes[2], || async {
        let (load, p) = scenarios::v2pay(&client, &pay.base, &tokens, c, n).await;
        placed = p;
        load
    })
    .await;
    rows.push(Row::new(
        "v2Pay (sandbox 0 ms)",
        pay.kind.binary(),
        &load,
        calls,
    ));

    let sampler = PeakSampler::start(pay.pid);
    let before = scenarios::upstream_total(&sandbox);
    let load = scenarios::notifications(&client, &pay.base, &sandbox, &placed, c).await?;
    let calls = scenarios::upstream_total(&sandbox) - before;
    let peak = sampler.finish().await;
    processes[2].rss_load_kib = processes[2].rss_load_kib.max(peak);
    rows.push(Row::new(
        "notify (signed, applied)",
        pay.kind.binary(),
        &load,
        calls,
    ));
    let notifications_applied = scenarios::count_paid(&client, &pay.base, &placed).await;

    let healthz: Vec<(String, f64)> = rows
        .iter()
        .filter(|r| r.endpoint == "/healthz")
        .map(|r| (r.service.clone(), r.requests_per_second))
        .collect();
    for row in &mut rows {
        if let Some((_, h)) = healthz.iter().find(|(s, _)| *s == row.service) {
            row.ratio_to_healthz = row.requests_per_second / h.max(1e-9);
        }
    }

    drop(services);
    sandbox.stop().await;
    drop(storage);
    Ok(Report {
        backend: opts.backend.name().to_owned(),
        launch: match opts.launch {
            Launch::Binaries(_) => "binaries".into(),
            Launch::InProcess => "in-process".into(),
        },
        requests: n,
        concurrency: c,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        started_at,
        rows,
        processes,
        notifications_applied,
    })
}

/// Runs one load on `service` while sampling its memory; returns the load and
/// the WeChat calls the sandbox counted meanwhile.
async fn measured<F, Fut>(
    service: &Service,
    sandbox: &Sandbox,
    figures: &mut ProcessFigures,
    load: F,
) -> (load::LoadResult, u64)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = load::LoadResult>,
{
    let sampler = PeakSampler::start(service.pid);
    let before = scenarios::upstream_total(sandbox);
    let result = load().await;
    let calls = scenarios::upstream_total(sandbox) - before;
    figures.rss_load_kib = figures.rss_load_kib.max(sampler.finish().await);
    (result, calls)
}
