//! Official-account web OAuth (网页授权): remember where the browser returns
//! to under a single-use state bound to that browser, then exchange the code
//! WeChat sends back for the user and a session.

use shared::cache::Cache;
use shared::config::AppCredentials;
use shared::session::SessionKind;
use shared::wechat::{WechatClient, WechatError};

use super::AuthError;
use super::oauth_state::{BrowserBinding, Pending, STATE_TTL, is_state, new_state, state_key};
use super::return_url;
use super::sessions::Sessions;
use super::users::{Profile, User, Users};
use crate::wechat::{self, Scope, WebAccessToken};

/// Where the browser goes next, and the binding its OAuth cookie must hold.
pub struct OaLoginStarted {
    pub authorize_url: String,
    pub browser: BrowserBinding,
}

/// A finished login: who, their session, and where the browser goes next.
pub struct OaLoginDone {
    pub user: User,
    pub token: String,
    pub return_url: String,
}

/// Built by the state with a struct literal: seven parts, each named.
#[derive(Clone, Debug)]
pub struct OaLogin {
    pub app: AppCredentials,
    pub wechat: WechatClient,
    pub cache: Cache,
    pub users: Users,
    pub sessions: Sessions,
    /// `{PUBLIC_BASE_URL}/api/wechat/getOpenId`.
    pub callback_url: String,
    pub allowed_origins: Vec<String>,
}

impl OaLogin {
    /// The `scope` parameter; absent means `snsapi_base`.
    pub fn scope(param: Option<&str>) -> Result<Scope, AuthError> {
        Scope::from_param(param)
            .ok_or_else(|| AuthError::invalid("scope must be snsapi_base or snsapi_userinfo"))
    }

    /// Checks the return URL, remembers it under a fresh state bound to the
    /// browser (the one it already has, else a new one), and answers WeChat's
    /// authorize URL.
    pub async fn begin(
        &self,
        return_url: &str,
        scope: Scope,
        browser: Option<BrowserBinding>,
    ) -> Result<OaLoginStarted, AuthError> {
        let return_url = return_url::validate(return_url, &self.allowed_origins)?;
        // Reusing the browser's binding lets two tabs log in at once.
        let browser = browser.unwrap_or_else(BrowserBinding::random);
        let state = new_state();
        let pending = Pending::new(return_url, scope, &state, &browser);
        #[allow(
            clippy::expect_used,
            reason = "Pending holds two strings and a unit enum: serialising it cannot fail"
        )]
        let json = serde_json::to_string(&pending).expect("pending state serialises");
        self.cache.set(&state_key(&state), &json, STATE_TTL).await?;
        Ok(OaLoginStarted {
            authorize_url: wechat::authorize_url(
                &self.wechat,
                &self.app.app_id,
                &self.callback_url,
                scope,
                &state,
            ),
            browser,
        })
    }

    /// Redeems the state (once, and only from the browser it was issued to),
    /// then the code, and logs the user in. The state is checked before
    /// WeChat hears anything of the request.
    pub async fn complete(
        &self,
        code: Option<&str>,
        state: Option<&str>,
        browser: Option<&BrowserBinding>,
    ) -> Result<OaLoginDone, AuthError> {
        let pending = self.redeem_state(state, browser).await?;
        // No code with a good state: the user pressed 拒绝 on the consent page.
        let code = code
            .filter(|c| !c.is_empty())
            .ok_or_else(|| AuthError::invalid("code is required (authorization was denied)"))?;
        let token = wechat::oauth2_access_token(&self.wechat, &self.app, code).await?;
        let profile = self.profile_of(&token, pending.scope).await?;
        let user = self
            .users
            .upsert(&self.app.app_id, &token.openid, profile)
            .await?;
        let token = self.sessions.issue(&user, SessionKind::Oa);
        Ok(OaLoginDone {
            user,
            token,
            return_url: pending.return_url,
        })
    }

    /// The pending login, taken out of the cache. Another browser's callback
    /// leaves the state in place: the browser it belongs to can still use it.
    async fn redeem_state(
        &self,
        state: Option<&str>,
        browser: Option<&BrowserBinding>,
    ) -> Result<Pending, AuthError> {
        let state = state
            .filter(|s| is_state(s))
            .ok_or(AuthError::UnknownState)?;
        let key = state_key(state);
        let peeked = self.cache.get(&key).await?.ok_or(AuthError::UnknownState)?;
        if !parse_pending(&peeked)?.belongs_to(state, browser) {
            return Err(AuthError::OtherBrowser);
        }
        // Taken atomically: of two requests racing with the same state, one wins.
        let taken = self
            .cache
            .take(&key)
            .await?
            .ok_or(AuthError::UnknownState)?;
        parse_pending(&taken)
    }

    /// `snsapi_base` learns the unionid at most; `snsapi_userinfo` reads the profile.
    async fn profile_of(&self, token: &WebAccessToken, scope: Scope) -> Result<Profile, AuthError> {
        let unionid = token.unionid.clone().filter(|s| !s.is_empty());
        if scope == Scope::Base {
            return Ok(Profile {
                unionid,
                ..Profile::default()
            });
        }
        let info = wechat::userinfo(&self.wechat, token).await?;
        if info.openid != token.openid {
            return Err(AuthError::Wechat(WechatError::BadResponse(
                "userinfo names another openid".to_owned(),
            )));
        }
        let mut profile = Profile::from(info);
        if profile.unionid.is_none() {
            profile.unionid = unionid;
        }
        Ok(profile)
    }
}

fn parse_pending(json: &str) -> Result<Pending, AuthError> {
    serde_json::from_str(json).map_err(|_| AuthError::UnknownState)
}
