//! Test harness: the sandbox on port 0, service instances on port 0 following
//! the sandbox's clock, and helpers to poll for conditions with a deadline.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use jssdk_service::{Clock, JssdkConfig, JssdkState};
use serde_json::Value;
use shared::cache::Cache;
use shared::config::Env;
use shared::sign::{jssdk_signature, strip_fragment};
use testkit::eventually;
use wechat_sandbox::{SANDBOX_OA_APPID, Sandbox, SandboxConfig, SandboxState};

pub const SESSION_SECRET: &str = "jssdk-tests-session-secret-0123456789";
pub const TOKEN_PATH: &str = "/cgi-bin/token";
pub const STABLE_TOKEN_PATH: &str = "/cgi-bin/stable_token";
pub const TICKET_PATH: &str = "/cgi-bin/ticket/getticket";

/// The service's clock follows the sandbox's, so `advance` ages both sides.
pub struct SandboxClock(pub Arc<SandboxState>);

impl Clock for SandboxClock {
    fn now_ms(&self) -> i64 {
        self.0.now().timestamp_millis()
    }
}

pub async fn start_sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig::for_tests())
        .await
        .expect("sandbox starts")
}

pub struct Instance {
    pub base: String,
    /// The instance's state (shared with its server): to look at its token
    /// manager.
    pub state: JssdkState,
}

/// One service instance with its own in-process state. `extra` overrides the
/// defaults (background refresh off, so that the tests decide who fetches);
/// `cache` replaces what `REDIS_URL` would give.
pub async fn spawn_instance(
    sb: &Sandbox,
    extra: &[(&str, &str)],
    cache: Option<Cache>,
) -> Instance {
    spawn_instance_with_clock(sb, extra, cache, Arc::new(SandboxClock(sb.state()))).await
}

/// `spawn_instance` on a clock of the test's choosing.
pub async fn spawn_instance_with_clock(
    sb: &Sandbox,
    extra: &[(&str, &str)],
    cache: Option<Cache>,
    clock: Arc<dyn Clock>,
) -> Instance {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let port = listener.local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let mut pairs: Vec<(String, String)> = [
        ("SESSION_SECRET", SESSION_SECRET),
        ("PUBLIC_BASE_URL", &base),
        ("WECHAT_RETRY_BACKOFF_MS", "10"),
        ("JSSDK_BACKGROUND_REFRESH", "off"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain(sb.service_env().into_iter().map(|(k, v)| (k.to_owned(), v)))
    .collect();
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = JssdkConfig::from_env(&Env::from_pairs(pairs)).expect("test config");
    let state = JssdkState::build_with_clock(config, cache, clock)
        .await
        .expect("state builds");
    let app = jssdk_service::with_state(state.clone(), listener).expect("server starts");
    tokio::spawn(app.run_until_stopped());
    Instance { base, state }
}

pub fn client() -> reqwest::Client {
    shared::http_client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// GET, returning the status and the JSON body.
pub async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let res = client.get(url).send().await.expect("request sent");
    let status = res.status().as_u16();
    let body = res.json::<Value>().await.expect("JSON body");
    (status, body)
}

pub fn config_url(base: &str, page: &str) -> String {
    format!("{base}/api/wechat/jssdkConfig?url={}", percent_encode(page))
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Asserts a successful `wx.config` reply whose signature is what an
/// independent computation over the sandbox's current ticket gives.
pub fn assert_signed_with(body: &Value, ticket: &str, page: &str) {
    assert_eq!(body["code"], 0, "{body}");
    let data = &body["data"];
    assert_eq!(data["appId"], SANDBOX_OA_APPID);
    let timestamp = data["timestamp"].as_i64().expect("timestamp is a number");
    let nonce = data["nonceStr"].as_str().expect("nonceStr");
    assert!(!nonce.is_empty());
    let expected = jssdk_signature(ticket, nonce, timestamp, strip_fragment(page));
    assert_eq!(
        data["signature"], expected,
        "signature over the current ticket"
    );
}

pub fn current_ticket(sb: &Sandbox) -> String {
    sb.state()
        .current_jsapi_ticket(SANDBOX_OA_APPID)
        .expect("the sandbox issued a jsapi_ticket")
}

pub async fn wait_for_calls(sb: &Sandbox, path: &str, n: u64) {
    let state = sb.state();
    eventually(
        &format!("{n} call(s) to {path}"),
        Duration::from_secs(15),
        || {
            let state = state.clone();
            async move { state.calls(path) >= n }
        },
    )
    .await;
    assert_eq!(sb.state().calls(path), n, "exactly {n} call(s) to {path}");
}
