//! Refunds over the TLS listener (client certificate required), refundquery,
//! and refund notifications with an encrypted `req_info`.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use shared::sign::{SignType, verify_pay_sign};
use wechat_sandbox::{
    PayOptions, RefundStatus, SANDBOX_MCH_ID, SANDBOX_MCH_KEY, SANDBOX_MP_APPID, TestPki,
    TradeState, decrypt_req_info,
};

use crate::common::*;

const WAIT: Duration = Duration::from_secs(10);

fn tls_client(pki: &TestPki, with_identity: bool) -> reqwest::Client {
    let mut b = shared::http_client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap());
    if with_identity {
        let pem = format!("{}{}", pki.client_cert_pem, pki.client_key_pem);
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

async fn start_tls() -> (Env, TestPki, String) {
    let pki = TestPki::generate(SANDBOX_MCH_ID).unwrap();
    let tls = pki.sandbox_tls("127.0.0.1:0".parse().unwrap());
    let env = start_with(|c| c.tls = Some(tls)).await;
    let tls_base = env.sandbox.tls_base_url().expect("TLS listener");
    (env, pki, tls_base)
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    fields: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let res = client
        .post(url)
        .body(signed_xml(fields, SignType::Md5))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    shared::xml::parse(&res.bytes().await.unwrap(), 1 << 16).unwrap()
}

fn refund_req(
    no: &str,
    out_refund_no: &str,
    total: u64,
    fee: u64,
    notify: &str,
) -> BTreeMap<String, String> {
    map(&[
        ("appid", SANDBOX_MP_APPID),
        ("mch_id", SANDBOX_MCH_ID),
        ("nonce_str", "r1"),
        ("out_trade_no", no),
        ("out_refund_no", out_refund_no),
        ("total_fee", &total.to_string()),
        ("refund_fee", &fee.to_string()),
        ("notify_url", notify),
    ])
}

async fn paid_order(env: &Env, no: &str, fee: u64) {
    let reply = env
        .post_pay(
            "/pay/unifiedorder",
            &jsapi_order(&env.state, no, fee),
            SignType::Md5,
        )
        .await;
    assert_eq!(reply["result_code"], "SUCCESS", "{reply:?}");
    env.state
        .pay_order(
            no,
            PayOptions {
                notify: false,
                fail_first_deliveries: 0,
            },
        )
        .unwrap();
}

/// A merchant endpoint that records refund notifications and acknowledges them.
async fn receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/api/pay/refund-notify",
        listener.local_addr().unwrap()
    );
    let server = HttpServer::new(move || {
        let tx = tx.clone();
        App::new().route(
            "/api/pay/refund-notify",
            web::post().to(move |body: String| {
                let tx = tx.clone();
                async move {
                    tx.send(body).unwrap();
                    HttpResponse::Ok()
                        .body("<xml><return_code><![CDATA[SUCCESS]]></return_code></xml>")
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (url, rx)
}

#[tokio::test]
async fn refunds_need_the_client_certificate() {
    let (env, pki, tls_base) = start_tls().await;
    paid_order(&env, "RF1", 300).await;
    let req = refund_req("RF1", "R1", 300, 100, "http://127.0.0.1:9/n");

    // Plain HTTP: refused at the gateway level, nothing refunded.
    let reply = env
        .post_pay("/secapi/pay/refund", &req, SignType::Md5)
        .await;
    assert_eq!(reply["return_code"], "FAIL");
    // TLS without a client certificate: the handshake fails.
    let err = tls_client(&pki, false)
        .post(format!("{tls_base}/secapi/pay/refund"))
        .body(signed_xml(&req, SignType::Md5))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    assert!(env.state.refunds_of("RF1").is_empty());

    let reply = post(
        &tls_client(&pki, true),
        &format!("{tls_base}/secapi/pay/refund"),
        &req,
    )
    .await;
    assert_eq!(reply["return_code"], "SUCCESS", "{reply:?}");
    assert_eq!(reply["result_code"], "SUCCESS", "{reply:?}");
    assert!(verify_pay_sign(&reply, SANDBOX_MCH_KEY));
    assert_eq!(reply["refund_fee"], "100");
    assert_eq!(reply["out_refund_no"], "R1");
    assert_eq!(env.state.order("RF1").unwrap().state, TradeState::Refund);
    assert_eq!(
        env.state.refund("R1").unwrap().status,
        RefundStatus::Success
    );
}

#[tokio::test]
async fn refunds_never_exceed_the_paid_amount_and_repeat_idempotently() {
    let (env, pki, tls_base) = start_tls().await;
    paid_order(&env, "RF2", 300).await;
    let client = tls_client(&pki, true);
    let url = format!("{tls_base}/secapi/pay/refund");
    let notify = "http://127.0.0.1:9/n";
    let first = post(&client, &url, &refund_req("RF2", "A", 300, 200, notify)).await;
    assert_eq!(first["result_code"], "SUCCESS");
    let again = post(&client, &url, &refund_req("RF2", "A", 300, 200, notify)).await;
    assert_eq!(again["refund_id"], first["refund_id"]);
    let over = post(&client, &url, &refund_req("RF2", "B", 300, 101, notify)).await;
    assert_eq!(
        (over["result_code"].as_str(), over["err_code"].as_str()),
        ("FAIL", "ERROR")
    );
    let rest = post(&client, &url, &refund_req("RF2", "C", 300, 100, notify)).await;
    assert_eq!(rest["result_code"], "SUCCESS");
    let reused = post(&client, &url, &refund_req("RF2", "A", 300, 50, notify)).await;
    assert_eq!(reused["err_code"], "PARAM_ERROR");
    let wrong_total = post(&client, &url, &refund_req("RF2", "D", 299, 1, notify)).await;
    assert_eq!(wrong_total["result_code"], "FAIL");

    // refundquery lists both refunds, on the plain listener too.
    let q = map(&[
        ("appid", SANDBOX_MP_APPID),
        ("mch_id", SANDBOX_MCH_ID),
        ("nonce_str", "q"),
        ("out_trade_no", "RF2"),
    ]);
    let reply = env.post_pay("/pay/refundquery", &q, SignType::Md5).await;
    assert_eq!(reply["result_code"], "SUCCESS", "{reply:?}");
    assert!(verify_pay_sign(&reply, SANDBOX_MCH_KEY));
    assert_eq!(reply["refund_count"], "2");
    assert_eq!(reply["out_refund_no_0"], "A");
    assert_eq!(reply["refund_fee_0"], "200");
    assert_eq!(reply["refund_status_0"], "SUCCESS");
    assert_eq!(reply["out_refund_no_1"], "C");
    let mut missing = q.clone();
    missing.remove("out_trade_no");
    missing.insert("out_refund_no".into(), "nope".into());
    let reply = env
        .post_pay("/pay/refundquery", &missing, SignType::Md5)
        .await;
    assert_eq!(reply["err_code"], "REFUNDNOTEXIST");
}

#[tokio::test]
async fn held_refunds_stay_processing_then_notify_encrypted() {
    let (env, pki, tls_base) = start_tls().await;
    let (notify_url, mut received) = receiver().await;
    paid_order(&env, "RF3", 500).await;
    env.state.hold_refunds(true);
    let reply = post(
        &tls_client(&pki, true),
        &format!("{tls_base}/secapi/pay/refund"),
        &refund_req("RF3", "H1", 500, 500, &notify_url),
    )
    .await;
    assert_eq!(reply["result_code"], "SUCCESS");
    let q = map(&[
        ("appid", SANDBOX_MP_APPID),
        ("mch_id", SANDBOX_MCH_ID),
        ("nonce_str", "q"),
        ("out_refund_no", "H1"),
    ]);
    let reply = env.post_pay("/pay/refundquery", &q, SignType::Md5).await;
    assert_eq!(reply["refund_status_0"], "PROCESSING");

    env.state
        .complete_refund("H1", RefundStatus::Success, true)
        .unwrap();
    assert!(env.state.wait_refund_acknowledged("H1", WAIT).await);
    let body = received.recv().await.unwrap();
    let outer = shared::xml::parse(body.as_bytes(), 1 << 16).unwrap();
    assert_eq!(outer["return_code"], "SUCCESS");
    assert_eq!(outer["mch_id"], SANDBOX_MCH_ID);
    assert_eq!(outer["appid"], SANDBOX_MP_APPID);
    assert!(!outer.contains_key("sign"));
    let inner = decrypt_req_info(SANDBOX_MCH_KEY, &outer["req_info"]).unwrap();
    assert!(inner.starts_with("<root>"), "{inner}");
    // shared::xml reads <xml> documents; WeChat wraps this one in <root>.
    let as_xml = inner
        .replacen("<root>", "<xml>", 1)
        .replace("</root>", "</xml>");
    let inner = shared::xml::parse(as_xml.as_bytes(), 1 << 16).unwrap();
    assert_eq!(inner["out_refund_no"], "H1");
    assert_eq!(inner["out_trade_no"], "RF3");
    assert_eq!(inner["refund_fee"], "500");
    assert_eq!(inner["total_fee"], "500");
    assert_eq!(inner["refund_status"], "SUCCESS");
    assert_eq!(inner["success_time"].len(), 19);
    assert!(
        decrypt_req_info("another-key", &outer["req_info"])
            .is_none_or(|s| s != inner["out_refund_no"])
    );
    assert_eq!(
        env.state
            .complete_refund("H1", RefundStatus::RefundClose, false)
            .unwrap_err(),
        "refund is already SUCCESS"
    );
}
