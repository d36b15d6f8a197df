//! OpenTelemetry traces over OTLP (HTTP, protobuf) when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is
//! set; nothing at all otherwise.
//!
//! Spans are `tracing` spans that `tracing-opentelemetry` turns into
//! OpenTelemetry spans:
//! - `request` (shared::http::observe): the server span of every request,
//!   with its request id, named `METHOD route` once the route is known;
//! - `db` (shared::db::Database::run), `cache` (shared::cache::Cache) and
//!   `wechat` (every call to WeChat: the v2 and v3 clients, refunds, bills),
//!   `webhook` (pay-service's merchant events): client spans, children of the
//!   request or job span they run in.
//!
//! The child spans are DEBUG spans: with export off, the logs' INFO filter
//! disables their call sites, so they cost a check of a cached interest and
//! nothing more. With export on, the exporter's own per-layer filter
//! ([`export_filter`]) enables them for the exporter only; the logs still
//! follow `RUST_LOG`.
//!
//! W3C trace context: `traceparent`/`tracestate` on an incoming request
//! become the parent of its request span (the gateway forwards them
//! untouched), and calls this process makes to WeChat, to the shop's webhook
//! and, in the sandbox, to a notify_url carry the current span's
//! ([`propagate`]), so one payment is one trace across the services.
//!
//! Why an exporter HTTP client of our own ([`OtlpHttp`]): the batch span
//! processor exports from a plain thread, where opentelemetry-otlp's async
//! reqwest client has no runtime, and its blocking client would bring
//! reqwest's blocking feature and a TLS set-up outside shared::http_client.
//! Ours hands each export to a one-thread runtime of its own and sends it
//! with the workspace's reqwest (ring).

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Level;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::Targets;

/// Where and as what this process exports its spans (API.md §2).
#[derive(Clone, PartialEq, Eq)]
pub struct TraceExport {
    /// The full URL spans are POSTed to (`…/v1/traces`).
    pub endpoint: url::Url,
    /// `service.name` of every span: `OTEL_SERVICE_NAME`, else the binary's.
    pub service_name: String,
    /// `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`, values percent-decoded),
    /// e.g. a collector's API key.
    pub headers: HashMap<String, String>,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT` in milliseconds (default 10 s).
    pub timeout: Duration,
    /// `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`.
    pub sampling: Sampling,
}

/// Which traces are kept. A caller's `traceparent` gives the trace its id
/// but never its sampling decision: its sampled flag comes from whoever
/// reaches the gateway, and would let any client drop its requests from
/// tracing (flag 00) or bypass the ratio (flag 01). Within this process a
/// child follows its parent's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    AlwaysOn,
    AlwaysOff,
    /// Keeps this many traces per million, by trace id, so that every
    /// service keeps or drops the same traces.
    PerMillion(u32),
}

/// Header values are often a collector's API key: only their names are shown
/// (the configuration may be logged).
impl std::fmt::Debug for TraceExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.headers.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("TraceExport")
            .field("endpoint", &self.endpoint.as_str())
            .field("service_name", &self.service_name)
            .field("headers", &names)
            .field("timeout", &self.timeout)
            .field("sampling", &self.sampling)
            .finish()
    }
}

/// Whether spans are exported: set once, by [`provider`]'s caller when the
/// subscriber with the exporter is installed. Everything here is skipped
/// while it is false.
static EXPORTING: AtomicBool = AtomicBool::new(false);

pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

pub(crate) fn set_exporting() {
    EXPORTING.store(true, Ordering::Relaxed);
}

/// The tracer provider: spans batched and sent by [`OtlpHttp`].
pub(crate) fn provider(export: &TraceExport) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(export.endpoint.as_str())
        .with_timeout(export.timeout)
        .with_headers(export.headers.clone())
        .with_http_client(OtlpHttp::new(export.timeout)?)
        .build()
        .map_err(|e| format!("OTLP exporter: {e}"))?;
    let root = match export.sampling {
        Sampling::AlwaysOn => Sampler::AlwaysOn,
        Sampling::AlwaysOff => Sampler::AlwaysOff,
        Sampling::PerMillion(ppm) => Sampler::TraceIdRatioBased(f64::from(ppm) / 1e6),
    };
    // See `Sampling`: remote parents get the root's decision, local ones
    // are followed (the default for local parents).
    let sampler = Sampler::parent_based(root.clone())
        .with_remote_parent_sampled(root.clone())
        .with_remote_parent_not_sampled(root);
    Ok(SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_resource(
            Resource::builder()
                .with_service_name(export.service_name.clone())
                .build(),
        )
        .with_batch_exporter(exporter)
        .build())
}

/// The layer that hands `tracing` spans to `provider`.
pub(crate) fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("wxpay"))
        .with_location(false)
        .with_threads(false)
}

/// What the exporter sees: this workspace's spans down to DEBUG (the `db`,
/// `cache`, `wechat` child spans) and their events, and WARN from everything
/// else (HTTP and TLS libraries would otherwise add a span per frame, and
/// the exporter's own requests would be traced).
pub(crate) fn export_filter() -> Targets {
    [
        "shared",
        "auth_service",
        "jssdk_service",
        "pay_service",
        "wechat_sandbox",
        "stack",
    ]
    .into_iter()
    .fold(Targets::new().with_default(Level::WARN), |t, target| {
        t.with_target(target, Level::DEBUG)
    })
}

/// Makes the incoming request's W3C trace context (`traceparent`,
/// `tracestate`) the parent of `span`. A missing or malformed header leaves
/// `span` a root, as the specification says.
pub fn accept_parent(span: &tracing::Span, headers: &actix_web::http::header::HeaderMap) {
    if !exporting() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&ActixHeaders(headers));
    // Err only when the layer is not installed (export off): nothing to link.
    let _ = span.set_parent(parent);
}

/// Keeps `span` and everything under it out of the export: health probes,
/// metrics scrapes and idle polling would otherwise be most of the traces.
/// (A local, unsampled parent: the sampler follows it for the children.)
pub fn quiet(span: &tracing::Span) {
    if !exporting() {
        return;
    }
    let ids = crate::random::uuid_v4();
    let bytes = ids.as_bytes();
    let mut span_id = [0u8; 8];
    span_id.copy_from_slice(&bytes[..8]);
    let parent = SpanContext::new(
        TraceId::from_bytes(*bytes),
        SpanId::from_bytes(span_id),
        TraceFlags::default(),
        false,
        TraceState::default(),
    );
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
}

/// `req` with the current span's W3C trace context, so the service it goes
/// to continues this trace.
pub fn propagate(req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    if !exporting() {
        return req;
    }
    let mut headers = reqwest::header::HeaderMap::new();
    TraceContextPropagator::new().inject_context(
        &tracing::Span::current().context(),
        &mut ReqwestHeaders(&mut headers),
    );
    req.headers(headers)
}

/// Names the finished request's server span `METHOD route` and marks a 5xx
/// answer as an error (OpenTelemetry's HTTP conventions: a 4xx is the
/// client's, not the server's).
pub fn finish_request_span(span: &tracing::Span, method: &str, route: &str, status: u16) {
    if !exporting() {
        return;
    }
    rename(span, format!("{method} {route}"));
    span.set_attribute("http.route", route.to_owned());
    span.set_attribute("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.set_status(opentelemetry::trace::Status::error(format!(
            "HTTP {status}"
        )));
    }
}

/// The client span of one call to WeChat (one attempt: a retry is another
/// span). `path` is the endpoint without its query, so that no token or order
/// number becomes a span name.
pub fn wechat_span(path: &str) -> tracing::Span {
    let span = tracing::debug_span!(
        "wechat",
        otel.kind = "client",
        otel.name = tracing::field::Empty,
        url.path = path,
        outcome = tracing::field::Empty,
    );
    if !span.is_disabled() {
        span.record("otel.name", format!("wechat {path}"));
    }
    span
}

/// Records how a client span's call ended; anything but "ok" marks it an
/// error.
pub fn finish_client_span(span: &tracing::Span, outcome: &str) {
    if span.is_disabled() {
        return;
    }
    span.record("outcome", outcome);
    if outcome != "ok" {
        span.set_status(opentelemetry::trace::Status::error(outcome.to_owned()));
    }
}

/// The current span's trace, to be continued later by another task without
/// keeping the span open (a notification retried for hours).
#[derive(Debug, Clone, Default)]
pub struct TraceLink(Option<opentelemetry::Context>);

impl TraceLink {
    pub fn current() -> TraceLink {
        if !exporting() {
            return TraceLink(None);
        }
        TraceLink(Some(tracing::Span::current().context()))
    }

    /// Makes `span` a child of the span this link was taken in.
    pub fn adopt(&self, span: &tracing::Span) {
        if let Some(cx) = &self.0 {
            let _ = span.set_parent(cx.clone());
        }
    }
}

/// Renames a span that may have started already (children start it, and a
/// started span ignores a recorded `otel.name`).
pub fn rename(span: &tracing::Span, name: String) {
    if exporting() && !span.is_disabled() {
        span.context().span().update_name(name);
    }
}

struct ActixHeaders<'a>(&'a actix_web::http::header::HeaderMap);

/// The longest `tracestate` kept. It is vendor data a client may fill up to
/// nginx's header limit, and it would be copied onto every span of the
/// request and sent on to WeChat; W3C lets a participant drop it.
const MAX_TRACESTATE: usize = 512;

impl Extractor for ActixHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let value = self.0.get(key).and_then(|v| v.to_str().ok())?;
        (key != "tracestate" || value.len() <= MAX_TRACESTATE).then_some(value)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct ReqwestHeaders<'a>(&'a mut reqwest::header::HeaderMap);

impl Injector for ReqwestHeaders<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(key.as_bytes()),
            reqwest::header::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The exporter's HTTP client (see the module's comment for why ours).
#[derive(Debug)]
pub struct OtlpHttp {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

/// A collector answers a few bytes; more is not a collector.
const MAX_COLLECTOR_ANSWER: usize = 64 * 1024;

impl OtlpHttp {
    fn new(timeout: Duration) -> Result<OtlpHttp, String> {
        // Never dropped: a runtime dropped inside async code panics.
        static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
        let runtime = RUNTIME
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("otlp-export")
                    .enable_all()
                    .build()
                    .map_err(|e| format!("OTLP export runtime: {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)?;
        // No redirects: one would carry the spans and the headers (an API
        // key) to wherever the answer points.
        let client = crate::http_client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("OTLP HTTP client: {e}"))?;
        Ok(OtlpHttp {
            client,
            runtime: runtime.handle().clone(),
        })
    }
}

#[async_trait::async_trait]
impl HttpClient for OtlpHttp {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let result = self.runtime.spawn(send(client, request)).await?;
        account(&result);
        result
    }
}

async fn send(
    client: reqwest::Client,
    request: reqwest::Request,
) -> Result<Response<Bytes>, HttpError> {
    let mut res = client.execute(request).await?;
    if res
        .content_length()
        .is_some_and(|n| n > MAX_COLLECTOR_ANSWER as u64)
    {
        return Err(HttpError::from("collector answer too large"));
    }
    let status = res.status();
    let headers = res.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await? {
        if body.len() + chunk.len() > MAX_COLLECTOR_ANSWER {
            return Err(HttpError::from("collector answer too large"));
        }
        body.extend_from_slice(&chunk);
    }
    let mut answer = Response::new(Bytes::from(body));
    *answer.status_mut() = status;
    *answer.headers_mut() = headers;
    Ok(answer)
}

/// Exports by outcome; the OpenTelemetry SDK itself says nothing when an
/// export fails (a wrong API key, a collector that is down).
static EXPORTS: std::sync::LazyLock<prometheus::IntCounterVec> = std::sync::LazyLock::new(|| {
    crate::metrics::counter_vec(
        "otlp_exports_total",
        "Span exports to the OpenTelemetry collector by outcome",
        &["outcome"],
    )
});

/// Counts the export and warns about a failed one at most once a minute.
fn account(result: &Result<Response<Bytes>, HttpError>) {
    static LAST_WARNING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let problem = match result {
        Ok(answer) if answer.status().is_success() => None,
        Ok(answer) => Some(format!("the collector answered HTTP {}", answer.status())),
        Err(e) => Some(e.to_string()),
    };
    let outcome = if problem.is_some() { "failed" } else { "ok" };
    EXPORTS.with_label_values(&[outcome]).inc();
    let Some(problem) = problem else { return };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let last = LAST_WARNING.load(Ordering::Relaxed);
    if now >= last + 60
        && LAST_WARNING
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(%problem, "spans were not exported (further failures are counted in otlp_exports_total)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_tracestate_is_not_taken() {
        let mut headers = actix_web::http::header::HeaderMap::new();
        let long = "k=".to_owned() + &"v".repeat(MAX_TRACESTATE);
        headers.insert(
            actix_web::http::header::HeaderName::from_static("tracestate"),
            actix_web::http::header::HeaderValue::from_str(&long).unwrap(),
        );
        assert_eq!(ActixHeaders(&headers).get("tracestate"), None);
        headers.insert(
            actix_web::http::header::HeaderName::from_static("tracestate"),
            actix_web::http::header::HeaderValue::from_static("congo=t61rcWkgMzE"),
        );
        assert_eq!(
            ActixHeaders(&headers).get("tracestate"),
            Some("congo=t61rcWkgMzE")
        );
    }

    #[test]
    fn nothing_is_propagated_while_export_is_off() {
        // This test binary never installs an exporter.
        let req = crate::http_client::client().get("http://127.0.0.1:9/");
        let built = propagate(req).build().unwrap();
        assert!(built.headers().get("traceparent").is_none());
    }
}
