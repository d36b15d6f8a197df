//! What every service's HTTP layer shares: request ids and access logs, metrics,
//! CORS, body limits with envelope errors, the client's address, and the server.

use std::net::{IpAddr, TcpListener};
use std::time::Instant;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpMessage, HttpRequest, HttpServer, web};
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
            .wrap(cors(&s.allowed_origins))
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
