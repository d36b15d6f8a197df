//! WeChat's notifications: payments (`POST /api/pay/notify`, and the seed's
//! `/api/mp/payCallback`) and refunds (`POST /api/pay/refund-notify`). The
//! frame is here: the body limit (`max_xml_bytes`), the log line and the XML
//! reply; what a notification means is the domain's
//! (`domain::notifications`, `domain::refund_notifications`).

use actix_web::{HttpRequest, HttpResponse, web};
use shared::xml::notify_reply;

use super::cause;
use crate::domain::notifications::{self, NotificationOutcome};
use crate::domain::{PayState, refund_notifications};

/// Counts the outcome and answers WeChat: SUCCESS when acknowledged, else
/// FAIL with the outcome's label (WeChat retries).
fn reply<O: NotificationOutcome>(outcome: &O) -> HttpResponse {
    O::counter().with_label_values(&[outcome.label()]).inc();
    let body = if outcome.acknowledged() {
        notify_reply(true, "OK")
    } else {
        notify_reply(false, outcome.label())
    };
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(body)
}

/// A notification handler's frame: `body` is an error when it exceeded
/// `max_xml_bytes` (or could not be read), answered FAIL with nothing
/// recorded or changed; otherwise `process` decides, and its outcome is
/// logged, counted and answered.
async fn answer<O: NotificationOutcome>(
    body: Result<web::Bytes, actix_web::Error>,
    process: impl AsyncFnOnce(&[u8]) -> O,
) -> HttpResponse {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "{} notification refused unread", O::KIND);
            return reply(&O::TOO_LARGE);
        }
    };
    let outcome = process(&body).await;
    if outcome.acknowledged() {
        tracing::info!(outcome = outcome.label(), "{} notification", O::KIND);
    } else {
        tracing::warn!(outcome = outcome.label(), detail = %outcome.log_detail(), "{} notification refused", O::KIND);
    }
    reply(&outcome)
}

/// Payment notifications. SUCCESS is answered only once the order is PAID
/// in the database, committed; anything else is answered FAIL and WeChat
/// retries.
pub(super) async fn receive(
    state: web::Data<PayState>,
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> HttpResponse {
    answer(body, async |body| {
        notifications::process(&state, body, &cause("notify", &req)).await
    })
    .await
}

/// Refund notifications, on the same terms.
pub(super) async fn receive_refund(
    state: web::Data<PayState>,
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> HttpResponse {
    answer(body, async |body| {
        refund_notifications::process(&state, body, &cause("refund_notify", &req)).await
    })
    .await
}
