//! `/sandbox/v3` controls: the keys in use, the signing mode, and WeChat's
//! signature probes on demand.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::notify::V3Event;
use super::pay::transaction_json;
use crate::clock::lock;
use crate::keys::SignMode;
use crate::state::SandboxState;

fn control_error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": message }))
}

/// `GET /sandbox/v3`: mode, serials and the public halves of the keys.
pub(crate) async fn info(s: web::Data<SandboxState>) -> HttpResponse {
    let keys = &s.v3.keys;
    HttpResponse::Ok().json(json!({
        "mode": s.v3.mode(),
        "platformSerialNo": keys.platform_cert.serial_no(),
        "platformCertificatePem": keys.platform_cert.pem(),
        "publicKeyId": keys.public_key_id,
        "publicKeyPem": keys.public_key().to_pem(),
        "merchantSerialNo": keys.merchant_cert.serial_no(),
    }))
}

#[derive(Deserialize)]
struct ModeBody {
    mode: SignMode,
}

/// `POST /sandbox/v3/mode {mode: platform|public_key|switch}`.
pub(crate) async fn set_mode(s: web::Data<SandboxState>, body: web::Bytes) -> HttpResponse {
    match serde_json::from_slice::<ModeBody>(&body) {
        Ok(b) => {
            s.v3.set_mode(b.mode);
            HttpResponse::Ok().json(json!({ "mode": b.mode }))
        }
        Err(_) => control_error(
            StatusCode::BAD_REQUEST,
            "mode must be platform, public_key or switch",
        ),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SigntestBody {
    /// The order whose notify_url gets the probe (and whose data it carries).
    out_trade_no: String,
}

/// `POST /sandbox/v3/signtest {outTradeNo}`: POSTs one probe notification
/// (signature `WECHATPAY/SIGNTEST/…`) to the order's notify_url, once, and
/// answers `{httpStatus}` (null when nothing answered). A merchant must not
/// answer it with 2xx.
pub(crate) async fn signtest(s: web::Data<SandboxState>, body: web::Bytes) -> HttpResponse {
    let Ok(b) = serde_json::from_slice::<SigntestBody>(&body) else {
        return control_error(StatusCode::BAD_REQUEST, "body must be {\"outTradeNo\": …}");
    };
    let now = s.now();
    let probe = lock(&s.orders).orders.get(&b.out_trade_no).map(|o| {
        (
            o.notify_url.clone(),
            o.mch_id.clone(),
            transaction_json(o, now),
        )
    });
    let Some((url, mch_id, resource)) = probe else {
        return control_error(StatusCode::NOT_FOUND, "order not found");
    };
    let body = s.v3_notification(
        &mch_id,
        V3Event {
            event_type: "TRANSACTION.SUCCESS",
            original_type: "transaction",
            summary: "支付成功",
            resource,
        },
    );
    let headers = s.v3_signed_headers(body.as_bytes()).probe();
    let status = s.post_v3_once(&url, body, &headers).await;
    HttpResponse::Ok().json(json!({ "httpStatus": status }))
}
