//! jssdk-service configuration, read once at start.

use std::time::Duration;

use shared::config::{AppCredentials, CommonConfig, ConfigError, Env, Secret};

pub const SERVICE: &str = "jssdk-service";
pub const DEFAULT_PORT: u16 = 8082;

/// An internal token shorter than this is refused: it guards the app's
/// access_token, which can do anything the official account can.
pub const MIN_INTERNAL_TOKEN_LEN: usize = 16;

#[derive(Debug, Clone)]
pub struct JssdkConfig {
    pub common: CommonConfig,
    /// The official account that signs JS-SDK pages (`WX_APP_ID`, `WX_APP_SECRET`).
    pub app: AppCredentials,
    /// `WX_TOKEN_ENDPOINT`: `stable` (default) or `token`.
    pub token_endpoint: TokenEndpoint,
    /// `INTERNAL_TOKEN`: the Bearer token of `/internal/access-token`; the route
    /// answers 404 when unset.
    pub internal_token: Option<Secret>,
    pub policy: TokenPolicy,
}

/// How WeChat hands out the access_token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenEndpoint {
    /// `POST /cgi-bin/stable_token`: the same token until it expires, so a
    /// second fetcher cannot invalidate the first one's token.
    Stable,
    /// `GET /cgi-bin/token`: every call issues a new token and the previous one
    /// dies five minutes later.
    Token,
}

/// When tokens are refreshed and how long replicas wait for each other.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    /// `JSSDK_REFRESH_AHEAD_SECONDS` (300): the background refresher renews a
    /// value once less than this remains.
    pub refresh_ahead: Duration,
    /// `JSSDK_REFRESH_CHECK_MS` (10000): how often the refresher looks.
    pub refresh_check: Duration,
    /// `JSSDK_BACKGROUND_REFRESH` (on).
    pub background_refresh: bool,
    /// `JSSDK_LOCK_TTL_MS` (30000): the cross-replica fetch lock expires after
    /// this, should its holder die mid-fetch.
    pub lock_ttl: Duration,
    /// `JSSDK_LOCK_WAIT_MS` (10000): how long a request waits for another
    /// replica's fetch before it gives up with 504/10009.
    pub lock_wait: Duration,
    /// `JSSDK_FAILURE_COOLDOWN_MS` (2000): after a failed fetch, callers get the
    /// same error for this long instead of calling WeChat again.
    pub failure_cooldown: Duration,
    /// `JSSDK_QUOTA_COOLDOWN_SECONDS` (60): the same after errcode 45009 (daily
    /// quota reached), where calling again only burns more of nothing.
    pub quota_cooldown: Duration,
}

impl TokenPolicy {
    /// A refresh ahead that brought no new value (WeChat may hand out the same
    /// one until it expires) is tried again after this, not on every check.
    pub fn refresh_retry(&self) -> Duration {
        (self.refresh_ahead / 5).max(Duration::from_secs(1))
    }
}

impl Default for TokenPolicy {
    fn default() -> Self {
        TokenPolicy {
            refresh_ahead: Duration::from_secs(300),
            refresh_check: Duration::from_secs(10),
            background_refresh: true,
            lock_ttl: Duration::from_secs(30),
            lock_wait: Duration::from_secs(10),
            failure_cooldown: Duration::from_secs(2),
            quota_cooldown: Duration::from_secs(60),
        }
    }
}

impl JssdkConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_env(env, SERVICE, DEFAULT_PORT)?;
        let app = AppCredentials::optional(env, "WX_APP_ID", "WX_APP_SECRET")?
            .ok_or_else(|| ConfigError::Missing("WX_APP_ID".to_owned()))?;
        let token_endpoint = match env.get("WX_TOKEN_ENDPOINT") {
            None | Some("stable") => TokenEndpoint::Stable,
            Some("token") => TokenEndpoint::Token,
            Some(other) => {
                return Err(ConfigError::invalid(
                    "WX_TOKEN_ENDPOINT",
                    format!("{other:?}: use stable or token"),
                ));
            }
        };
        let internal_token = env.optional_secret("INTERNAL_TOKEN");
        if let Some(t) = &internal_token
            && t.expose().len() < MIN_INTERNAL_TOKEN_LEN
        {
            return Err(ConfigError::invalid(
                "INTERNAL_TOKEN",
                format!("must be at least {MIN_INTERNAL_TOKEN_LEN} characters"),
            ));
        }
        let defaults = TokenPolicy::default();
        let policy = TokenPolicy {
            refresh_ahead: Duration::from_secs(env.parse_or(
                "JSSDK_REFRESH_AHEAD_SECONDS",
                defaults.refresh_ahead.as_secs(),
            )?),
            refresh_check: env.millis_or(
                "JSSDK_REFRESH_CHECK_MS",
                defaults.refresh_check.as_millis() as u64,
            )?,
            background_refresh: env.bool_or("JSSDK_BACKGROUND_REFRESH", true)?,
            lock_ttl: env.millis_or("JSSDK_LOCK_TTL_MS", defaults.lock_ttl.as_millis() as u64)?,
            lock_wait: env
                .millis_or("JSSDK_LOCK_WAIT_MS", defaults.lock_wait.as_millis() as u64)?,
            failure_cooldown: env.millis_or(
                "JSSDK_FAILURE_COOLDOWN_MS",
                defaults.failure_cooldown.as_millis() as u64,
            )?,
            quota_cooldown: Duration::from_secs(env.parse_or(
                "JSSDK_QUOTA_COOLDOWN_SECONDS",
                defaults.quota_cooldown.as_secs(),
            )?),
        };
        // WeChat's values live 7200 s; renewing with less than 10 s to spare, or
        // more than an hour ahead, is a typo rather than a choice.
        if !(10..=3600).contains(&policy.refresh_ahead.as_secs()) {
            return Err(ConfigError::invalid(
                "JSSDK_REFRESH_AHEAD_SECONDS",
                "must be between 10 and 3600",
            ));
        }
        for (name, value) in [
            ("JSSDK_REFRESH_CHECK_MS", policy.refresh_check),
            ("JSSDK_LOCK_TTL_MS", policy.lock_ttl),
            ("JSSDK_LOCK_WAIT_MS", policy.lock_wait),
        ] {
            if value.is_zero() {
                return Err(ConfigError::invalid(name, "must be greater than 0"));
            }
        }
        Ok(JssdkConfig {
            common,
            app,
            token_endpoint,
            internal_token,
            policy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn env(extra: &[(&str, &str)]) -> Env {
        let mut pairs = vec![
            ("SESSION_SECRET", SECRET),
            ("WX_APP_ID", "wx1"),
            ("WX_APP_SECRET", "s3cr3t"),
        ];
        pairs.extend_from_slice(extra);
        Env::from_pairs(pairs)
    }

    #[test]
    fn defaults() {
        let cfg = JssdkConfig::from_env(&env(&[])).unwrap();
        assert_eq!(cfg.common.listen_addr.to_string(), "127.0.0.1:8082");
        assert_eq!(cfg.token_endpoint, TokenEndpoint::Stable);
        assert!(cfg.internal_token.is_none());
        assert_eq!(cfg.policy.refresh_ahead, Duration::from_secs(300));
        assert_eq!(cfg.policy.refresh_retry(), Duration::from_secs(60));
        assert!(cfg.policy.background_refresh);
        assert!(!format!("{cfg:?}").contains("s3cr3t"));
    }

    #[test]
    fn app_credentials_are_required() {
        let err =
            JssdkConfig::from_env(&Env::from_pairs([("SESSION_SECRET", SECRET)])).unwrap_err();
        assert_eq!(err, ConfigError::Missing("WX_APP_ID".into()));
        let err = JssdkConfig::from_env(&Env::from_pairs([
            ("SESSION_SECRET", SECRET),
            ("WX_APP_ID", "wx1"),
        ]))
        .unwrap_err();
        assert_eq!(err, ConfigError::Missing("WX_APP_SECRET".into()));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("WX_TOKEN_ENDPOINT", "both"),
            ("INTERNAL_TOKEN", "short"),
            ("JSSDK_REFRESH_AHEAD_SECONDS", "7200"),
            ("JSSDK_REFRESH_AHEAD_SECONDS", "x"),
            ("JSSDK_LOCK_WAIT_MS", "0"),
            ("JSSDK_BACKGROUND_REFRESH", "maybe"),
        ] {
            let err = JssdkConfig::from_env(&env(&[(name, value)])).unwrap_err();
            assert!(err.to_string().contains(name), "{name}={value}: {err}");
        }
    }

    #[test]
    fn token_endpoint_and_internal_token() {
        let cfg = JssdkConfig::from_env(&env(&[
            ("WX_TOKEN_ENDPOINT", "token"),
            ("INTERNAL_TOKEN", "0123456789abcdef"),
        ]))
        .unwrap();
        assert_eq!(cfg.token_endpoint, TokenEndpoint::Token);
        assert_eq!(
            cfg.internal_token.as_ref().map(|s| s.expose()),
            Some("0123456789abcdef")
        );
    }
}
