//! Official-account web OAuth (网页授权): build the authorize URL with a
//! single-use state, then exchange the code WeChat sends back for the user.

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use shared::cache::Cache;
use shared::config::AppCredentials;
use shared::session::{Claims, SessionKeys, SessionKind};
use shared::wechat::WechatClient;

use crate::error::AuthError;
use crate::profile::SnsUserInfo;
use crate::return_url;
use crate::users::{Profile, User, UserStore};

/// How long a browser has to come back from WeChat's consent page.
pub const STATE_TTL: Duration = Duration::from_secs(600);
/// WeChat allows 1 to 128 characters of `[A-Za-z0-9]`; 32 random ones cannot be guessed.
const STATE_LEN: usize = 32;

/// `encodeURIComponent`'s unreserved set, as WeChat's documentation encodes `redirect_uri`.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "snsapi_base")]
    Base,
    #[serde(rename = "snsapi_userinfo")]
    UserInfo,
}

impl Scope {
    /// The `scope` parameter; absent means `snsapi_base`, as the contract says.
    pub fn parse(s: Option<&str>) -> Result<Self, AuthError> {
        match s {
            None | Some("") | Some("snsapi_base") => Ok(Scope::Base),
            Some("snsapi_userinfo") => Ok(Scope::UserInfo),
            Some(_) => Err(AuthError::invalid(
                "scope must be snsapi_base or snsapi_userinfo",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Base => "snsapi_base",
            Scope::UserInfo => "snsapi_userinfo",
        }
    }
}

/// What a state remembers until the browser comes back.
#[derive(Serialize, Deserialize)]
struct Pending {
    return_url: String,
    scope: Scope,
}

/// `/sns/oauth2/access_token`; the tokens are used once and dropped.
#[derive(Deserialize)]
struct WebAccessToken {
    access_token: String,
    openid: String,
    unionid: Option<String>,
}

/// A finished login: who, their session, and where the browser goes next.
pub struct OaLoginDone {
    pub user: User,
    pub token: String,
    pub claims: Claims,
    pub return_url: String,
}

#[derive(Clone, Debug)]
pub struct OaLogin {
    app: AppCredentials,
    wechat: WechatClient,
    cache: Cache,
    users: UserStore,
    sessions: SessionKeys,
    /// `{PUBLIC_BASE_URL}/api/wechat/getOpenId`.
    callback_url: String,
    allowed_origins: Vec<String>,
}

impl OaLogin {
    pub fn new(
        app: AppCredentials,
        wechat: WechatClient,
        cache: Cache,
        users: UserStore,
        sessions: SessionKeys,
        callback_url: String,
        allowed_origins: Vec<String>,
    ) -> Self {
        OaLogin {
            app,
            wechat,
            cache,
            users,
            sessions,
            callback_url,
            allowed_origins,
        }
    }

    pub fn app_id(&self) -> &str {
        &self.app.app_id
    }

    /// Checks the return URL, remembers it under a fresh state, and answers
    /// WeChat's authorize URL.
    pub async fn begin(&self, return_url: &str, scope: Scope) -> Result<String, AuthError> {
        let return_url = return_url::validate(return_url, &self.allowed_origins)?;
        let state = shared::random::alphanumeric(STATE_LEN);
        let pending = serde_json::to_string(&Pending { return_url, scope })
            .expect("pending state serialises");
        self.cache
            .set(&state_key(&state), &pending, STATE_TTL)
            .await?;
        Ok(format!(
            "{open}/connect/oauth2/authorize?appid={appid}&redirect_uri={redirect}&response_type=code&scope={scope}&state={state}#wechat_redirect",
            open = self.wechat.bases().open,
            appid = utf8_percent_encode(&self.app.app_id, URI_COMPONENT),
            redirect = utf8_percent_encode(&self.callback_url, URI_COMPONENT),
            scope = scope.as_str(),
        ))
    }

    /// Redeems the state (once), then the code, and logs the user in. The state
    /// is checked before WeChat hears anything of the request.
    pub async fn complete(
        &self,
        code: Option<&str>,
        state: Option<&str>,
    ) -> Result<OaLoginDone, AuthError> {
        let state = state
            .filter(|s| is_state(s))
            .ok_or(AuthError::UnknownState)?;
        let pending: Pending = match self.cache.take(&state_key(state)).await? {
            Some(json) => serde_json::from_str(&json).map_err(|_| AuthError::UnknownState)?,
            None => return Err(AuthError::UnknownState),
        };
        // No code with a good state: the user pressed 拒绝 on the consent page.
        let code = code
            .filter(|c| !c.is_empty())
            .ok_or_else(|| AuthError::invalid("code is required (authorization was denied)"))?;
        let token: WebAccessToken = self
            .wechat
            .get_json(
                "/sns/oauth2/access_token",
                &[
                    ("appid", self.app.app_id.as_str()),
                    ("secret", self.app.app_secret.expose()),
                    ("code", code),
                    ("grant_type", "authorization_code"),
                ],
            )
            .await?;
        let profile = match pending.scope {
            Scope::Base => Profile {
                unionid: token.unionid.filter(|s| !s.is_empty()),
                ..Profile::default()
            },
            Scope::UserInfo => {
                let info: SnsUserInfo = self
                    .wechat
                    .get_json(
                        "/sns/userinfo",
                        &[
                            ("access_token", token.access_token.as_str()),
                            ("openid", token.openid.as_str()),
                            ("lang", "zh_CN"),
                        ],
                    )
                    .await?;
                if info.openid != token.openid {
                    return Err(AuthError::Wechat(shared::wechat::WechatError::BadResponse(
                        "userinfo names another openid".to_owned(),
                    )));
                }
                let mut profile = Profile::from(info);
                if profile.unionid.is_none() {
                    profile.unionid = token.unionid.filter(|s| !s.is_empty());
                }
                profile
            }
        };
        let user = self
            .users
            .upsert(&self.app.app_id, &token.openid, profile)
            .await?;
        let (session, claims) =
            self.sessions
                .issue(user.id, &self.app.app_id, &user.openid, SessionKind::Oa);
        Ok(OaLoginDone {
            user,
            token: session,
            claims,
            return_url: pending.return_url,
        })
    }
}

fn state_key(state: &str) -> String {
    format!("auth:oauth_state:{state}")
}

/// The shape WeChat allows: anything else cannot be one of ours.
fn is_state(s: &str) -> bool {
    (16..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uri_is_encoded_like_encode_uri_component() {
        let enc = utf8_percent_encode("http://127.0.0.1:8080/api/wechat/getOpenId", URI_COMPONENT)
            .to_string();
        assert_eq!(
            enc,
            "http%3A%2F%2F127.0.0.1%3A8080%2Fapi%2Fwechat%2FgetOpenId"
        );
    }

    #[test]
    fn state_shape() {
        assert!(is_state(&"a".repeat(16)));
        assert!(is_state(&"Z9".repeat(64)));
        assert!(!is_state(&"a".repeat(15)));
        assert!(!is_state(&"a".repeat(129)));
        assert!(!is_state("abcdefghijklmnop:"));
        assert!(!is_state("abcdefgh-ijklmnop"));
    }

    #[test]
    fn scopes() {
        assert_eq!(Scope::parse(None).unwrap(), Scope::Base);
        assert_eq!(
            Scope::parse(Some("snsapi_userinfo")).unwrap(),
            Scope::UserInfo
        );
        assert!(Scope::parse(Some("snsapi_login")).is_err());
    }
}
