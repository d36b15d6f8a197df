//! The cookies auth-service sets: the session token (HttpOnly) and the seed's
//! readable `openId` after an official-account login, and the OAuth browser
//! binding between `/api/wechat/redirect` and the callback.

use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite, time};
use shared::config::CommonConfig;
use shared::session::SESSION_COOKIE;

use crate::domain::oauth_state::{BrowserBinding, STATE_TTL};

/// The seed's H5 pages read the openid from this cookie.
pub const OPENID_COOKIE: &str = "openId";
/// Holds the browser's OAuth binding: HttpOnly, and sent only to the OAuth
/// routes (`Path=/api/wechat`). SameSite=Lax still sends it on the top-level
/// GET by which WeChat's page returns the browser to the callback.
pub const OAUTH_COOKIE: &str = "wx_oauth";
const OAUTH_PATH: &str = "/api/wechat";

#[derive(Clone, Debug)]
pub struct CookiePolicy {
    /// Set when `PUBLIC_BASE_URL` is https.
    pub secure: bool,
    /// The session's lifetime, so the cookie and the token expire together.
    pub max_age: Duration,
}

impl CookiePolicy {
    pub fn for_config(common: &CommonConfig) -> Self {
        CookiePolicy {
            secure: common.secure_cookies(),
            max_age: common.session_ttl,
        }
    }

    pub fn login(&self, token: &str, openid: &str) -> [Cookie<'static>; 2] {
        let max_age = time::Duration::seconds(self.max_age.as_secs() as i64);
        [
            self.base(SESSION_COOKIE, token.to_owned(), true)
                .max_age(max_age)
                .finish(),
            self.base(OPENID_COOKIE, openid.to_owned(), false)
                .max_age(max_age)
                .finish(),
        ]
    }

    /// Empty values that expire at once: what logout sends.
    pub fn cleared(&self) -> [Cookie<'static>; 2] {
        [
            self.base(SESSION_COOKIE, String::new(), true)
                .max_age(time::Duration::ZERO)
                .finish(),
            self.base(OPENID_COOKIE, String::new(), false)
                .max_age(time::Duration::ZERO)
                .finish(),
        ]
    }

    /// The browser's OAuth binding, for as long as a state lives.
    pub fn oauth_binding(&self, browser: &BrowserBinding) -> Cookie<'static> {
        self.base(OAUTH_COOKIE, browser.as_str().to_owned(), true)
            .path(OAUTH_PATH)
            .max_age(time::Duration::seconds(STATE_TTL.as_secs() as i64))
            .finish()
    }

    /// Forgets the binding once a login used it.
    pub fn oauth_binding_cleared(&self) -> Cookie<'static> {
        self.base(OAUTH_COOKIE, String::new(), true)
            .path(OAUTH_PATH)
            .max_age(time::Duration::ZERO)
            .finish()
    }

    fn base(
        &self,
        name: &'static str,
        value: String,
        http_only: bool,
    ) -> actix_web::cookie::CookieBuilder<'static> {
        Cookie::build(name, value)
            .path("/")
            .http_only(http_only)
            .same_site(SameSite::Lax)
            .secure(self.secure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_public_base_means_secure_cookies() {
        let env = |base: &str| {
            shared::config::Env::from_pairs([
                ("SESSION_SECRET", "0123456789abcdef0123456789abcdef"),
                ("PUBLIC_BASE_URL", base),
                ("SESSION_TTL_SECONDS", "600"),
            ])
        };
        let common = |base| CommonConfig::from_env(&env(base), "auth-service", 8081).unwrap();
        let https = CookiePolicy::for_config(&common("https://shop.example"));
        assert!(https.secure);
        assert_eq!(https.max_age, Duration::from_secs(600));
        let [session, openid] = https.login("t", "o");
        assert_eq!(session.secure(), Some(true));
        assert_eq!(openid.secure(), Some(true));
        assert!(!CookiePolicy::for_config(&common("http://127.0.0.1:8080")).secure);
    }

    #[test]
    fn secure_only_over_https() {
        let https = CookiePolicy {
            secure: true,
            max_age: Duration::from_secs(3600),
        };
        let [session, openid] = https.login("tok", "oABC");
        assert_eq!(
            session.to_string(),
            "wx_session=tok; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=3600"
        );
        assert_eq!(
            openid.to_string(),
            "openId=oABC; SameSite=Lax; Secure; Path=/; Max-Age=3600"
        );
        let http = CookiePolicy {
            secure: false,
            ..https
        };
        let [session, _] = http.login("tok", "oABC");
        assert_eq!(
            session.to_string(),
            "wx_session=tok; HttpOnly; SameSite=Lax; Path=/; Max-Age=3600"
        );
        let [session, openid] = http.cleared();
        assert_eq!(
            session.to_string(),
            "wx_session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0"
        );
        assert_eq!(
            openid.to_string(),
            "openId=; SameSite=Lax; Path=/; Max-Age=0"
        );
    }

    #[test]
    fn the_oauth_binding_is_http_only_lax_and_scoped_to_the_oauth_routes() {
        let browser = BrowserBinding::random();
        let policy = |secure| CookiePolicy {
            secure,
            max_age: Duration::from_secs(3600),
        };
        assert_eq!(
            policy(false).oauth_binding(&browser).to_string(),
            format!(
                "wx_oauth={}; HttpOnly; SameSite=Lax; Path=/api/wechat; Max-Age=600",
                browser.as_str()
            )
        );
        assert_eq!(
            policy(true).oauth_binding(&browser).to_string(),
            format!(
                "wx_oauth={}; HttpOnly; SameSite=Lax; Secure; Path=/api/wechat; Max-Age=600",
                browser.as_str()
            )
        );
        assert_eq!(
            policy(false).oauth_binding_cleared().to_string(),
            "wx_oauth=; HttpOnly; SameSite=Lax; Path=/api/wechat; Max-Age=0"
        );
    }
}
