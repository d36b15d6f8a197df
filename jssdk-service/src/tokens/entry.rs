//! What the cache holds for a token or ticket.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::TokenPolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    AccessToken,
    JsapiTicket,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::AccessToken, Kind::JsapiTicket];

    /// Its place in `ALL`, for per-kind arrays.
    pub fn index(self) -> usize {
        match self {
            Kind::AccessToken => 0,
            Kind::JsapiTicket => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::AccessToken => "access_token",
            Kind::JsapiTicket => "jsapi_ticket",
        }
    }
}

/// A value with its expiry, as every replica sees it in the shared cache.
/// Times are Unix milliseconds on the service's clock.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Shared, not copied: every warm request takes the entry from the
    /// process's copy ([`super::local`]).
    pub value: Arc<str>,
    pub expires_at_ms: i64,
    /// When the call that produced it was sent.
    pub fetched_at_ms: i64,
}

// The value is a credential: never in a log line.
impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("value", &"***")
            .field("expires_at_ms", &self.expires_at_ms)
            .field("fetched_at_ms", &self.fetched_at_ms)
            .finish()
    }
}

impl Entry {
    /// Expiry counts from when the request was sent, not when the answer came:
    /// WeChat's clock started no later than that.
    pub fn from_reply(value: String, sent_at_ms: i64, expires_in_secs: i64) -> Self {
        Entry {
            value: value.into(),
            expires_at_ms: sent_at_ms.saturating_add(expires_in_secs.max(0).saturating_mul(1000)),
            fetched_at_ms: sent_at_ms,
        }
    }

    pub fn is_valid(&self, now_ms: i64) -> bool {
        now_ms < self.expires_at_ms
    }

    pub fn remaining_ms(&self, now_ms: i64) -> i64 {
        self.expires_at_ms - now_ms
    }

    /// Inside the refresh window, and not just tried: WeChat may hand out the
    /// same value until it really expires, so a renewal that brought nothing new
    /// waits `refresh_retry` before the next try instead of looping.
    pub fn renewal_due(&self, now_ms: i64, policy: &TokenPolicy) -> bool {
        self.remaining_ms(now_ms) < policy.refresh_ahead.as_millis() as i64
            && now_ms - self.fetched_at_ms >= policy.refresh_retry().as_millis() as i64
    }
}

/// Cache keys, per app so that several official accounts can share one Redis.
pub(crate) struct Keys {
    appid: String,
}

impl Keys {
    pub fn new(appid: &str) -> Self {
        Keys {
            appid: appid.to_owned(),
        }
    }

    pub fn value(&self, kind: Kind) -> String {
        format!("jssdk:{}:{}", self.appid, kind.as_str())
    }

    pub fn lock(&self, kind: Kind) -> String {
        format!("jssdk:{}:{}:lock", self.appid, kind.as_str())
    }

    pub fn failure(&self, kind: Kind) -> String {
        format!("jssdk:{}:{}:failure", self.appid, kind.as_str())
    }

    /// The channel change notices go out on.
    pub fn changes(&self) -> String {
        format!("jssdk:{}:changed", self.appid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expiry_counts_from_the_request() {
        let e = Entry::from_reply("t".into(), 1_000, 7200);
        assert_eq!(e.expires_at_ms, 7_201_000);
        assert!(e.is_valid(7_200_999));
        assert!(!e.is_valid(7_201_000));
        assert!(!format!("{e:?}").contains("\"t\""));
    }

    #[test]
    fn renewal_is_due_inside_the_window_and_not_twice_in_a_row() {
        let policy = TokenPolicy {
            refresh_ahead: Duration::from_secs(300),
            ..TokenPolicy::default()
        };
        let e = Entry::from_reply("t".into(), 0, 7200);
        assert!(!e.renewal_due(6_899_000, &policy));
        assert!(e.renewal_due(6_901_000, &policy));
        // The same value again with what is left of its life: not due again
        // until the retry interval (60 s) has passed.
        let again = Entry::from_reply("t".into(), 6_901_000, 299);
        assert!(!again.renewal_due(6_950_000, &policy));
        assert!(again.renewal_due(6_961_000, &policy));
    }

    #[test]
    fn entries_round_trip_as_json() {
        let e = Entry::from_reply("abc".into(), 5, 10);
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"value":"abc","expiresAtMs":10005,"fetchedAtMs":5}"#
        );
        assert_eq!(serde_json::from_str::<Entry>(&json).unwrap(), e);
    }
}
