//! The sandbox's requests as server spans of the caller's trace
//! (shared::traces): WeChat's side of each call in a payment's trace.
//! Its own module: both listeners (server, tls) use it.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use tracing::Instrument;

/// A server span per request while spans are exported (shared::traces),
/// continuing the caller's W3C trace context, so that a payment's trace
/// shows WeChat's side of each call; a disabled DEBUG span otherwise.
pub(crate) async fn trace_request(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<
    ServiceResponse<EitherBody<impl MessageBody + 'static, impl MessageBody + 'static>>,
    actix_web::Error,
> {
    let span = tracing::debug_span!("sandbox", otel.kind = "server");
    if span.is_disabled() {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    shared::traces::accept_parent(&span, req.headers());
    let method = req.method().clone();
    let res = next.call(req).instrument(span.clone()).await?;
    // Named by route, as the services' spans are: no order number in a name.
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    shared::traces::finish_request_span(&span, method.as_str(), &route, res.status().as_u16());
    shared::traces::rename(&span, format!("sandbox {method} {route}"));
    Ok(res.map_into_right_body())
}
