//! The order ledger (one for both APIs) and its value types.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::sign::SignType;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TradeState {
    #[serde(rename = "SUCCESS")]
    Success,
    #[serde(rename = "NOTPAY")]
    NotPay,
    #[serde(rename = "CLOSED")]
    Closed,
    #[serde(rename = "REFUND")]
    Refund,
    #[serde(rename = "PAYERROR")]
    PayError,
}

/// Which WeChat Pay API an order came from (the sandbox keeps one ledger).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PayApi {
    #[serde(rename = "v2")]
    V2,
    #[serde(rename = "v3")]
    V3,
}

impl TradeState {
    pub fn as_str(self) -> &'static str {
        match self {
            TradeState::Success => "SUCCESS",
            TradeState::NotPay => "NOTPAY",
            TradeState::Closed => "CLOSED",
            TradeState::Refund => "REFUND",
            TradeState::PayError => "PAYERROR",
        }
    }

    pub(crate) fn desc(self) -> &'static str {
        match self {
            TradeState::Success => "支付成功",
            TradeState::NotPay => "订单未支付",
            TradeState::Closed => "订单已关闭",
            TradeState::Refund => "转入退款",
            TradeState::PayError => "支付失败(其他原因，如银行返回失败)",
        }
    }

    pub(crate) fn is_paid(self) -> bool {
        matches!(self, TradeState::Success | TradeState::Refund)
    }
}

pub(crate) struct Order {
    pub out_trade_no: String,
    pub appid: String,
    pub mch_id: String,
    pub body: String,
    pub attach: Option<String>,
    pub device_info: Option<String>,
    pub total_fee: u64,
    pub trade_type: String,
    pub openid: Option<String>,
    pub product_id: Option<String>,
    pub notify_url: String,
    /// Which API placed it: query, close, refunds and notifications follow it.
    pub api: PayApi,
    pub sign_type: SignType,
    pub spbill_create_ip: String,
    pub time_expire: Option<(String, DateTime<Utc>)>,
    pub prepay_id: String,
    pub code_url: Option<String>,
    pub mweb_url: Option<String>,
    pub mweb_package: Option<String>,
    pub created_at: DateTime<Utc>,
    pub state: TradeState,
    pub transaction_id: Option<String>,
    pub time_end: Option<String>,
    /// Who paid: the JSAPI openid, or the test user who paid a NATIVE/MWEB order.
    pub payer_openid: Option<String>,
    pub deliveries: Vec<DeliveryAttempt>,
    pub delivery_finished: bool,
}

impl Order {
    /// An unpaid order past its `time_expire` can no longer be paid; the
    /// sandbox reports it closed from then on.
    pub fn state_at(&self, now: DateTime<Utc>) -> TradeState {
        match (self.state, &self.time_expire) {
            (TradeState::NotPay, Some((_, at))) if now >= *at => TradeState::Closed,
            (state, _) => state,
        }
    }

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.state == TradeState::NotPay && self.state_at(now) == TradeState::Closed
    }

    pub(crate) fn snapshot(&self, now: DateTime<Utc>) -> OrderSnapshot {
        OrderSnapshot {
            out_trade_no: self.out_trade_no.clone(),
            appid: self.appid.clone(),
            mch_id: self.mch_id.clone(),
            body: self.body.clone(),
            attach: self.attach.clone(),
            total_fee: self.total_fee,
            trade_type: self.trade_type.clone(),
            openid: self.openid.clone(),
            product_id: self.product_id.clone(),
            notify_url: self.notify_url.clone(),
            api: self.api,
            sign_type: self.sign_type.as_str().to_owned(),
            spbill_create_ip: self.spbill_create_ip.clone(),
            time_expire: self.time_expire.as_ref().map(|(raw, _)| raw.clone()),
            state: self.state_at(now),
            prepay_id: self.prepay_id.clone(),
            code_url: self.code_url.clone(),
            mweb_url: self.mweb_url.clone(),
            transaction_id: self.transaction_id.clone(),
            time_end: self.time_end.clone(),
            payer_openid: self.payer_openid.clone(),
            created_at: self.created_at,
        }
    }
}

/// An order as the sandbox sees it, for tests and `GET /sandbox/orders/{no}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderSnapshot {
    pub out_trade_no: String,
    pub appid: String,
    pub mch_id: String,
    pub body: String,
    pub attach: Option<String>,
    pub total_fee: u64,
    pub trade_type: String,
    pub openid: Option<String>,
    pub product_id: Option<String>,
    pub notify_url: String,
    /// `v2` or `v3`: the API that placed it.
    pub api: PayApi,
    /// `MD5` or `HMAC-SHA256`: what the order was placed with, and what its
    /// notification is signed with (v2 only).
    pub sign_type: String,
    pub spbill_create_ip: String,
    /// As sent, `yyyyMMddHHmmss` Beijing time.
    pub time_expire: Option<String>,
    pub state: TradeState,
    pub prepay_id: String,
    pub code_url: Option<String>,
    pub mweb_url: Option<String>,
    pub transaction_id: Option<String>,
    pub time_end: Option<String>,
    pub payer_openid: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
}

pub(crate) fn rfc3339<S: serde::Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339())
}

#[derive(Default)]
pub(crate) struct OrderStore {
    /// Keyed by out_trade_no alone: one sandbox, so no two merchants share one.
    pub orders: HashMap<String, Order>,
}

impl OrderStore {
    pub(crate) fn by_transaction_id(&self, id: &str) -> Option<&Order> {
        self.orders
            .values()
            .find(|o| o.transaction_id.as_deref() == Some(id))
    }

    pub fn by_prepay_id(&self, id: &str) -> Option<&Order> {
        self.orders.values().find(|o| o.prepay_id == id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryAttempt {
    /// 1-based.
    pub attempt: u32,
    /// None when the delivery was simulated lost or no HTTP answer came.
    pub http_status: Option<u16>,
    /// v2: HTTP 200 with `return_code` SUCCESS; v3: any 2xx.
    pub acknowledged: bool,
}
