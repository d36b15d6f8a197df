//! `/pay/refundquery` (no certificate, on the Pay host like the other
//! calls): what WeChat knows of one refund. [`RefundState`] is also what a
//! refund notification's `req_info` reports.

use std::collections::BTreeMap;

use super::{PayApi, PayRequest, beijing};
use crate::error::PayError;

const PATH: &str = "/pay/refundquery";

#[derive(Debug, Clone)]
pub struct RefundQueryRequest {
    pub appid: String,
    pub out_refund_no: String,
}

impl PayRequest for RefundQueryRequest {
    fn fields(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("appid".to_owned(), self.appid.clone()),
            ("out_refund_no".to_owned(), self.out_refund_no.clone()),
        ])
    }
}

/// A refund as refundquery (or a notification) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundState {
    Success {
        refund_id: String,
        refund_fee: i64,
        succeeded_at: Option<i64>,
    },
    Processing {
        refund_id: String,
    },
    /// REFUNDCLOSE or CHANGE: the money did not go back; the reservation is released.
    Failed {
        status: String,
    },
}

impl RefundState {
    /// From `refund_status` and friends, as refundquery (suffixed `_N`) and
    /// notifications (bare) name them.
    pub fn from_fields(
        status: &str,
        refund_id: &str,
        refund_fee: Option<i64>,
        success_time: Option<&str>,
    ) -> Result<Self, String> {
        match status {
            "SUCCESS" => Ok(RefundState::Success {
                refund_id: refund_id.to_owned(),
                refund_fee: refund_fee.ok_or("refund_fee is missing or not an integer")?,
                succeeded_at: success_time.and_then(beijing::parse_refund_time),
            }),
            "PROCESSING" => Ok(RefundState::Processing {
                refund_id: refund_id.to_owned(),
            }),
            "REFUNDCLOSE" | "CHANGE" => Ok(RefundState::Failed {
                status: status.to_owned(),
            }),
            other => Err(format!("unknown refund_status {other:?}")),
        }
    }
}

impl PayApi {
    /// `/pay/refundquery` by out_refund_no; None when WeChat has no such
    /// refund (REFUNDNOTEXIST).
    pub async fn refund_query(
        &self,
        req: &RefundQueryRequest,
    ) -> Result<Option<RefundState>, PayError> {
        let out_refund_no = req.out_refund_no.as_str();
        let reply = match self.call_pay(PATH, req).await {
            Err(PayError::PayRefused { code, .. }) if code == "REFUNDNOTEXIST" => return Ok(None),
            other => other?,
        };
        let count: usize = reply
            .get("refund_count")
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let i = (0..count)
            .find(|i| {
                reply.get(&format!("out_refund_no_{i}")).map(String::as_str) == Some(out_refund_no)
            })
            .ok_or_else(|| {
                PayError::PayUnusable("Pay refundquery answered about another refund".into())
            })?;
        let get = |k: &str| reply.get(&format!("{k}_{i}")).map(String::as_str);
        RefundState::from_fields(
            get("refund_status").unwrap_or(""),
            get("refund_id").unwrap_or(""),
            get("refund_fee").and_then(|f| f.parse().ok()),
            get("refund_success_time"),
        )
        .map(Some)
        .map_err(|why| PayError::PayUnusable(format!("Pay refundquery: {why}")))
    }
}
