//! `/secapi/pay/refund` over TLS with the merchant's client certificate:
//! WeChat accepts (or refuses) a refund. Signing and reply checks are
//! [`PayApi`]'s.

use std::collections::BTreeMap;
use std::error::Error as _;

use shared::config::HttpClientConfig;
use shared::wechat::WechatError;
use tracing::Instrument;

use super::{PayApi, PayRequest};
use crate::config::RefundConfig;
use crate::error::PayError;

const REFUND_PATH: &str = "/secapi/pay/refund";

/// An HTTPS client that presents the merchant certificate.
#[derive(Clone)]
pub struct RefundClient {
    http: reqwest::Client,
    base: String,
}

impl std::fmt::Debug for RefundClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefundClient")
            .field("base", &self.base)
            .finish()
    }
}

impl RefundClient {
    /// Fails only on material `RefundConfig::from_env` has already loaded once.
    pub fn new(cfg: &RefundConfig, http: &HttpClientConfig) -> Result<Self, String> {
        let identity = reqwest::Identity::from_pem(&cfg.identity_pem)
            .map_err(|e| format!("merchant certificate: {e}"))?;
        let mut builder = shared::http_client::builder()
            .use_rustls_tls()
            .identity(identity)
            .connect_timeout(http.connect_timeout)
            .timeout(http.timeout)
            .user_agent(concat!("wxpay/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &cfg.ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(ca)
                .map_err(|e| format!("WECHATPAY_CA_PEM: {e}"))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| format!("refund TLS client: {e}"))?;
        Ok(RefundClient {
            http,
            base: cfg.base.clone(),
        })
    }

    /// [`send`](Self::send) as a `wechat` client span with its outcome.
    async fn post(&self, body: String) -> Result<String, WechatError> {
        let span = shared::traces::wechat_span(REFUND_PATH);
        let result = self.send(body).instrument(span.clone()).await;
        shared::traces::finish_client_span(&span, shared::wechat::outcome_of(&result));
        result
    }

    async fn send(&self, body: String) -> Result<String, WechatError> {
        let req = self.http.post(format!("{}{REFUND_PATH}", self.base));
        let res = shared::traces::propagate(req)
            .header("content-type", "text/xml; charset=utf-8")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                // The TLS layer's reason (unknown CA, certificate refused)
                // is what an operator needs; it names no secret.
                let mut why = e.to_string();
                let mut source = e.source();
                while let Some(s) = source {
                    why = format!("{why}: {s}");
                    source = s.source();
                }
                if e.is_timeout() {
                    WechatError::Timeout(format!("{REFUND_PATH}: {why}"))
                } else {
                    WechatError::Unreachable(format!("{REFUND_PATH}: {why}"))
                }
            })?;
        let status = res.status();
        let bytes = res
            .bytes()
            .await
            .map_err(|e| WechatError::Unreachable(format!("{REFUND_PATH}: {e}")))?;
        if !status.is_success() {
            return Err(WechatError::BadResponse(format!(
                "{REFUND_PATH}: HTTP {}",
                status.as_u16()
            )));
        }
        String::from_utf8(bytes.to_vec())
            .map_err(|_| WechatError::BadResponse("reply is not UTF-8".into()))
    }
}

/// What the merchant asks WeChat to refund.
#[derive(Debug, Clone)]
pub struct RefundRequest {
    pub appid: String,
    pub out_trade_no: String,
    pub out_refund_no: String,
    pub total_fee: i64,
    pub refund_fee: i64,
    pub reason: String,
    pub notify_url: String,
}

impl PayApi {
    /// `/secapi/pay/refund`. Ok means WeChat accepted the refund (its
    /// `refund_id`); the outcome comes by notification or refundquery.
    pub async fn refund(
        &self,
        client: &RefundClient,
        req: &RefundRequest,
    ) -> Result<RefundReply, PayError> {
        let text = client.post(self.signed_xml(req.fields())).await?;
        let reply = self.check_reply(REFUND_PATH, &text)?;
        RefundReply::from_fields(req, &reply)
    }
}

impl PayRequest for RefundRequest {
    fn fields(&self) -> BTreeMap<String, String> {
        let mut fields = BTreeMap::from([
            ("appid".to_owned(), self.appid.clone()),
            ("out_trade_no".to_owned(), self.out_trade_no.clone()),
            ("out_refund_no".to_owned(), self.out_refund_no.clone()),
            ("total_fee".to_owned(), self.total_fee.to_string()),
            ("refund_fee".to_owned(), self.refund_fee.to_string()),
            ("refund_fee_type".to_owned(), "CNY".to_owned()),
            ("notify_url".to_owned(), self.notify_url.clone()),
        ]);
        if !self.reason.is_empty() {
            fields.insert("refund_desc".into(), self.reason.clone());
        }
        fields
    }
}

/// What WeChat answered: it accepted the refund, under this `refund_id`;
/// the outcome comes by notification or refundquery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundReply {
    pub refund_id: String,
}

impl RefundReply {
    fn from_fields(
        req: &RefundRequest,
        reply: &BTreeMap<String, String>,
    ) -> Result<Self, PayError> {
        let same = reply.get("out_refund_no") == Some(&req.out_refund_no)
            && reply.get("refund_fee").map(String::as_str) == Some(&*req.refund_fee.to_string());
        if !same {
            return Err(PayError::PayUnusable(
                "Pay refund answered about another refund".into(),
            ));
        }
        reply
            .get("refund_id")
            .filter(|r| !r.is_empty())
            .cloned()
            .map(|refund_id| RefundReply { refund_id })
            .ok_or_else(|| PayError::PayUnusable("Pay refund reply has no refund_id".into()))
    }
}
