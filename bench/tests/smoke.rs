//! The bench's whole path with tiny counts and the services in this process,
//! so that it keeps working; figures are not judged here, only that every
//! request succeeded and WeChat was called exactly as often as it must be.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

use bench::report::Report;
use std::time::Duration;

use bench::{Backend, Extras, Launch, OpenLoopOptions, Options};

const N: usize = 12;

/// Steps notified one at a time.
const STEPS: usize = 4;

/// Every extra, tiny: 40 requests per fixed-rate run, no search (its steps
/// would take seconds each; `open_loop`'s unit tests cover it).
fn extras() -> Extras {
    Extras {
        open_loop: Some(OpenLoopOptions {
            jssdk_rate: 200.0,
            pay_rate: 100.0,
            duration: Duration::from_millis(200),
            search_step: None,
            ..OpenLoopOptions::default()
        }),
        pgbench: true,
        notify_steps: STEPS,
        gateway: true,
        v3: true,
    }
}

fn row<'a>(report: &'a Report, endpoint: &str) -> &'a bench::report::Row {
    report
        .rows
        .iter()
        .find(|r| r.endpoint == endpoint)
        .unwrap_or_else(|| panic!("no row {endpoint}"))
}

fn check(report: &Report) {
    let table = report.table();
    // Shown with --nocapture.
    println!("{table}");
    for r in &report.rows {
        assert_eq!((r.errors, r.requests), (0, N), "{table}");
        assert!(r.requests_per_second > 0.0, "{table}");
        assert!(r.p99_ms >= r.p50_ms, "{table}");
    }
    assert_eq!(
        report
            .rows
            .iter()
            .filter(|r| r.endpoint == "/healthz")
            .count(),
        3
    );
    for r in report
        .rows
        .iter()
        .filter(|r| r.endpoint.starts_with("/healthz"))
    {
        assert_eq!((r.upstream_calls, r.ratio_to_healthz), (0, 1.0), "{table}");
    }
    // Warm: the token and ticket were fetched before the load, never during it.
    for endpoint in ["jssdkConfig (warm)", "jssdkConfig (warm, light)"] {
        assert_eq!(row(report, endpoint).upstream_calls, 0, "{table}");
    }
    // The light client's pair is compared with itself, not with reqwest's /healthz.
    let light = row(report, "jssdkConfig (warm, light)");
    let ratio = light.requests_per_second / row(report, "/healthz (light)").requests_per_second;
    assert!((light.ratio_to_healthz - ratio).abs() < 1e-9, "{table}");
    // Its CPU per request: in process the services' threads are the bench's,
    // so only the bench's figure is given.
    let cpu = report.light_cpu.as_ref().expect("the light pair's CPU");
    assert_eq!(cpu.service_us, None, "{table}");
    assert!(cpu.rounds > 0, "{table}");
    assert!(
        cpu.bench_us.is_some_and(|[h, j]| h > 0.0 && j > 0.0),
        "{table}"
    );
    assert_eq!(
        row(report, "getSession").upstream_calls,
        N as u64,
        "{table}"
    );
    assert_eq!(
        row(report, "v2Pay (sandbox 0 ms)").upstream_calls,
        N as u64,
        "{table}"
    );
    assert_eq!(
        row(report, "notify (signed, applied)").upstream_calls,
        0,
        "{table}"
    );
    assert_eq!(report.notifications_applied, N, "{table}");
    assert_eq!(report.processes.len(), 3);
    for p in &report.processes {
        assert!(
            p.rss_idle_kib > 0 && p.rss_load_kib >= p.rss_idle_kib,
            "{table}"
        );
        assert!(p.ready_ms > 0.0, "{table}");
    }
    let json = serde_json::to_value(report).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), 9);

    // Open loop: every scheduled request ran and succeeded.
    assert_eq!(report.open_loop.len(), 2, "{table}");
    for (r, n) in report.open_loop.iter().zip([40, 20]) {
        assert_eq!((r.requests, r.errors), (n, 0), "{table}");
        assert!(r.p999_ms >= r.p99_ms && r.p99_ms >= r.p50_ms && r.p50_ms > 0.0);
    }
    // Through the gateway: nginx's own answer, jssdkConfig and notifications.
    if bench::gateway::nginx_binary().is_some() {
        assert_eq!(report.gateway.len(), 3, "{table}");
        for g in &report.gateway {
            assert_eq!((g.requests, g.errors), (N, 0), "{table}");
        }
    } else {
        testkit::skip_or_fail("nginx is not installed: nothing measured through the gateway");
    }
    // APIv3 beside v2: every order placed over v3 and every v3 notification
    // applied; WeChat called once per order and never for a notification.
    let v3 = report.v3.as_ref().expect("v3 figures");
    assert_eq!(v3.pairs.len(), 2, "{table}");
    for p in &v3.pairs {
        for s in [&p.v2, &p.v3] {
            assert_eq!((s.row.errors, s.row.requests), (0, N), "{table}");
        }
        assert!(p.ratio > 0.0, "{table}");
    }
    assert_eq!(v3.pairs[0].v3.row.upstream_calls, N as u64, "{table}");
    assert_eq!(v3.pairs[1].v3.row.upstream_calls, 0, "{table}");
    assert_eq!(
        (v3.v3_orders_at_wechat, v3.v3_notifications_applied),
        (N, N),
        "{table}"
    );
    assert!(
        v3.rsa.sign_us > v3.rsa.verify_us && v3.rsa.verify_us > 0.0,
        "{table}"
    );
    let steps = report.notify_steps.as_ref().expect("step figures");
    assert_eq!(steps.notifications, STEPS);
    assert!(
        steps.end_to_end_ms > 0.0 && steps.parse_verify_ms > 0.0,
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bench_runs_on_sqlite() {
    let report = bench::run(&Options {
        backend: Backend::Sqlite,
        launch: Launch::InProcess,
        requests: N,
        concurrency: 3,
        database_url: None,
        redis_url: None,
        extras: extras(),
    })
    .await
    .expect("bench runs");
    assert_eq!(
        (report.backend.as_str(), report.launch.as_str()),
        ("sqlite", "in-process")
    );
    check(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bench_runs_on_postgres_and_redis() {
    // The bench's own variable, from the tests' one; skipped outside CI when unset.
    let Some(url) = testkit::service_url("TEST_DATABASE_URL") else {
        return;
    };
    if !testkit::RedisServer::available() {
        return;
    }
    // Redis: a redis-server of the run's own (BENCH_REDIS_URL unset).
    let report = bench::run(&Options {
        backend: Backend::Postgres,
        launch: Launch::InProcess,
        requests: N,
        concurrency: 3,
        database_url: Some(url),
        redis_url: None,
        extras: extras(),
    })
    .await
    .expect("bench runs");
    assert_eq!(report.backend, "postgres");
    check(&report);
    let table = report.table();
    if bench::pgbench::available() {
        let p = report.pgbench.as_ref().expect("pgbench figures");
        assert!(p.tps > 0.0 && p.clients == 3, "{table}");
        assert!(report.notify_to_pgbench.is_some_and(|r| r > 0.0));
    } else {
        testkit::skip_or_fail("pgbench is not installed: notifications not compared");
    }
    // Where the time goes, from PostgreSQL's own counters: each applied
    // notification inserts rows and updates its order.
    let steps = report.notify_steps.as_ref().unwrap();
    assert!(steps.commit_ms.is_some(), "{table}");
    let inserts: f64 = steps.tables.iter().map(|t| t.inserts).sum();
    let updates: f64 = steps.tables.iter().map(|t| t.updates).sum();
    assert!(inserts >= 1.0 && updates >= 1.0, "{table}");
}
