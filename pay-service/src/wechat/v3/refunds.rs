//! `POST /v3/refund/domestic/refunds` and `GET …/refunds/{out_refund_no}`:
//! WeChat accepts a refund, and reports one, as the v2 [`RefundState`] the
//! domain already applies. No client certificate: v3 signs instead.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::{V3Api, parse, parse_rfc3339};
use crate::error::PayError;
use crate::wechat::RefundState;

const PATH: &str = "/v3/refund/domestic/refunds";
const QUERY_LABEL: &str = "/v3/refund/domestic/refunds/{no}";

/// What the merchant asks WeChat to refund.
#[derive(Debug, Clone, Serialize)]
pub struct V3RefundRequest {
    pub out_trade_no: String,
    pub out_refund_no: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub notify_url: String,
    pub amount: V3RefundAmount,
}

#[derive(Debug, Clone, Serialize)]
pub struct V3RefundAmount {
    pub refund: i64,
    pub total: i64,
    pub currency: &'static str,
}

impl V3RefundRequest {
    pub fn new(
        out_trade_no: &str,
        out_refund_no: &str,
        refund: i64,
        total: i64,
        reason: &str,
        notify_url: String,
    ) -> Self {
        V3RefundRequest {
            out_trade_no: out_trade_no.to_owned(),
            out_refund_no: out_refund_no.to_owned(),
            reason: Some(reason.to_owned()).filter(|r| !r.is_empty()),
            notify_url,
            amount: V3RefundAmount {
                refund,
                total,
                currency: "CNY",
            },
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct V3RefundAmountAnswer {
    pub refund: i64,
}

/// WeChat's refund object (both answers).
#[derive(Debug, Deserialize)]
pub struct V3RefundQuery {
    pub refund_id: String,
    pub out_refund_no: String,
    pub status: String,
    pub success_time: Option<String>,
    pub amount: V3RefundAmountAnswer,
}

impl V3RefundQuery {
    /// v3's `SUCCESS`, `PROCESSING`, `CLOSED`, `ABNORMAL` as v2's states
    /// (ABNORMAL is v2's CHANGE: the money did not reach the payer).
    pub fn state(&self) -> Result<RefundState, String> {
        refund_state(
            &self.status,
            &self.refund_id,
            self.amount.refund,
            self.success_time.as_deref(),
        )
    }
}

/// One v3 refund status with its facts as a [`RefundState`].
pub fn refund_state(
    status: &str,
    refund_id: &str,
    refund_fee: i64,
    success_time: Option<&str>,
) -> Result<RefundState, String> {
    match status {
        "SUCCESS" => Ok(RefundState::Success {
            refund_id: refund_id.to_owned(),
            refund_fee,
            succeeded_at: success_time.and_then(parse_rfc3339),
        }),
        "PROCESSING" => Ok(RefundState::Processing {
            refund_id: refund_id.to_owned(),
        }),
        "CLOSED" | "ABNORMAL" => Ok(RefundState::Failed {
            status: status.to_owned(),
        }),
        other => Err(format!("unknown refund status {other:?}")),
    }
}

impl V3Api {
    /// Ok is WeChat's `refund_id`: it accepted the refund; the outcome comes
    /// by notification or query.
    pub async fn refund(&self, req: &V3RefundRequest) -> Result<String, PayError> {
        let body = serde_json::to_string(req)
            .map_err(|e| PayError::Internal(format!("refund body: {e}")))?;
        let (_, answer) = self.call(PATH, Method::POST, PATH, Some(&body)).await?;
        let r: V3RefundQuery = parse(PATH, &answer)?;
        if r.out_refund_no != req.out_refund_no || r.amount.refund != req.amount.refund {
            return Err(PayError::PayUnusable(
                "Pay v3 refund answered about another refund".into(),
            ));
        }
        if r.refund_id.is_empty() {
            return Err(PayError::PayUnusable(
                "Pay v3 refund answer has no refund_id".into(),
            ));
        }
        Ok(r.refund_id)
    }

    /// The refund as WeChat reports it; None when WeChat has no such refund.
    pub async fn refund_query(&self, out_refund_no: &str) -> Result<Option<RefundState>, PayError> {
        let path = format!("{PATH}/{out_refund_no}");
        let answer = match self.call(QUERY_LABEL, Method::GET, &path, None).await {
            Err(PayError::PayRefused { code, .. }) if code == "RESOURCE_NOT_EXISTS" => {
                return Ok(None);
            }
            other => other?.1,
        };
        let r: V3RefundQuery = parse(QUERY_LABEL, &answer)?;
        if r.out_refund_no != out_refund_no {
            return Err(PayError::PayUnusable(
                "Pay v3 refund query answered about another refund".into(),
            ));
        }
        r.state().map(Some).map_err(PayError::PayUnusable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_v2s() {
        assert_eq!(
            refund_state("SUCCESS", "R", 5, Some("2024-03-02T00:30:05+08:00")).unwrap(),
            RefundState::Success {
                refund_id: "R".into(),
                refund_fee: 5,
                succeeded_at: Some(1_709_310_605)
            }
        );
        assert_eq!(
            refund_state("ABNORMAL", "R", 5, None).unwrap(),
            RefundState::Failed {
                status: "ABNORMAL".into()
            }
        );
        assert!(refund_state("WHAT", "R", 5, None).is_err());
        let body =
            serde_json::to_value(V3RefundRequest::new("N", "R", 5, 10, "", "u".into())).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"out_trade_no":"N","out_refund_no":"R","notify_url":"u",
                "amount":{"refund":5,"total":10,"currency":"CNY"}})
        );
    }
}
