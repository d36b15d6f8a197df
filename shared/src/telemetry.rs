//! Tracing, Prometheus metrics, and the `/healthz`, `/readyz`, `/metrics` routes.

use std::sync::LazyLock;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use prometheus::{Encoder, HistogramVec, IntCounterVec, TextEncoder};

use crate::cache::Cache;
use crate::db::Database;
use crate::metrics;

/// How logs are written (`LOG_FORMAT`): pretty text or one JSON object a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Installs the global subscriber once; later calls (tests, `stack`) are no-ops.
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// Requests by method, matched route and status.
pub static HTTP_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    metrics::counter_vec(
        "http_requests_total",
        "HTTP requests by route and status",
        &["method", "route", "status"],
    )
});

pub static HTTP_LATENCY: LazyLock<HistogramVec> = LazyLock::new(|| {
    metrics::histogram_vec(
        "http_request_duration_seconds",
        "HTTP request latency",
        &["route"],
        &[
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ],
    )
});

pub static WECHAT_CALLS: LazyLock<HistogramVec> = LazyLock::new(|| {
    metrics::histogram_vec(
        "wechat_call_duration_seconds",
        "Calls to WeChat by path and outcome",
        &["path", "outcome"],
        &[
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ],
    )
});

/// What `/readyz` checks: every database and the cache the process uses.
#[derive(Clone, Default)]
pub struct Readiness {
    pub databases: Vec<Database>,
    pub caches: Vec<Cache>,
}

/// Mounts `/healthz`, `/readyz` and `/metrics`.
pub fn configure_health(cfg: &mut web::ServiceConfig, readiness: Readiness) {
    cfg.app_data(web::Data::new(readiness))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

async fn readyz(readiness: web::Data<Readiness>) -> HttpResponse {
    let mut failures = Vec::new();
    for db in &readiness.databases {
        match tokio::time::timeout(READY_CHECK_TIMEOUT, db.ping()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(format!("database: {e}")),
            Err(_) => failures.push("database: timed out".to_owned()),
        }
    }
    for cache in &readiness.caches {
        match tokio::time::timeout(READY_CHECK_TIMEOUT, cache.ping()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(format!("cache: {e}")),
            Err(_) => failures.push("cache: timed out".to_owned()),
        }
    }
    if failures.is_empty() {
        HttpResponse::Ok().content_type("text/plain").body("ready")
    } else {
        tracing::warn!(?failures, "not ready");
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body(failures.join("\n"))
    }
}

async fn metrics() -> HttpResponse {
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&prometheus::gather(), &mut buf) {
        return HttpResponse::InternalServerError().body(e.to_string());
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(buf)
}
