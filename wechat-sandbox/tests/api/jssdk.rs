//! The JS-SDK stand-in: the script, `wx.config`'s signature check, the
//! `wx.chooseWXPay` paySign check and the JSAPI cashier.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use shared::sign::{SignType, jssdk_signature, pay_sign_pairs};

use crate::common::*;
use wechat_sandbox::{
    SANDBOX_MCH_KEY, SANDBOX_MP_APPID, SANDBOX_OA_APPID, SANDBOX_OA_SECRET, TradeState,
};

const PAGE: &str = "http://shop.test/pay/index.html?from=menu";

/// Fetches the official account's jsapi ticket the way jssdk-service does.
async fn oa_ticket(env: &Env) -> String {
    let token = env
        .get_json(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={SANDBOX_OA_APPID}&secret={SANDBOX_OA_SECRET}"
        ))
        .await;
    let token = token["access_token"].as_str().unwrap();
    let ticket = env
        .get_json(&format!(
            "/cgi-bin/ticket/getticket?access_token={token}&type=jsapi"
        ))
        .await;
    ticket["ticket"].as_str().unwrap().to_owned()
}

async fn verify(env: &Env, body: Value) -> String {
    let (status, v) = env.post_json("/sandbox/jssdk/verify", &body).await;
    assert_eq!(status, 200, "{v}");
    v["errMsg"].as_str().unwrap().to_owned()
}

fn config(appid: &str, ts: Value, nonce: &str, signature: &str, url: &str) -> Value {
    json!({ "appId": appid, "timestamp": ts, "nonceStr": nonce, "signature": signature, "url": url })
}

#[tokio::test]
async fn the_script_is_served_and_knows_where_the_sandbox_is() {
    let env = start().await;
    let res = env.get("/sandbox/jweixin.js").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "application/javascript; charset=utf-8"
    );
    let js = res.text().await.unwrap();
    assert!(
        js.contains(&format!("var SANDBOX = \"{}\";", env.base)),
        "the base URL is baked in"
    );
    assert!(!js.contains("__SANDBOX_BASE__"));
    assert!(js.contains("global.wx = global.jWeixin = wx;"));
    // Not counted as WeChat traffic.
    assert_eq!(env.state.calls("/sandbox/jweixin.js"), 0);
}

#[tokio::test]
async fn config_holds_only_for_the_current_ticket_and_the_page_url() {
    let env = start().await;
    // No ticket fetched yet: nothing can verify.
    let early = jssdk_signature("none", "n", 1, PAGE);
    assert_eq!(
        verify(&env, config(SANDBOX_OA_APPID, json!(1), "n", &early, PAGE)).await,
        "config:invalid signature"
    );

    let ticket = oa_ticket(&env).await;
    let ts = 1_764_000_000_i64;
    let sig = jssdk_signature(&ticket, "Wm3WZYTPz0wzccnW", ts, PAGE);
    let good = |url: &str| config(SANDBOX_OA_APPID, json!(ts), "Wm3WZYTPz0wzccnW", &sig, url);
    assert_eq!(verify(&env, good(PAGE)).await, "config:ok");
    // The fragment is not signed; a string timestamp and upper-case hex are accepted.
    assert_eq!(
        verify(&env, good(&format!("{PAGE}#/pay"))).await,
        "config:ok"
    );
    assert_eq!(
        verify(
            &env,
            config(
                SANDBOX_OA_APPID,
                json!(ts.to_string()),
                "Wm3WZYTPz0wzccnW",
                &sig.to_uppercase(),
                PAGE
            )
        )
        .await,
        "config:ok"
    );

    // Another page, another nonce, another timestamp, a flipped digit.
    assert_eq!(
        verify(&env, good("http://shop.test/other.html")).await,
        "config:invalid signature"
    );
    assert_eq!(
        verify(
            &env,
            config(SANDBOX_OA_APPID, json!(ts), "other", &sig, PAGE)
        )
        .await,
        "config:invalid signature"
    );
    assert_eq!(
        verify(
            &env,
            config(
                SANDBOX_OA_APPID,
                json!(ts + 1),
                "Wm3WZYTPz0wzccnW",
                &sig,
                PAGE
            )
        )
        .await,
        "config:invalid signature"
    );
    let mut flipped = sig.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    assert_eq!(
        verify(
            &env,
            config(
                SANDBOX_OA_APPID,
                json!(ts),
                "Wm3WZYTPz0wzccnW",
                &flipped,
                PAGE
            )
        )
        .await,
        "config:invalid signature"
    );
    assert_eq!(
        verify(
            &env,
            config(
                SANDBOX_OA_APPID,
                json!("soon"),
                "Wm3WZYTPz0wzccnW",
                &sig,
                PAGE
            )
        )
        .await,
        "config:invalid signature"
    );

    // A mini program has no JS-SDK; an unknown appid neither.
    for appid in [SANDBOX_MP_APPID, "wx0000000000000000", ""] {
        assert_eq!(
            verify(
                &env,
                config(appid, json!(ts), "Wm3WZYTPz0wzccnW", &sig, PAGE)
            )
            .await,
            "config:fail,Error: 系统错误，错误码：40013,invalid appid"
        );
    }
    assert_eq!(
        verify(&env, good("file:///etc/passwd")).await,
        "config:invalid url domain"
    );

    let (status, v) = env.post_json("/sandbox/jssdk/verify", &json!([1, 2])).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"], "body must be a JSON object");
}

#[tokio::test]
async fn the_page_routes_answer_cors_from_any_origin() {
    let env = start().await;
    for path in ["/sandbox/jssdk/verify", "/sandbox/jssdk/pay"] {
        let pre = env
            .http
            .request(reqwest::Method::OPTIONS, env.url(path))
            .header("origin", "http://127.0.0.1:8080")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .await
            .unwrap();
        assert_eq!(pre.status(), 200, "{path}");
        assert_eq!(
            pre.headers()["access-control-allow-origin"],
            "http://127.0.0.1:8080"
        );
        let methods = pre.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap();
        assert!(methods.contains("POST"), "{methods}");

        let res = env
            .http
            .post(env.url(path))
            .header("origin", "https://shop.example")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(
            res.headers()["access-control-allow-origin"],
            "https://shop.example"
        );
    }
    // The controls are not opened to pages.
    let res = env
        .http
        .post(env.url("/sandbox/reset"))
        .header("origin", "https://shop.example")
        .send()
        .await
        .unwrap();
    assert!(!res.headers().contains_key("access-control-allow-origin"));
}

/// An official-account JSAPI order by `u1`, placed over HTTP; returns its prepay_id.
async fn oa_order(env: &Env, out_trade_no: &str, total_fee: u64) -> String {
    let mut order = jsapi_order(&env.state, out_trade_no, total_fee);
    order.insert("appid".into(), SANDBOX_OA_APPID.into());
    order.insert("openid".into(), env.state.openid(SANDBOX_OA_APPID, "u1"));
    let reply = env
        .post_pay("/pay/unifiedorder", &order, SignType::Md5)
        .await;
    assert_eq!(reply["result_code"], "SUCCESS", "{reply:?}");
    reply["prepay_id"].clone()
}

/// What pay-service hands the page for `wx.chooseWXPay`, with the appId the
/// script adds from `wx.config`.
fn pay_params(prepay_id: &str, sign_type: SignType) -> BTreeMap<&'static str, String> {
    let package = format!("prepay_id={prepay_id}");
    let pairs = [
        ("appId", SANDBOX_OA_APPID.to_owned()),
        ("timeStamp", "1764000000".to_owned()),
        ("nonceStr", "e61463f8efa94090b1f366cccfbbb444".to_owned()),
        ("package", package),
        ("signType", sign_type.as_str().to_owned()),
    ];
    let sign = pay_sign_pairs(
        pairs.iter().map(|(k, v)| (*k, v.as_str())),
        SANDBOX_MCH_KEY,
        sign_type,
    );
    let mut p: BTreeMap<&'static str, String> = pairs.into_iter().collect();
    p.insert("paySign", sign);
    p
}

async fn choose_pay(env: &Env, params: &BTreeMap<&'static str, String>) -> Value {
    let (status, v) = env
        .post_json("/sandbox/jssdk/pay", &serde_json::to_value(params).unwrap())
        .await;
    assert_eq!(status, 200, "{v}");
    v
}

fn ticket_of(cashier_url: &str) -> String {
    query_of(cashier_url)["ticket"].clone()
}

async fn post_form(env: &Env, path: &str, ticket: &str) -> String {
    let res = env
        .http
        .post(env.url(path))
        .form(&[("ticket", ticket)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{path}");
    res.text().await.unwrap()
}

fn posted_err_msg(html: &str) -> String {
    let start = html
        .find("postMessage(")
        .expect("the page posts to its parent")
        + 12;
    let end = html[start..].find(",\"*\")").unwrap() + start;
    let v: Value = serde_json::from_str(&html[start..end]).unwrap();
    assert_eq!(v["source"], "wechat-sandbox");
    assert_eq!(v["kind"], "chooseWXPay");
    v["errMsg"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_valid_pay_sign_opens_the_cashier_and_confirming_pays_once() {
    for (no, sign_type) in [("JS1", SignType::Md5), ("JS2", SignType::HmacSha256)] {
        let env = start().await;
        let prepay = oa_order(&env, no, 1).await;
        let v = choose_pay(&env, &pay_params(&prepay, sign_type)).await;
        assert_eq!(v["errMsg"], "chooseWXPay:ok", "{v}");
        let cashier_url = v["cashierUrl"].as_str().unwrap();
        assert!(
            cashier_url.starts_with(&format!("{}/sandbox/jsapi/cashier?ticket=", env.base)),
            "{cashier_url}"
        );

        let page = env.http.get(cashier_url).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("¥0.01"), "{html}");
        assert!(html.contains("确认支付") && html.contains(">取消<"));
        assert!(html.contains(no));
        // Showing the cashier pays nothing.
        assert_eq!(env.state.order(no).unwrap().state, TradeState::NotPay);

        let ticket = ticket_of(cashier_url);
        let done = post_form(&env, "/sandbox/jsapi/cashier/confirm", &ticket).await;
        assert!(done.contains("支付成功"));
        assert_eq!(posted_err_msg(&done), "chooseWXPay:ok");
        let order = env.state.order(no).unwrap();
        assert_eq!(order.state, TradeState::Success);
        assert_eq!(
            order.payer_openid.as_deref(),
            Some(env.state.openid(SANDBOX_OA_APPID, "u1").as_str())
        );
        let paid_as = order.transaction_id.clone();

        // The ticket is spent: neither a second confirm nor the page works.
        let again = post_form(&env, "/sandbox/jsapi/cashier/confirm", &ticket).await;
        assert_eq!(posted_err_msg(&again), "chooseWXPay:fail, 支付链接已失效");
        let stale = env
            .http
            .get(cashier_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(posted_err_msg(&stale), "chooseWXPay:fail, 支付链接已失效");
        assert_eq!(env.state.order(no).unwrap().transaction_id, paid_as);

        // A paid order opens no cashier.
        let v = choose_pay(&env, &pay_params(&prepay, sign_type)).await;
        assert_eq!(v["errMsg"], "chooseWXPay:fail, 该订单已支付");
        assert!(v.get("cashierUrl").is_none());
    }
}

#[tokio::test]
async fn cancelling_leaves_the_order_unpaid_and_the_ticket_spent() {
    let env = start().await;
    let prepay = oa_order(&env, "JS3", 2).await;
    let v = choose_pay(&env, &pay_params(&prepay, SignType::Md5)).await;
    let ticket = ticket_of(v["cashierUrl"].as_str().unwrap());
    let cancelled = post_form(&env, "/sandbox/jsapi/cashier/cancel", &ticket).await;
    assert!(cancelled.contains("已取消支付"));
    assert_eq!(posted_err_msg(&cancelled), "chooseWXPay:cancel");
    let confirm = post_form(&env, "/sandbox/jsapi/cashier/confirm", &ticket).await;
    assert_eq!(posted_err_msg(&confirm), "chooseWXPay:fail, 支付链接已失效");
    let order = env.state.order("JS3").unwrap();
    assert_eq!(order.state, TradeState::NotPay);
    assert_eq!(order.transaction_id, None);
    assert!(env.state.deliveries("JS3").is_empty());
}

#[tokio::test]
async fn a_wrong_pay_sign_or_order_opens_no_cashier() {
    let env = start().await;
    let prepay = oa_order(&env, "JS4", 1).await;
    let good = pay_params(&prepay, SignType::Md5);
    let fail = |v: &Value, why: &str| {
        assert_eq!(v["errMsg"], format!("chooseWXPay:fail, {why}"), "{v}");
        assert!(v.get("cashierUrl").is_none());
    };

    let mut tampered = good.clone();
    tampered.insert("paySign", "0".repeat(32));
    fail(&choose_pay(&env, &tampered).await, "支付验证签名失败");
    // Signed as MD5 but declared HMAC-SHA256.
    let mut declared = good.clone();
    declared.insert("signType", "HMAC-SHA256".into());
    fail(&choose_pay(&env, &declared).await, "支付验证签名失败");
    let mut ts = good.clone();
    ts.insert("timeStamp", "1764000001".into());
    fail(&choose_pay(&env, &ts).await, "支付验证签名失败");
    let mut sign_type = good.clone();
    sign_type.insert("signType", "SHA1".into());
    fail(&choose_pay(&env, &sign_type).await, "signType 参数格式错误");
    let mut package = good.clone();
    package.insert("package", prepay.clone());
    fail(&choose_pay(&env, &package).await, "package 参数格式错误");
    let mut unknown = good.clone();
    unknown.insert("package", "prepay_id=wx000".into());
    fail(
        &choose_pay(&env, &unknown).await,
        "订单不存在或 prepay_id 已失效",
    );
    // Another app's order (the mini program's) is not this page's.
    let mut other_app = good.clone();
    other_app.insert("appId", SANDBOX_MP_APPID.into());
    fail(
        &choose_pay(&env, &other_app).await,
        "订单不存在或 prepay_id 已失效",
    );
    assert_eq!(env.state.order("JS4").unwrap().state, TradeState::NotPay);

    // A closed order neither.
    let close = map(&[
        ("appid", SANDBOX_OA_APPID),
        ("mch_id", wechat_sandbox::SANDBOX_MCH_ID),
        ("nonce_str", "c1"),
        ("out_trade_no", "JS4"),
    ]);
    let reply = env.post_pay("/pay/closeorder", &close, SignType::Md5).await;
    assert_eq!(reply["result_code"], "SUCCESS", "{reply:?}");
    fail(&choose_pay(&env, &good).await, "订单已关闭");
}

#[tokio::test]
async fn a_cashier_opened_before_the_order_closed_cannot_pay_it() {
    let env = start().await;
    let prepay = oa_order(&env, "JS5", 1).await;
    let v = choose_pay(&env, &pay_params(&prepay, SignType::Md5)).await;
    let ticket = ticket_of(v["cashierUrl"].as_str().unwrap());
    let close = map(&[
        ("appid", SANDBOX_OA_APPID),
        ("mch_id", wechat_sandbox::SANDBOX_MCH_ID),
        ("nonce_str", "c2"),
        ("out_trade_no", "JS5"),
    ]);
    let reply = env.post_pay("/pay/closeorder", &close, SignType::Md5).await;
    assert_eq!(reply["result_code"], "SUCCESS", "{reply:?}");
    let html = post_form(&env, "/sandbox/jsapi/cashier/confirm", &ticket).await;
    assert_eq!(posted_err_msg(&html), "chooseWXPay:fail, 订单已关闭");
    assert_eq!(env.state.order("JS5").unwrap().state, TradeState::Closed);
}
