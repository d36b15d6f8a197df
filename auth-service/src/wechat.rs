//! The WeChat calls auth-service makes, one typed reply struct each: the
//! official account's web OAuth (`/connect/oauth2/authorize` URL,
//! `/sns/oauth2/access_token`, `/sns/userinfo`) and the mini program's
//! `/sns/jscode2session`. Transport, retries, errcode handling and redaction
//! are `shared::wechat`'s.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use shared::config::AppCredentials;
use shared::wechat::{WechatClient, WechatError};

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

/// Web OAuth's `scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    /// Silent: the openid (and unionid) only.
    #[serde(rename = "snsapi_base")]
    Base,
    /// A consent page, then `/sns/userinfo`.
    #[serde(rename = "snsapi_userinfo")]
    UserInfo,
}

impl Scope {
    /// The `scope` parameter; absent or empty means `snsapi_base`, as the
    /// contract says. `None` for anything else.
    pub fn from_param(s: Option<&str>) -> Option<Self> {
        match s {
            None | Some("") | Some("snsapi_base") => Some(Scope::Base),
            Some("snsapi_userinfo") => Some(Scope::UserInfo),
            Some(_) => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Base => "snsapi_base",
            Scope::UserInfo => "snsapi_userinfo",
        }
    }
}

/// `/sns/oauth2/access_token`; the tokens are used once and dropped.
#[derive(Deserialize)]
pub struct WebAccessToken {
    pub access_token: String,
    pub openid: String,
    pub unionid: Option<String>,
}

/// `/sns/userinfo` (the fields we keep).
#[derive(Debug, Deserialize)]
pub struct SnsUserInfo {
    pub openid: String,
    pub nickname: Option<String>,
    pub sex: Option<i32>,
    pub province: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub headimgurl: Option<String>,
    pub unionid: Option<String>,
}

/// `/sns/jscode2session`. Deliberately not `Debug`: it holds the session_key.
#[derive(Deserialize)]
pub struct CodeSession {
    pub openid: String,
    pub session_key: String,
    pub unionid: Option<String>,
}

/// Where the browser goes to authorize: `{WECHAT_OPEN_BASE}/connect/oauth2/authorize?…#wechat_redirect`.
pub fn authorize_url(
    client: &WechatClient,
    appid: &str,
    redirect_uri: &str,
    scope: Scope,
    state: &str,
) -> String {
    format!(
        "{open}/connect/oauth2/authorize?appid={appid}&redirect_uri={redirect}&response_type=code&scope={scope}&state={state}#wechat_redirect",
        open = client.bases().open,
        appid = utf8_percent_encode(appid, URI_COMPONENT),
        redirect = utf8_percent_encode(redirect_uri, URI_COMPONENT),
        scope = scope.as_str(),
    )
}

/// Exchanges web OAuth's `code` for the user's openid and a web access token.
pub async fn oauth2_access_token(
    client: &WechatClient,
    app: &AppCredentials,
    code: &str,
) -> Result<WebAccessToken, WechatError> {
    client
        .get_json(
            "/sns/oauth2/access_token",
            &[
                ("appid", app.app_id.as_str()),
                ("secret", app.app_secret.expose()),
                ("code", code),
                ("grant_type", "authorization_code"),
            ],
        )
        .await
}

/// The profile behind an `snsapi_userinfo` token.
pub async fn userinfo(
    client: &WechatClient,
    token: &WebAccessToken,
) -> Result<SnsUserInfo, WechatError> {
    client
        .get_json(
            "/sns/userinfo",
            &[
                ("access_token", token.access_token.as_str()),
                ("openid", token.openid.as_str()),
                ("lang", "zh_CN"),
            ],
        )
        .await
}

/// Exchanges `wx.login`'s code for the openid and the session_key.
pub async fn jscode2session(
    client: &WechatClient,
    app: &AppCredentials,
    js_code: &str,
) -> Result<CodeSession, WechatError> {
    client
        .get_json(
            "/sns/jscode2session",
            &[
                ("appid", app.app_id.as_str()),
                ("secret", app.app_secret.expose()),
                ("js_code", js_code),
                ("grant_type", "authorization_code"),
            ],
        )
        .await
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
    fn scopes() {
        assert_eq!(Scope::from_param(None), Some(Scope::Base));
        assert_eq!(Scope::from_param(Some("")), Some(Scope::Base));
        assert_eq!(
            Scope::from_param(Some("snsapi_userinfo")),
            Some(Scope::UserInfo)
        );
        assert_eq!(Scope::from_param(Some("snsapi_login")), None);
    }
}
