//! Mini-program login: `wx.login` codes exchanged at jscode2session, profiles
//! the mini program sends, and decryption of its open data. The session_key
//! stays in the cache, keyed by user, for as long as the session lives; it is
//! never returned and never logged.

use serde::Deserialize;
use serde_json::Value;
use shared::cache::Cache;
use shared::config::AppCredentials;
use shared::session::{Claims, SessionKeys, SessionKind};
use shared::wechat::WechatClient;

use crate::error::AuthError;
use crate::profile;
use crate::users::{Profile, User, UserStore};

/// jscode2session's reply. Deliberately not `Debug`: it holds the session_key.
#[derive(Deserialize)]
struct CodeSession {
    openid: String,
    session_key: String,
    unionid: Option<String>,
}

/// A logged-in mini-program user and their token.
pub struct MpSession {
    pub user: User,
    pub token: String,
    pub claims: Claims,
}

#[derive(Clone, Debug)]
pub struct MpLogin {
    app: AppCredentials,
    wechat: WechatClient,
    cache: Cache,
    users: UserStore,
    sessions: SessionKeys,
}

impl MpLogin {
    pub fn new(
        app: AppCredentials,
        wechat: WechatClient,
        cache: Cache,
        users: UserStore,
        sessions: SessionKeys,
    ) -> Self {
        MpLogin {
            app,
            wechat,
            cache,
            users,
            sessions,
        }
    }

    pub fn app_id(&self) -> &str {
        &self.app.app_id
    }

    /// `wx.login`'s code → the user (created on first login) and a session.
    pub async fn login(&self, code: Option<&str>) -> Result<MpSession, AuthError> {
        let code = code
            .filter(|c| !c.is_empty())
            .ok_or_else(|| AuthError::invalid("code is required"))?;
        if code.len() > 256 {
            return Err(AuthError::invalid("code is too long"));
        }
        let reply: CodeSession = self
            .wechat
            .get_json(
                "/sns/jscode2session",
                &[
                    ("appid", self.app.app_id.as_str()),
                    ("secret", self.app.app_secret.expose()),
                    ("js_code", code),
                    ("grant_type", "authorization_code"),
                ],
            )
            .await?;
        let profile = Profile {
            unionid: reply.unionid.filter(|s| !s.is_empty()),
            ..Profile::default()
        };
        let user = self
            .users
            .upsert(&self.app.app_id, &reply.openid, profile)
            .await?;
        // The latest login's key is the one WeChat encrypts with from now on.
        self.cache
            .set(
                &session_key_key(&self.app.app_id, &user.openid),
                &reply.session_key,
                self.sessions.ttl(),
            )
            .await?;
        let (token, claims) =
            self.sessions
                .issue(user.id, &self.app.app_id, &user.openid, SessionKind::Mp);
        Ok(MpSession {
            user,
            token,
            claims,
        })
    }

    /// Saves the profile a mini program sent for the session's user.
    pub async fn save_profile(
        &self,
        claims: &Claims,
        user_info: &Value,
    ) -> Result<User, AuthError> {
        self.require_own_session(claims)?;
        let (profile, claimed_openid) = profile::from_user_info(user_info)?;
        if claimed_openid.is_some_and(|o| o != claims.openid) {
            return Err(AuthError::Forbidden(
                "userInfo.openid is not the session's openid",
            ));
        }
        match self.users.update_profile(claims.uid, profile).await {
            Err(shared::db::DbError::NotFound) => Err(AuthError::UnknownUser),
            other => Ok(other?),
        }
    }

    /// Decrypts open data with the session's session_key, checking that it was
    /// encrypted for this mini program.
    pub async fn decrypt(
        &self,
        claims: &Claims,
        encrypted_data: &str,
        iv: &str,
    ) -> Result<Value, AuthError> {
        self.require_own_session(claims)?;
        if encrypted_data.is_empty() {
            return Err(AuthError::invalid("encryptedData is required"));
        }
        if iv.is_empty() {
            return Err(AuthError::invalid("iv is required"));
        }
        let session_key = self
            .cache
            .get(&session_key_key(&claims.appid, &claims.openid))
            .await?
            .ok_or(AuthError::SessionKeyExpired)?;
        Ok(shared::crypto::decrypt_open_data(
            &session_key,
            encrypted_data,
            iv,
            &self.app.app_id,
        )?)
    }

    fn require_own_session(&self, claims: &Claims) -> Result<(), AuthError> {
        if claims.kind != SessionKind::Mp || claims.appid != self.app.app_id {
            return Err(AuthError::Forbidden(
                "this route is for the mini program's sessions",
            ));
        }
        Ok(())
    }
}

fn session_key_key(appid: &str, openid: &str) -> String {
    format!("auth:mp_session_key:{appid}:{openid}")
}
