//! WeChat's v3 notifications: `POST /api/pay/v3/notify` (payments) and
//! `POST /api/pay/v3/refund-notify` (refunds). The frame is here: the body
//! limit (`MAX_XML_BYTES`, as for v2's), the `Wechatpay-*` headers handed to
//! the domain, and WeChat's v3 reply: 204 with no body once acknowledged,
//! otherwise a 4xx (the notification's fault) or 5xx (ours) with
//! `{"code":"FAIL","message":…}`, and WeChat retries.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use shared::wechatpay_v3::{HEADER_NONCE, HEADER_SERIAL, HEADER_SIGNATURE, HEADER_TIMESTAMP};

use super::cause;
use crate::domain::PayState;
use crate::domain::notifications::NotificationOutcome;
use crate::domain::v3_notifications::{self, NotifyHeaders, V3Notified};

fn headers(req: &HttpRequest) -> NotifyHeaders {
    let h = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim()
            .to_owned()
    };
    NotifyHeaders {
        serial: h(HEADER_SERIAL),
        timestamp: h(HEADER_TIMESTAMP),
        nonce: h(HEADER_NONCE),
        signature: h(HEADER_SIGNATURE),
    }
}

/// Counts, logs and answers one outcome.
fn reply<O: NotificationOutcome>(outcome: &V3Notified<O>) -> HttpResponse {
    outcome.count();
    if outcome.acknowledged() {
        tracing::info!(outcome = outcome.label(), "v3 {} notification", O::KIND);
        return HttpResponse::NoContent().finish();
    }
    tracing::warn!(outcome = outcome.label(), detail = %outcome.detail(), "v3 {} notification refused", O::KIND);
    let status = match outcome {
        V3Notified::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        o if o.is_ours() => StatusCode::INTERNAL_SERVER_ERROR,
        o if o.is_malformed() => StatusCode::BAD_REQUEST,
        V3Notified::Refused(_) => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    };
    HttpResponse::build(status).json(serde_json::json!({
        "code": "FAIL",
        "message": outcome.label(),
    }))
}

/// Payment notifications: 204 only once the order is PAID, committed.
pub(super) async fn receive(
    state: web::Data<PayState>,
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> HttpResponse {
    let outcome = match body {
        Err(_) => V3Notified::TooLarge,
        Ok(body) => {
            v3_notifications::process_payment(&state, &headers(&req), &body, &cause("notify", &req))
                .await
        }
    };
    reply(&outcome)
}

/// Refund notifications, on the same terms.
pub(super) async fn receive_refund(
    state: web::Data<PayState>,
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> HttpResponse {
    let outcome = match body {
        Err(_) => V3Notified::TooLarge,
        Ok(body) => {
            v3_notifications::process_refund(
                &state,
                &headers(&req),
                &body,
                &cause("refund_notify", &req),
            )
            .await
        }
    };
    reply(&outcome)
}
