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
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::Targets;

use crate::config::{ConfigError, Env};

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
}

/// Header values are often a collector's API key: only their names are shown
/// (the configuration may be logged).
impl std::fmt::Debug for TraceExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.headers.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut endpoint = self.endpoint.clone();
        let _ = endpoint.set_password(None);
        f.debug_struct("TraceExport")
            .field("endpoint", &endpoint.as_str())
            .field("service_name", &self.service_name)
            .field("headers", &names)
            .field("timeout", &self.timeout)
            .finish()
    }
}

const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";

impl TraceExport {
    /// None when no endpoint is set, `OTEL_SDK_DISABLED=true` or
    /// `OTEL_TRACES_EXPORTER=none`. A value this process cannot honour
    /// (another protocol, a bad URL) stops the start naming its variable
    /// rather than silently exporting nothing.
    pub fn from_env(env: &Env, service: &str) -> Result<Option<TraceExport>, ConfigError> {
        if env.get("OTEL_SDK_DISABLED") == Some("true") {
            return Ok(None);
        }
        match env.get("OTEL_TRACES_EXPORTER") {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => {
                return Err(ConfigError::invalid(
                    "OTEL_TRACES_EXPORTER",
                    format!("{other:?}: only otlp (or none) is built in"),
                ));
            }
        }
        let endpoint = match (env.get(TRACES_ENDPOINT), env.get(ENDPOINT)) {
            (Some(url), _) if !url.is_empty() => parse_endpoint(TRACES_ENDPOINT, url)?,
            (_, Some(base)) if !base.is_empty() => {
                // The generic variable names the collector; the signal's path
                // is appended (OTLP exporter specification).
                let url = format!("{}/v1/traces", base.trim_end_matches('/'));
                parse_endpoint(ENDPOINT, &url)?
            }
            _ => return Ok(None),
        };
        for var in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            match env.get(var) {
                None | Some("http/protobuf") => {}
                Some(other) => {
                    return Err(ConfigError::invalid(
                        var,
                        format!(
                            "{other:?}: only http/protobuf is built in (the collector's port 4318)"
                        ),
                    ));
                }
            }
        }
        let timeout = match env.get("OTEL_EXPORTER_OTLP_TIMEOUT") {
            None => Duration::from_secs(10),
            Some(ms) => ms
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis)
                .ok_or_else(|| {
                    ConfigError::invalid(
                        "OTEL_EXPORTER_OTLP_TIMEOUT",
                        format!("{ms:?}: milliseconds, more than 0"),
                    )
                })?,
        };
        Ok(Some(TraceExport {
            endpoint,
            service_name: env
                .get("OTEL_SERVICE_NAME")
                .filter(|n| !n.is_empty())
                .unwrap_or(service)
                .to_owned(),
            headers: parse_headers(env.get("OTEL_EXPORTER_OTLP_HEADERS").unwrap_or(""))?,
            timeout,
        }))
    }
}

fn parse_endpoint(var: &'static str, url: &str) -> Result<url::Url, ConfigError> {
    url::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| ConfigError::invalid(var, format!("{url:?}: an http(s) URL")))
}

fn parse_headers(list: &str) -> Result<HashMap<String, String>, ConfigError> {
    let mut headers = HashMap::new();
    for pair in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| {
                ConfigError::invalid(
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "key=value pairs separated by commas".to_owned(),
                )
            })?;
        let value = percent_decode(value.trim());
        headers.insert(key.trim().to_owned(), value);
    }
    Ok(headers)
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("v={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
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
    Ok(SdkTracerProvider::builder()
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
    // Renamed on the OpenTelemetry span itself: its child spans have started
    // it already, and a started span ignores a recorded `otel.name`.
    span.context()
        .span()
        .update_name(format!("{method} {route}"));
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

struct ActixHeaders<'a>(&'a actix_web::http::header::HeaderMap);

impl Extractor for ActixHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
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
        static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
        let runtime = match RUNTIME.get() {
            Some(rt) => rt,
            None => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("otlp-export")
                    .enable_all()
                    .build()
                    .map_err(|e| format!("OTLP export runtime: {e}"))?;
                RUNTIME.get_or_init(|| rt)
            }
        };
        let client = crate::http_client::builder()
            .timeout(timeout)
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
        self.runtime
            .spawn(async move {
                let res = client.execute(request).await?;
                let status = res.status();
                let headers = res.headers().clone();
                let body = res.bytes().await?;
                if body.len() > MAX_COLLECTOR_ANSWER {
                    return Err(HttpError::from("collector answer too large"));
                }
                let mut answer = Response::new(body);
                *answer.status_mut() = status;
                *answer.headers_mut() = headers;
                Ok(answer)
            })
            .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn off_unless_an_endpoint_is_set() {
        assert_eq!(
            TraceExport::from_env(&env(&[]), "pay-service").unwrap(),
            None
        );
        let disabled = env(&[(ENDPOINT, "http://c:4318"), ("OTEL_SDK_DISABLED", "true")]);
        assert_eq!(TraceExport::from_env(&disabled, "x").unwrap(), None);
        let none = env(&[
            (ENDPOINT, "http://c:4318"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ]);
        assert_eq!(TraceExport::from_env(&none, "x").unwrap(), None);
    }

    #[test]
    fn the_generic_endpoint_gets_the_signal_path_and_the_traces_one_is_kept() {
        let generic = env(&[(ENDPOINT, "http://collector:4318/")]);
        let e = TraceExport::from_env(&generic, "pay-service")
            .unwrap()
            .unwrap();
        assert_eq!(e.endpoint.as_str(), "http://collector:4318/v1/traces");
        assert_eq!(e.service_name, "pay-service");
        assert_eq!(e.timeout, Duration::from_secs(10));
        let own = env(&[
            (ENDPOINT, "http://collector:4318"),
            (TRACES_ENDPOINT, "https://t.example/otlp/spans"),
            ("OTEL_SERVICE_NAME", "pay-eu"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%3Db, x = y "),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ]);
        let e = TraceExport::from_env(&own, "pay-service").unwrap().unwrap();
        assert_eq!(e.endpoint.as_str(), "https://t.example/otlp/spans");
        assert_eq!(e.service_name, "pay-eu");
        assert_eq!(e.headers["api-key"], "a=b");
        assert_eq!(e.headers["x"], "y");
        assert_eq!(e.timeout, Duration::from_millis(2500));
        let shown = format!("{e:?}");
        assert!(
            shown.contains("api-key") && !shown.contains("a=b"),
            "{shown}"
        );
    }

    #[test]
    fn what_cannot_be_honoured_names_its_variable() {
        for (pairs, var) in [
            (vec![(ENDPOINT, "collector:4318")], ENDPOINT),
            (
                vec![(TRACES_ENDPOINT, "ftp://c/v1/traces")],
                TRACES_ENDPOINT,
            ),
            (
                vec![
                    (ENDPOINT, "http://c:4317"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
            (
                vec![(ENDPOINT, "http://c"), ("OTEL_TRACES_EXPORTER", "zipkin")],
                "OTEL_TRACES_EXPORTER",
            ),
            (
                vec![
                    (ENDPOINT, "http://c"),
                    ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"),
                ],
                "OTEL_EXPORTER_OTLP_HEADERS",
            ),
            (
                vec![(ENDPOINT, "http://c"), ("OTEL_EXPORTER_OTLP_TIMEOUT", "0")],
                "OTEL_EXPORTER_OTLP_TIMEOUT",
            ),
        ] {
            let err = TraceExport::from_env(&env(&pairs), "x").unwrap_err();
            assert!(err.to_string().contains(var), "{var}: {err}");
        }
    }

    #[test]
    fn nothing_is_propagated_while_export_is_off() {
        // This test binary never installs an exporter.
        let req = crate::http_client::client().get("http://127.0.0.1:9/");
        let built = propagate(req).build().unwrap();
        assert!(built.headers().get("traceparent").is_none());
    }
}
