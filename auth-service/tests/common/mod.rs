//! Starts the WeChat sandbox and auth-service on port 0 and talks to them over
//! real HTTP, as the seed's frontends do.
#![allow(dead_code)] // each test binary uses its own part of the helpers

use std::net::TcpListener;

use auth_service::{AuthConfig, AuthState};
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::Value;
use shared::cache::Cache;
use shared::config::Env;
use testkit::TestDb;
use wechat_sandbox::{SANDBOX_MP_APPID, SANDBOX_OA_APPID, Sandbox, SandboxConfig};

pub const SESSION_SECRET: &str = "auth-service-tests-session-secret-0123456789";
/// The shop's H5 pages live here; OAuth may send browsers back to it.
pub const SHOP: &str = "https://shop.example";
pub const OA: &str = SANDBOX_OA_APPID;
pub const MP: &str = SANDBOX_MP_APPID;

pub struct TestApp {
    /// `http://127.0.0.1:PORT` of auth-service.
    pub base: String,
    pub sandbox: Sandbox,
    /// No redirects followed (OAuth steps are checked one by one), cookie jar on.
    pub client: reqwest::Client,
    /// The service's state, for what tests check behind its back (user rows).
    pub state: AuthState,
}

/// Everything default: both apps configured, a generous rate limit.
pub async fn spawn_app(db: &TestDb) -> TestApp {
    spawn_app_full(db, &[], None).await
}

/// `vars` override the defaults; an empty value unsets one.
pub async fn spawn_app_with(db: &TestDb, vars: &[(&str, &str)]) -> TestApp {
    spawn_app_full(db, vars, None).await
}

pub async fn spawn_app_full(db: &TestDb, vars: &[(&str, &str)], cache: Option<Cache>) -> TestApp {
    let sandbox = Sandbox::start(SandboxConfig::for_tests())
        .await
        .expect("sandbox starts");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut env = Env::from_pairs(sandbox.service_env());
    env.extend([
        ("SESSION_SECRET", SESSION_SECRET),
        ("PUBLIC_BASE_URL", base.as_str()),
        ("DATABASE_URL", db.url.as_str()),
        ("LOGIN_RATE_LIMIT", "10000"),
    ]);
    env.set("ALLOWED_REDIRECT_ORIGINS", format!("{base},{SHOP}"));
    env.extend(vars.iter().copied());
    let config = AuthConfig::from_env(&env).expect("test config");
    let state = AuthState::build(config, cache).await.expect("state builds");
    let handle = state.clone();
    let app = auth_service::with_state(state, listener).expect("server starts");
    tokio::spawn(app.run_until_stopped());
    let client = shared::http_client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .no_proxy()
        .build()
        .unwrap();
    TestApp {
        base,
        sandbox,
        client,
        state: handle,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_bearer(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// The mini program's first request: `wx.login` then getSession.
    pub async fn mp_session(&self, user_key: &str) -> Value {
        let code = self.sandbox.state().issue_js_code(MP, user_key);
        let res = self.get(&format!("/api/mp/getSession?code={code}")).await;
        let (status, body) = envelope(res).await;
        assert_eq!(status, 200, "{body}");
        body["data"].clone()
    }
}

/// Status and JSON body.
pub async fn envelope(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, body)
}

/// Asserts a failure envelope and returns its message.
pub async fn expect_error(res: reqwest::Response, status: u16, code: i64) -> String {
    let (s, body) = envelope(res).await;
    assert_eq!((s, body["code"].as_i64()), (status, Some(code)), "{body}");
    assert!(body["data"].is_null(), "{body}");
    body["message"].as_str().unwrap().to_owned()
}

pub fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_owned()
}

pub fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// encodeURIComponent.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The first "允许" link of the sandbox's consent page, HTML entities undone.
pub fn allow_link(html: &str) -> String {
    let start = html
        .find("href=\"/sandbox/oauth/allow?")
        .expect("consent page has an allow link")
        + "href=\"".len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end]
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
}
