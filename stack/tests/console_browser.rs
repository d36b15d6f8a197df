//! The operator console (`/admin/`) in a real browser: starts `stack`
//! in-process (the sandbox on, ports 0, a temporary SQLite file, an admin
//! token, a merchant webhook that refuses connections so events fail), pays
//! two orders through the sandbox, plants a discrepancy in the sandbox's bill
//! of their day (one order missing from it) and reconciles that day; then
//! runs `node e2e/console.mjs <url>`, which signs in (a wrong token first),
//! finds the first order, refunds 0.29 yuan of it with a lost answer and a
//! double click, sees the refund and the events, retries a failed event,
//! opens the day with the discrepancy and the charts, and signs out.
//! Afterwards the server and the sandbox must each hold exactly one refund of
//! 29 fen. Screenshots: target/console-screenshots/.
//!
//! Needs `/usr/bin/chromium`, `node` and `e2e/node_modules` (`cd e2e && npm ci`);
//! without them the browser test is skipped with the reason, unless CI=true.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod browser_support;

use std::time::Duration;

use chrono::{Duration as Span, NaiveDate};
use serde_json::{Value, json};
use shared::config::Env;
use stack::Stack;

use browser_support::{TempDir, missing_tools, run_node, workspace_root};
use wechat_sandbox::{PayOptions, SANDBOX_MP_APPID, SandboxState};

const ADMIN_TOKEN: &str = "console-browser-test-admin-token";
/// The walk takes seconds; this only bounds a hung browser.
const WALK_TIMEOUT: Duration = Duration::from_secs(300);
/// Bounds the waits for the stack's background work (notifications, the
/// webhook dispatcher).
const WAIT: Duration = Duration::from_secs(20);

/// A TCP port nothing listens on (bound, then released): the merchant
/// webhook there refuses every connection, so events fail at once.
fn refusing_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/wxpay-events")
}

/// Starts `stack` on ports 0 with its SQLite file in `dir`, plus `vars`.
async fn start_stack(dir: &TempDir, vars: &[(&str, String)]) -> Stack {
    let mut env = Env::from_pairs([
        ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("SANDBOX_ADDR", "127.0.0.1:0".to_owned()),
        (
            "DATABASE_URL",
            format!("sqlite://{}/stack.db", dir.0.display()),
        ),
    ]);
    env.extend(vars.iter().map(|(k, v)| (*k, v.clone())));
    Stack::start(env).await.expect("stack starts")
}

fn client() -> reqwest::Client {
    shared::http_client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

/// Status and JSON body of an admin request (Bearer token).
async fn admin(http: &reqwest::Client, method: reqwest::Method, url: &str) -> (u16, Value) {
    let res = http
        .request(method, url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// An order of `money` yuan placed by u1 and paid at the sandbox, its
/// notification acknowledged (PAID here).
async fn paid_order(
    http: &reqwest::Client,
    base: &str,
    sandbox: &SandboxState,
    money: &str,
) -> String {
    let code = sandbox.issue_js_code(SANDBOX_MP_APPID, "u1");
    let session: Value = http
        .get(format!("{base}/api/mp/getSession?code={code}"))
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
    let pay: Value = http
        .get(format!("{base}/api/mp/v2Pay?money={money}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let no = pay["data"]["outTradeNo"]
        .as_str()
        .unwrap_or_else(|| panic!("an order: {pay}"))
        .to_owned();
    sandbox.pay_order(&no, PayOptions::default()).unwrap();
    assert!(sandbox.wait_acknowledged(&no, WAIT).await, "{no} is PAID");
    no
}

/// The Beijing day the sandbox paid `no` on.
fn pay_day(sandbox: &SandboxState, no: &str) -> NaiveDate {
    let time_end = sandbox.order(no).unwrap().time_end.expect("paid");
    NaiveDate::parse_from_str(&time_end[..8], "%Y%m%d").unwrap()
}

/// Moves the sandbox clock past 09:00 (Beijing) of the day after `day`,
/// when WeChat's bill of `day` exists.
fn close_day(sandbox: &SandboxState, day: NaiveDate) {
    let ready = day.succ_opt().unwrap().and_hms_opt(9, 0, 1).unwrap();
    let now = (sandbox.now() + Span::hours(8)).naive_utc();
    if ready > now {
        sandbox.advance(Duration::from_secs(
            (ready - now).num_seconds().unsigned_abs() + 1,
        ));
    }
}

/// No browser needed: the pages, their headers, and nothing when no admin
/// token is configured.
#[actix_web::test]
async fn stack_serves_the_console_from_pay_service_with_a_strict_policy() {
    let dir = TempDir::new("console");
    let stack = start_stack(&dir, &[("ADMIN_TOKEN", ADMIN_TOKEN.to_owned())]).await;
    let base = format!("http://{}", stack.addr());
    tokio::spawn(stack.run_until_stopped());
    let http = client();

    let res = http.get(format!("{base}/admin")).send().await.unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(res.headers()["location"], "/admin/");

    let root = workspace_root();
    for (path, kind, file) in [
        (
            "/admin/",
            "text/html; charset=utf-8",
            "pay-service/console/index.html",
        ),
        (
            "/admin/console.js",
            "text/javascript; charset=utf-8",
            "pay-service/console/console.js",
        ),
        (
            "/admin/console.css",
            "text/css; charset=utf-8",
            "pay-service/console/console.css",
        ),
        // The demo page's own: one yuan → fen conversion for both pages.
        (
            "/admin/money.js",
            "text/javascript; charset=utf-8",
            "web/money.js",
        ),
        ("/admin/icon.svg", "image/svg+xml", "web/icon.svg"),
    ] {
        let res = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers().clone();
        assert_eq!(h["content-type"], kind, "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(
            h["content-security-policy"],
            "default-src 'self'; img-src 'self' data:; style-src 'self'; \
             script-src 'self'; frame-ancestors 'none'",
            "{path}: pay-service answers, not the web/ catch-all"
        );
        let body = res.text().await.unwrap();
        assert_eq!(
            body,
            std::fs::read_to_string(root.join(file)).unwrap(),
            "{path}"
        );
    }
    for path in ["/admin/nope.js", "/admin/app.js", "/admin/..%2FCargo.toml"] {
        let res = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }

    // The CSP allows no inline script or style, and the script builds the
    // page from data without parsing it as HTML.
    let html = std::fs::read_to_string(root.join("pay-service/console/index.html")).unwrap();
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "inline code in index.html"
    );
    assert_eq!(html.matches("<script").count(), 1);
    let js = std::fs::read_to_string(root.join("pay-service/console/console.js")).unwrap();
    for banned in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(!js.contains(banned), "console.js uses {banned}");
    }

    // Without an admin token the console does not exist.
    let dir = TempDir::new("console");
    let stack = start_stack(&dir, &[]).await;
    let base = format!("http://{}", stack.addr());
    tokio::spawn(stack.run_until_stopped());
    for path in ["/admin", "/admin/", "/admin/console.js"] {
        let res = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
}

#[actix_web::test]
async fn an_operator_signs_in_refunds_part_of_an_order_once_and_opens_a_planted_discrepancy() {
    let root = workspace_root();
    let missing = missing_tools(&root);
    if !missing.is_empty() {
        testkit::skip_or_fail(&format!("missing {}", missing.join(", ")));
        return;
    }
    let dir = TempDir::new("console");
    let stack = start_stack(
        &dir,
        &[
            ("ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
            ("MERCHANT_WEBHOOK_URL", refusing_url()),
            (
                "MERCHANT_WEBHOOK_SECRET",
                "console-test-webhook-secret".to_owned(),
            ),
            // Failed after one attempt, and not tried again during the walk.
            ("WEBHOOK_FAILED_AFTER", "1".to_owned()),
            ("WEBHOOK_RETRY_BASE_MS", "600000".to_owned()),
            ("WEBHOOK_INTERVAL_MS", "50".to_owned()),
        ],
    )
    .await;
    let base = format!("http://{}", stack.addr());
    let sandbox = stack.sandbox().expect("the sandbox is on").state();
    let sandbox_base = stack.sandbox().expect("the sandbox is on").base_url();
    tokio::spawn(stack.run_until_stopped());
    let http = client();

    // Two payments; the day's bill at the sandbox lacks the second.
    let order = paid_order(&http, &base, &sandbox, "1.00").await;
    let dropped = paid_order(&http, &base, &sandbox, "0.50").await;
    let day = pay_day(&sandbox, &order);
    assert_eq!(pay_day(&sandbox, &dropped), day, "both paid the same day");
    let res = http
        .post(format!("{sandbox_base}/sandbox/bills/{day}/discrepancies"))
        .json(&json!({"kind": "DROP_ROW", "outTradeNo": dropped}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    close_day(&sandbox, day);
    let (status, body) = admin(
        &http,
        reqwest::Method::POST,
        &format!("{base}/api/pay/admin/reconciliations?date={day}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["discrepancies"][0]["kind"], "MISSING_AT_WECHAT",
        "{body}"
    );
    // The order's paid event has failed (the webhook refuses) before the walk.
    let events_url = format!("{base}/api/pay/admin/events?status=failed");
    testkit::eventually("the paid event fails", WAIT, || {
        let (http, url, order) = (http.clone(), events_url.clone(), order.clone());
        async move {
            let (_, body) = admin(&http, reqwest::Method::GET, &url).await;
            body["data"]
                .as_array()
                .is_some_and(|l| l.iter().any(|e| e["outTradeNo"] == order.as_str()))
        }
    })
    .await;

    let out = root.join("target/console-screenshots");
    let vars = [
        ("CONSOLE_TOKEN", ADMIN_TOKEN.to_owned()),
        ("CONSOLE_ORDER", order.clone()),
        ("CONSOLE_MISSING", dropped.clone()),
        ("CONSOLE_DAY", day.to_string()),
    ];
    let output = run_node(&root, "e2e/console.mjs", &base, &out, &vars, WALK_TIMEOUT).await;
    println!(
        "--- e2e/console.mjs stdout\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    eprintln!(
        "--- e2e/console.mjs stderr\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "e2e/console.mjs failed ({}); screenshots in {}",
        output.status,
        out.display()
    );
    println!("screenshots: {}", out.display());

    // Two sends, one refund: here and at WeChat.
    let (status, body) = admin(
        &http,
        reqwest::Method::GET,
        &format!("{base}/api/pay/admin/orders/{order}/refunds"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let refunds = body["data"].as_array().unwrap();
    assert_eq!(refunds.len(), 1, "{body}");
    assert_eq!(refunds[0]["amountFen"], 29, "{body}");
    let at_wechat = sandbox.refunds_of(&order);
    assert_eq!(at_wechat.len(), 1, "{at_wechat:?}");
}
