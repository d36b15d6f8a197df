//! The refund ledger (one for both APIs).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::orders::{DeliveryAttempt, PayApi};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RefundStatus {
    #[serde(rename = "PROCESSING")]
    Processing,
    #[serde(rename = "SUCCESS")]
    Success,
    /// Closed by WeChat; the money never left.
    #[serde(rename = "REFUNDCLOSE")]
    RefundClose,
    /// The payer's account could not take it (WeChat's CHANGE).
    #[serde(rename = "CHANGE")]
    Change,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Processing => "PROCESSING",
            RefundStatus::Success => "SUCCESS",
            RefundStatus::RefundClose => "REFUNDCLOSE",
            RefundStatus::Change => "CHANGE",
        }
    }

    /// Money that is, or may still become, refunded.
    pub(crate) fn counts(self) -> bool {
        matches!(self, RefundStatus::Processing | RefundStatus::Success)
    }
}

pub(crate) struct Refund {
    pub(crate) out_refund_no: String,
    pub(crate) out_trade_no: String,
    pub(crate) transaction_id: String,
    pub(crate) appid: String,
    pub(crate) mch_id: String,
    pub(crate) refund_id: String,
    pub(crate) total_fee: u64,
    pub(crate) refund_fee: u64,
    pub(crate) refund_desc: Option<String>,
    pub(crate) status: RefundStatus,
    pub(crate) success_time: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) notify_url: String,
    /// The API of the request: its notification's format follows it.
    pub(crate) api: PayApi,
    pub(crate) deliveries: Vec<DeliveryAttempt>,
    pub(crate) delivery_finished: bool,
}

/// A refund as the sandbox sees it, for tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundSnapshot {
    pub out_refund_no: String,
    pub out_trade_no: String,
    pub transaction_id: String,
    pub refund_id: String,
    pub total_fee: u64,
    pub refund_fee: u64,
    pub refund_desc: Option<String>,
    pub status: RefundStatus,
    /// `yyyy-MM-dd HH:mm:ss` Beijing time, as WeChat writes it in refunds.
    pub success_time: Option<String>,
    #[serde(serialize_with = "crate::store::rfc3339")]
    pub created_at: DateTime<Utc>,
    pub notify_url: String,
    pub api: PayApi,
    pub deliveries: Vec<DeliveryAttempt>,
}

impl Refund {
    pub(crate) fn snapshot(&self) -> RefundSnapshot {
        RefundSnapshot {
            out_refund_no: self.out_refund_no.clone(),
            out_trade_no: self.out_trade_no.clone(),
            transaction_id: self.transaction_id.clone(),
            refund_id: self.refund_id.clone(),
            total_fee: self.total_fee,
            refund_fee: self.refund_fee,
            refund_desc: self.refund_desc.clone(),
            status: self.status,
            success_time: self.success_time.clone(),
            created_at: self.created_at,
            notify_url: self.notify_url.clone(),
            api: self.api,
            deliveries: self.deliveries.clone(),
        }
    }
}

#[derive(Default)]
pub(crate) struct RefundStore {
    /// In the order they were applied for.
    pub(crate) refunds: Vec<Refund>,
    /// New refunds stay PROCESSING while set.
    pub(crate) hold: bool,
}

impl RefundStore {
    pub(crate) fn find(&self, out_refund_no: &str, mch_id: &str) -> Option<&Refund> {
        self.refunds
            .iter()
            .find(|r| r.out_refund_no == out_refund_no && r.mch_id == mch_id)
    }
}
