//! `stack` on its embedded defaults: it answers health, routes every service's
//! paths on one port, and sends a browser to the sandbox's consent page.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

use shared::config::Env;
use stack::Stack;

struct Running {
    base: String,
    sandbox_base: String,
    sandbox: std::sync::Arc<wechat_sandbox::SandboxState>,
    nicknames: Vec<String>,
    _dir: TempDir,
}

/// A folder removed on drop, for the stack's SQLite file.
struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start() -> Running {
    start_with(&[]).await
}

async fn start_with(vars: &[(&str, &str)]) -> Running {
    let dir =
        std::env::temp_dir().join(format!("wxpay-stack-{}", shared::random::alphanumeric(12)));
    std::fs::create_dir_all(&dir).unwrap();
    let env = Env::from_pairs([
        ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("SANDBOX_ADDR", "127.0.0.1:0".to_owned()),
        (
            "DATABASE_URL",
            format!("sqlite://{}/stack.db", dir.display()),
        ),
    ]);
    let mut env = env;
    env.extend(vars.iter().copied());
    let stack = Stack::start(env).await.expect("stack starts");
    let base = format!("http://{}", stack.addr());
    let sandbox = stack.sandbox().expect("sandbox on by default");
    let sandbox_base = sandbox.base_url();
    let sandbox_state = sandbox.state();
    let nicknames = sandbox
        .state()
        .users()
        .iter()
        .map(|u| u.nickname.clone())
        .collect();
    tokio::spawn(stack.run_until_stopped());
    Running {
        base,
        sandbox_base,
        sandbox: sandbox_state,
        nicknames,
        _dir: TempDir(dir),
    }
}

fn client() -> reqwest::Client {
    shared::http_client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[actix_web::test]
async fn answers_health_and_metrics() {
    let s = start().await;
    let c = client();
    let health = c.get(format!("{}/healthz", s.base)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    assert_eq!(
        c.get(format!("{}/readyz", s.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = c
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("http_requests_total"), "{metrics}");
}

#[actix_web::test]
async fn unknown_paths_get_the_envelope_and_keep_the_request_id() {
    let s = start().await;
    let resp = client()
        .get(format!("{}/api/nope", s.base))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["x-request-id"], "trace-me-123");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], 1004);
    assert!(body["data"].is_null());
}

#[actix_web::test]
async fn every_service_answers_on_the_one_port() {
    let s = start().await;
    let c = client();
    // jssdk-service
    let page = format!("{}/index.html", s.base);
    let cfg: serde_json::Value = c
        .get(format!("{}/api/wechat/jssdkConfig", s.base))
        .query(&[("url", page.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cfg["code"], 0, "{cfg}");
    assert_eq!(cfg["data"]["appId"], wechat_sandbox::SANDBOX_OA_APPID);
    // pay-service: no session → 401/1002
    let pay = c
        .get(format!("{}/api/mp/v2Pay?money=0.01", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(pay.status(), 401);
    // auth-service: no session → 401/1002
    let me = c
        .get(format!("{}/api/auth/me", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
}

#[actix_web::test]
async fn login_leads_to_the_sandbox_consent_page() {
    let s = start().await;
    let c = client();
    let back = format!("{}/", s.base);
    let resp = c
        .get(format!("{}/api/wechat/redirect", s.base))
        .query(&[("url", back.as_str()), ("scope", "snsapi_userinfo")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{}/connect/oauth2/authorize?", s.sandbox_base)),
        "{location}"
    );
    let page = c.get(&location).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for nickname in &s.nicknames {
        assert!(
            html.contains(nickname.as_str()),
            "consent page lacks {nickname}"
        );
    }
}

#[tokio::test]
async fn the_sandbox_never_silently_replaces_real_wechat_settings() {
    let env = Env::from_pairs([
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("SANDBOX_ADDR", "127.0.0.1:0"),
        ("MCH_ID", "1900000109"),
        ("MCH_KEY", "a-real-looking-merchant-key-0123"),
    ]);
    let Err(err) = Stack::start(env).await else {
        panic!("stack started with real merchant settings and the sandbox on");
    };
    let message = err.to_string();
    assert!(message.contains("MCH_ID, MCH_KEY"), "{message}");
    assert!(message.contains("WXPAY_SANDBOX=off"), "{message}");
    assert!(!message.contains("a-real-looking"), "{message}");
}

/// A logout in auth-service ends the token for pay-service too: they share
/// the one cache that holds the revocations.
#[actix_web::test]
async fn a_logged_out_token_is_refused_by_pay_service_too() {
    let s = start().await;
    let c = client();
    let code = s
        .sandbox
        .issue_js_code(wechat_sandbox::SANDBOX_MP_APPID, "u1");
    let session: serde_json::Value = c
        .get(format!("{}/api/mp/getSession?code={code}", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["data"]["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    // Accepted by pay-service: no such order, but not 401.
    let order = format!("{}/api/pay/orders/NO_SUCH_ORDER_0001", s.base);
    let res = c.get(&order).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 404);

    let res = c
        .post(format!("{}/api/auth/logout", s.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = c.get(&order).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], 1002, "{body}");
}

/// The README's payment pays over APIv3 by default (RSA pay parameters,
/// `/v3/pay/transactions/jsapi`, a v3 notification acknowledged), and over
/// v2 with `PAY_API_VERSION=v2`.
#[actix_web::test]
async fn payments_go_over_v3_by_default_and_over_v2_on_request() {
    for (vars, sign_type, endpoint) in [
        (&[][..], "RSA", "/v3/pay/transactions/jsapi"),
        (&[("PAY_API_VERSION", "v2")][..], "MD5", "/pay/unifiedorder"),
    ] {
        let s = start_with(vars).await;
        let c = client();
        let code = s
            .sandbox
            .issue_js_code(wechat_sandbox::SANDBOX_MP_APPID, "u1");
        let session: serde_json::Value = c
            .get(format!("{}/api/mp/getSession?code={code}", s.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = session["data"]["token"]
            .as_str()
            .expect("a token")
            .to_owned();
        let pay: serde_json::Value = c
            .get(format!("{}/api/mp/v2Pay?money=0.01", s.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(pay["code"], 0, "{pay}");
        assert_eq!(pay["data"]["signType"], sign_type, "{pay}");
        assert_eq!(s.sandbox.calls(endpoint), 1, "{vars:?}");
        let no = pay["data"]["outTradeNo"].as_str().unwrap().to_owned();
        s.sandbox
            .pay_order(&no, wechat_sandbox::PayOptions::default())
            .unwrap();
        assert!(
            s.sandbox
                .wait_acknowledged(&no, std::time::Duration::from_secs(20))
                .await,
            "{vars:?}"
        );
        let order: serde_json::Value = c
            .get(format!("{}/api/pay/orders/{no}", s.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(order["data"]["status"], "PAID", "{order}");
    }
}
