//! With no OTLP endpoint, traces cost nothing (issue #17 §3): the `db`,
//! `cache` and `wechat` child spans are DEBUG spans that the logs' INFO filter
//! disables at their call sites, nothing is propagated, and a probe is not
//! marked. Its own binary: the subscriber is global to the process.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

use shared::config::LogFormat;
use shared::db::{Database, Migrations};
use tracing::level_filters::LevelFilter;

#[tokio::test]
async fn with_export_off_the_child_spans_are_disabled_at_their_call_sites() {
    if std::env::var_os("RUST_LOG").is_some() {
        // The filter is the operator's then; INFO is what is being checked.
        return testkit::skip_or_fail("RUST_LOG is set: this test checks the default INFO filter");
    }
    let guard = shared::telemetry::init_tracing(LogFormat::Json, None);
    assert!(!shared::traces::exporting());
    assert_eq!(LevelFilter::current(), LevelFilter::INFO);

    // The spans the services make, as they make them.
    assert!(shared::traces::wechat_span("/pay/unifiedorder").is_disabled());
    let db = Database::connect("sqlite::memory:", no_migrations()).unwrap();
    let inside = db
        .run(|_| Ok(tracing::Span::current().is_disabled()))
        .await
        .unwrap();
    assert!(inside, "db.run's span is disabled");
    let cache = shared::cache::Cache::memory();
    cache
        .set("k", "v", std::time::Duration::from_secs(5))
        .await
        .unwrap();

    // No trace context leaves the process.
    let req = shared::http_client::client().get("http://127.0.0.1:9/");
    let built = shared::traces::propagate(req).build().unwrap();
    assert!(built.headers().get("traceparent").is_none());
    drop(guard);
}

fn no_migrations() -> Migrations {
    Migrations {
        sqlite: diesel_migrations::EmbeddedMigrations::new(&[]),
        postgres: diesel_migrations::EmbeddedMigrations::new(&[]),
    }
}
