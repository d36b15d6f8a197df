//! The HTTP client for WeChat: rustls, connect and total timeouts, bounded retries
//! with backoff on network errors and errcode -1 ("system busy"), errcode ≠ 0 as a
//! typed error, and secrets (appsecret, tokens, codes) never in a log line.

use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::config::{HttpClientConfig, WechatBases};
use crate::error::ApiError;
use crate::telemetry::WECHAT_CALLS;
use tracing::Instrument;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum WechatError {
    /// WeChat answered with an error code of its own.
    #[error("WeChat error {errcode}: {errmsg}")]
    Api { errcode: i64, errmsg: String },
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("answered garbage: {0}")]
    BadResponse(String),
}

/// How a call to WeChat ended, as the metrics' `outcome` label and the
/// `wechat` span's outcome say it: `ok`, `errcode`, `timeout`,
/// `unreachable` or `bad_response`.
pub fn outcome_of<T>(result: &Result<T, WechatError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(WechatError::Api { .. }) => "errcode",
        Err(WechatError::Timeout(_)) => "timeout",
        Err(WechatError::Unreachable(_)) => "unreachable",
        Err(WechatError::BadResponse(_)) => "bad_response",
    }
}

impl WechatError {
    pub fn errcode(&self) -> Option<i64> {
        match self {
            WechatError::Api { errcode, .. } => Some(*errcode),
            _ => None,
        }
    }
}

impl From<WechatError> for ApiError {
    fn from(e: WechatError) -> Self {
        match e {
            WechatError::Api { errcode, errmsg } => ApiError::Wechat { errcode, errmsg },
            WechatError::Timeout(m) => ApiError::Upstream {
                timed_out: true,
                what: format!("timed out: {m}"),
            },
            WechatError::Unreachable(m) => ApiError::Upstream {
                timed_out: false,
                what: format!("unreachable: {m}"),
            },
            WechatError::BadResponse(m) => ApiError::Upstream {
                timed_out: false,
                what: format!("answered garbage: {m}"),
            },
        }
    }
}

/// Query parameters whose values must never be logged.
const SENSITIVE: &[&str] = &[
    "secret",
    "appsecret",
    "access_token",
    "code",
    "js_code",
    "refresh_token",
    "ticket",
];

/// Largest WeChat reply we read; their JSON and XML replies are a few KiB.
const MAX_REPLY_BYTES: usize = 256 * 1024;

#[derive(Clone)]
pub struct WechatClient {
    http: reqwest::Client,
    bases: WechatBases,
    retries: u32,
    backoff: Duration,
}

impl std::fmt::Debug for WechatClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatClient")
            .field("bases", &self.bases)
            .finish()
    }
}

/// Which of WeChat's hosts a call goes to.
#[derive(Debug, Clone, Copy)]
pub enum Host {
    Api,
    Pay,
}

impl WechatClient {
    pub fn new(bases: WechatBases, cfg: &HttpClientConfig) -> Self {
        #[allow(
            clippy::expect_used,
            reason = "the builder fails only when the compiled-in rustls backend cannot \
                      initialise, once at startup, where nothing else could run either"
        )]
        let http = crate::http_client::builder()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("wxpay/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("TLS backend initialises");
        WechatClient {
            http,
            bases,
            retries: cfg.retries,
            backoff: cfg.backoff,
        }
    }

    pub fn bases(&self) -> &WechatBases {
        &self.bases
    }

    fn url(&self, host: Host, path: &str) -> String {
        let base = match host {
            Host::Api => &self.bases.api,
            Host::Pay => &self.bases.pay,
        };
        format!("{base}{path}")
    }

    /// GET a JSON endpoint of the API host.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, WechatError> {
        let url = self.url(Host::Api, path);
        self.json_call(path, query, || self.http.get(&url).query(query))
            .await
    }

    /// POST JSON to the API host.
    pub async fn post_json<T, B>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: &B,
    ) -> Result<T, WechatError>
    where
        T: DeserializeOwned,
        B: serde::Serialize + ?Sized,
    {
        let url = self.url(Host::Api, path);
        self.json_call(path, query, || self.http.post(&url).query(query).json(body))
            .await
    }

    async fn json_call<T, F>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        make: F,
    ) -> Result<T, WechatError>
    where
        T: DeserializeOwned,
        F: Fn() -> reqwest::RequestBuilder,
    {
        let shown = redacted(path, query);
        let value: serde_json::Value = self
            .with_retries(path, &shown, || async {
                let bytes = send(make()).await?;
                let value: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|e| WechatError::BadResponse(format!("not JSON: {e}")))?;
                match value.get("errcode").and_then(|c| c.as_i64()) {
                    Some(errcode) if errcode != 0 => Err(WechatError::Api {
                        errcode,
                        errmsg: value
                            .get("errmsg")
                            .and_then(|m| m.as_str())
                            .unwrap_or("")
                            .to_owned(),
                    }),
                    _ => Ok(value),
                }
            })
            .await?;
        serde_json::from_value(value)
            .map_err(|e| WechatError::BadResponse(format!("unexpected JSON: {e}")))
    }

    /// POST an XML body to the Pay host and return the reply's text.
    pub async fn post_xml(&self, path: &str, body: String) -> Result<String, WechatError> {
        let url = self.url(Host::Pay, path);
        let bytes = self
            .with_retries(path, path, || async {
                send(
                    self.http
                        .post(&url)
                        .header("content-type", "text/xml; charset=utf-8")
                        .body(body.clone()),
                )
                .await
            })
            .await?;
        String::from_utf8(bytes).map_err(|_| WechatError::BadResponse("reply is not UTF-8".into()))
    }

    async fn with_retries<T, F, Fut>(
        &self,
        path: &str,
        shown: &str,
        attempt: F,
    ) -> Result<T, WechatError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, WechatError>>,
    {
        let mut tries = 0;
        loop {
            let started = Instant::now();
            let span = crate::traces::wechat_span(path);
            let result = attempt().instrument(span.clone()).await;
            let outcome = outcome_of(&result);
            crate::traces::finish_client_span(&span, outcome);
            WECHAT_CALLS
                .with_label_values(&[path, outcome])
                .observe(started.elapsed().as_secs_f64());
            let retryable = matches!(
                &result,
                Err(WechatError::Timeout(_) | WechatError::Unreachable(_))
                    | Err(WechatError::Api { errcode: -1, .. })
            );
            match result {
                Err(e) if retryable && tries < self.retries => {
                    tries += 1;
                    let wait = self.backoff * 2u32.pow(tries - 1);
                    tracing::warn!(call = %shown, error = %e, attempt = tries, "WeChat call failed, retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    tracing::warn!(call = %shown, error = %e, "WeChat call failed");
                    return Err(e);
                }
                Ok(v) => {
                    tracing::debug!(call = %shown, elapsed_ms = started.elapsed().as_millis() as u64, "WeChat call");
                    return Ok(v);
                }
            }
        }
    }
}

async fn send(req: reqwest::RequestBuilder) -> Result<Vec<u8>, WechatError> {
    let resp = crate::traces::propagate(req)
        .send()
        .await
        .map_err(network_error)?;
    let status = resp.status();
    if status.is_server_error() {
        // WeChat's front ends answer 5xx when busy: worth another try.
        return Err(WechatError::Unreachable(format!("HTTP {status}")));
    }
    if !status.is_success() {
        return Err(WechatError::BadResponse(format!("HTTP {status}")));
    }
    if resp
        .content_length()
        .is_some_and(|n| n as usize > MAX_REPLY_BYTES)
    {
        return Err(WechatError::BadResponse("reply too large".into()));
    }
    let bytes = resp.bytes().await.map_err(network_error)?;
    if bytes.len() > MAX_REPLY_BYTES {
        return Err(WechatError::BadResponse("reply too large".into()));
    }
    Ok(bytes.to_vec())
}

fn network_error(e: reqwest::Error) -> WechatError {
    // reqwest errors may carry the URL, and with it the query's secrets.
    let e = e.without_url();
    if e.is_timeout() {
        WechatError::Timeout(e.to_string())
    } else {
        WechatError::Unreachable(e.to_string())
    }
}

/// `path?k=v&secret=***`: what a log line may show of a call.
pub fn redacted(path: &str, query: &[(&str, &str)]) -> String {
    if query.is_empty() {
        return path.to_owned();
    }
    let parts: Vec<String> = query
        .iter()
        .map(|(k, v)| {
            if SENSITIVE.contains(k) {
                format!("{k}=***")
            } else {
                format!("{k}={v}")
            }
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let s = redacted(
            "/cgi-bin/token",
            &[
                ("grant_type", "client_credential"),
                ("appid", "wx1"),
                ("secret", "S3CR3T"),
            ],
        );
        assert_eq!(
            s,
            "/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=***"
        );
        let s = redacted(
            "/sns/jscode2session",
            &[("js_code", "c0de"), ("secret", "x")],
        );
        assert!(!s.contains("c0de"));
    }

    #[test]
    fn errors_map_to_the_envelope() {
        let e: ApiError = WechatError::Api {
            errcode: 40029,
            errmsg: "invalid code".into(),
        }
        .into();
        assert_eq!(e.code(), 40029);
        let e: ApiError = WechatError::Timeout("x".into()).into();
        assert_eq!(e.code(), 10009);
    }
}
