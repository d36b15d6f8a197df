//! Tracing, Prometheus metrics, and the `/healthz`, `/readyz`, `/metrics` routes.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use prometheus::{Encoder, HistogramVec, IntCounterVec, TextEncoder};

use crate::cache::Cache;
use crate::metrics;
use crate::traces::TraceExport;

/// How logs are written (`LOG_FORMAT`): pretty text or one JSON object a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Installs the global subscriber once: logs as `format` says, filtered by
/// `RUST_LOG`, and, when `traces` is set, OpenTelemetry spans exported over
/// OTLP (shared::traces). Later calls (tests, `stack`) change nothing and
/// return a guard that flushes nothing.
///
/// Keep the guard until the process ends: dropping it sends the spans still
/// batched.
#[must_use = "dropping the guard stops the span export"]
pub fn init_tracing(format: LogFormat, traces: Option<&TraceExport>) -> TracesGuard {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let provider = traces.and_then(|t| match crate::traces::provider(t) {
        Ok(p) => Some(p),
        Err(e) => {
            // Our own checks of the OTEL_* values ran in TraceExport::from_env
            // and stop the start; what fails here is the SDK's reading of the
            // variables it reads itself (OTEL_EXPORTER_OTLP_COMPRESSION …):
            // that costs the traces, not the shop. Said once, on stderr.
            eprintln!("traces are not exported: {e}");
            None
        }
    });
    let export = provider
        .as_ref()
        .map(|p| crate::traces::layer(p).with_filter(crate::traces::export_filter()));
    let logs = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_target(false)
            .with_filter(filter)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_filter(filter)
            .boxed(),
    };
    let installed = tracing_subscriber::registry()
        .with(export)
        .with(logs)
        .try_init()
        .is_ok();
    match provider {
        Some(p) if installed => {
            crate::traces::set_exporting();
            TracesGuard { provider: Some(p) }
        }
        Some(p) => {
            let _ = p.shutdown();
            TracesGuard { provider: None }
        }
        None => TracesGuard { provider: None },
    }
}

/// Keeps the span export running; see [`init_tracing`].
pub struct TracesGuard {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl TracesGuard {
    /// Sends every finished span now (tests, and before a process exits).
    pub fn flush(&self) {
        if let Some(p) = &self.provider
            && let Err(e) = p.force_flush()
        {
            tracing::warn!(error = %e, "span export flush failed");
        }
    }
}

impl Drop for TracesGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("span export shutdown: {e}");
        }
    }
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
    pub databases: Vec<Arc<dyn DatabasePing>>,
    pub caches: Vec<Cache>,
}

/// A database `/readyz` pings (`shared::db::Database` is the one there is).
///
/// A trait object rather than the type, so that this module does not reach
/// `shared::db`: a service without a database (jssdk-service) then links no
/// database client, and the dynamic linker does not map libpq and the
/// libraries it needs (about 5 MiB of an idle process's resident memory).
pub trait DatabasePing: Send + Sync + 'static {
    /// `Err` says why, for the `/readyz` body and the log.
    fn ping(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
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
    if let Err(e) = TextEncoder::new().encode(&crate::metrics::gather(), &mut buf) {
        return HttpResponse::InternalServerError().body(e.to_string());
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(buf)
}
