//! Everything the handlers need, built once at start.

use std::sync::Arc;

use shared::cache::Cache;
use shared::session::SessionKeys;
use shared::startup::{Infra, StartupError};
use shared::telemetry::Readiness;

use crate::config::AuthConfig;
use crate::cookies::CookiePolicy;
use crate::error::AuthError;
use crate::mp::MpLogin;
use crate::oauth::OaLogin;
use crate::rate_limit::LoginRateLimit;
use crate::users::UserStore;

/// The path WeChat sends the browser back to after authorizing.
pub const CALLBACK_PATH: &str = "/api/wechat/getOpenId";

#[derive(Clone)]
pub struct AuthState {
    pub config: Arc<AuthConfig>,
    pub users: UserStore,
    pub sessions: SessionKeys,
    pub limiter: LoginRateLimit,
    pub cookies: CookiePolicy,
    oa: Option<OaLogin>,
    mp: Option<MpLogin>,
    readiness: Readiness,
}

impl AuthState {
    /// Connects and migrates the database and connects the cache (`cache` lets
    /// `stack` and tests hand in theirs; otherwise `REDIS_URL` decides).
    pub async fn build(config: AuthConfig, cache: Option<Cache>) -> Result<Self, StartupError> {
        let infra = Infra::build(&config.common, Some(crate::migrations()), cache).await?;
        let db = infra.db.clone().expect("auth-service has a database");
        let users = UserStore::new(db);
        let callback_url = config.common.public_url(CALLBACK_PATH);
        let oa = config.official_account.clone().map(|app| {
            OaLogin::new(
                app,
                infra.wechat.clone(),
                infra.cache.clone(),
                users.clone(),
                infra.sessions.clone(),
                callback_url,
                config.common.allowed_origins.clone(),
            )
        });
        let mp = config.mini_program.clone().map(|app| {
            MpLogin::new(
                app,
                infra.wechat.clone(),
                infra.cache.clone(),
                users.clone(),
                infra.sessions.clone(),
            )
        });
        Ok(AuthState {
            limiter: LoginRateLimit::new(infra.cache.clone(), config.login_rate_limit),
            cookies: CookiePolicy::for_config(&config.common),
            readiness: infra.readiness(),
            sessions: infra.sessions,
            config: Arc::new(config),
            users,
            oa,
            mp,
        })
    }

    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Official-account login, or a clear 404 when this deployment has no official account.
    pub fn oa(&self) -> Result<&OaLogin, AuthError> {
        self.oa
            .as_ref()
            .ok_or(AuthError::NotConfigured("official-account (WX_APP_ID)"))
    }

    /// Mini-program login, or a clear 404 when this deployment has no mini program.
    pub fn mp(&self) -> Result<&MpLogin, AuthError> {
        self.mp
            .as_ref()
            .ok_or(AuthError::NotConfigured("mini-program (MP_APP_ID)"))
    }
}
