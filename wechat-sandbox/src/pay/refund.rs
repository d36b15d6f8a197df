//! WeChat Pay APIv2 refunds: `/secapi/pay/refund` (served only on the TLS
//! listener, which asks for the merchant's client certificate), `/pay/refundquery`,
//! and refund notifications whose `req_info` is encrypted as WeChat does it
//! (AES-256-ECB, PKCS#7, key = lowercase hex MD5 of the merchant key).
//!
//! A refund succeeds at once unless the test holds refunds
//! ([`SandboxState::hold_refunds`]); a held one stays PROCESSING until
//! [`SandboxState::complete_refund`].

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use aes::Aes256;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyInit, block_padding::Pkcs7};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use shared::xml::{map_to_xml, to_xml};

use crate::clock::lock;
use crate::ids;
use crate::pay::notify::{Delivery, Subject};
use crate::pay::orders::{self, PayFailure, PayRequest};
use crate::state::SandboxState;
use crate::store::{
    DeliveryAttempt, Order, PayApi, Refund, RefundSnapshot, RefundStatus, RefundStore, TradeState,
};

/// WeChat's refund notification key: the lowercase hex MD5 of the merchant key,
/// whose 32 ASCII characters are the AES-256 key.
fn req_info_key(mch_key: &str) -> [u8; 32] {
    let hex = hex::encode(Md5::digest(mch_key.as_bytes()));
    let mut key = [0u8; 32];
    key.copy_from_slice(hex.as_bytes());
    key
}

/// Encrypts a refund notification's inner XML as WeChat does:
/// base64(AES-256-ECB(PKCS#7(plain))) with the key derived from `mch_key`.
pub fn encrypt_req_info(mch_key: &str, plain: &str) -> String {
    let cipher = ecb::Encryptor::<Aes256>::new(&req_info_key(mch_key).into());
    STANDARD.encode(cipher.encrypt_padded_vec::<Pkcs7>(plain.as_bytes()))
}

/// The inverse of [`encrypt_req_info`]; None when it does not decrypt.
pub fn decrypt_req_info(mch_key: &str, b64: &str) -> Option<String> {
    let data = STANDARD.decode(b64.trim()).ok()?;
    let cipher = ecb::Decryptor::<Aes256>::new(&req_info_key(mch_key).into());
    let plain = cipher.decrypt_padded_vec::<Pkcs7>(&data).ok()?;
    String::from_utf8(plain).ok()
}

/// `2017-12-15 09:46:01`, Beijing time.
fn refund_time(at: DateTime<Utc>) -> String {
    at.with_timezone(&ids::beijing())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Where a refund's notification goes when the request named none: WeChat
/// uses the URL set in the merchant platform; the sandbox uses the order's
/// notify_url host with `/api/pay/refund-notify` (v3: `/api/pay/v3/refund-notify`).
fn default_refund_notify_url(order_notify_url: &str, api: PayApi) -> String {
    let path = match api {
        PayApi::V2 => "/api/pay/refund-notify",
        PayApi::V3 => "/api/pay/v3/refund-notify",
    };
    match url::Url::parse(order_notify_url) {
        Ok(mut u) => {
            u.set_path(path);
            u.set_query(None);
            u.to_string()
        }
        Err(_) => order_notify_url.to_owned(),
    }
}

fn business(code: &'static str, des: &'static str) -> PayFailure {
    PayFailure::Business { code, des }
}

fn refund_reply(r: &RefundSnapshot) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("transaction_id".to_owned(), r.transaction_id.clone()),
        ("out_trade_no".to_owned(), r.out_trade_no.clone()),
        ("out_refund_no".to_owned(), r.out_refund_no.clone()),
        ("refund_id".to_owned(), r.refund_id.clone()),
        ("refund_fee".to_owned(), r.refund_fee.to_string()),
        ("settlement_refund_fee".to_owned(), r.refund_fee.to_string()),
        ("total_fee".to_owned(), r.total_fee.to_string()),
        ("settlement_total_fee".to_owned(), r.total_fee.to_string()),
        ("fee_type".to_owned(), "CNY".to_owned()),
        ("cash_fee".to_owned(), r.total_fee.to_string()),
        ("cash_refund_fee".to_owned(), r.refund_fee.to_string()),
        ("refund_channel".to_owned(), "ORIGINAL".to_owned()),
    ])
}

/// `/secapi/pay/refund`'s fields.
struct RefundParams {
    out_refund_no: String,
    /// By transaction_id when given, else by out_trade_no.
    order: OrderRef,
    total_fee: u64,
    refund_fee: u64,
    refund_desc: Option<String>,
    notify_url: Option<String>,
}

/// How a refund request names its order.
pub(crate) enum OrderRef {
    TransactionId(String),
    OutTradeNo(String),
}

impl RefundParams {
    fn from_request(req: &PayRequest) -> Result<Self, PayFailure> {
        let out_refund_no = req.require("out_refund_no")?.to_owned();
        if out_refund_no.len() > 64 {
            return Err(PayFailure::Return("out_refund_no参数长度有误".into()));
        }
        let total_fee = orders::fee(req, "total_fee")?;
        let refund_fee = orders::fee(req, "refund_fee")?;
        if req.get("refund_fee_type").is_some_and(|f| f != "CNY") {
            return Err(PayFailure::Return("refund_fee_type参数格式错误".into()));
        }
        let order = match (req.get("transaction_id"), req.get("out_trade_no")) {
            (Some(id), _) => OrderRef::TransactionId(id.to_owned()),
            (None, Some(no)) => OrderRef::OutTradeNo(no.to_owned()),
            (None, None) => return Err(PayFailure::Return("缺少参数out_trade_no".into())),
        };
        Ok(RefundParams {
            out_refund_no,
            order,
            total_fee,
            refund_fee,
            refund_desc: req.get("refund_desc").map(str::to_owned),
            notify_url: req.get("notify_url").map(str::to_owned),
        })
    }
}

/// What a refund is checked against and copies from its order.
pub(crate) struct RefundRequest {
    pub out_refund_no: String,
    pub mch_id: String,
    pub appid: Option<String>,
    pub order: OrderRef,
    /// The order's total as the merchant states it (must match).
    pub total_fee: u64,
    pub refund_fee: u64,
    pub refund_desc: Option<String>,
    /// None: the default refund notify URL of the order's host.
    pub notify_url: Option<String>,
    pub api: PayApi,
}

/// Why a refund was refused, for each API to word in its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefundRefusal {
    OrderNotFound,
    /// The out_refund_no is taken by a refund with other parameters.
    NumberReused,
    OrderNotPaid,
    TotalMismatch,
    /// More than what is left to refund.
    NotEnough,
}

impl RefundRefusal {
    fn v2(self) -> PayFailure {
        match self {
            RefundRefusal::OrderNotFound => business("ORDERNOTEXIST", "订单不存在"),
            RefundRefusal::NumberReused => {
                business("PARAM_ERROR", "退款单号已被使用，请求参数与之前不一致")
            }
            RefundRefusal::OrderNotPaid => business("TRADE_STATE_ERROR", "订单状态错误"),
            RefundRefusal::TotalMismatch => {
                business("PARAM_ERROR", "订单金额或退款金额与之前请求不一致")
            }
            RefundRefusal::NotEnough => business("ERROR", "申请退款金额超过订单可退金额"),
        }
    }
}

/// A paid order, the stated total, and room left for `r.refund_fee`.
fn check_refundable(
    order: &Order,
    refunds: &RefundStore,
    r: &RefundRequest,
    now: DateTime<Utc>,
) -> Result<(), RefundRefusal> {
    if !matches!(
        order.state_at(now),
        TradeState::Success | TradeState::Refund
    ) {
        return Err(RefundRefusal::OrderNotPaid);
    }
    if r.total_fee != order.total_fee {
        return Err(RefundRefusal::TotalMismatch);
    }
    let already: u64 = refunds
        .refunds
        .iter()
        .filter(|x| x.out_trade_no == order.out_trade_no && x.status.counts())
        .map(|x| x.refund_fee)
        .sum();
    if already + r.refund_fee > order.total_fee {
        return Err(RefundRefusal::NotEnough);
    }
    Ok(())
}

/// A PROCESSING refund of `order`.
fn new_refund(order: &Order, r: RefundRequest, now: DateTime<Utc>) -> Refund {
    Refund {
        out_refund_no: r.out_refund_no,
        out_trade_no: order.out_trade_no.clone(),
        transaction_id: order.transaction_id.clone().unwrap_or_default(),
        appid: order.appid.clone(),
        mch_id: order.mch_id.clone(),
        refund_id: format!("50000{}", ids::digits(24)),
        total_fee: r.total_fee,
        refund_fee: r.refund_fee,
        refund_desc: r.refund_desc,
        status: RefundStatus::Processing,
        success_time: None,
        created_at: now,
        notify_url: r
            .notify_url
            .unwrap_or_else(|| default_refund_notify_url(&order.notify_url, r.api)),
        api: r.api,
        deliveries: Vec::new(),
        delivery_finished: false,
    }
}

impl SandboxState {
    fn apply_refund(&self, req: &PayRequest) -> Result<BTreeMap<String, String>, PayFailure> {
        let p = RefundParams::from_request(req)?;
        let request = RefundRequest {
            out_refund_no: p.out_refund_no,
            mch_id: req.merchant.mch_id.clone(),
            appid: Some(req.appid().to_owned()),
            order: p.order,
            total_fee: p.total_fee,
            refund_fee: p.refund_fee,
            refund_desc: p.refund_desc,
            notify_url: p.notify_url,
            api: PayApi::V2,
        };
        self.refund_order(request)
            .map(|r| refund_reply(&r))
            .map_err(RefundRefusal::v2)
    }

    /// Records a refund (both APIs): the same out_refund_no asked again
    /// answers the same refund. Succeeds at once unless refunds are held.
    pub(crate) fn refund_order(&self, r: RefundRequest) -> Result<RefundSnapshot, RefundRefusal> {
        let now = self.now();
        let orders = lock(&self.orders);
        let order = match &r.order {
            OrderRef::TransactionId(id) => orders
                .orders
                .values()
                .find(|o| o.transaction_id.as_deref() == Some(id)),
            OrderRef::OutTradeNo(no) => orders.orders.get(no),
        }
        .filter(|o| o.mch_id == r.mch_id && r.appid.as_ref().is_none_or(|a| *a == o.appid))
        .ok_or(RefundRefusal::OrderNotFound)?;
        let mut refunds = lock(&self.refunds);
        if let Some(existing) = refunds.find(&r.out_refund_no, &r.mch_id) {
            // The same refund asked again: WeChat answers with it.
            return if existing.out_trade_no == order.out_trade_no
                && existing.refund_fee == r.refund_fee
                && existing.total_fee == r.total_fee
            {
                Ok(existing.snapshot())
            } else {
                Err(RefundRefusal::NumberReused)
            };
        }
        check_refundable(order, &refunds, &r, now)?;
        let refund = new_refund(order, r, now);
        let (out_trade_no, out_refund_no) =
            (refund.out_trade_no.clone(), refund.out_refund_no.clone());
        let snapshot = refund.snapshot();
        let succeed = !refunds.hold;
        refunds.refunds.push(refund);
        drop(refunds);
        drop(orders);
        if let Some(order) = lock(&self.orders).orders.get_mut(&out_trade_no) {
            order.state = TradeState::Refund;
        }
        tracing::info!(%out_trade_no, %out_refund_no, refund_fee = snapshot.refund_fee, "sandbox refund accepted");
        if succeed {
            let _ = self.complete_refund(&out_refund_no, RefundStatus::Success, true);
        }
        Ok(snapshot)
    }

    fn refund_query(&self, req: &PayRequest) -> Result<BTreeMap<String, String>, PayFailure> {
        let refunds = lock(&self.refunds);
        let mine = refunds
            .refunds
            .iter()
            .filter(|r| r.mch_id == req.merchant.mch_id && r.appid == req.appid());
        let found: Vec<&Refund> = if let Some(id) = req.get("refund_id") {
            mine.filter(|r| r.refund_id == id).collect()
        } else if let Some(no) = req.get("out_refund_no") {
            mine.filter(|r| r.out_refund_no == no).collect()
        } else if let Some(id) = req.get("transaction_id") {
            mine.filter(|r| r.transaction_id == id).collect()
        } else if let Some(no) = req.get("out_trade_no") {
            mine.filter(|r| r.out_trade_no == no).collect()
        } else {
            return Err(PayFailure::Return("缺少参数out_refund_no".into()));
        };
        let Some(first) = found.first() else {
            return Err(business("REFUNDNOTEXIST", "退款订单查询失败"));
        };
        let mut f = BTreeMap::new();
        let mut put = |k: String, v: String| {
            f.insert(k, v);
        };
        put("transaction_id".into(), first.transaction_id.clone());
        put("out_trade_no".into(), first.out_trade_no.clone());
        put("total_fee".into(), first.total_fee.to_string());
        put("cash_fee".into(), first.total_fee.to_string());
        put("fee_type".into(), "CNY".into());
        put("refund_count".into(), found.len().to_string());
        let refund_fee: u64 = found.iter().map(|r| r.refund_fee).sum();
        put("refund_fee".into(), refund_fee.to_string());
        for (i, r) in found.iter().enumerate() {
            put(format!("out_refund_no_{i}"), r.out_refund_no.clone());
            put(format!("refund_id_{i}"), r.refund_id.clone());
            put(format!("refund_channel_{i}"), "ORIGINAL".into());
            put(format!("refund_fee_{i}"), r.refund_fee.to_string());
            put(
                format!("settlement_refund_fee_{i}"),
                r.refund_fee.to_string(),
            );
            put(format!("refund_status_{i}"), r.status.as_str().into());
            put(
                format!("refund_account_{i}"),
                "REFUND_SOURCE_UNSETTLED_FUNDS".into(),
            );
            put(format!("refund_recv_accout_{i}"), "支付用户零钱".into());
            if let Some(t) = &r.success_time {
                put(format!("refund_success_time_{i}"), t.clone());
            }
        }
        Ok(f)
    }

    /// While `hold` is set, new refunds stay PROCESSING (no notification)
    /// until [`SandboxState::complete_refund`].
    pub fn hold_refunds(&self, hold: bool) {
        lock(&self.refunds).hold = hold;
    }

    /// Ends a PROCESSING refund as `status` (SUCCESS, REFUNDCLOSE or CHANGE)
    /// and, with `notify`, starts delivering its notification.
    pub fn complete_refund(
        &self,
        out_refund_no: &str,
        status: RefundStatus,
        notify: bool,
    ) -> Result<(), String> {
        if status == RefundStatus::Processing {
            return Err("a refund cannot be completed as PROCESSING".into());
        }
        let now = self.now();
        let mut refunds = lock(&self.refunds);
        let refund = refunds
            .refunds
            .iter_mut()
            .find(|r| r.out_refund_no == out_refund_no)
            .ok_or_else(|| "refund not found".to_owned())?;
        if refund.status != RefundStatus::Processing {
            return Err(format!("refund is already {}", refund.status.as_str()));
        }
        refund.status = status;
        if status == RefundStatus::Success {
            refund.success_time = Some(refund_time(now));
        }
        let delivery = notify.then(|| Delivery {
            subject: Subject::Refund {
                out_refund_no: refund.out_refund_no.clone(),
            },
            url: refund.notify_url.clone(),
            body: self.refund_notification_of(refund),
            api: refund.api,
            lost_first: 0,
        });
        drop(refunds);
        if let Some(delivery) = delivery {
            self.start_delivery(delivery);
        }
        Ok(())
    }

    /// The notification WeChat sends for the refund as it stands now (what a
    /// test replays to check that a duplicate is applied once): XML for a v2
    /// refund, the JSON body for a v3 one (its headers are signed per
    /// delivery).
    pub fn refund_notification_xml(&self, out_refund_no: &str) -> Option<String> {
        let refunds = lock(&self.refunds);
        let refund = refunds
            .refunds
            .iter()
            .find(|r| r.out_refund_no == out_refund_no)?;
        Some(self.refund_notification_of(refund))
    }

    /// v2: XML with `req_info` encrypted; v3: JSON with an AES-GCM resource.
    fn refund_notification_of(&self, r: &Refund) -> String {
        match r.api {
            PayApi::V2 => self.refund_notification_xml_of(r),
            PayApi::V3 => {
                let (event_type, summary) = crate::pay::v3::refund_event(r.status);
                self.v3_notification(
                    &r.mch_id,
                    crate::pay::v3::V3Event {
                        event_type,
                        original_type: "refund",
                        summary,
                        resource: crate::pay::v3::refund_resource(&r.mch_id, &r.snapshot()),
                    },
                )
            }
        }
    }

    fn refund_notification_xml_of(&self, r: &Refund) -> String {
        let mut inner: Vec<(&str, String)> = vec![
            ("transaction_id", r.transaction_id.clone()),
            ("out_trade_no", r.out_trade_no.clone()),
            ("refund_id", r.refund_id.clone()),
            ("out_refund_no", r.out_refund_no.clone()),
            ("total_fee", r.total_fee.to_string()),
            ("settlement_total_fee", r.total_fee.to_string()),
            ("refund_fee", r.refund_fee.to_string()),
            ("settlement_refund_fee", r.refund_fee.to_string()),
            ("refund_status", r.status.as_str().to_owned()),
            ("refund_recv_accout", "支付用户零钱".to_owned()),
            ("refund_account", "REFUND_SOURCE_UNSETTLED_FUNDS".to_owned()),
            ("refund_request_source", "API".to_owned()),
        ];
        if let Some(t) = &r.success_time {
            inner.push(("success_time", t.clone()));
        }
        // WeChat's inner document is a <root>, not an <xml>.
        let plain = to_xml(inner.iter().map(|(k, v)| (*k, v.as_str())))
            .replacen("<xml>", "<root>", 1)
            .replace("</xml>", "</root>");
        let key = self
            .merchant(&r.mch_id)
            .map(|m| m.key.as_str())
            .unwrap_or_default();
        let outer = BTreeMap::from([
            ("return_code".to_owned(), "SUCCESS".to_owned()),
            ("appid".to_owned(), r.appid.clone()),
            ("mch_id".to_owned(), r.mch_id.clone()),
            ("nonce_str".to_owned(), ids::alnum(32)),
            ("req_info".to_owned(), encrypt_req_info(key, &plain)),
        ]);
        map_to_xml(&outer)
    }

    /// A refund as the sandbox sees it now.
    pub fn refund(&self, out_refund_no: &str) -> Option<RefundSnapshot> {
        lock(&self.refunds)
            .refunds
            .iter()
            .find(|r| r.out_refund_no == out_refund_no)
            .map(Refund::snapshot)
    }

    /// A refund of this merchant's.
    pub(crate) fn refund_of_merchant(
        &self,
        out_refund_no: &str,
        mch_id: &str,
    ) -> Option<RefundSnapshot> {
        lock(&self.refunds)
            .find(out_refund_no, mch_id)
            .map(Refund::snapshot)
    }

    /// Every refund of an order, oldest first.
    pub fn refunds_of(&self, out_trade_no: &str) -> Vec<RefundSnapshot> {
        lock(&self.refunds)
            .refunds
            .iter()
            .filter(|r| r.out_trade_no == out_trade_no)
            .map(Refund::snapshot)
            .collect()
    }

    /// True once the merchant acknowledged the refund's notification; false
    /// if not within `timeout` (real time).
    pub async fn wait_refund_acknowledged(&self, out_refund_no: &str, timeout: Duration) -> bool {
        self.wait_for_delivery(timeout, || {
            lock(&self.refunds).refunds.iter().any(|r| {
                r.out_refund_no == out_refund_no && r.deliveries.iter().any(|d| d.acknowledged)
            })
        })
        .await
    }

    pub(crate) fn record_refund_delivery(
        &self,
        out_refund_no: &str,
        attempt: DeliveryAttempt,
        last: bool,
    ) {
        if let Some(r) = lock(&self.refunds)
            .refunds
            .iter_mut()
            .find(|r| r.out_refund_no == out_refund_no)
        {
            r.deliveries.push(attempt);
            r.delivery_finished |= last;
        }
    }
}

/// `/secapi/` over plain HTTP: WeChat refuses a request that brings no
/// client certificate.
async fn certificate_required() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(to_xml([
            ("return_code", "FAIL"),
            ("return_msg", "请使用商户证书访问(no client certificate)"),
        ]))
}

/// On the plain listener: refundquery, and `/secapi/` refused.
pub(crate) fn plain_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(orders::api("/pay/refundquery", SandboxState::refund_query))
        .route("/secapi/pay/refund", web::to(certificate_required));
}

/// On the TLS listener (client certificate checked by the handshake).
pub(crate) fn tls_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(orders::api(
        "/secapi/pay/refund",
        SandboxState::apply_refund,
    ))
    .service(orders::api("/pay/refundquery", SandboxState::refund_query));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn req_info_round_trips_and_refuses_another_key() {
        let plain = "<root><out_refund_no>r1</out_refund_no></root>";
        let enc = encrypt_req_info("key-a", plain);
        assert_eq!(decrypt_req_info("key-a", &enc).as_deref(), Some(plain));
        assert_ne!(decrypt_req_info("key-b", &enc).as_deref(), Some(plain));
        assert_eq!(decrypt_req_info("key-a", "not base64!"), None);
    }

    /// The key is the ASCII of the MD5 hex digest, not the digest's bytes.
    #[test]
    fn key_is_lowercase_hex_md5() {
        let key = req_info_key("abc");
        assert_eq!(&key, b"900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn refund_notify_url_defaults_to_the_order_host() {
        assert_eq!(
            default_refund_notify_url("http://127.0.0.1:9/api/pay/notify", PayApi::V2),
            "http://127.0.0.1:9/api/pay/refund-notify"
        );
        assert_eq!(
            default_refund_notify_url("http://127.0.0.1:9/api/pay/v3/notify", PayApi::V3),
            "http://127.0.0.1:9/api/pay/v3/refund-notify"
        );
    }
}
