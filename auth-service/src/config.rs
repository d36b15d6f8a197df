//! auth-service's configuration, read once at start (API.md §2).

use shared::config::{AppCredentials, CommonConfig, ConfigError, Env};

pub const SERVICE: &str = "auth-service";
pub const DEFAULT_PORT: u16 = 8081;
/// Login requests per client IP per minute when `LOGIN_RATE_LIMIT` is unset.
pub const DEFAULT_LOGIN_RATE_LIMIT: u32 = 60;

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub common: CommonConfig,
    /// Official account (`WX_APP_ID`/`WX_APP_SECRET`): web OAuth.
    pub official_account: Option<AppCredentials>,
    /// Mini program (`MP_APP_ID`/`MP_APP_SECRET`): `wx.login` sessions.
    pub mini_program: Option<AppCredentials>,
    /// Requests per client IP per minute on the login routes; 0 turns the limit off.
    pub login_rate_limit: u32,
}

impl AuthConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_env(env, SERVICE, DEFAULT_PORT)?;
        let official_account = AppCredentials::optional(env, "WX_APP_ID", "WX_APP_SECRET")?;
        let mini_program = AppCredentials::optional(env, "MP_APP_ID", "MP_APP_SECRET")?;
        if official_account.is_none() && mini_program.is_none() {
            // Without an app there is nobody to log in: name the usual one.
            return Err(ConfigError::Missing(
                "WX_APP_ID (with WX_APP_SECRET; or MP_APP_ID with MP_APP_SECRET)".to_owned(),
            ));
        }
        Ok(AuthConfig {
            common,
            official_account,
            mini_program,
            login_rate_limit: env.parse_or("LOGIN_RATE_LIMIT", DEFAULT_LOGIN_RATE_LIMIT)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn an_app_is_required_and_named() {
        let env = Env::from_pairs([("SESSION_SECRET", SECRET)]);
        let err = AuthConfig::from_env(&env).unwrap_err().to_string();
        assert!(
            err.starts_with("missing required environment variable WX_APP_ID"),
            "{err}"
        );
    }

    #[test]
    fn either_app_alone_is_enough() {
        let env = Env::from_pairs([
            ("SESSION_SECRET", SECRET),
            ("MP_APP_ID", "wxmp"),
            ("MP_APP_SECRET", "s"),
        ]);
        let cfg = AuthConfig::from_env(&env).unwrap();
        assert!(cfg.official_account.is_none());
        assert_eq!(cfg.mini_program.unwrap().app_id, "wxmp");
        assert_eq!(cfg.login_rate_limit, DEFAULT_LOGIN_RATE_LIMIT);
        assert_eq!(cfg.common.listen_addr.to_string(), "127.0.0.1:8081");
        assert_eq!(cfg.common.database_url.expose(), "sqlite://data/auth.db");
    }

    #[test]
    fn half_an_app_and_bad_limits_are_refused() {
        let env = Env::from_pairs([("SESSION_SECRET", SECRET), ("WX_APP_ID", "wxoa")]);
        assert_eq!(
            AuthConfig::from_env(&env).unwrap_err(),
            ConfigError::Missing("WX_APP_SECRET".into())
        );
        let env = Env::from_pairs([
            ("SESSION_SECRET", SECRET),
            ("WX_APP_ID", "wxoa"),
            ("WX_APP_SECRET", "s"),
            ("LOGIN_RATE_LIMIT", "lots"),
        ]);
        assert!(
            AuthConfig::from_env(&env)
                .unwrap_err()
                .to_string()
                .contains("LOGIN_RATE_LIMIT")
        );
    }
}
