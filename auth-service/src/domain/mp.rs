//! Mini-program login: `wx.login` codes exchanged at jscode2session, profiles
//! the mini program sends, and decryption of its open data. The session_key
//! stays in the cache, keyed by user, for as long as the session lives; it is
//! never returned and never logged.

use serde_json::Value;
use shared::cache::Cache;
use shared::config::AppCredentials;
use shared::session::{Claims, SessionKind};
use shared::wechat::WechatClient;

use super::AuthError;
use super::profile;
use super::sessions::Sessions;
use super::users::{Profile, User, Users};
use crate::wechat;

/// The longest `wx.login` code we pass on; WeChat's are 32 characters.
const MAX_CODE_LEN: usize = 256;

/// A logged-in mini-program user and their token.
pub struct MpSession {
    pub user: User,
    pub token: String,
}

#[derive(Clone, Debug)]
pub struct MpLogin {
    pub app: AppCredentials,
    pub wechat: WechatClient,
    pub cache: Cache,
    pub users: Users,
    pub sessions: Sessions,
}

impl MpLogin {
    /// `wx.login`'s code → the user (created on first login) and a session.
    pub async fn login(&self, code: Option<&str>) -> Result<MpSession, AuthError> {
        let code = code
            .filter(|c| !c.is_empty())
            .ok_or_else(|| AuthError::invalid("code is required"))?;
        if code.len() > MAX_CODE_LEN {
            return Err(AuthError::invalid("code is too long"));
        }
        let reply = wechat::jscode2session(&self.wechat, &self.app, code).await?;
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
        let token = self.sessions.issue(&user, SessionKind::Mp);
        Ok(MpSession { user, token })
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
