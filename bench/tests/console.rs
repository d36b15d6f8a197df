//! The console scenario (`console_bench`) with a few thousand orders and
//! pay-service in this process, so that it keeps working: every request
//! succeeds, each query's page holds what the loaded data says it must,
//! and each list query was EXPLAINed. Figures are not judged here.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

use bench::Launch;
use bench::console::{self, ConsoleOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_scenario_runs_on_postgres() {
    // Skipped outside CI when unset, like the bench's smoke test.
    let Some(url) = testkit::service_url("TEST_DATABASE_URL") else {
        return;
    };
    if !testkit::RedisServer::available() {
        testkit::skip_or_fail("redis-server is not installed");
        return;
    }
    let report = console::run(&ConsoleOptions {
        orders: 3000,
        repeats: 3,
        chart_repeats: 1,
        depth: 3,
        launch: Launch::InProcess,
        database_url: Some(url),
        redis_url: None,
    })
    .await
    .expect("the scenario runs");
    let table = report.table();
    println!("{table}");
    // 65 % of the orders are PAID or REFUND, each with its PAID transition.
    let paid = report.paid_transitions;
    assert!((1800..=2100).contains(&paid), "{paid}\n{table}");
    let items = |query: &str| {
        let row = report
            .rows
            .iter()
            .find(|r| r.query.starts_with(query))
            .unwrap_or_else(|| panic!("no row {query}\n{table}"));
        assert!(row.samples > 0 && row.p99_ms >= row.p50_ms, "{table}");
        row.items
    };
    for full in ["first page", "deep page", "status=REFUND", "status=CLOSED"] {
        assert_eq!(items(full), Some(50), "{full}\n{table}");
    }
    assert_eq!(items("q=out_trade_no"), Some(1), "{table}");
    assert_eq!(items("q=transaction_id"), Some(1), "{table}");
    assert_eq!(items("q=unknown"), Some(0), "{table}");
    for chart in ["paid-daily", "success-ratio", "notify-delay", "paid-hourly"] {
        assert_eq!(items(&format!("chart {chart}")), None, "{table}");
    }
    let lists: Vec<_> = report.rows.iter().filter(|r| r.goal_ms.is_some()).collect();
    assert_eq!(lists.len(), 12, "{table}");
    assert!(
        lists
            .iter()
            .all(|r| r.plan.as_deref().is_some_and(|p| p.contains("pay_orders"))),
        "{table}"
    );
}
