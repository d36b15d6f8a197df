//! `/v3/refund/domestic/refunds` and its query, on the shared refund ledger,
//! and the v3 refund notification's resource.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::pay::json;
use super::wire::{V3Failure, V3Reply, failure, from_refund_time, param_error, rfc3339_beijing};
use crate::pay::refund::{OrderRef, RefundRefusal, RefundRequest};
use crate::state::SandboxState;
use crate::store::{PayApi, RefundSnapshot, RefundStatus};

#[derive(Deserialize)]
struct RefundAmount {
    refund: i64,
    total: i64,
    currency: String,
}

#[derive(Deserialize)]
struct ApplyRefund {
    transaction_id: Option<String>,
    out_trade_no: Option<String>,
    out_refund_no: String,
    reason: Option<String>,
    notify_url: Option<String>,
    amount: RefundAmount,
}

pub(crate) async fn apply(
    s: web::Data<SandboxState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    s.v3_reply(s.v3_apply_refund(&req, &body))
}

pub(crate) async fn query(
    s: web::Data<SandboxState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    s.v3_reply(s.v3_query_refund(&req, &path))
}

fn fen(v: i64, name: &str) -> Result<u64, V3Failure> {
    u64::try_from(v)
        .ok()
        .filter(|f| *f > 0)
        .ok_or_else(|| param_error(format!("amount.{name}必须大于0")))
}

impl ApplyRefund {
    fn into_request(self, mch_id: &str) -> Result<RefundRequest, V3Failure> {
        if self.out_refund_no.is_empty() || self.out_refund_no.len() > 64 {
            return Err(param_error("out_refund_no长度有误"));
        }
        if self.amount.currency != "CNY" {
            return Err(param_error("amount.currency只支持CNY"));
        }
        let order = match (self.transaction_id, self.out_trade_no) {
            (Some(id), _) if !id.is_empty() => OrderRef::TransactionId(id),
            (_, Some(no)) if !no.is_empty() => OrderRef::OutTradeNo(no),
            _ => return Err(param_error("transaction_id和out_trade_no必须二选一")),
        };
        Ok(RefundRequest {
            out_refund_no: self.out_refund_no,
            mch_id: mch_id.to_owned(),
            appid: None,
            order,
            total_fee: fen(self.amount.total, "total")?,
            refund_fee: fen(self.amount.refund, "refund")?,
            refund_desc: self.reason,
            notify_url: self.notify_url,
            api: PayApi::V3,
        })
    }
}

fn refusal(r: RefundRefusal) -> V3Failure {
    match r {
        RefundRefusal::OrderNotFound => failure(404, "RESOURCE_NOT_EXISTS", "订单不存在"),
        RefundRefusal::NumberReused => failure(
            400,
            "INVALID_REQUEST",
            "退款单号已被使用，请求参数与之前不一致",
        ),
        RefundRefusal::OrderNotPaid => failure(400, "INVALID_REQUEST", "订单未支付，不能退款"),
        RefundRefusal::TotalMismatch => param_error("订单金额与原订单金额不一致"),
        RefundRefusal::NotEnough => failure(403, "NOT_ENOUGH", "申请退款金额超过订单可退金额"),
    }
}

impl SandboxState {
    fn v3_apply_refund(&self, req: &HttpRequest, body: &[u8]) -> V3Reply {
        let merchant = self.v3_authenticate(req, body)?;
        let request = json::<ApplyRefund>(body)?.into_request(&merchant.mch_id)?;
        let refund = self.refund_order(request).map_err(refusal)?;
        // Answer with the refund as it stands after an immediate success.
        let refund = self.refund(&refund.out_refund_no).unwrap_or(refund);
        Ok(self.v3_ok(&refund_json(&refund)))
    }

    fn v3_query_refund(&self, req: &HttpRequest, out_refund_no: &str) -> V3Reply {
        let merchant = self.v3_authenticate(req, b"")?;
        let refund = self
            .refund_of_merchant(out_refund_no, &merchant.mch_id)
            .ok_or_else(|| failure(404, "RESOURCE_NOT_EXISTS", "退款单不存在"))?;
        Ok(self.v3_ok(&refund_json(&refund)))
    }
}

/// v3's refund statuses.
pub(crate) fn status_v3(s: RefundStatus) -> &'static str {
    match s {
        RefundStatus::Processing => "PROCESSING",
        RefundStatus::Success => "SUCCESS",
        RefundStatus::RefundClose => "CLOSED",
        RefundStatus::Change => "ABNORMAL",
    }
}

/// WeChat's v3 refund object (apply and query answers).
pub(crate) fn refund_json(r: &RefundSnapshot) -> serde_json::Value {
    let mut v = json!({
        "refund_id": r.refund_id,
        "out_refund_no": r.out_refund_no,
        "transaction_id": r.transaction_id,
        "out_trade_no": r.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "create_time": rfc3339_beijing(r.created_at),
        "status": status_v3(r.status),
        "funds_account": "AVAILABLE",
        "amount": {
            "total": r.total_fee,
            "refund": r.refund_fee,
            "payer_total": r.total_fee,
            "payer_refund": r.refund_fee,
            "settlement_total": r.total_fee,
            "settlement_refund": r.refund_fee,
            "discount_refund": 0,
            "currency": "CNY",
        },
    });
    if let Some(t) = r.success_time.as_deref().and_then(from_refund_time) {
        v["success_time"] = json!(t);
    }
    v
}

/// The refund notification's decrypted resource.
pub(crate) fn refund_resource(mch_id: &str, r: &RefundSnapshot) -> serde_json::Value {
    let mut v = json!({
        "mchid": mch_id,
        "out_trade_no": r.out_trade_no,
        "transaction_id": r.transaction_id,
        "out_refund_no": r.out_refund_no,
        "refund_id": r.refund_id,
        "refund_status": status_v3(r.status),
        "user_received_account": "支付用户零钱",
        "amount": {
            "total": r.total_fee,
            "refund": r.refund_fee,
            "payer_total": r.total_fee,
            "payer_refund": r.refund_fee,
        },
    });
    if let Some(t) = r.success_time.as_deref().and_then(from_refund_time) {
        v["success_time"] = json!(t);
    }
    v
}

/// `REFUND.SUCCESS`, `REFUND.CLOSED` or `REFUND.ABNORMAL`, and its summary.
pub(crate) fn refund_event(s: RefundStatus) -> (&'static str, &'static str) {
    match s {
        RefundStatus::Success | RefundStatus::Processing => ("REFUND.SUCCESS", "退款成功"),
        RefundStatus::RefundClose => ("REFUND.CLOSED", "退款关闭"),
        RefundStatus::Change => ("REFUND.ABNORMAL", "退款异常"),
    }
}
