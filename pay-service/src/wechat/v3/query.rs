//! `GET /v3/pay/transactions/out-trade-no/{no}?mchid=`: what WeChat knows of
//! an order's payment, as the v2 [`TradeState`] the domain already applies.

use reqwest::Method;
use serde::Deserialize;

use super::{V3Api, parse, parse_rfc3339};
use crate::error::PayError;
use crate::wechat::{TradeState, beijing};

const LABEL: &str = "/v3/pay/transactions/out-trade-no/{no}";

#[derive(Deserialize)]
struct Amount {
    total: Option<i64>,
}

#[derive(Deserialize)]
struct Transaction {
    out_trade_no: String,
    mchid: Option<String>,
    trade_state: String,
    transaction_id: Option<String>,
    success_time: Option<String>,
    amount: Option<Amount>,
}

impl Transaction {
    /// A paid answer without `amount.total` is no answer: the amount is what
    /// settling compares with the order's, and WeChat always sends it.
    fn state(self) -> Result<TradeState, PayError> {
        Ok(match self.trade_state.as_str() {
            "SUCCESS" | "REFUND" => TradeState::Paid {
                transaction_id: self.transaction_id.unwrap_or_default(),
                total_fee: Some(self.amount.and_then(|a| a.total).ok_or_else(|| {
                    PayError::PayUnusable(format!(
                        "Pay v3 query answered {} without amount.total",
                        self.trade_state
                    ))
                })?),
                // The domain reads v2's Beijing `time_end`.
                time_end: self
                    .success_time
                    .as_deref()
                    .and_then(parse_rfc3339)
                    .map(beijing::format),
            },
            "NOTPAY" => TradeState::NotPay,
            "CLOSED" | "REVOKED" => TradeState::Closed,
            "PAYERROR" => TradeState::PayError,
            other => TradeState::Pending(other.to_owned()),
        })
    }
}

impl V3Api {
    /// The order's trade state; `NotExist` when WeChat never had it.
    pub async fn query_order(&self, out_trade_no: &str) -> Result<TradeState, PayError> {
        let path = format!(
            "/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={}",
            self.mchid()
        );
        let body = match self.call(LABEL, Method::GET, &path, None).await {
            Err(PayError::PayRefused { code, .. }) if code == "ORDER_NOT_EXIST" => {
                return Ok(TradeState::NotExist);
            }
            other => other?.1,
        };
        let t: Transaction = parse(LABEL, &body)?;
        if t.out_trade_no != out_trade_no || t.mchid.as_deref().is_some_and(|m| m != self.mchid()) {
            return Err(PayError::PayUnusable(
                "Pay v3 query answered about another order".into(),
            ));
        }
        t.state()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_map_to_v2s() {
        let t: Transaction = serde_json::from_str(
            r#"{"out_trade_no":"N","trade_state":"SUCCESS","transaction_id":"42",
                "success_time":"2024-03-02T00:30:05+08:00","amount":{"total":100}}"#,
        )
        .unwrap();
        assert_eq!(
            t.state().unwrap(),
            TradeState::Paid {
                transaction_id: "42".into(),
                total_fee: Some(100),
                time_end: Some("20240302003005".into()),
            }
        );
        let t: Transaction =
            serde_json::from_str(r#"{"out_trade_no":"N","trade_state":"USERPAYING"}"#).unwrap();
        assert_eq!(t.state().unwrap(), TradeState::Pending("USERPAYING".into()));
        let t: Transaction =
            serde_json::from_str(r#"{"out_trade_no":"N","trade_state":"CLOSED"}"#).unwrap();
        assert_eq!(t.state().unwrap(), TradeState::Closed);
    }

    #[test]
    fn a_paid_answer_without_its_amount_is_unusable() {
        for body in [
            r#"{"out_trade_no":"N","trade_state":"SUCCESS","transaction_id":"42"}"#,
            r#"{"out_trade_no":"N","trade_state":"REFUND","transaction_id":"42","amount":{}}"#,
        ] {
            let t: Transaction = serde_json::from_str(body).unwrap();
            match t.state() {
                Err(PayError::PayUnusable(m)) => assert!(m.contains("amount.total"), "{m}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
