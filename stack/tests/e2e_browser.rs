//! The demo page (`web/`) in a real browser: starts `stack` in-process (the
//! sandbox on, ports 0, a temporary SQLite file) and runs `node e2e/flow.mjs
//! <url>`, which drives headless Chromium through login on the consent page,
//! wx.config and share, a JSAPI payment confirmed in the sandbox cashier, one
//! cancelled, MWEB and NATIVE payments, and a tampered wx.config signature,
//! once over APIv3 (the default) and once with `PAY_API_VERSION=v2`.
//! Then the sandbox's own records must agree with what the page showed.
//!
//! Needs `/usr/bin/chromium`, `node` and `e2e/node_modules` (`cd e2e && npm ci`);
//! without them it is skipped with the reason, unless CI=true.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod browser_support;

use std::path::Path;
use std::time::Duration;

use shared::config::Env;
use stack::Stack;

use browser_support::{TempDir, missing_tools, run_node, workspace_root};
use wechat_sandbox::{PayApi, TradeState};

/// The flow takes seconds; this only bounds a hung browser.
const FLOW_TIMEOUT: Duration = Duration::from_secs(300);
/// Notifications retry after 15 s, 15 s, 30 s… of sandbox time: ten times
/// faster here, yet slow enough that the 30-minute orders pay-service places
/// do not expire on the sandbox clock during the run.
const TIME_SCALE: &str = "10";

/// The `ORDERS {…}` line flow.mjs prints last.
fn orders_of(stdout: &str) -> serde_json::Value {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ORDERS "))
        .expect("flow.mjs prints the orders it placed");
    serde_json::from_str(line).expect("the ORDERS line is JSON")
}

/// Starts `stack` on ports 0 with its SQLite file in `dir`.
async fn start_stack(dir: &TempDir) -> Stack {
    start_stack_with(dir, &[]).await
}

/// As [`start_stack`], plus `vars` (e.g. `PAY_API_VERSION`).
async fn start_stack_with(dir: &TempDir, vars: &[(&str, &str)]) -> Stack {
    let mut env = Env::from_pairs([
        ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("SANDBOX_ADDR", "127.0.0.1:0".to_owned()),
        (
            "DATABASE_URL",
            format!("sqlite://{}/stack.db", dir.0.display()),
        ),
        ("SANDBOX_TIME_SCALE", TIME_SCALE.to_owned()),
    ]);
    env.extend(vars.iter().copied());
    Stack::start(env).await.expect("stack starts")
}

/// No browser needed: the page and its JS-SDK stand-in are where it looks.
#[actix_web::test]
async fn stack_serves_the_page_and_sends_it_to_the_sandboxs_jssdk() {
    let dir = TempDir::new("e2e");
    let stack = start_stack(&dir).await;
    let base = format!("http://{}", stack.addr());
    let sandbox_base = stack.sandbox().expect("sandbox on").base_url();
    tokio::spawn(stack.run_until_stopped());
    let http = shared::http_client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();

    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await.unwrap();
    assert!(html.contains("<title>wxpay 演示"), "{html}");
    assert!(html.contains(r#"<script type="module" src="app.js"></script>"#));
    for (file, kind) in [
        ("app.js", "javascript"),
        ("money.js", "javascript"),
        ("style.css", "text/css"),
    ] {
        let res = http.get(format!("{base}/{file}")).send().await.unwrap();
        assert_eq!(res.status(), 200, "{file}");
        let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.contains(kind), "{file}: {ct}");
    }

    let js = http
        .get(format!("{base}/sandbox/jweixin.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 302);
    let location = js.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, format!("{sandbox_base}/sandbox/jweixin.js"));
    let script = http.get(&location).send().await.unwrap();
    assert_eq!(script.status(), 200);
    let script = script.text().await.unwrap();
    assert!(script.contains(&format!("var SANDBOX = \"{sandbox_base}\";")));
    // The other /sandbox/ paths are the sandbox's own, not the stack's.
    let other = http
        .get(format!("{base}/sandbox/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
}

/// The flow over APIv3 (the stack's default: RSA pay parameters, v3
/// notifications) and over v2 (`PAY_API_VERSION=v2`).
#[actix_web::test]
async fn the_demo_page_logs_in_configures_the_jssdk_and_pays_in_a_real_browser() {
    let root = workspace_root();
    let missing = missing_tools(&root);
    if !missing.is_empty() {
        let reason = format!("missing {}", missing.join(", "));
        testkit::skip_or_fail(&reason);
        return;
    }
    walk(&root, &[], PayApi::V3).await;
    walk(&root, &[("PAY_API_VERSION", "v2")], PayApi::V2).await;
}

async fn walk(root: &Path, vars: &[(&str, &str)], api: PayApi) {
    let dir = TempDir::new("e2e");
    let stack = start_stack_with(&dir, vars).await;
    let url = format!("http://{}", stack.addr());
    let sandbox = stack
        .sandbox()
        .expect("the sandbox is on by default")
        .state();
    tokio::spawn(stack.run_until_stopped());

    let out = root.join("target/e2e");
    let output = run_node(root, "e2e/flow.mjs", &url, &out, &[], FLOW_TIMEOUT).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("--- e2e/flow.mjs stdout\n{stdout}");
    eprintln!(
        "--- e2e/flow.mjs stderr\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "e2e/flow.mjs failed ({}); screenshots in {}",
        output.status,
        out.display()
    );

    // What the page showed is what the sandbox (WeChat) recorded.
    let orders = orders_of(&stdout);
    for (key, fen) in [
        ("threeClicks", 1),
        ("jsapiPaid", 1),
        ("mwebPaid", 3),
        ("nativePaid", 4),
    ] {
        let no = orders[key].as_str().expect(key);
        let order = sandbox.order(no).expect(key);
        assert_eq!(order.state, TradeState::Success, "{key}");
        assert_eq!(order.api, api, "{key}");
        assert_eq!(order.total_fee, fen, "{key}");
        // Without a sandbox_user cookie the sandbox logs in its first user,
        // u1 (张三), who then allows the userinfo login: u1 paid every one.
        assert_eq!(
            order.payer_openid.as_deref(),
            Some(sandbox.openid(&order.appid, "u1").as_str()),
            "{key}"
        );
        assert!(
            sandbox.wait_acknowledged(no, Duration::from_secs(10)).await,
            "{key}: pay-service acknowledged the notification"
        );
    }
    let cancelled = orders["jsapiCancelled"].as_str().unwrap();
    let order = sandbox.order(cancelled).unwrap();
    assert_eq!(order.state, TradeState::NotPay);
    assert_eq!(order.total_fee, 2);
    assert!(sandbox.deliveries(cancelled).is_empty());
}
