//! A v3 notification opened: its `Wechatpay-*` headers checked (no
//! `WECHATPAY/SIGNTEST/` probe, a timestamp within 5 minutes, a signature
//! that verifies with the key its serial names), then its `resource`
//! decrypted with the APIv3 key into the typed resource of its kind. What
//! the resource means for an order is the domain's.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use shared::wechatpay_v3::{Notification, SIGNTEST_PREFIX, SignedMessage, V3Error};

use super::V3Api;

/// A notification older or newer than this is refused (API.md §4).
pub const MAX_SKEW_SECONDS: i64 = 300;

/// The four `Wechatpay-*` headers of a notification, as received (empty
/// when absent).
#[derive(Debug, Clone, Default)]
pub struct NotifyHeaders {
    pub serial: String,
    pub timestamp: String,
    pub nonce: String,
    pub signature: String,
}

/// At most this many characters of a header's text are shown (logged).
pub const SHOWN_HEADER_CHARS: usize = 64;
/// At most this many of a malformed notification's description.
const SHOWN_DETAIL_CHARS: usize = 256;

/// `text` as logged: escaped (no control characters or line breaks reach
/// the log) and cut to `max` characters, since whoever sends a notification
/// chooses its headers' text and length.
fn shown(text: &str, max: usize) -> String {
    let total = text.chars().count();
    let head: String = text.chars().take(max).collect();
    if total > max {
        format!("{head:?}… ({total} characters)")
    } else {
        format!("{head:?}")
    }
}

/// Why a notification was refused before its content was looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    #[error("header {0} is missing")]
    MissingHeader(&'static str),
    #[error("Wechatpay-Timestamp {} is more than 5 minutes from now", shown(.0, SHOWN_HEADER_CHARS))]
    Stale(String),
    #[error("a WECHATPAY/SIGNTEST/ probe")]
    SignTest,
    #[error("no key for Wechatpay-Serial {}", shown(.0, SHOWN_HEADER_CHARS))]
    UnknownSerial(String),
    #[error("signature does not verify")]
    BadSignature,
    #[error("{}", shown(.0, SHOWN_DETAIL_CHARS))]
    Malformed(String),
    #[error("resource does not decrypt: {}", shown(.0, SHOWN_DETAIL_CHARS))]
    Undecryptable(String),
}

impl NotifyError {
    /// The outcome label of the refusal.
    pub fn label(&self) -> &'static str {
        match self {
            NotifyError::MissingHeader(_) | NotifyError::BadSignature => "bad_sign",
            NotifyError::Stale(_) => "stale",
            NotifyError::SignTest => "signtest",
            NotifyError::UnknownSerial(_) => "unknown_serial",
            NotifyError::Malformed(_) => "malformed",
            NotifyError::Undecryptable(_) => "undecryptable",
        }
    }
}

/// A verified, decrypted notification.
#[derive(Debug, Clone)]
pub struct Opened<T> {
    pub id: String,
    pub event_type: String,
    pub resource: T,
}

/// `TRANSACTION.SUCCESS`'s resource (the fields the order is matched on).
#[derive(Debug, Clone, Deserialize)]
pub struct TransactionResource {
    pub appid: String,
    pub mchid: String,
    pub out_trade_no: String,
    #[serde(default)]
    pub transaction_id: String,
    pub trade_state: String,
    pub success_time: Option<String>,
    pub amount: TransactionAmount,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TransactionAmount {
    pub total: i64,
    pub currency: Option<String>,
}

/// `REFUND.SUCCESS` / `REFUND.CLOSED` / `REFUND.ABNORMAL`'s resource.
#[derive(Debug, Clone, Deserialize)]
pub struct RefundResource {
    pub mchid: String,
    pub out_trade_no: String,
    pub out_refund_no: String,
    #[serde(default)]
    pub refund_id: String,
    pub refund_status: String,
    pub success_time: Option<String>,
    pub amount: RefundAmount,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RefundAmount {
    pub refund: i64,
    pub total: i64,
}

impl V3Api {
    /// Checks, verifies and decrypts one notification received at `now`
    /// (Unix seconds).
    pub async fn open_notification<T: DeserializeOwned>(
        &self,
        headers: &NotifyHeaders,
        body: &[u8],
        now: i64,
    ) -> Result<Opened<T>, NotifyError> {
        for (name, value) in [
            ("Wechatpay-Serial", &headers.serial),
            ("Wechatpay-Timestamp", &headers.timestamp),
            ("Wechatpay-Nonce", &headers.nonce),
            ("Wechatpay-Signature", &headers.signature),
        ] {
            if value.is_empty() {
                return Err(NotifyError::MissingHeader(name));
            }
        }
        if headers.signature.starts_with(SIGNTEST_PREFIX) {
            return Err(NotifyError::SignTest);
        }
        let fresh = headers
            .timestamp
            .parse::<i64>()
            .is_ok_and(|t| (now - t).abs() <= MAX_SKEW_SECONDS);
        if !fresh {
            return Err(NotifyError::Stale(headers.timestamp.clone()));
        }
        let msg = SignedMessage {
            serial: &headers.serial,
            timestamp: &headers.timestamp,
            nonce: &headers.nonce,
            signature: &headers.signature,
            body,
        };
        self.keys().verify(self, &msg).await.map_err(|e| match e {
            V3Error::SignTest => NotifyError::SignTest,
            V3Error::UnknownSerial(s) => NotifyError::UnknownSerial(s),
            _ => NotifyError::BadSignature,
        })?;
        let n: Notification = serde_json::from_slice(body)
            .map_err(|e| NotifyError::Malformed(format!("not a v3 notification: {e}")))?;
        if n.resource_type != "encrypt-resource" {
            return Err(NotifyError::Malformed(format!(
                "resource_type {:?}",
                n.resource_type
            )));
        }
        let plain = n
            .resource
            .decrypt(self.keys().api_v3_key())
            .map_err(|e| NotifyError::Undecryptable(e.to_string()))?;
        let resource = serde_json::from_str(&plain)
            .map_err(|e| NotifyError::Malformed(format!("resource: {e}")))?;
        Ok(Opened {
            id: n.id,
            event_type: n.event_type,
            resource,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_is_shown_cut_and_escaped() {
        let long = "A".repeat(10_000);
        for e in [
            NotifyError::UnknownSerial(long.clone()),
            NotifyError::Stale(long.clone()),
        ] {
            let text = e.to_string();
            assert!(text.len() < 200, "{} bytes: {text}", text.len());
            assert!(text.contains(&"A".repeat(SHOWN_HEADER_CHARS)), "{text}");
            assert!(
                !text.contains(&"A".repeat(SHOWN_HEADER_CHARS + 1)),
                "{text}"
            );
            assert!(text.contains("10000 characters"), "{text}");
        }
        let e = NotifyError::Malformed(long).to_string();
        assert!(e.len() < 400, "{e}");
        // Multi-byte characters are cut on character boundaries.
        let e = NotifyError::UnknownSerial("微".repeat(100)).to_string();
        assert!(e.contains(&"微".repeat(SHOWN_HEADER_CHARS)), "{e}");
        // No line break or control character reaches a log line.
        let e = NotifyError::UnknownSerial("5157\nlevel=ERROR forged\u{1b}[31m".into()).to_string();
        assert!(!e.contains('\n') && !e.contains('\u{1b}'), "{e}");
        // Short values are shown whole.
        assert_eq!(
            NotifyError::UnknownSerial("ABC".into()).to_string(),
            "no key for Wechatpay-Serial \"ABC\""
        );
    }
}
