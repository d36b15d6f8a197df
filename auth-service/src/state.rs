//! Everything the handlers need, built once at start: the wiring of the
//! domain's services onto the database, the cache and the WeChat client.

use std::sync::Arc;

use shared::cache::Cache;
use shared::startup::{Infra, StartupError, connect_database};
use shared::telemetry::Readiness;

use crate::config::AuthConfig;
use crate::domain::AuthError;
use crate::domain::mp::MpLogin;
use crate::domain::oauth::OaLogin;
use crate::domain::rate_limit::LoginRateLimit;
use crate::domain::sessions::Sessions;
use crate::domain::users::Users;

/// The path WeChat sends the browser back to after authorizing.
pub const CALLBACK_PATH: &str = "/api/wechat/getOpenId";

/// What auth-service's handlers share; cheap to clone.
#[derive(Clone)]
pub struct AuthState {
    pub(crate) config: Arc<AuthConfig>,
    pub(crate) users: Users,
    pub(crate) sessions: Sessions,
    pub(crate) limiter: LoginRateLimit,
    oa: Option<OaLogin>,
    mp: Option<MpLogin>,
    readiness: Readiness,
}

impl AuthState {
    /// Connects and migrates the database and connects the cache (`cache` lets
    /// `stack` and tests hand in theirs; otherwise `REDIS_URL` decides).
    pub async fn build(config: AuthConfig, cache: Option<Cache>) -> Result<Self, StartupError> {
        let db = connect_database(&config.common, crate::db::migrations()).await?;
        let infra = Infra::build(&config.common, cache).await?;
        let mut readiness = infra.readiness();
        readiness.databases.push(Arc::new(db.clone()));
        let users = Users::new(db);
        let sessions = Sessions::new(infra.sessions.clone());
        let oa = config.official_account.clone().map(|app| OaLogin {
            app,
            wechat: infra.wechat.clone(),
            cache: infra.cache.clone(),
            users: users.clone(),
            sessions: sessions.clone(),
            callback_url: config.common.public_url(CALLBACK_PATH),
            allowed_origins: config.common.allowed_origins.clone(),
        });
        let mp = config.mini_program.clone().map(|app| MpLogin {
            app,
            wechat: infra.wechat.clone(),
            cache: infra.cache.clone(),
            users: users.clone(),
            sessions: sessions.clone(),
        });
        Ok(AuthState {
            limiter: LoginRateLimit::new(infra.cache.clone(), config.login_rate_limit),
            readiness,
            config: Arc::new(config),
            users,
            sessions,
            oa,
            mp,
        })
    }

    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// How many users `appid` has with this openid: 0 or 1 (tests check that
    /// the unique key holds under concurrent first logins).
    pub async fn count_users(&self, appid: &str, openid: &str) -> Result<i64, AuthError> {
        Ok(self.users.count_by_openid(appid, openid).await?)
    }

    /// Official-account login, or a clear 404 when this deployment has no official account.
    pub(crate) fn oa(&self) -> Result<&OaLogin, AuthError> {
        self.oa
            .as_ref()
            .ok_or(AuthError::NotConfigured("official-account (WX_APP_ID)"))
    }

    /// Mini-program login, or a clear 404 when this deployment has no mini program.
    pub(crate) fn mp(&self) -> Result<&MpLogin, AuthError> {
        self.mp
            .as_ref()
            .ok_or(AuthError::NotConfigured("mini-program (MP_APP_ID)"))
    }
}
