//! What every service's HTTP layer shares: request ids and access logs, metrics,
//! CORS, body limits with envelope errors, the client's address, and the server.

use std::future::Future;
use std::net::{IpAddr, TcpListener};
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
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

/// Request id, a tracing span around the request, an access log line and metrics.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let id = request_id_of(&req);
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path());
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

/// CORS for the allowed origins only, with credentials (the session cookie).
pub fn cors(allowed_origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST", "OPTIONS"])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .allowed_header("idempotency-key")
        .allowed_header(REQUEST_ID)
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
}

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
    Ok(server.run())
}

/// The client's address. `X-Real-IP` (set by the gateway) is believed only when
/// the connection comes from a proxy on loopback or a private network; anyone
/// else could write it.
pub fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip());
    let trusted_proxy = peer.is_some_and(is_internal);
    if trusted_proxy {
        let forwarded = req
            .headers()
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    peer
}

fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// The request id of a request, for replies that need to name it.
pub fn request_id(req: &HttpRequest) -> Option<String> {
    req.extensions().get::<RequestId>().map(|r| r.0.clone())
}
