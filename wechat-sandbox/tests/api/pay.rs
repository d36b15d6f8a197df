use std::collections::BTreeMap;
use std::time::Duration;

use shared::sign::{SignType, verify_pay_sign};

use crate::common::*;
use wechat_sandbox::{
    PayOptions, SANDBOX_MCH_ID, SANDBOX_MCH_KEY, SANDBOX_MP_APPID, SANDBOX_OA_APPID, TradeState,
};

fn no_notify() -> PayOptions {
    PayOptions {
        notify: false,
        fail_first_deliveries: 0,
    }
}

fn assert_signed_success(reply: &BTreeMap<String, String>) {
    assert_eq!(reply["return_code"], "SUCCESS", "{reply:?}");
    assert!(
        verify_pay_sign(reply, SANDBOX_MCH_KEY),
        "reply sign: {reply:?}"
    );
    assert_eq!(reply["mch_id"], SANDBOX_MCH_ID);
    assert!(!reply["nonce_str"].is_empty());
}

fn assert_business_failure(reply: &BTreeMap<String, String>, err_code: &str, des: &str) {
    assert_signed_success(reply);
    assert_eq!(reply["result_code"], "FAIL", "{reply:?}");
    assert_eq!(reply["err_code"], err_code);
    assert_eq!(reply["err_code_des"], des);
}

fn query(out_trade_no: &str) -> BTreeMap<String, String> {
    map(&[
        ("appid", SANDBOX_MP_APPID),
        ("mch_id", SANDBOX_MCH_ID),
        ("nonce_str", "q1"),
        ("out_trade_no", out_trade_no),
    ])
}

#[tokio::test]
async fn md5_jsapi_order_is_accepted_and_the_reply_verifies() {
    let env = start().await;
    let reply = env
        .post_pay(
            "/pay/unifiedorder",
            &jsapi_order(&env.state, "T20240301001", 1),
            SignType::Md5,
        )
        .await;
    assert_signed_success(&reply);
    assert_eq!(reply["result_code"], "SUCCESS");
    assert_eq!(reply["return_msg"], "OK");
    assert_eq!(reply["appid"], SANDBOX_MP_APPID);
    assert_eq!(reply["trade_type"], "JSAPI");
    assert!(!reply.contains_key("sign_type"));
    let prepay = &reply["prepay_id"];
    assert!(prepay.starts_with("wx") && prepay.len() == 36, "{prepay}");

    let order = env.state.order("T20240301001").unwrap();
    assert_eq!(order.state, TradeState::NotPay);
    assert_eq!(order.total_fee, 1);
    assert_eq!(order.sign_type, "MD5");
    assert_eq!(&order.prepay_id, prepay);
    assert_eq!(order.notify_url, "http://127.0.0.1:9/api/pay/notify");

    let q = env
        .post_pay("/pay/orderquery", &query("T20240301001"), SignType::Md5)
        .await;
    assert_signed_success(&q);
    assert_eq!(q["trade_state"], "NOTPAY");
    assert_eq!(q["trade_state_desc"], "订单未支付");
    assert_eq!(q["out_trade_no"], "T20240301001");
}

#[tokio::test]
async fn hmac_sha256_native_order_gets_a_code_url() {
    let env = start().await;
    let mut fields = jsapi_order(&env.state, "N1", 990);
    fields.remove("openid");
    fields.insert("appid".into(), SANDBOX_OA_APPID.into());
    fields.insert("trade_type".into(), "NATIVE".into());
    fields.insert("product_id".into(), "sku-42".into());
    fields.insert("attach".into(), "门店=深圳".into());
    let reply = env
        .post_pay("/pay/unifiedorder", &fields, SignType::HmacSha256)
        .await;
    assert_signed_success(&reply);
    assert_eq!(reply["sign_type"], "HMAC-SHA256");
    assert_eq!(reply["result_code"], "SUCCESS");
    assert!(reply["code_url"].starts_with("weixin://wxpay/bizpayurl?pr="));
    assert_eq!(env.state.order("N1").unwrap().sign_type, "HMAC-SHA256");

    let mut q = query("N1");
    q.insert("appid".into(), SANDBOX_OA_APPID.into());
    let tid = env.state.pay_order("N1", no_notify()).unwrap();
    let q = env
        .post_pay("/pay/orderquery", &q, SignType::HmacSha256)
        .await;
    assert_signed_success(&q);
    assert_eq!(q["trade_state"], "SUCCESS");
    assert_eq!(q["transaction_id"], tid);
    assert_eq!(q["total_fee"], "990");
    assert_eq!(q["cash_fee"], "990");
    assert_eq!(q["fee_type"], "CNY");
    assert_eq!(q["attach"], "门店=深圳");
    assert_eq!(q["trade_type"], "NATIVE");
    // Nobody was named, so the first test user paid.
    assert_eq!(q["openid"], env.state.openid(SANDBOX_OA_APPID, "u1"));
    assert_eq!(q["time_end"].len(), 14);
}

#[tokio::test]
async fn gateway_failures_are_unsigned_return_code_fail() {
    let env = start().await;
    let fields = jsapi_order(&env.state, "G1", 100);

    let mut tampered = quick_signed(&fields);
    tampered.insert("total_fee".into(), "1".into());
    let reply = env
        .post_xml_raw("/pay/unifiedorder", shared::xml::map_to_xml(&tampered))
        .await;
    assert_eq!(
        reply,
        map(&[("return_code", "FAIL"), ("return_msg", "签名错误")])
    );

    let mut unsigned = fields.clone();
    unsigned.insert("sign".into(), String::new());
    let reply = env
        .post_xml_raw("/pay/unifiedorder", shared::xml::map_to_xml(&unsigned))
        .await;
    assert_eq!(reply["return_msg"], "签名错误");

    // A sign made with MD5 but declared HMAC-SHA256 does not verify.
    let mut mislabelled = quick_signed(&fields);
    mislabelled.insert("sign_type".into(), "HMAC-SHA256".into());
    let reply = env
        .post_xml_raw("/pay/unifiedorder", shared::xml::map_to_xml(&mislabelled))
        .await;
    assert_eq!(reply["return_msg"], "签名错误");

    let reply = env
        .post_xml_raw("/pay/unifiedorder", "this is not xml".into())
        .await;
    assert_eq!(
        reply,
        map(&[("return_code", "FAIL"), ("return_msg", "XML格式错误")])
    );

    let mut other_mch = fields.clone();
    other_mch.insert("mch_id".into(), "1230000109".into());
    let reply = env
        .post_pay("/pay/unifiedorder", &other_mch, SignType::Md5)
        .await;
    assert_eq!(reply["return_msg"], "mch_id参数格式错误");

    let mut other_app = fields.clone();
    other_app.insert("appid".into(), "wxd678efh567hg6787".into());
    let reply = env
        .post_pay("/pay/unifiedorder", &other_app, SignType::Md5)
        .await;
    assert_eq!(reply["return_msg"], "appid和mch_id不匹配");

    for name in [
        "body",
        "out_trade_no",
        "total_fee",
        "spbill_create_ip",
        "notify_url",
        "trade_type",
        "openid",
    ] {
        let mut f = fields.clone();
        f.remove(name);
        let reply = env.post_pay("/pay/unifiedorder", &f, SignType::Md5).await;
        assert_eq!(reply["return_code"], "FAIL", "{name}");
        assert_eq!(reply["return_msg"], format!("缺少参数{name}"));
    }
    let mut native = fields.clone();
    native.insert("trade_type".into(), "NATIVE".into());
    let reply = env
        .post_pay("/pay/unifiedorder", &native, SignType::Md5)
        .await;
    assert_eq!(reply["return_msg"], "缺少参数product_id");

    for (name, value) in [
        ("total_fee", "0"),
        ("total_fee", "1.00"),
        ("trade_type", "MICROPAY"),
    ] {
        let mut f = fields.clone();
        f.insert(name.into(), value.into());
        let reply = env.post_pay("/pay/unifiedorder", &f, SignType::Md5).await;
        assert_eq!(reply["return_code"], "FAIL", "{name}={value}");
        assert_eq!(reply["return_msg"], format!("{name}参数格式错误"));
    }
    assert_eq!(env.state.order("G1"), None);
}

fn quick_signed(fields: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    shared::xml::parse(signed_xml(fields, SignType::Md5).as_bytes(), 1 << 16).unwrap()
}

#[tokio::test]
async fn jsapi_openid_must_belong_to_the_app() {
    let env = start().await;
    let mut fields = jsapi_order(&env.state, "O1", 100);
    fields.insert("openid".into(), env.state.openid(SANDBOX_OA_APPID, "u1"));
    let reply = env
        .post_pay("/pay/unifiedorder", &fields, SignType::Md5)
        .await;
    assert_business_failure(&reply, "PARAM_ERROR", "appid和openid不匹配");
}

#[tokio::test]
async fn repeated_out_trade_no_follows_the_orders_state() {
    let env = start().await;
    let fields = jsapi_order(&env.state, "R1", 100);
    let first = env
        .post_pay("/pay/unifiedorder", &fields, SignType::Md5)
        .await;
    let again = env
        .post_pay("/pay/unifiedorder", &fields, SignType::HmacSha256)
        .await;
    assert_signed_success(&again);
    assert_eq!(again["result_code"], "SUCCESS");
    assert_eq!(again["prepay_id"], first["prepay_id"]);

    let mut changed = fields.clone();
    changed.insert("total_fee".into(), "101".into());
    let reply = env
        .post_pay("/pay/unifiedorder", &changed, SignType::Md5)
        .await;
    assert_business_failure(&reply, "OUT_TRADE_NO_USED", "商户订单号重复");

    env.state.pay_order("R1", no_notify()).unwrap();
    let reply = env
        .post_pay("/pay/unifiedorder", &fields, SignType::Md5)
        .await;
    assert_business_failure(&reply, "ORDERPAID", "该订单已支付");
    let close = env
        .post_pay("/pay/closeorder", &query("R1"), SignType::Md5)
        .await;
    assert_business_failure(&close, "ORDERPAID", "订单已支付，不能发起关单");

    let fields = jsapi_order(&env.state, "R2", 100);
    env.post_pay("/pay/unifiedorder", &fields, SignType::Md5)
        .await;
    let close = env
        .post_pay("/pay/closeorder", &query("R2"), SignType::Md5)
        .await;
    assert_signed_success(&close);
    assert_eq!(close["result_code"], "SUCCESS");
    assert_eq!(env.state.order("R2").unwrap().state, TradeState::Closed);
    let reply = env
        .post_pay("/pay/unifiedorder", &fields, SignType::Md5)
        .await;
    assert_business_failure(&reply, "ORDERCLOSED", "订单已关闭");
    let q = env
        .post_pay("/pay/orderquery", &query("R2"), SignType::Md5)
        .await;
    assert_eq!(q["trade_state"], "CLOSED");
    assert_eq!(
        env.state.pay_order("R2", no_notify()),
        Err("order closed".to_owned())
    );
    assert_eq!(
        env.state.pay_order("R1", no_notify()),
        Err("order already paid".to_owned())
    );
    assert_eq!(
        env.state.pay_order("R9", no_notify()),
        Err("order not found".to_owned())
    );
}

#[tokio::test]
async fn unknown_orders_do_not_exist() {
    let env = start().await;
    let q = env
        .post_pay("/pay/orderquery", &query("nope"), SignType::Md5)
        .await;
    assert_business_failure(&q, "ORDERNOTEXIST", "此交易订单号不存在");
    let mut by_tid = query("x");
    by_tid.remove("out_trade_no");
    by_tid.insert(
        "transaction_id".into(),
        "4200000000000000000000000000".into(),
    );
    let q = env
        .post_pay("/pay/orderquery", &by_tid, SignType::Md5)
        .await;
    assert_eq!(q["err_code"], "ORDERNOTEXIST");
    let c = env
        .post_pay("/pay/closeorder", &query("nope"), SignType::HmacSha256)
        .await;
    assert_eq!(c["result_code"], "FAIL");
    assert_eq!(c["err_code"], "ORDERNOTEXIST");
    assert!(verify_pay_sign(&c, SANDBOX_MCH_KEY));
}

#[tokio::test]
async fn orderquery_by_transaction_id() {
    let env = start().await;
    env.post_pay(
        "/pay/unifiedorder",
        &jsapi_order(&env.state, "Q1", 250),
        SignType::Md5,
    )
    .await;
    let tid = env.state.pay_order("Q1", no_notify()).unwrap();
    assert_eq!(tid.len(), 28);
    let mut by_tid = query("ignored");
    by_tid.remove("out_trade_no");
    by_tid.insert("transaction_id".into(), tid.clone());
    let q = env
        .post_pay("/pay/orderquery", &by_tid, SignType::Md5)
        .await;
    assert_signed_success(&q);
    assert_eq!(q["trade_state"], "SUCCESS");
    assert_eq!(q["trade_state_desc"], "支付成功");
    assert_eq!(q["out_trade_no"], "Q1");
    assert_eq!(q["openid"], env.state.openid(SANDBOX_MP_APPID, "u1"));
    assert_eq!(q["total_fee"], "250");
    let snapshot = env.state.order("Q1").unwrap();
    assert_eq!(snapshot.transaction_id.as_deref(), Some(tid.as_str()));
    assert_eq!(snapshot.time_end.as_deref(), Some(q["time_end"].as_str()));
}

#[tokio::test]
async fn time_expire_is_honoured() {
    let env = start().await;
    let beijing = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let expire = (env.state.now() + chrono::Duration::minutes(10))
        .with_timezone(&beijing)
        .format("%Y%m%d%H%M%S")
        .to_string();
    let mut fields = jsapi_order(&env.state, "E1", 100);
    fields.insert("time_expire".into(), expire.clone());
    let reply = env
        .post_pay("/pay/unifiedorder", &fields, SignType::Md5)
        .await;
    assert_eq!(reply["result_code"], "SUCCESS", "{reply:?}");
    assert_eq!(
        env.state.order("E1").unwrap().time_expire.as_deref(),
        Some(expire.as_str())
    );

    env.state.advance(Duration::from_secs(11 * 60));
    assert_eq!(
        env.state.pay_order("E1", no_notify()),
        Err("order expired".to_owned())
    );
    let q = env
        .post_pay("/pay/orderquery", &query("E1"), SignType::Md5)
        .await;
    assert_eq!(q["trade_state"], "CLOSED");

    let soon = (env.state.now() + chrono::Duration::minutes(1))
        .with_timezone(&beijing)
        .format("%Y%m%d%H%M%S")
        .to_string();
    let mut fields = jsapi_order(&env.state, "E2", 100);
    fields.insert("time_expire".into(), soon);
    let reply = env
        .post_pay("/pay/unifiedorder", &fields, SignType::Md5)
        .await;
    assert_eq!(reply["return_code"], "FAIL");
    assert_eq!(
        reply["return_msg"],
        "time_expire时间过短，刷卡至少1分钟，其他5分钟"
    );
}

#[tokio::test]
async fn mweb_orders_pay_through_the_sandbox_cashier() {
    let env = start().await;
    let mut fields = jsapi_order(&env.state, "H5-1", 1234);
    fields.remove("openid");
    fields.insert("appid".into(), SANDBOX_OA_APPID.into());
    fields.insert("trade_type".into(), "MWEB".into());
    fields.insert(
        "scene_info".into(),
        r#"{"h5_info":{"type":"Wap","wap_url":"https://shop.example","wap_name":"商城"}}"#.into(),
    );
    let reply = env
        .post_pay("/pay/unifiedorder", &fields, SignType::Md5)
        .await;
    assert_signed_success(&reply);
    let mweb = &reply["mweb_url"];
    assert!(
        mweb.starts_with(&format!("{}/sandbox/mweb?prepay_id=", env.base)),
        "{mweb}"
    );

    let page = env
        .http
        .get(mweb)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("确认支付"));
    assert!(page.contains("¥12.34"));

    let q = query_of(mweb);
    let res = env
        .http
        .post(env.url("/sandbox/mweb/pay"))
        .header("cookie", "sandbox_user=u2")
        .form(&[
            ("prepay_id", q["prepay_id"].as_str()),
            ("package", q["package"].as_str()),
            ("redirect_url", "https://shop.example/paid"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "https://shop.example/paid");
    let order = env.state.order("H5-1").unwrap();
    assert_eq!(order.state, TradeState::Success);
    assert_eq!(
        order.payer_openid,
        Some(env.state.openid(SANDBOX_OA_APPID, "u2"))
    );

    // A forged package does not pay anything.
    let res = env
        .http
        .post(env.url("/sandbox/mweb/pay"))
        .form(&[("prepay_id", q["prepay_id"].as_str()), ("package", "0")])
        .send()
        .await
        .unwrap();
    assert!(res.text().await.unwrap().contains("订单不存在或链接已失效"));
}
