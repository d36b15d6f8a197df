//! v3 notifications: WeChat's JSON envelope around an AES-256-GCM
//! `resource`, signed like answers (a fresh signature per attempt, since the
//! merchant refuses stale timestamps).

use shared::wechatpay_v3::{
    ApiV3Key, EncryptedResource, HEADER_NONCE, HEADER_SERIAL, HEADER_SIGNATURE, HEADER_TIMESTAMP,
    Notification, PrivateKey, SIGNTEST_PREFIX, response_message,
};

use super::wire::rfc3339_beijing;
use crate::ids;
use crate::state::SandboxState;

/// The four `Wechatpay-*` headers of a signed answer or notification.
#[derive(Debug, Clone)]
pub(crate) struct SignedHeaders {
    pub serial: String,
    pub timestamp: String,
    pub nonce: String,
    pub signature: String,
}

impl SignedHeaders {
    /// Signs `TIMESTAMP\nNONCE\nBODY\n` now (real time, as the merchant's
    /// freshness check uses its own clock).
    pub fn sign(serial: &str, key: &PrivateKey, body: &[u8]) -> Self {
        Self::sign_at(serial, key, body, chrono::Utc::now().timestamp())
    }

    /// Signs with a given timestamp (tests of the merchant's window).
    pub fn sign_at(serial: &str, key: &PrivateKey, body: &[u8], timestamp: i64) -> Self {
        let timestamp = timestamp.to_string();
        let nonce = ids::alnum(32);
        let signature = key.sign(&response_message(&timestamp, &nonce, body));
        SignedHeaders {
            serial: serial.to_owned(),
            timestamp,
            nonce,
            signature,
        }
    }

    /// What WeChat's signature probes carry: a signature that is not one.
    pub fn probe(mut self) -> Self {
        self.signature = format!("{SIGNTEST_PREFIX}{}", self.signature);
        self
    }

    pub fn pairs(&self) -> [(&'static str, &str); 4] {
        [
            (HEADER_SERIAL, &self.serial),
            (HEADER_TIMESTAMP, &self.timestamp),
            (HEADER_NONCE, &self.nonce),
            (HEADER_SIGNATURE, &self.signature),
        ]
    }
}

/// An event to notify: what it is and its decrypted resource.
pub(crate) struct V3Event<'a> {
    pub event_type: &'a str,
    /// `transaction` or `refund`: `original_type` and the associated data.
    pub original_type: &'a str,
    pub summary: &'a str,
    pub resource: serde_json::Value,
}

impl SandboxState {
    /// The four `Wechatpay-*` headers the sandbox would send with `body`
    /// now (per the sign mode), for tests that forge or replay v3
    /// notifications.
    pub fn v3_sign(&self, body: &[u8]) -> Vec<(&'static str, String)> {
        self.v3_sign_at(body, chrono::Utc::now().timestamp())
    }

    /// As [`Self::v3_sign`], with `Wechatpay-Timestamp` = `timestamp`.
    pub fn v3_sign_at(&self, body: &[u8], timestamp: i64) -> Vec<(&'static str, String)> {
        let (serial, key) = self.v3.signer();
        SignedHeaders::sign_at(serial, key, body, timestamp)
            .pairs()
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect()
    }

    /// The decrypted resource a `TRANSACTION.SUCCESS` notification of the
    /// order carries (WeChat's transaction object), for tests.
    pub fn v3_transaction_resource(&self, out_trade_no: &str) -> Option<serde_json::Value> {
        let now = self.now();
        crate::clock::lock(&self.orders)
            .orders
            .get(out_trade_no)
            .map(|o| super::transaction_json(o, now))
    }

    /// The notification body for `event`, its resource encrypted with the
    /// merchant's APIv3 key.
    pub(crate) fn v3_notification(&self, mch_id: &str, event: V3Event<'_>) -> String {
        let key = self
            .merchant(mch_id)
            .and_then(|m| ApiV3Key::new(&m.api_v3_key).ok());
        let plain = event.resource.to_string();
        let resource = key.and_then(|key| {
            EncryptedResource::seal(
                &key,
                &ids::alnum(12),
                event.original_type,
                Some(event.original_type),
                plain.as_bytes(),
            )
            .ok()
        });
        let Some(resource) = resource else {
            tracing::warn!(
                mch_id,
                "no valid APIv3 key: the notification cannot be encrypted"
            );
            return String::new();
        };
        let notification = Notification {
            id: uuid_like(),
            create_time: rfc3339_beijing(self.now()),
            event_type: event.event_type.to_owned(),
            resource_type: "encrypt-resource".to_owned(),
            resource,
            summary: event.summary.to_owned(),
        };
        serde_json::to_string(&notification).unwrap_or_default()
    }
}

/// WeChat's notification ids look like UUIDs.
fn uuid_like() -> String {
    let h = ids::lower_hex(32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}
