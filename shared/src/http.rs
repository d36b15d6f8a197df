//! What every service's HTTP layer shares: request ids and access logs, metrics,
//! CORS, body limits with envelope errors, the client's address, and the server.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_cors::Cors;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, Server, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::web::Bytes;
use actix_web::{App, HttpMessage, HttpRequest, HttpResponse, HttpServer, web};
use futures_util::Stream;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use tracing::Instrument;

use crate::error::ApiError;
use crate::telemetry::{HTTP_LATENCY, HTTP_REQUESTS};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id, available to handlers through `HttpRequest::extensions`.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Keeps a caller's id when it is short and printable, so that a trace can be
/// followed across nginx and the services; otherwise makes a new one.
fn request_id_of(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| crate::random::uuid_v4().simple().to_string())
}

/// Request id, a tracing span around the request, an access log line and metrics.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let id = request_id_of(&req);
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = request_span(&req, &id);
    let started = Instant::now();
    let method = req.method().to_string();
    let mut res = next.call(req).instrument(span.clone()).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    HTTP_REQUESTS
        .with_label_values(&[&method, &route, &status.to_string()])
        .inc();
    HTTP_LATENCY
        .with_label_values(&[&route])
        .observe(elapsed.as_secs_f64());
    crate::traces::finish_request_span(&span, &method, &route, status);
    span.in_scope(|| {
        tracing::info!(
            status,
            elapsed_ms = elapsed.as_millis() as u64,
            "request done"
        );
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    Ok(res)
}

/// The request's span. While spans are exported it is also the server span
/// of the trace: named once the route is known, continuing the caller's W3C
/// trace context; otherwise the logs' span alone, with no OpenTelemetry
/// fields in every log line.
fn request_span(req: &ServiceRequest, id: &str) -> tracing::Span {
    if !crate::traces::exporting() {
        return tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path());
    }
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.path(),
        otel.kind = "server",
    );
    if is_probe(req.path()) {
        // Probes and scrapes every few seconds would be most of the traces.
        crate::traces::quiet(&span);
    } else {
        crate::traces::accept_parent(&span, req.headers());
    }
    span
}

/// Kubernetes' probes and Prometheus' scrapes: not traced.
fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// CORS for the allowed origins only, with credentials (the session cookie).
pub fn cors(allowed_origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST", "OPTIONS"])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .allowed_header("idempotency-key")
        .allowed_header(REQUEST_ID)
        // W3C trace context from a page's own tracing (shared::traces).
        .allowed_header("traceparent")
        .allowed_header("tracestate")
        .expose_headers([REQUEST_ID])
        .supports_credentials()
        .max_age(600);
    for origin in allowed_origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// How long a request body may take; see [`body_deadline`].
#[derive(Clone, Copy, Debug)]
pub struct BodyTimeout(pub Duration);

/// The request body as a stream that fails once `deadline` has passed, and
/// says so through `expired`.
struct DeadlinePayload {
    inner: Payload,
    deadline: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
}

impl Stream for DeadlinePayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Poll::Ready(item) = Pin::new(&mut this.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "request body timed out",
            )))));
        }
        Poll::Pending
    }
}

/// Cuts off a client that sends its body too slowly (one byte at a time keeps
/// actix's head timeout from ever firing and holds a worker's connection):
/// once `BodyTimeout` has passed since the head arrived, reading the body
/// fails, and whatever the handler made of that the answer is 408 in the
/// envelope with `Connection: close`.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, actix_web::Error> {
    let timeout = req
        .app_data::<BodyTimeout>()
        .map_or(DEFAULT_BODY_TIMEOUT, |t| t.0);
    let expired = Arc::new(AtomicBool::new(false));
    let payload = DeadlinePayload {
        inner: req.take_payload(),
        deadline: Box::pin(tokio::time::sleep(timeout)),
        expired: expired.clone(),
    };
    let boxed: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(payload);
    req.set_payload(Payload::from(boxed));
    let res = next.call(req).await?;
    if !expired.load(Ordering::Relaxed) {
        return Ok(res.map_into_left_body());
    }
    let reply = HttpResponse::build(StatusCode::REQUEST_TIMEOUT)
        .insert_header((header::CONNECTION, "close"))
        .json(serde_json::json!({
            "code": crate::error::codes::INVALID_PARAM,
            "data": null,
            "message": "request body was not received in time",
        }));
    Ok(res.into_response(reply).map_into_right_body())
}

/// `BODY_TIMEOUT_MS`'s default.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// JSON, query and path extractor settings whose failures answer 400/1001 in the
/// envelope instead of actix's plain-text errors.
pub fn configure_extractors(cfg: &mut web::ServiceConfig, max_json_bytes: usize) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(max_json_bytes)
            .error_handler(|err, _| {
                let msg = match &err {
                    actix_web::error::JsonPayloadError::OverflowKnownLength { .. }
                    | actix_web::error::JsonPayloadError::Overflow { .. } => {
                        "request body is too large".to_owned()
                    }
                    actix_web::error::JsonPayloadError::ContentType => {
                        "Content-Type must be application/json".to_owned()
                    }
                    other => format!("invalid JSON body: {other}"),
                };
                ApiError::BadRequest(msg).into()
            }),
    )
    .app_data(web::QueryConfig::default().error_handler(|err, _| {
        ApiError::BadRequest(format!("invalid query parameter: {err}")).into()
    }))
    .app_data(web::PathConfig::default().error_handler(|err, _| {
        ApiError::BadRequest(format!("invalid path parameter: {err}")).into()
    }));
}

/// Unknown routes answer 404/1004 in the envelope.
pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such route".to_owned()))
}

/// Everything a server needs besides its routes.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    pub allowed_origins: Vec<String>,
    pub max_json_bytes: usize,
    /// Worker threads; None lets actix use one per core.
    pub workers: Option<usize>,
    /// See [`body_deadline`].
    pub body_timeout: Duration,
    /// Whose `X-Real-IP` [`client_ip`] believes.
    pub trusted_gateways: TrustedGateways,
}

/// Blocking threads per actix worker (see [`serve`]).
pub const MAX_BLOCKING_THREADS_PER_WORKER: usize = 32;

/// Builds an actix server on `listener` (bind port 0 in tests and read it back)
/// with the shared middleware around the routes `configure` mounts.
pub fn serve<F>(
    listener: TcpListener,
    settings: ServerSettings,
    configure: F,
) -> std::io::Result<Server>
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    let s = settings.clone();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(BodyTimeout(s.body_timeout))
            .app_data(s.trusted_gateways.clone())
            .wrap(cors(&s.allowed_origins))
            .wrap(from_fn(body_deadline))
            .wrap(from_fn(observe))
            .configure(|cfg| configure_extractors(cfg, s.max_json_bytes))
            .configure(configure.clone())
            .default_service(web::to(not_found))
    })
    .listen(listener)?
    .client_request_timeout(std::time::Duration::from_secs(10))
    .client_disconnect_timeout(std::time::Duration::from_secs(2))
    .shutdown_timeout(10);
    if let Some(n) = settings.workers {
        server = server.workers(n);
    }
    // Blocking work (the database, through `web::block`) runs on each
    // worker's own blocking pool, which actix sizes at 512 threads divided
    // among the workers. A database call beyond the connection pool (16 on
    // PostgreSQL) only waits for a connection, holding a thread, its stack
    // and a malloc arena, for no throughput (the bench's open-loop v2Pay at
    // up to 1,600/s, 256 in flight: pay-service peaked at 55 MiB with actix's
    // default, 47 MiB with this cap; one noisy run each). Past this many per
    // worker the calls queue instead, still enough for every connection of
    // every pool in `stack`.
    server = server.worker_max_blocking_threads(MAX_BLOCKING_THREADS_PER_WORKER);
    Ok(server.run())
}

/// The gateways in front of a service (`TRUSTED_GATEWAYS`): the peers whose
/// `X-Real-IP` header names the client. Anyone else could write that header,
/// and a private address is not a gateway just for being private (another
/// container, pod or compromised host on the same network is private too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedGateways(Vec<IpNet>);

impl Default for TrustedGateways {
    /// Loopback only: a gateway on the same host (and the tests).
    fn default() -> Self {
        TrustedGateways(vec![
            IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::LOCALHOST, 8)),
            IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128)),
        ])
    }
}

impl TrustedGateways {
    /// A list of CIDRs or single addresses, separated by commas or spaces.
    /// Err says which entry is neither.
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{s:?} is not an IP address or CIDR"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedGateways)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// The client's address: `X-Real-IP` when the connection comes from one of
/// the [`TrustedGateways`] the server was given (loopback when none were),
/// else the connection's own peer.
pub fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip().to_canonical());
    let from_gateway = peer.is_some_and(|ip| match req.app_data::<TrustedGateways>() {
        Some(gateways) => gateways.contains(ip),
        None => TrustedGateways::default().contains(ip),
    });
    if from_gateway {
        let forwarded = req
            .headers()
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        if let Some(ip) = forwarded {
            return Some(ip.to_canonical());
        }
    }
    peer
}

/// The key a per-client rate limit counts under: an IPv4 address as it is,
/// an IPv6 address by its /64. One IPv6 subscriber is usually given a whole
/// /64 (or more) and may use any address in it, so counting single IPv6
/// addresses would hand each client 2^64 budgets.
pub fn rate_limit_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => Ipv6Net::new_assert(v6, 64).trunc().to_string(),
    }
}

/// The request id of a request, for replies that need to name it.
pub fn request_id(req: &HttpRequest) -> Option<String> {
    req.extensions().get::<RequestId>().map(|r| r.0.clone())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_and_ipv4_per_address() {
        assert_eq!(rate_limit_key(ip("203.0.113.7")), "203.0.113.7");
        assert_ne!(
            rate_limit_key(ip("203.0.113.7")),
            rate_limit_key(ip("203.0.113.8"))
        );
        let a = rate_limit_key(ip("2001:db8:1:2:aaaa::1"));
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(a, rate_limit_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")));
        assert_ne!(a, rate_limit_key(ip("2001:db8:1:3::1")));
        // An IPv4 client on a dual-stack socket is still an IPv4 client.
        assert_eq!(rate_limit_key(ip("::ffff:203.0.113.7")), "203.0.113.7");
    }

    #[test]
    fn trusted_gateways_parse_cidrs_and_addresses_and_name_a_bad_entry() {
        let g = TrustedGateways::parse("10.1.0.0/16, 192.0.2.5 fd00::/8").unwrap();
        assert!(g.contains(ip("10.1.200.3")));
        assert!(!g.contains(ip("10.2.0.1")));
        assert!(g.contains(ip("192.0.2.5")));
        assert!(!g.contains(ip("192.0.2.6")));
        assert!(g.contains(ip("fd12::1")));
        assert!(g.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped peers");
        assert!(
            !g.contains(ip("127.0.0.1")),
            "an explicit list replaces loopback"
        );
        let err = TrustedGateways::parse("10.0.0.0/8,private").unwrap_err();
        assert!(err.contains("\"private\""), "{err}");
        assert!(TrustedGateways::parse("10.0.0.0/33").is_err());
        let default = TrustedGateways::default();
        assert!(default.contains(ip("127.0.0.1")) && default.contains(ip("::1")));
        assert!(!default.contains(ip("10.0.0.1")), "private is not trusted");
    }

    fn request(peer: &str, real_ip: Option<&str>, gateways: Option<&str>) -> HttpRequest {
        let mut t = TestRequest::default().peer_addr(format!("{peer}:40000").parse().unwrap());
        if let Some(r) = real_ip {
            t = t.insert_header(("x-real-ip", r));
        }
        if let Some(g) = gateways {
            t = t.app_data(TrustedGateways::parse(g).unwrap());
        }
        t.to_http_request()
    }

    #[test]
    fn x_real_ip_is_believed_from_the_configured_gateways_only() {
        let gw = Some("10.0.0.5/32");
        assert_eq!(
            client_ip(&request("10.0.0.5", Some("203.0.113.7"), gw)),
            Some(ip("203.0.113.7"))
        );
        // Another private peer is not the gateway: its header is ignored.
        assert_eq!(
            client_ip(&request("10.0.0.6", Some("203.0.113.7"), gw)),
            Some(ip("10.0.0.6"))
        );
        assert_eq!(
            client_ip(&request("192.168.1.9", Some("203.0.113.7"), None)),
            Some(ip("192.168.1.9")),
            "by default only loopback is a gateway"
        );
        assert_eq!(
            client_ip(&request("127.0.0.1", Some("203.0.113.7"), None)),
            Some(ip("203.0.113.7"))
        );
        // From the gateway, garbage or no header: the peer itself.
        assert_eq!(
            client_ip(&request("10.0.0.5", Some("not an ip"), gw)),
            Some(ip("10.0.0.5"))
        );
        assert_eq!(
            client_ip(&request("10.0.0.5", None, gw)),
            Some(ip("10.0.0.5"))
        );
    }
}
