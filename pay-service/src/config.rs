//! pay-service's configuration, read once at start (API.md §2).

use std::time::Duration;

use shared::config::{CommonConfig, ConfigError, Env, Secret};
use shared::sign::SignType;

pub const SERVICE: &str = "pay-service";
pub const DEFAULT_PORT: u16 = 8083;

/// ¥10,000.00: well above a small shop's basket, well below anything that
/// would make a typo expensive. `MAX_ORDER_FEN` raises it.
pub const DEFAULT_MAX_ORDER_FEN: i64 = 1_000_000;

#[derive(Debug, Clone)]
pub struct PayConfig {
    pub common: CommonConfig,
    /// `MCH_ID`.
    pub mch_id: String,
    /// `MCH_KEY`, the APIv2 key.
    pub mch_key: Secret,
    /// `MP_APP_ID`: the mini program whose sessions may pay.
    pub mp_app_id: Option<String>,
    /// `WX_APP_ID`: the official account whose sessions may pay.
    pub wx_app_id: Option<String>,
    /// `PAY_SIGN_TYPE`: `MD5` (default) or `HMAC-SHA256`.
    pub sign_type: SignType,
    /// `ORDER_EXPIRE_MINUTES` (default 30): becomes unifiedorder's `time_expire`.
    pub order_expire: Duration,
    /// `MIN_ORDER_FEN` (default 1) and `MAX_ORDER_FEN` (default 1,000,000).
    pub min_order_fen: i64,
    pub max_order_fen: i64,
    /// `ORDER_DESCRIPTION`: unifiedorder's `body` when the client gives none.
    pub default_description: String,
    /// `RECONCILE_AFTER_SECONDS` (default 300): how long an order may stay NOTPAY
    /// before reconciliation asks WeChat about it (and how long between asks).
    pub reconcile_after: Duration,
    /// `RECONCILE_INTERVAL_SECONDS` (default 60): how often the worker runs;
    /// 0 turns the background worker off (tests call `reconcile_once`).
    pub reconcile_interval: Duration,
    /// `RECONCILE_BATCH` (default 50): orders one pass claims at most.
    pub reconcile_batch: i64,
}

impl PayConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_env(env, SERVICE, DEFAULT_PORT)?;
        let mch_id = env.required("MCH_ID")?;
        let mch_key = env.secret("MCH_KEY")?;
        let mp_app_id = env.get("MP_APP_ID").map(str::to_owned);
        let wx_app_id = env.get("WX_APP_ID").map(str::to_owned);
        if mp_app_id.is_none() && wx_app_id.is_none() {
            return Err(ConfigError::Missing("MP_APP_ID or WX_APP_ID".to_owned()));
        }
        let sign_type = match env.get("PAY_SIGN_TYPE") {
            None => SignType::Md5,
            Some(s) => SignType::parse(s).ok_or_else(|| {
                ConfigError::invalid("PAY_SIGN_TYPE", format!("{s:?}: use MD5 or HMAC-SHA256"))
            })?,
        };
        let expire_minutes: u64 = env.parse_or("ORDER_EXPIRE_MINUTES", 30)?;
        // WeChat refuses a time_expire under 5 minutes away.
        if !(5..=60 * 24 * 15).contains(&expire_minutes) {
            return Err(ConfigError::invalid(
                "ORDER_EXPIRE_MINUTES",
                "must be between 5 and 21600",
            ));
        }
        let min_order_fen: i64 = env.parse_or("MIN_ORDER_FEN", 1)?;
        let max_order_fen: i64 = env.parse_or("MAX_ORDER_FEN", DEFAULT_MAX_ORDER_FEN)?;
        if min_order_fen < 1 {
            return Err(ConfigError::invalid("MIN_ORDER_FEN", "must be at least 1"));
        }
        if max_order_fen < min_order_fen {
            return Err(ConfigError::invalid(
                "MAX_ORDER_FEN",
                "must not be below MIN_ORDER_FEN",
            ));
        }
        let reconcile_batch: i64 = env.parse_or("RECONCILE_BATCH", 50)?;
        if reconcile_batch < 1 {
            return Err(ConfigError::invalid(
                "RECONCILE_BATCH",
                "must be at least 1",
            ));
        }
        Ok(PayConfig {
            common,
            mch_id,
            mch_key,
            mp_app_id,
            wx_app_id,
            sign_type,
            order_expire: Duration::from_secs(expire_minutes * 60),
            min_order_fen,
            max_order_fen,
            default_description: env
                .get("ORDER_DESCRIPTION")
                .unwrap_or("wxpay order")
                .to_owned(),
            reconcile_after: Duration::from_secs(env.parse_or("RECONCILE_AFTER_SECONDS", 300)?),
            reconcile_interval: Duration::from_secs(
                env.parse_or("RECONCILE_INTERVAL_SECONDS", 60)?,
            ),
            reconcile_batch,
        })
    }

    /// Where WeChat sends payment notifications.
    pub fn notify_url(&self) -> String {
        self.common.public_url("/api/pay/notify")
    }

    /// Whether sessions of `appid` may pay here.
    pub fn is_configured_app(&self, appid: &str) -> bool {
        self.mp_app_id.as_deref() == Some(appid) || self.wx_app_id.as_deref() == Some(appid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("SESSION_SECRET", "0123456789abcdef0123456789abcdef"),
            ("MCH_ID", "1900000109"),
            ("MCH_KEY", "merchant-key-that-must-not-print"),
            ("MP_APP_ID", "wxmp"),
        ]
    }

    #[test]
    fn defaults() {
        let cfg = PayConfig::from_env(&Env::from_pairs(base())).unwrap();
        assert_eq!(cfg.common.listen_addr.to_string(), "127.0.0.1:8083");
        assert_eq!(cfg.sign_type, SignType::Md5);
        assert_eq!(cfg.order_expire, Duration::from_secs(1800));
        assert_eq!((cfg.min_order_fen, cfg.max_order_fen), (1, 1_000_000));
        assert_eq!(cfg.notify_url(), "http://127.0.0.1:8080/api/pay/notify");
        assert!(cfg.is_configured_app("wxmp"));
        assert!(!cfg.is_configured_app("wxother"));
        assert!(!format!("{cfg:?}").contains("merchant-key-that-must-not-print"));
    }

    #[test]
    fn required_and_invalid_values_are_named() {
        let without = |name: &str| {
            let pairs: Vec<_> = base().into_iter().filter(|(k, _)| *k != name).collect();
            PayConfig::from_env(&Env::from_pairs(pairs))
                .unwrap_err()
                .to_string()
        };
        assert!(without("MCH_ID").contains("MCH_ID"));
        assert!(without("MCH_KEY").contains("MCH_KEY"));
        assert!(without("MP_APP_ID").contains("MP_APP_ID or WX_APP_ID"));
        let with = |k: &'static str, v: &'static str| {
            let mut pairs = base();
            pairs.push((k, v));
            PayConfig::from_env(&Env::from_pairs(pairs))
        };
        assert!(
            with("PAY_SIGN_TYPE", "SHA1")
                .unwrap_err()
                .to_string()
                .contains("PAY_SIGN_TYPE")
        );
        assert_eq!(
            with("PAY_SIGN_TYPE", "HMAC-SHA256").unwrap().sign_type,
            SignType::HmacSha256
        );
        assert!(with("ORDER_EXPIRE_MINUTES", "1").is_err());
        assert!(
            with("MAX_ORDER_FEN", "0")
                .unwrap_err()
                .to_string()
                .contains("MAX_ORDER_FEN")
        );
        assert!(with("MIN_ORDER_FEN", "0").is_err());
    }
}
