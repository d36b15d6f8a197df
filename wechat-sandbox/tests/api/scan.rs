//! Scanning a NATIVE order's QR code in the sandbox: `/sandbox/native`.

use shared::sign::SignType;

use crate::common::*;
use wechat_sandbox::{SANDBOX_MCH_ID, SANDBOX_OA_APPID, TradeState};

/// Places a NATIVE order over HTTP; returns its code_url.
async fn native_order(env: &Env, out_trade_no: &str, total_fee: u64) -> String {
    let order = map(&[
        ("appid", SANDBOX_OA_APPID),
        ("mch_id", SANDBOX_MCH_ID),
        ("nonce_str", "n1"),
        ("body", "扫码商品"),
        ("out_trade_no", out_trade_no),
        ("total_fee", &total_fee.to_string()),
        ("spbill_create_ip", "127.0.0.1"),
        ("notify_url", "http://127.0.0.1:9/api/pay/notify"),
        ("trade_type", "NATIVE"),
        ("product_id", "p1"),
    ]);
    let reply = env
        .post_pay("/pay/unifiedorder", &order, SignType::Md5)
        .await;
    assert_eq!(reply["result_code"], "SUCCESS", "{reply:?}");
    reply["code_url"].clone()
}

async fn scan_page(env: &Env, code_url: &str, cookie: Option<&str>) -> String {
    let mut req = env.http.get(env.url(&format!(
        "/sandbox/native?{}",
        query_string(&[("code_url", code_url)])
    )));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

async fn confirm(env: &Env, code_url: &str, cookie: Option<&str>) -> String {
    let mut req = env
        .http
        .post(env.url("/sandbox/native/pay"))
        .form(&[("code_url", code_url)]);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

#[tokio::test]
async fn scanning_shows_the_order_and_confirming_pays_as_the_browsers_user() {
    let env = start().await;
    let code_url = native_order(&env, "N1", 4).await;
    assert!(
        code_url.starts_with("weixin://wxpay/bizpayurl?pr="),
        "{code_url}"
    );

    let html = scan_page(&env, &code_url, Some("sandbox_user=u2")).await;
    assert!(html.contains("¥0.04"), "{html}");
    assert!(html.contains("付款用户：李小龙"));
    assert!(html.contains("确认支付"));
    assert_eq!(env.state.order("N1").unwrap().state, TradeState::NotPay);

    let done = confirm(&env, &code_url, Some("sandbox_user=u2")).await;
    assert!(done.contains("支付成功"), "{done}");
    let order = env.state.order("N1").unwrap();
    assert_eq!(order.state, TradeState::Success);
    assert_eq!(
        order.payer_openid.as_deref(),
        Some(env.state.openid(SANDBOX_OA_APPID, "u2").as_str())
    );

    // Paid: neither the page nor a second confirm pays again.
    let again = scan_page(&env, &code_url, None).await;
    assert!(again.contains("该订单已支付"));
    let twice = confirm(&env, &code_url, None).await;
    assert!(twice.contains("order already paid"), "{twice}");
    assert_eq!(
        env.state.order("N1").unwrap().transaction_id,
        order.transaction_id
    );
}

#[tokio::test]
async fn without_a_sandbox_user_the_first_one_pays_and_unknown_codes_pay_nothing() {
    let env = start().await;
    let code_url = native_order(&env, "N2", 1).await;
    let html = scan_page(&env, &code_url, Some("sandbox_user=nobody")).await;
    assert!(html.contains("付款用户：张三"), "{html}");
    confirm(&env, &code_url, None).await;
    assert_eq!(
        env.state.order("N2").unwrap().payer_openid.as_deref(),
        Some(env.state.openid(SANDBOX_OA_APPID, "u1").as_str())
    );

    for bad in ["weixin://wxpay/bizpayurl?pr=nope", ""] {
        assert!(
            scan_page(&env, bad, None)
                .await
                .contains("二维码已失效或订单不存在")
        );
        assert!(
            confirm(&env, bad, None)
                .await
                .contains("二维码已失效或订单不存在")
        );
    }
}
