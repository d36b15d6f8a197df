//! `/pay/orderquery`: what WeChat knows of an order's payment.

use std::collections::BTreeMap;

use super::{PayApi, PayRequest};
use crate::error::PayError;

const PATH: &str = "/pay/orderquery";

#[derive(Debug, Clone)]
pub struct OrderQueryRequest {
    pub appid: String,
    pub out_trade_no: String,
}

impl PayRequest for OrderQueryRequest {
    fn fields(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("appid".to_owned(), self.appid.clone()),
            ("out_trade_no".to_owned(), self.out_trade_no.clone()),
        ])
    }
}

/// The reply: what `/pay/orderquery` says about an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TradeState {
    /// Paid (SUCCESS, or REFUND: paid, then refunded in part or whole).
    Paid {
        transaction_id: String,
        total_fee: Option<i64>,
        time_end: Option<String>,
    },
    NotPay,
    Closed,
    PayError,
    /// USERPAYING and anything else not final yet.
    Pending(String),
    /// ORDERNOTEXIST: unifiedorder never reached WeChat.
    NotExist,
}

impl TradeState {
    fn from_fields(reply: &BTreeMap<String, String>) -> Self {
        let state = reply.get("trade_state").map(String::as_str).unwrap_or("");
        match state {
            "SUCCESS" | "REFUND" => TradeState::Paid {
                transaction_id: reply.get("transaction_id").cloned().unwrap_or_default(),
                total_fee: reply.get("total_fee").and_then(|f| f.parse().ok()),
                time_end: reply.get("time_end").cloned(),
            },
            "NOTPAY" => TradeState::NotPay,
            "CLOSED" | "REVOKED" => TradeState::Closed,
            "PAYERROR" => TradeState::PayError,
            other => TradeState::Pending(other.to_owned()),
        }
    }
}

impl PayApi {
    pub async fn order_query(&self, req: &OrderQueryRequest) -> Result<TradeState, PayError> {
        let reply = match self.call_pay(PATH, req).await {
            Err(PayError::PayRefused { code, .. }) if code == "ORDERNOTEXIST" => {
                return Ok(TradeState::NotExist);
            }
            other => other?,
        };
        if reply
            .get("out_trade_no")
            .is_some_and(|n| *n != req.out_trade_no)
        {
            return Err(PayError::PayUnusable(
                "Pay orderquery answered about another order".into(),
            ));
        }
        Ok(TradeState::from_fields(&reply))
    }
}
