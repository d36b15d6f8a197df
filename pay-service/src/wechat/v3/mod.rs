//! The WeChat Pay APIv3 client: JSON requests signed with the merchant's key
//! (`Authorization: WECHATPAY2-SHA256-RSA2048 …`), answers trusted only once
//! their `Wechatpay-Signature` verifies with the WeChat Pay public key or the
//! platform certificate `Wechatpay-Serial` names ([`keys::Keys`]). One typed
//! request and reply per call, each in its module: `transactions` (JSAPI,
//! H5, Native), `query`, `close`, `refunds` (create and query),
//! `notification` (a v3 notification verified and decrypted) and `keys`
//! (the public key, downloaded platform certificates).
//!
//! WeChat's errors (`{code, message}` with an HTTP status) become
//! `PayError::PayRefused` with WeChat's code; 5xx, `SYSTEM_ERROR`, timeouts
//! and unreachable hosts are retried like v2 calls (`WECHAT_RETRIES`, with
//! backoff), then reported as no answer (10009). An answer whose signature
//! does not verify is no answer either.

mod bills;
mod close;
pub mod keys;
pub mod notification;
mod query;
pub mod refunds;
mod transactions;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::de::DeserializeOwned;
use shared::cache::Cache;
use shared::config::HttpClientConfig;
use shared::telemetry::WECHAT_CALLS;
use shared::wechat::WechatError;
use shared::wechatpay_v3::{
    ErrorBody, HEADER_NONCE, HEADER_SERIAL, HEADER_SIGNATURE, HEADER_TIMESTAMP, MerchantSigner,
    SignedMessage,
};
use tracing::Instrument;

use crate::config::V3Config;
use crate::error::PayError;

pub use keys::Keys;
pub use notification::{NotifyHeaders, RefundResource, TransactionResource};
pub use refunds::V3RefundRequest;
pub use transactions::{V3Prepay, V3Scene};

/// Largest answer read; v3 answers are a few KiB.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// WeChat's code for "try again"; also what 5xx answers carry.
const SYSTEM_ERROR: &str = "SYSTEM_ERROR";

/// The merchant's side of WeChat Pay APIv3.
#[derive(Clone)]
pub struct V3Api {
    http: reqwest::Client,
    base: String,
    signer: MerchantSigner,
    keys: Arc<Keys>,
    retries: u32,
    backoff: Duration,
}

impl std::fmt::Debug for V3Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V3Api")
            .field("base", &self.base)
            .field("mchid", &self.signer.mchid())
            .field("serial_no", &self.signer.serial_no())
            .finish()
    }
}

/// A signed answer as received: status, the four `Wechatpay-*` headers and
/// the body, not yet verified.
pub(crate) struct RawAnswer {
    pub status: u16,
    pub serial: String,
    pub timestamp: String,
    pub nonce: String,
    pub signature: String,
    pub body: Vec<u8>,
}

impl RawAnswer {
    pub fn message(&self) -> SignedMessage<'_> {
        SignedMessage {
            serial: &self.serial,
            timestamp: &self.timestamp,
            nonce: &self.nonce,
            signature: &self.signature,
            body: &self.body,
        }
    }
}

impl V3Api {
    /// Fails only on material `V3Config::from_env` has already checked.
    pub fn new(
        mchid: &str,
        cfg: &V3Config,
        base: &str,
        http_cfg: &HttpClientConfig,
        cache: Cache,
    ) -> Result<Self, String> {
        let signer = MerchantSigner::from_pem(mchid, &cfg.serial_no, cfg.private_key_pem.expose())
            .map_err(|e| format!("MCH_KEY_PEM: {e}"))?;
        let http = shared::http_client::builder()
            .connect_timeout(http_cfg.connect_timeout)
            .timeout(http_cfg.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wxpay/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("APIv3 HTTP client: {e}"))?;
        Ok(V3Api {
            http,
            base: base.trim_end_matches('/').to_owned(),
            keys: Arc::new(Keys::new(cfg, cache)?),
            signer,
            retries: http_cfg.retries,
            backoff: http_cfg.backoff,
        })
    }

    pub fn mchid(&self) -> &str {
        self.signer.mchid()
    }

    /// Signs JSAPI pay parameters (`signType: "RSA"`).
    pub fn signer(&self) -> &MerchantSigner {
        &self.signer
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// One signed request, sent once: the answer unverified, or the network's
    /// error.
    pub(crate) async fn send_once(
        &self,
        method: &Method,
        path_and_query: &str,
        body: Option<&str>,
    ) -> Result<RawAnswer, WechatError> {
        let auth = self
            .signer
            .authorization(method.as_str(), path_and_query, body.unwrap_or(""));
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path_and_query}", self.base))
            .header("Authorization", auth)
            .header("Accept", "application/json");
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_owned());
        }
        let res = shared::traces::propagate(req)
            .send()
            .await
            .map_err(network_error)?;
        let status = res.status().as_u16();
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let (serial, timestamp, nonce, signature) = (
            header(HEADER_SERIAL),
            header(HEADER_TIMESTAMP),
            header(HEADER_NONCE),
            header(HEADER_SIGNATURE),
        );
        if res
            .content_length()
            .is_some_and(|n| n as usize > MAX_ANSWER_BYTES)
        {
            return Err(WechatError::BadResponse("answer too large".into()));
        }
        let bytes = res.bytes().await.map_err(network_error)?;
        if bytes.len() > MAX_ANSWER_BYTES {
            return Err(WechatError::BadResponse("answer too large".into()));
        }
        Ok(RawAnswer {
            status,
            serial,
            timestamp,
            nonce,
            signature,
            body: bytes.to_vec(),
        })
    }

    /// A call whose answer verified: `Ok((status, body))` for 2xx, WeChat's
    /// refusal as `PayRefused`, retried on 5xx / `SYSTEM_ERROR` / network
    /// errors. `label` names the endpoint in metrics and logs (no order
    /// numbers in it).
    pub(crate) async fn call(
        &self,
        label: &'static str,
        method: Method,
        path_and_query: &str,
        body: Option<&str>,
    ) -> Result<(u16, Vec<u8>), PayError> {
        let mut tries = 0;
        loop {
            let started = Instant::now();
            let span = shared::traces::wechat_span(label);
            let result = self
                .attempt(label, &method, path_and_query, body)
                .instrument(span.clone())
                .await;
            let outcome = match &result {
                Ok(_) => "ok",
                Err(Failure::Retry(_)) => "retryable",
                Err(Failure::Final(PayError::PayRefused { .. })) => "errcode",
                Err(Failure::Final(_)) => "bad_response",
            };
            shared::traces::finish_client_span(&span, outcome);
            WECHAT_CALLS
                .with_label_values(&[label, outcome])
                .observe(started.elapsed().as_secs_f64());
            match result {
                Ok(answer) => return Ok(answer),
                Err(Failure::Retry(e)) if tries < self.retries => {
                    tries += 1;
                    tracing::warn!(call = label, error = %e, attempt = tries, "WeChat Pay v3 call failed, retrying");
                    tokio::time::sleep(self.backoff * 2u32.pow(tries - 1)).await;
                }
                Err(Failure::Retry(e)) => {
                    tracing::warn!(call = label, error = %e, "WeChat Pay v3 call failed");
                    return Err(PayError::Wechat(e));
                }
                Err(Failure::Final(e)) => {
                    tracing::warn!(call = label, error = %e, "WeChat Pay v3 call refused or unusable");
                    return Err(e);
                }
            }
        }
    }

    async fn attempt(
        &self,
        label: &'static str,
        method: &Method,
        path_and_query: &str,
        body: Option<&str>,
    ) -> Result<(u16, Vec<u8>), Failure> {
        let answer = self
            .send_once(method, path_and_query, body)
            .await
            .map_err(|e| match e {
                WechatError::Timeout(_) | WechatError::Unreachable(_) => Failure::Retry(e),
                other => Failure::Final(PayError::Wechat(other)),
            })?;
        if answer.status >= 500 {
            // Busy front ends answer 5xx, signed or not: worth another try.
            return Err(Failure::Retry(WechatError::Unreachable(format!(
                "{label}: HTTP {}",
                answer.status
            ))));
        }
        if let Err(e) = self.keys.verify(self, &answer.message()).await {
            return Err(Failure::Final(PayError::PayUnusable(format!(
                "Pay {label} answer does not verify ({e}); treated as no answer"
            ))));
        }
        if (200..300).contains(&answer.status) {
            return Ok((answer.status, answer.body));
        }
        match serde_json::from_slice::<ErrorBody>(&answer.body) {
            Ok(e) if e.code == SYSTEM_ERROR => Err(Failure::Retry(WechatError::Unreachable(
                format!("{label}: {SYSTEM_ERROR} {}", e.message),
            ))),
            Ok(e) => Err(Failure::Final(PayError::PayRefused {
                code: e.code,
                description: e.message,
            })),
            Err(_) => Err(Failure::Final(PayError::PayUnusable(format!(
                "Pay {label} answered HTTP {} without WeChat's error body",
                answer.status
            )))),
        }
    }
}

/// Why one attempt failed: worth retrying, or final.
enum Failure {
    Retry(WechatError),
    Final(PayError),
}

fn network_error(e: reqwest::Error) -> WechatError {
    let e = e.without_url();
    if e.is_timeout() {
        WechatError::Timeout(e.to_string())
    } else {
        WechatError::Unreachable(e.to_string())
    }
}

/// A 2xx answer's JSON as `T`, or no answer (10009).
fn parse<T: DeserializeOwned>(label: &str, body: &[u8]) -> Result<T, PayError> {
    serde_json::from_slice(body)
        .map_err(|e| PayError::PayUnusable(format!("Pay {label} answered unexpected JSON: {e}")))
}

/// Evaluated at compile time, as in `beijing.rs`.
const BEIJING: chrono::FixedOffset = match chrono::FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+8 is a valid offset"),
};

/// Unix seconds → WeChat's RFC 3339 Beijing time (`2018-06-08T10:34:56+08:00`).
pub fn rfc3339_beijing(unix: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(unix, 0)
        .unwrap_or_default()
        .with_timezone(&BEIJING)
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// WeChat's RFC 3339 time → Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_beijing_rfc3339() {
        assert_eq!(rfc3339_beijing(1_709_310_605), "2024-03-02T00:30:05+08:00");
        assert_eq!(
            parse_rfc3339("2024-03-02T00:30:05+08:00"),
            Some(1_709_310_605)
        );
        assert_eq!(parse_rfc3339("20240302003005"), None);
    }
}
