//! `/pay/closeorder`: an unpaid order can no longer be paid at WeChat.

use std::collections::BTreeMap;

use super::{PayApi, PayRequest};
use crate::error::PayError;

const PATH: &str = "/pay/closeorder";

#[derive(Debug, Clone)]
pub struct CloseOrderRequest {
    pub appid: String,
    pub out_trade_no: String,
}

impl PayRequest for CloseOrderRequest {
    fn fields(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("appid".to_owned(), self.appid.clone()),
            ("out_trade_no".to_owned(), self.out_trade_no.clone()),
        ])
    }
}

impl PayApi {
    /// `/pay/closeorder`; the reply carries nothing but success.
    /// ORDERPAID comes back as `PayRefused`.
    pub async fn close_order(&self, req: &CloseOrderRequest) -> Result<(), PayError> {
        match self.call_pay(PATH, req).await {
            Ok(_) => Ok(()),
            // Never reached WeChat: nothing there to close.
            Err(PayError::PayRefused { code, .. }) if code == "ORDERNOTEXIST" => Ok(()),
            Err(e) => Err(e),
        }
    }
}
