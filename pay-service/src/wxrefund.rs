//! WeChat Pay APIv2 refund calls: `/secapi/pay/refund` over TLS with the
//! merchant's client certificate, and `/pay/refundquery` (no certificate, on
//! the Pay host like the other calls). Signing and reply checks are
//! [`PayApi`]'s.

use std::collections::BTreeMap;
use std::error::Error as _;

use shared::config::HttpClientConfig;
use shared::wechat::WechatError;

use crate::beijing;
use crate::config::RefundConfig;
use crate::error::PayError;
use crate::wxpay::PayApi;

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
        let mut builder = reqwest::Client::builder()
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

    async fn post(&self, body: String) -> Result<String, WechatError> {
        let res = self
            .http
            .post(format!("{}{REFUND_PATH}", self.base))
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
    /// `/secapi/pay/refund`. Ok means WeChat accepted the refund (its
    /// `refund_id`); the outcome comes by notification or refundquery.
    pub async fn refund(
        &self,
        client: &RefundClient,
        req: &RefundRequest,
    ) -> Result<String, PayError> {
        let mut fields = BTreeMap::from([
            ("appid".to_owned(), req.appid.clone()),
            ("out_trade_no".to_owned(), req.out_trade_no.clone()),
            ("out_refund_no".to_owned(), req.out_refund_no.clone()),
            ("total_fee".to_owned(), req.total_fee.to_string()),
            ("refund_fee".to_owned(), req.refund_fee.to_string()),
            ("refund_fee_type".to_owned(), "CNY".to_owned()),
            ("notify_url".to_owned(), req.notify_url.clone()),
        ]);
        if !req.reason.is_empty() {
            fields.insert("refund_desc".into(), req.reason.clone());
        }
        let text = client.post(self.signed_xml(fields)).await?;
        let reply = self.check_reply(REFUND_PATH, &text)?;
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
            .ok_or_else(|| PayError::PayUnusable("Pay refund reply has no refund_id".into()))
    }

    /// `/pay/refundquery` by out_refund_no; None when WeChat has no such
    /// refund (REFUNDNOTEXIST).
    pub async fn refund_query(
        &self,
        appid: &str,
        out_refund_no: &str,
    ) -> Result<Option<RefundState>, PayError> {
        let fields = BTreeMap::from([
            ("appid".to_owned(), appid.to_owned()),
            ("out_refund_no".to_owned(), out_refund_no.to_owned()),
        ]);
        let reply = match self.call_pay("/pay/refundquery", fields).await {
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
