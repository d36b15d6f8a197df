//! WeChat Pay APIv3 (JSON, SHA256-RSA signatures, AES-256-GCM): orders,
//! refunds, certificates, and v3 notifications, on the same ledger as v2.
//!
//! Requests must carry a valid `Authorization` made with the merchant's key
//! (checked against its certificate); every answer, error answers included,
//! is signed with the platform certificate or the WeChat Pay public key as
//! [`SignMode`](crate::keys::SignMode) says, and so is every notification
//! attempt. The keys themselves live in [`crate::keys`].

mod auth;
mod bill;
mod control;
mod files;
mod notify;
mod pay;
mod refund;
mod wire;

use actix_web::web;

pub(crate) use files::V3Files;
pub(crate) use notify::{SignedHeaders, V3Event};
pub(crate) use pay::transaction_json;
pub(crate) use refund::{refund_event, refund_resource};

/// The v3 API routes, on both listeners.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v3/pay/transactions/jsapi", web::post().to(pay::jsapi))
        .route("/v3/pay/transactions/h5", web::post().to(pay::h5))
        .route("/v3/pay/transactions/native", web::post().to(pay::native))
        .route(
            "/v3/pay/transactions/out-trade-no/{out_trade_no}",
            web::get().to(pay::query),
        )
        .route(
            "/v3/pay/transactions/out-trade-no/{out_trade_no}/close",
            web::post().to(pay::close),
        )
        .route("/v3/refund/domestic/refunds", web::post().to(refund::apply))
        .route(
            "/v3/refund/domestic/refunds/{out_refund_no}",
            web::get().to(refund::query),
        )
        .route("/v3/certificates", web::get().to(pay::certificates))
        .route("/v3/bill/tradebill", web::get().to(bill::tradebill))
        .route("/v3/billdownload/file", web::get().to(bill::download))
        .route("/sandbox/v3", web::get().to(control::info))
        .route("/sandbox/v3/mode", web::post().to(control::set_mode))
        .route("/sandbox/v3/signtest", web::post().to(control::signtest));
}
