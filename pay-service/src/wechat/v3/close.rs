//! `POST /v3/pay/transactions/out-trade-no/{no}/close`: an unpaid order can
//! no longer be paid at WeChat (204, no body).

use reqwest::Method;

use super::V3Api;
use crate::error::PayError;

const LABEL: &str = "/v3/pay/transactions/out-trade-no/{no}/close";

impl V3Api {
    /// Closes the order at WeChat. ORDERPAID comes back as `PayRefused`; an
    /// order WeChat never had has nothing to close.
    pub async fn close_order(&self, out_trade_no: &str) -> Result<(), PayError> {
        let path = format!("/v3/pay/transactions/out-trade-no/{out_trade_no}/close");
        let body = serde_json::json!({ "mchid": self.mchid() }).to_string();
        match self.call(LABEL, Method::POST, &path, Some(&body)).await {
            Ok(_) => Ok(()),
            Err(PayError::PayRefused { code, .. }) if code == "ORDER_NOT_EXIST" => Ok(()),
            Err(e) => Err(e),
        }
    }
}
