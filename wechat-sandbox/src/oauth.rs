//! Official-account web OAuth: the authorize page, code exchange, refresh and
//! `/sns/userinfo`.

use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::clock::lock;
use crate::config::{AppKind, SandboxApp, SandboxUser};
use crate::errors::{self, WxError, json_response};
use crate::ids;
use crate::pages::{self, ConsentUser};
use crate::params::Params;
use crate::state::SandboxState;
use crate::store::{Grant, Scope, UserToken};

const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(7200);
const REFRESH_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// The cookie that says which test user "is logged in to WeChat" in this browser.
pub(crate) const USER_COOKIE: &str = "sandbox_user";

/// The code of an `authorization_code` grant, checked in WeChat's order.
pub(crate) fn authorization_code<'a>(q: &'a Params, param: &str) -> Result<&'a str, WxError> {
    if q.str("grant_type") != "authorization_code" {
        return Err(errors::INVALID_GRANT_TYPE);
    }
    q.get(param).ok_or(errors::CODE_MISSING)
}

impl SandboxState {
    /// A code as `/connect/oauth2/authorize` would hand it out after the user
    /// agreed. A scope other than `snsapi_userinfo` counts as `snsapi_base`.
    pub fn issue_oauth_code(&self, appid: &str, user_key: &str, scope: &str) -> String {
        let scope = Scope::parse(scope).unwrap_or(Scope::Base);
        let now = self.clock.elapsed();
        lock(&self.oauth)
            .codes
            .issue(appid, (user_key.to_owned(), scope), now)
    }

    pub(crate) fn exchange_oauth_code(&self, q: &Params) -> Result<serde_json::Value, WxError> {
        let app = check_app(self, q, AppKind::Oa)?;
        let code = authorization_code(q, "code")?;
        let now = self.clock.elapsed();
        let mut store = lock(&self.oauth);
        let (user_key, scope) = store.codes.redeem(code, &app.appid, now)?.clone();
        let access_token = ids::token(96);
        let refresh_token = ids::token(96);
        let grant = || Grant {
            appid: app.appid.clone(),
            user_key: user_key.clone(),
            scope,
        };
        store.access_tokens.insert(
            access_token.clone(),
            UserToken {
                grant: grant(),
                expires: now + ACCESS_TOKEN_TTL,
            },
        );
        store.refresh_tokens.insert(
            refresh_token.clone(),
            UserToken {
                grant: grant(),
                expires: now + REFRESH_TOKEN_TTL,
            },
        );
        drop(store);
        Ok(json!({
            "access_token": access_token,
            "expires_in": ACCESS_TOKEN_TTL.as_secs(),
            "refresh_token": refresh_token,
            "openid": ids::openid(&app.appid, &user_key),
            "scope": scope.as_str(),
            "unionid": self.user(&user_key).map(|u| u.unionid.clone()),
        }))
    }

    pub(crate) fn refresh_user_token(&self, q: &Params) -> Result<serde_json::Value, WxError> {
        let appid = q.get("appid").ok_or(errors::APPID_MISSING)?;
        let app = self
            .app_of_kind(appid, AppKind::Oa)
            .ok_or(errors::INVALID_APPID)?;
        if q.str("grant_type") != "refresh_token" {
            return Err(errors::INVALID_GRANT_TYPE);
        }
        let refresh_token = q.str("refresh_token");
        let now = self.clock.elapsed();
        let mut store = lock(&self.oauth);
        let rt = store
            .refresh_tokens
            .get(refresh_token)
            .filter(|t| t.grant.appid == app.appid)
            .ok_or(errors::INVALID_REFRESH_TOKEN)?;
        if now >= rt.expires {
            return Err(errors::REFRESH_TOKEN_EXPIRED);
        }
        let (user_key, scope) = (rt.grant.user_key.clone(), rt.grant.scope);
        let access_token = ids::token(96);
        store.access_tokens.insert(
            access_token.clone(),
            UserToken {
                grant: Grant {
                    appid: app.appid.clone(),
                    user_key: user_key.clone(),
                    scope,
                },
                expires: now + ACCESS_TOKEN_TTL,
            },
        );
        Ok(json!({
            "access_token": access_token,
            "expires_in": ACCESS_TOKEN_TTL.as_secs(),
            "refresh_token": refresh_token,
            "openid": ids::openid(&app.appid, &user_key),
            "scope": scope.as_str(),
        }))
    }

    /// The user behind a web access token, checked against the claimed openid.
    fn user_token_owner(&self, q: &Params) -> Result<(&SandboxUser, String, Scope), WxError> {
        let token = q.get("access_token").ok_or(errors::INVALID_CREDENTIAL)?;
        let (appid, user_key, scope) = {
            let store = lock(&self.oauth);
            let t = store
                .access_tokens
                .get(token)
                .ok_or(errors::INVALID_CREDENTIAL)?;
            if self.clock.elapsed() >= t.expires {
                return Err(errors::ACCESS_TOKEN_EXPIRED);
            }
            (
                t.grant.appid.clone(),
                t.grant.user_key.clone(),
                t.grant.scope,
            )
        };
        if q.str("openid") != ids::openid(&appid, &user_key) {
            return Err(errors::INVALID_OPENID);
        }
        let user = self.user(&user_key).ok_or(errors::INVALID_OPENID)?;
        Ok((user, appid, scope))
    }

    pub(crate) fn oauth_userinfo(&self, q: &Params) -> Result<serde_json::Value, WxError> {
        let (user, appid, scope) = self.user_token_owner(q)?;
        if scope != Scope::UserInfo {
            return Err(errors::API_UNAUTHORIZED);
        }
        Ok(json!({
            "openid": ids::openid(&appid, &user.key),
            "nickname": user.nickname,
            "sex": user.sex,
            "province": user.province,
            "city": user.city,
            "country": user.country,
            "headimgurl": self.avatar_url(&user.key),
            "privilege": [],
            "unionid": user.unionid,
        }))
    }
}

/// The app of `appid` and `secret`, which must be an app of `kind`.
pub(crate) fn check_app<'a>(
    state: &'a SandboxState,
    q: &Params,
    kind: AppKind,
) -> Result<&'a SandboxApp, WxError> {
    let appid = q.get("appid").ok_or(errors::APPID_MISSING)?;
    let app = state
        .app_of_kind(appid, kind)
        .ok_or(errors::INVALID_APPID)?;
    let secret = q.get("secret").ok_or(errors::APPSECRET_MISSING)?;
    if !shared::sign::constant_time_eq(secret.as_bytes(), app.secret.as_bytes()) {
        return Err(errors::INVALID_APPSECRET);
    }
    Ok(app)
}

/// What `/connect/oauth2/authorize` was asked for, once validated.
struct AuthorizeRequest<'a> {
    app: &'a SandboxApp,
    redirect_uri: String,
    scope: Scope,
    state: String,
}

/// WeChat shows these failures as a page inside the WeChat browser (HTTP 200),
/// never redirecting back to the site.
fn check_authorize<'a>(
    sandbox: &'a SandboxState,
    q: &Params,
) -> Result<AuthorizeRequest<'a>, &'static str> {
    let app = q
        .get("appid")
        .and_then(|appid| sandbox.app_of_kind(appid, AppKind::Oa))
        .ok_or("appid 参数错误")?;
    let redirect_uri = q
        .get("redirect_uri")
        .filter(|u| is_web_url(u))
        .ok_or("redirect_uri 参数错误")?;
    if q.str("response_type") != "code" {
        return Err("response_type 参数错误");
    }
    let scope = q
        .get("scope")
        .and_then(Scope::parse)
        .ok_or("Scope 参数错误或没有 Scope 权限")?;
    Ok(AuthorizeRequest {
        app,
        redirect_uri: redirect_uri.to_owned(),
        scope,
        state: q.str("state").to_owned(),
    })
}

pub(crate) fn is_web_url(s: &str) -> bool {
    url::Url::parse(s)
        .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .unwrap_or(false)
}

/// Adds query parameters the way WeChat does: before any `#fragment`, with `?`
/// or `&` depending on whether the URL already has a query.
pub(crate) fn append_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let (base, fragment) = match uri.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (uri, None),
    };
    let mut out = base.to_owned();
    if !out.contains('?') {
        out.push('?');
    } else if !out.ends_with('?') && !out.ends_with('&') {
        out.push('&');
    }
    out.push_str(&encode_pairs(pairs));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

pub(crate) fn encode_pairs(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn redirect(location: &str) -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// `sandbox_user` from the query, else from the cookie, else the first user.
fn chosen_user<'a>(
    sandbox: &'a SandboxState,
    req: &HttpRequest,
    q: &Params,
) -> Result<&'a SandboxUser, String> {
    let cookie = req.cookie(USER_COOKIE);
    let wanted = q
        .get(USER_COOKIE)
        .or_else(|| cookie.as_ref().map(|c| c.value()));
    match wanted {
        Some(key) => sandbox
            .user(key)
            .ok_or_else(|| format!("sandbox_user 不是测试用户：{key}")),
        None => sandbox
            .users
            .first()
            .ok_or_else(|| "沙箱没有测试用户".to_owned()),
    }
}

pub(crate) async fn authorize(sandbox: web::Data<SandboxState>, req: HttpRequest) -> HttpResponse {
    let q = Params::from_query(&req);
    let ask = match check_authorize(&sandbox, &q) {
        Ok(ask) => ask,
        Err(msg) => return pages::error_page(msg),
    };
    let user = match chosen_user(&sandbox, &req, &q) {
        Ok(user) => user,
        Err(msg) => return pages::error_page(&msg),
    };
    match ask.scope {
        // Silent authorization: no page, straight back with a code.
        Scope::Base => {
            let code = sandbox.issue_oauth_code(&ask.app.appid, &user.key, ask.scope.as_str());
            redirect(&append_query(
                &ask.redirect_uri,
                &[("code", &code), ("state", &ask.state)],
            ))
        }
        Scope::UserInfo => {
            let users: Vec<ConsentUser> = sandbox
                .users
                .iter()
                .map(|u| ConsentUser {
                    user: u,
                    avatar_href: format!("/sandbox/avatar/{}.svg", u.key),
                    allow_href: format!(
                        "/sandbox/oauth/allow?{}",
                        encode_pairs(&[
                            ("appid", &ask.app.appid),
                            ("redirect_uri", &ask.redirect_uri),
                            ("response_type", "code"),
                            ("scope", ask.scope.as_str()),
                            ("state", &ask.state),
                            ("user", &u.key),
                        ])
                    ),
                    preselected: u.key == user.key,
                })
                .collect();
            let deny_href = format!(
                "/sandbox/oauth/deny?{}",
                encode_pairs(&[
                    ("appid", &ask.app.appid),
                    ("redirect_uri", &ask.redirect_uri),
                    ("state", &ask.state),
                ])
            );
            pages::consent_page(&ask.app.appid, &users, &deny_href)
        }
    }
}

/// The consent page's "允许": issue the code and go back, remembering the
/// chosen user for later silent (`snsapi_base`) logins in this browser.
pub(crate) async fn allow(sandbox: web::Data<SandboxState>, req: HttpRequest) -> HttpResponse {
    let q = Params::from_query(&req);
    let ask = match check_authorize(&sandbox, &q) {
        Ok(ask) => ask,
        Err(msg) => return pages::error_page(msg),
    };
    let Some(user) = q.get("user").and_then(|k| sandbox.user(k)) else {
        return pages::error_page("请选择一个测试用户");
    };
    let code = sandbox.issue_oauth_code(&ask.app.appid, &user.key, ask.scope.as_str());
    let mut res = redirect(&append_query(
        &ask.redirect_uri,
        &[("code", &code), ("state", &ask.state)],
    ));
    let cookie = Cookie::build(USER_COOKIE, user.key.clone())
        .path("/")
        .same_site(SameSite::Lax)
        .http_only(true)
        .finish();
    // Only fails for a malformed cookie, which a user key from config is not.
    let _ = res.add_cookie(&cookie);
    res
}

/// The consent page's "拒绝": back to the site with the state and no code.
pub(crate) async fn deny(sandbox: web::Data<SandboxState>, req: HttpRequest) -> HttpResponse {
    let q = Params::from_query(&req);
    let Some(redirect_uri) = q.get("redirect_uri").filter(|u| is_web_url(u)) else {
        return pages::error_page("redirect_uri 参数错误");
    };
    if q.get("appid")
        .and_then(|a| sandbox.app_of_kind(a, AppKind::Oa))
        .is_none()
    {
        return pages::error_page("appid 参数错误");
    }
    redirect(&append_query(redirect_uri, &[("state", q.str("state"))]))
}

/// `/sns/auth`: is this web access token still good for this openid?
pub(crate) async fn check_token(
    sandbox: web::Data<SandboxState>,
    req: HttpRequest,
) -> Result<HttpResponse, WxError> {
    sandbox.user_token_owner(&Params::from_query(&req))?;
    Ok(json_response(&json!({ "errcode": 0, "errmsg": "ok" })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_appended_before_the_fragment_with_the_right_separator() {
        let p = [("code", "C"), ("state", "S1")];
        assert_eq!(
            append_query("https://a.test/cb", &p),
            "https://a.test/cb?code=C&state=S1"
        );
        assert_eq!(
            append_query("https://a.test/cb?x=1", &p),
            "https://a.test/cb?x=1&code=C&state=S1"
        );
        assert_eq!(
            append_query("https://a.test/cb?", &p),
            "https://a.test/cb?code=C&state=S1"
        );
        assert_eq!(
            append_query("https://a.test/#/page", &p),
            "https://a.test/?code=C&state=S1#/page"
        );
        assert_eq!(
            append_query("https://a.test/cb", &[("state", "a b&c")]),
            "https://a.test/cb?state=a+b%26c"
        );
    }

    #[test]
    fn only_absolute_web_urls_are_redirect_targets() {
        assert!(is_web_url("http://127.0.0.1:8080/api/wechat/getOpenId"));
        assert!(!is_web_url("/relative"));
        assert!(!is_web_url("javascript:alert(1)"));
        assert!(!is_web_url("ftp://a.test/"));
    }
}
