//! The WeChat Pay APIv2 client: signed XML requests, and replies trusted only
//! once their own sign verifies with the merchant key. One typed request and
//! reply per call, each in its module: `unifiedorder`, `orderquery`,
//! `closeorder`, `refund` (over TLS with the merchant certificate),
//! `refundquery`, and `req_info` (a refund notification's encrypted part).
//! Nothing here knows about orders as this service keeps them.

pub mod beijing;
pub mod bills;
mod closeorder;
mod orderquery;
mod refund;
mod refundquery;
mod req_info;
mod unifiedorder;
pub mod v3;

use std::collections::BTreeMap;

use shared::config::Secret;
use shared::sign::{SignType, constant_time_eq, pay_sign, pay_sign_pairs};
use shared::wechat::WechatClient;
use shared::xml::{map_to_xml, parse};

use crate::error::PayError;

pub use closeorder::CloseOrderRequest;
pub use orderquery::{OrderQueryRequest, TradeState};
pub use refund::{RefundClient, RefundRequest};
pub use refundquery::{RefundQueryRequest, RefundState};
pub use req_info::ReqInfo;
pub use unifiedorder::{Scene, UnifiedOrderRequest};

/// Largest reply we parse; Pay replies are well under 2 KiB.
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// A request's own fields, before mch_id, nonce_str, sign_type and sign.
trait PayRequest {
    fn fields(&self) -> BTreeMap<String, String>;
}

/// The merchant's side of WeChat Pay APIv2.
#[derive(Clone)]
pub struct PayApi {
    client: WechatClient,
    mch_id: String,
    key: Secret,
    sign_type: SignType,
}

impl std::fmt::Debug for PayApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayApi")
            .field("mch_id", &self.mch_id)
            .field("sign_type", &self.sign_type)
            .finish()
    }
}

impl PayApi {
    pub fn new(client: WechatClient, mch_id: String, key: Secret, sign_type: SignType) -> Self {
        PayApi {
            client,
            mch_id,
            key,
            sign_type,
        }
    }

    pub fn sign_type(&self) -> SignType {
        self.sign_type
    }

    /// The paySign of `wx.requestPayment` (and of anything else the key signs).
    pub fn sign_pairs<'a>(&self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
        pay_sign_pairs(pairs, self.key.expose(), self.sign_type)
    }

    /// Whether a message from WeChat (reply or notification) carries a sign
    /// made with our key. The declared `sign_type` decides; a message that
    /// declares none is checked against the configured type, then MD5 (WeChat
    /// leaves `sign_type` out of some HMAC-SHA256 messages).
    pub fn verify(&self, fields: &BTreeMap<String, String>) -> bool {
        let Some(given) = fields.get("sign") else {
            return false;
        };
        let given = given.to_ascii_uppercase();
        let candidates: Vec<SignType> = match fields.get("sign_type") {
            Some(declared) => match SignType::parse(declared) {
                Some(t) => vec![t],
                None => return false,
            },
            None => {
                let mut v = vec![self.sign_type];
                if self.sign_type != SignType::Md5 {
                    v.push(SignType::Md5);
                }
                v
            }
        };
        candidates.into_iter().any(|t| {
            constant_time_eq(
                pay_sign(fields, self.key.expose(), t).as_bytes(),
                given.as_bytes(),
            )
        })
    }

    /// Adds mch_id, nonce_str, sign_type and sign to `req`'s fields, and
    /// POSTs; returns the reply's fields once `return_code`, the sign and
    /// `result_code` all pass.
    async fn call_pay(
        &self,
        path: &str,
        req: &impl PayRequest,
    ) -> Result<BTreeMap<String, String>, PayError> {
        let text = self
            .client
            .post_xml(path, self.signed_xml(req.fields()))
            .await?;
        self.check_reply(path, &text)
    }

    /// The request body: `fields` plus mch_id, nonce_str, sign_type and sign.
    fn signed_xml(&self, mut fields: BTreeMap<String, String>) -> String {
        fields.insert("mch_id".into(), self.mch_id.clone());
        fields.insert("nonce_str".into(), shared::random::nonce());
        if self.sign_type != SignType::Md5 {
            fields.insert("sign_type".into(), self.sign_type.as_str().into());
        }
        let sign = pay_sign(&fields, self.key.expose(), self.sign_type);
        fields.insert("sign".into(), sign);
        map_to_xml(&fields)
    }

    /// The reply's fields once `return_code`, the sign, the merchant and
    /// `result_code` all pass.
    fn check_reply(&self, path: &str, text: &str) -> Result<BTreeMap<String, String>, PayError> {
        let reply = parse(text.as_bytes(), MAX_REPLY_BYTES)
            .map_err(|e| PayError::PayUnusable(format!("Pay {path} answered garbage: {e}")))?;
        if reply.get("return_code").map(String::as_str) != Some("SUCCESS") {
            let msg = reply.get("return_msg").cloned().unwrap_or_default();
            tracing::warn!(path, return_msg = %msg, "WeChat Pay refused the request");
            return Err(PayError::PayGatewayRefused(format!(
                "Pay {path} refused the request: {msg}"
            )));
        }
        if !self.verify(&reply) {
            tracing::warn!(
                path,
                "WeChat Pay reply sign does not verify; ignoring the reply"
            );
            return Err(PayError::PayUnusable(format!(
                "Pay {path} reply sign does not verify"
            )));
        }
        if reply.get("mch_id").is_some_and(|m| *m != self.mch_id) {
            return Err(PayError::PayUnusable(format!(
                "Pay {path} reply names another merchant"
            )));
        }
        if reply.get("result_code").map(String::as_str) != Some("SUCCESS") {
            return Err(PayError::PayRefused {
                code: reply.get("err_code").cloned().unwrap_or_default(),
                description: reply.get("err_code_des").cloned().unwrap_or_default(),
            });
        }
        Ok(reply)
    }
}

/// A client that never reaches WeChat, for signing in unit tests.
#[cfg(test)]
pub fn offline_api(key: &str, sign_type: SignType) -> PayApi {
    use shared::config::{HttpClientConfig, WechatBases};
    use std::time::Duration;
    let bases = WechatBases {
        api: "http://127.0.0.1:9".into(),
        open: "http://127.0.0.1:9".into(),
        pay: "http://127.0.0.1:9".into(),
    };
    let http = HttpClientConfig {
        connect_timeout: Duration::from_millis(100),
        timeout: Duration::from_millis(100),
        retries: 0,
        backoff: Duration::from_millis(1),
    };
    PayApi::new(
        WechatClient::new(bases, &http),
        "1900000109".into(),
        Secret::new(key),
        sign_type,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(sign_type: SignType) -> PayApi {
        offline_api("qazwsxedcrfvtgbyhnujmikolp111111", sign_type)
    }

    fn signed(fields: &[(&str, &str)], key: &str, t: SignType) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let s = pay_sign(&m, key, t);
        m.insert("sign".into(), s);
        m
    }

    #[test]
    fn verifies_declared_and_undeclared_sign_types() {
        let key = "qazwsxedcrfvtgbyhnujmikolp111111";
        let md5 = signed(&[("a", "1")], key, SignType::Md5);
        let hmac_declared = signed(
            &[("a", "1"), ("sign_type", "HMAC-SHA256")],
            key,
            SignType::HmacSha256,
        );
        let hmac_bare = signed(&[("a", "1")], key, SignType::HmacSha256);
        let forged = signed(&[("a", "1")], "another-key", SignType::Md5);
        let md5_api = api(SignType::Md5);
        let hmac_api = api(SignType::HmacSha256);
        assert!(md5_api.verify(&md5));
        assert!(md5_api.verify(&hmac_declared));
        assert!(!md5_api.verify(&hmac_bare));
        assert!(hmac_api.verify(&hmac_bare));
        assert!(hmac_api.verify(&md5));
        assert!(!md5_api.verify(&forged));
        assert!(!hmac_api.verify(&forged));
        let mut unsigned = md5.clone();
        unsigned.remove("sign");
        assert!(!md5_api.verify(&unsigned));
        let mut tampered = md5.clone();
        tampered.insert("a".into(), "2".into());
        assert!(!md5_api.verify(&tampered));
    }
}
