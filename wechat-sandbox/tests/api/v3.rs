//! WeChat Pay APIv3: signed requests, signed answers in each signing mode,
//! WeChat's error bodies, v3 notifications (payments, refunds, SIGNTEST
//! probes), certificate download and RSA paySign, checked with
//! `shared::wechatpay_v3` (itself checked against openssl and Python).

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use shared::wechatpay_v3::{
    ApiV3Key, CertificatesResponse, MerchantSigner, Notification, PlatformCertificate, PublicKey,
    SignedMessage, V3Error, Verifier,
};
use wechat_sandbox::{
    PayApi, PayOptions, SANDBOX_MCH_API_V3_KEY, SANDBOX_MCH_ID, SANDBOX_MP_APPID, SANDBOX_OA_APPID,
    SignMode, TradeState,
};

use crate::common::*;

const WAIT: Duration = Duration::from_secs(20);

/// A v3 answer: status, the four `Wechatpay-*` headers, body.
struct Answer {
    status: u16,
    serial: String,
    timestamp: String,
    nonce: String,
    signature: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn signed(&self) -> SignedMessage<'_> {
        SignedMessage {
            serial: &self.serial,
            timestamp: &self.timestamp,
            nonce: &self.nonce,
            signature: &self.signature,
            body: &self.body,
        }
    }

    /// WeChat's `{code, message}` with this status.
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        let body = self.json();
        assert_eq!(body["code"], code, "{body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
}

fn header(headers: &reqwest::header::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn signer(env: &Env) -> MerchantSigner {
    let keys = env.state.v3_keys();
    MerchantSigner::from_pem(
        SANDBOX_MCH_ID,
        keys.merchant_serial_no,
        &keys.merchant.key_pem,
    )
    .unwrap()
}

/// Sends a request with `authorization` (None: no header).
async fn send(
    env: &Env,
    method: &str,
    path: &str,
    body: &str,
    authorization: Option<String>,
) -> Answer {
    let mut req = env
        .http
        .request(method.parse().unwrap(), env.url(path))
        .header("accept", "application/json");
    if !body.is_empty() {
        req = req
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let res = req.send().await.unwrap();
    let h = res.headers().clone();
    Answer {
        status: res.status().as_u16(),
        serial: header(&h, "wechatpay-serial"),
        timestamp: header(&h, "wechatpay-timestamp"),
        nonce: header(&h, "wechatpay-nonce"),
        signature: header(&h, "wechatpay-signature"),
        body: res.bytes().await.unwrap().to_vec(),
    }
}

/// A request signed by the merchant, as pay-service will make it.
async fn call(env: &Env, method: &str, path: &str, body: Option<&Value>) -> Answer {
    let text = body.map(Value::to_string).unwrap_or_default();
    let auth = signer(env).authorization(method, path, &text);
    send(env, method, path, &text, Some(auth)).await
}

async fn set_mode(env: &Env, mode: &str) {
    let (status, body) = env
        .post_json("/sandbox/v3/mode", &json!({ "mode": mode }))
        .await;
    assert_eq!((status, body["mode"].as_str()), (200, Some(mode)));
}

fn jsapi_body(env: &Env, no: &str, total: i64, notify_url: &str) -> Value {
    json!({
        "appid": SANDBOX_MP_APPID,
        "mchid": SANDBOX_MCH_ID,
        "description": "测试商品-会员月卡",
        "out_trade_no": no,
        "notify_url": notify_url,
        "amount": { "total": total, "currency": "CNY" },
        "payer": { "openid": env.state.openid(SANDBOX_MP_APPID, "u1") },
    })
}

const NOWHERE: &str = "http://127.0.0.1:9/api/pay/v3/notify";

async fn place(env: &Env, no: &str, total: i64, notify_url: &str) -> Answer {
    let body = jsapi_body(env, no, total, notify_url);
    call(env, "POST", "/v3/pay/transactions/jsapi", Some(&body)).await
}

#[actix_web::test]
async fn answers_are_signed_with_the_key_each_mode_names() {
    let env = start().await;
    let keys = env.state.v3_keys();
    let both = env.state.v3_verifier();
    let platform_only = Verifier::new()
        .with_certificate(PlatformCertificate::from_pem(&keys.platform_cert_pem).unwrap());
    let public_only = Verifier::new().with_public_key(
        keys.public_key_id.clone(),
        PublicKey::from_pem(&keys.public_key_pem).unwrap(),
    );

    set_mode(&env, "platform").await;
    let a = place(&env, "V3M1", 100, NOWHERE).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert!(a.json()["prepay_id"].as_str().unwrap().starts_with("wx"));
    assert_eq!(a.serial, keys.platform_serial_no);
    platform_only.verify(&a.signed()).unwrap();

    set_mode(&env, "public_key").await;
    let a = place(&env, "V3M2", 100, NOWHERE).await;
    assert_eq!(a.serial, keys.public_key_id);
    assert!(a.serial.starts_with("PUB_KEY_ID_"));
    public_only.verify(&a.signed()).unwrap();
    // The serial is not decoration: the other key does not verify it.
    let renamed = SignedMessage {
        serial: &keys.platform_serial_no,
        ..a.signed()
    };
    assert_eq!(both.verify(&renamed), Err(V3Error::BadSignature));

    set_mode(&env, "switch").await;
    let mut serials = Vec::new();
    for no in ["V3M3", "V3M4", "V3M5"] {
        let a = place(&env, no, 100, NOWHERE).await;
        both.verify(&a.signed()).unwrap();
        serials.push(a.serial);
    }
    assert_ne!(serials[0], serials[1]);
    assert_eq!(serials[0], serials[2]);

    let (status, _) = env
        .post_json("/sandbox/v3/mode", &json!({ "mode": "rsa" }))
        .await;
    assert_eq!(status, 400);
    env.state.set_v3_sign_mode(SignMode::Platform);
    assert_eq!(env.get_json("/sandbox/v3").await["mode"], "platform");
}

#[actix_web::test]
async fn unsigned_forged_or_stale_requests_get_401_sign_error() {
    let env = start().await;
    let verifier = env.state.v3_verifier();
    let path = "/v3/pay/transactions/jsapi";
    let body = jsapi_body(&env, "V3S1", 100, NOWHERE).to_string();
    let signer = signer(&env);
    let now = chrono::Utc::now().timestamp();

    let unsigned = send(&env, "POST", path, &body, None).await;
    unsigned.assert_error(401, "SIGN_ERROR");
    // Error answers are signed too.
    verifier.verify(&unsigned.signed()).unwrap();

    // Signed over another body (a changed amount).
    let other = body.replace("\"total\":100", "\"total\":1");
    assert_ne!(other, body);
    let forged = signer.authorization("POST", path, &other);
    send(&env, "POST", path, &body, Some(forged))
        .await
        .assert_error(401, "SIGN_ERROR");
    // Signed for another path, or a garbled signature.
    let elsewhere = signer.authorization("POST", "/v3/pay/transactions/native", &body);
    send(&env, "POST", path, &body, Some(elsewhere))
        .await
        .assert_error(401, "SIGN_ERROR");
    let good = signer.authorization("POST", path, &body);
    let garbled = good.replace("signature=\"", "signature=\"AAAA");
    send(&env, "POST", path, &body, Some(garbled))
        .await
        .assert_error(401, "SIGN_ERROR");
    // Another certificate serial, another merchant, a stale timestamp.
    let serial = good.replace(
        &format!("serial_no=\"{}\"", signer.serial_no()),
        "serial_no=\"0123\"",
    );
    send(&env, "POST", path, &body, Some(serial))
        .await
        .assert_error(401, "SIGN_ERROR");
    let mchid = good.replace(
        &format!("mchid=\"{SANDBOX_MCH_ID}\""),
        "mchid=\"1230000109\"",
    );
    send(&env, "POST", path, &body, Some(mchid))
        .await
        .assert_error(401, "SIGN_ERROR");
    let stale = signer.authorization_at("POST", path, now - 3600, "NONCE1", &body);
    send(&env, "POST", path, &body, Some(stale))
        .await
        .assert_error(401, "SIGN_ERROR");
    send(&env, "POST", path, &body, Some("Bearer x".into()))
        .await
        .assert_error(401, "SIGN_ERROR");
    assert!(env.state.order("V3S1").is_none(), "nothing was placed");

    let ok = send(&env, "POST", path, &body, Some(good)).await;
    assert_eq!(ok.status, 200);
    let order = env.state.order("V3S1").unwrap();
    assert_eq!((order.api, order.total_fee), (PayApi::V3, 100));
}

#[actix_web::test]
async fn h5_and_native_orders_and_parameter_errors() {
    let env = start().await;
    let h5 = json!({
        "appid": SANDBOX_OA_APPID, "mchid": SANDBOX_MCH_ID, "description": "H5",
        "out_trade_no": "V3H1", "notify_url": NOWHERE, "amount": { "total": 5 },
        "scene_info": { "payer_client_ip": "127.0.0.1", "h5_info": { "type": "Wap" } },
    });
    let a = call(&env, "POST", "/v3/pay/transactions/h5", Some(&h5)).await;
    assert_eq!(a.status, 200);
    let h5_url = a.json()["h5_url"].as_str().unwrap().to_owned();
    assert!(
        h5_url.starts_with(&format!("{}/sandbox/mweb?", env.base)),
        "{h5_url}"
    );
    assert_eq!(env.state.order("V3H1").unwrap().trade_type, "MWEB");

    let mut native = h5.clone();
    native["out_trade_no"] = json!("V3N1");
    native.as_object_mut().unwrap().remove("scene_info");
    let a = call(&env, "POST", "/v3/pay/transactions/native", Some(&native)).await;
    assert_eq!(a.status, 200);
    assert!(
        a.json()["code_url"]
            .as_str()
            .unwrap()
            .starts_with("weixin://wxpay/bizpayurl?pr=")
    );

    let mut no_h5_info = h5.clone();
    no_h5_info["out_trade_no"] = json!("V3H2");
    no_h5_info["scene_info"] = json!({ "payer_client_ip": "127.0.0.1" });
    call(&env, "POST", "/v3/pay/transactions/h5", Some(&no_h5_info))
        .await
        .assert_error(400, "PARAM_ERROR");
    let mut no_payer = jsapi_body(&env, "V3J1", 1, NOWHERE);
    no_payer.as_object_mut().unwrap().remove("payer");
    call(&env, "POST", "/v3/pay/transactions/jsapi", Some(&no_payer))
        .await
        .assert_error(400, "PARAM_ERROR");
    let mut zero = jsapi_body(&env, "V3J2", 0, NOWHERE);
    call(&env, "POST", "/v3/pay/transactions/jsapi", Some(&zero))
        .await
        .assert_error(400, "PARAM_ERROR");
    zero["amount"] = json!({ "total": "1" });
    call(&env, "POST", "/v3/pay/transactions/jsapi", Some(&zero))
        .await
        .assert_error(400, "PARAM_ERROR");
    let mut unbound = jsapi_body(&env, "V3J3", 1, NOWHERE);
    unbound["appid"] = json!("wx0000000000000000");
    call(&env, "POST", "/v3/pay/transactions/jsapi", Some(&unbound))
        .await
        .assert_error(400, "APPID_MCHID_NOT_MATCH");
    let mut stranger = jsapi_body(&env, "V3J4", 1, NOWHERE);
    stranger["payer"] = json!({ "openid": "o-not-a-user" });
    call(&env, "POST", "/v3/pay/transactions/jsapi", Some(&stranger))
        .await
        .assert_error(400, "PARAM_ERROR");
    for no in ["V3H2", "V3J1", "V3J2", "V3J3", "V3J4"] {
        assert!(env.state.order(no).is_none(), "{no}");
    }
}

#[actix_web::test]
async fn query_close_and_repeated_orders_follow_the_ledger() {
    let env = start().await;
    let q = |no: &str| format!("/v3/pay/transactions/out-trade-no/{no}?mchid={SANDBOX_MCH_ID}");
    call(&env, "GET", &q("V3Q0"), None)
        .await
        .assert_error(404, "ORDER_NOT_EXIST");
    call(&env, "GET", "/v3/pay/transactions/out-trade-no/V3Q0", None)
        .await
        .assert_error(400, "PARAM_ERROR");

    let prepay = place(&env, "V3Q1", 300, NOWHERE).await.json()["prepay_id"].clone();
    // The same order again answers the same prepay_id; another amount is refused.
    assert_eq!(
        place(&env, "V3Q1", 300, NOWHERE).await.json()["prepay_id"],
        prepay
    );
    place(&env, "V3Q1", 301, NOWHERE)
        .await
        .assert_error(403, "OUT_TRADE_NO_USED");
    let a = call(&env, "GET", &q("V3Q1"), None).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["trade_state"], "NOTPAY");
    assert_eq!(a.json()["amount"]["total"], 300);

    let txn = env
        .state
        .pay_order(
            "V3Q1",
            PayOptions {
                notify: false,
                ..PayOptions::default()
            },
        )
        .unwrap();
    let paid = call(&env, "GET", &q("V3Q1"), None).await.json();
    assert_eq!(paid["trade_state"], "SUCCESS");
    assert_eq!(paid["transaction_id"], txn.as_str());
    assert_eq!(paid["trade_type"], "JSAPI");
    assert_eq!(
        paid["payer"]["openid"],
        env.state.openid(SANDBOX_MP_APPID, "u1")
    );
    assert!(paid["success_time"].as_str().unwrap().ends_with("+08:00"));
    place(&env, "V3Q1", 300, NOWHERE)
        .await
        .assert_error(403, "ORDERPAID");

    let close = |no: &str| format!("/v3/pay/transactions/out-trade-no/{no}/close");
    let mchid = json!({ "mchid": SANDBOX_MCH_ID });
    call(&env, "POST", &close("V3Q1"), Some(&mchid))
        .await
        .assert_error(403, "ORDERPAID");
    call(&env, "POST", &close("V3Q9"), Some(&mchid))
        .await
        .assert_error(404, "ORDER_NOT_EXIST");
    place(&env, "V3Q2", 100, NOWHERE).await;
    for _ in 0..2 {
        let a = call(&env, "POST", &close("V3Q2"), Some(&mchid)).await;
        assert_eq!(a.status, 204);
        assert!(a.body.is_empty());
        env.state.v3_verifier().verify(&a.signed()).unwrap();
    }
    assert_eq!(env.state.order("V3Q2").unwrap().state, TradeState::Closed);
    place(&env, "V3Q2", 100, NOWHERE)
        .await
        .assert_error(400, "ORDER_CLOSED");
}

/// A merchant v3 notify endpoint on port 0 that answers the n-th call with
/// `answer(n)` and records headers and bodies.
#[derive(Clone, Default)]
struct Inbox(Arc<Mutex<Vec<Answer>>>);

impl Inbox {
    fn all(&self) -> Vec<(String, String, String, String, Vec<u8>)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a.serial.clone(),
                    a.timestamp.clone(),
                    a.nonce.clone(),
                    a.signature.clone(),
                    a.body.clone(),
                )
            })
            .collect()
    }
}

async fn merchant(answer: fn(usize) -> u16) -> (String, Inbox) {
    let inbox = Inbox::default();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = inbox.clone();
    let server = HttpServer::new(move || {
        let seen = seen.clone();
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let seen = seen.clone();
            async move {
                let h = |n: &str| {
                    req.headers()
                        .get(n)
                        .map(|v| v.to_str().unwrap_or_default().to_owned())
                        .unwrap_or_default()
                };
                let n = {
                    let mut all = seen.0.lock().unwrap();
                    all.push(Answer {
                        status: 0,
                        serial: h("wechatpay-serial"),
                        timestamp: h("wechatpay-timestamp"),
                        nonce: h("wechatpay-nonce"),
                        signature: h("wechatpay-signature"),
                        body: body.to_vec(),
                    });
                    all.len()
                };
                let status = answer(n);
                if status == 204 {
                    HttpResponse::NoContent().finish()
                } else {
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                        .json(json!({ "code": "FAIL", "message": "not yet" }))
                }
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (format!("http://{addr}/api/pay/v3/notify"), inbox)
}

/// Verifies and decrypts a received notification.
fn open(env: &Env, n: &(String, String, String, String, Vec<u8>)) -> (Notification, Value) {
    let (serial, timestamp, nonce, signature, body) = n;
    env.state
        .v3_verifier()
        .verify(&SignedMessage {
            serial,
            timestamp,
            nonce,
            signature,
            body,
        })
        .unwrap();
    let ts: i64 = timestamp.parse().unwrap();
    assert!(
        (chrono::Utc::now().timestamp() - ts).abs() < 60,
        "signed now"
    );
    let notification: Notification = serde_json::from_slice(body).unwrap();
    let key = ApiV3Key::new(SANDBOX_MCH_API_V3_KEY).unwrap();
    let plain = notification.resource.decrypt(&key).unwrap();
    (notification, serde_json::from_str(&plain).unwrap())
}

#[actix_web::test]
async fn paying_a_v3_order_posts_a_signed_encrypted_notification_until_acknowledged() {
    let env = start().await;
    env.state.set_v3_sign_mode(SignMode::Switch);
    let (url, inbox) = merchant(|n| if n == 1 { 500 } else { 204 }).await;
    place(&env, "V3P1", 250, &url).await;
    // The control route pays it like any order (one ledger).
    let (status, paid) = env.post_json("/sandbox/orders/V3P1/pay", &json!({})).await;
    assert_eq!(status, 200);
    assert!(env.state.wait_deliveries("V3P1", 1, WAIT).await);
    env.state.advance(Duration::from_secs(15));
    assert!(env.state.wait_acknowledged("V3P1", WAIT).await);
    let got = inbox.all();
    assert_eq!(got.len(), 2);
    // Each attempt is signed afresh (switch mode: by the other key).
    assert_ne!(got[0].0, got[1].0);
    for n in &got {
        let (notification, txn) = open(&env, n);
        assert_eq!(notification.event_type, "TRANSACTION.SUCCESS");
        assert_eq!(notification.resource_type, "encrypt-resource");
        assert_eq!(notification.resource.algorithm, "AEAD_AES_256_GCM");
        assert_eq!(notification.resource.associated_data, "transaction");
        assert_eq!(
            notification.resource.original_type.as_deref(),
            Some("transaction")
        );
        assert!(notification.create_time.ends_with("+08:00"));
        assert_eq!(txn["out_trade_no"], "V3P1");
        assert_eq!(txn["mchid"], SANDBOX_MCH_ID);
        assert_eq!(txn["appid"], SANDBOX_MP_APPID);
        assert_eq!(txn["trade_state"], "SUCCESS");
        assert_eq!(txn["amount"]["total"], 250);
        assert_eq!(txn["transaction_id"], paid["transactionId"]);
    }
    let deliveries = env.state.deliveries("V3P1");
    assert_eq!(
        deliveries
            .iter()
            .map(|d| (d.http_status, d.acknowledged))
            .collect::<Vec<_>>(),
        vec![(Some(500), false), (Some(204), true)]
    );
    // A tampered body no longer verifies.
    let mut tampered = got[1].clone();
    let text = String::from_utf8(tampered.4).unwrap();
    let changed = text.replace("支付成功", "支付失败");
    assert_ne!(changed, text);
    tampered.4 = changed.into_bytes();
    let (serial, timestamp, nonce, signature, body) = &tampered;
    assert!(
        env.state
            .v3_verifier()
            .verify(&SignedMessage {
                serial,
                timestamp,
                nonce,
                signature,
                body
            })
            .is_err()
    );
}

#[actix_web::test]
async fn signtest_probes_carry_a_signature_that_never_verifies() {
    let env = start().await;
    let (url, inbox) = merchant(|_| 400).await;
    place(&env, "V3T1", 100, &url).await;
    let (status, reply) = env
        .post_json("/sandbox/v3/signtest", &json!({ "outTradeNo": "V3T1" }))
        .await;
    assert_eq!((status, reply["httpStatus"].as_u64()), (200, Some(400)));
    let got = inbox.all();
    assert_eq!(got.len(), 1);
    let (serial, timestamp, nonce, signature, body) = &got[0];
    assert!(signature.starts_with("WECHATPAY/SIGNTEST/"), "{signature}");
    assert_eq!(
        env.state.v3_verifier().verify(&SignedMessage {
            serial,
            timestamp,
            nonce,
            signature,
            body
        }),
        Err(V3Error::SignTest)
    );
    // It is a real-looking notification otherwise, and pays nothing.
    assert!(serde_json::from_slice::<Notification>(body).is_ok());
    assert_eq!(env.state.order("V3T1").unwrap().state, TradeState::NotPay);
    let (status, _) = env
        .post_json("/sandbox/v3/signtest", &json!({ "outTradeNo": "nope" }))
        .await;
    assert_eq!(status, 404);
}

#[actix_web::test]
async fn refunds_answer_query_and_notify_in_v3() {
    let env = start().await;
    let (url, inbox) = merchant(|_| 204).await;
    place(&env, "V3R1", 1000, NOWHERE).await;
    env.state
        .pay_order(
            "V3R1",
            PayOptions {
                notify: false,
                ..PayOptions::default()
            },
        )
        .unwrap();
    let refund = |no: &str, amount: i64| {
        json!({
            "out_trade_no": "V3R1", "out_refund_no": no, "reason": "不想要了",
            "notify_url": url, "amount": { "refund": amount, "total": 1000, "currency": "CNY" },
        })
    };
    let path = "/v3/refund/domestic/refunds";
    let a = call(&env, "POST", path, Some(&refund("RF1", 400))).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    env.state.v3_verifier().verify(&a.signed()).unwrap();
    let r = a.json();
    assert_eq!(
        (r["status"].as_str(), r["amount"]["refund"].as_u64()),
        (Some("SUCCESS"), Some(400))
    );
    assert_eq!(r["out_trade_no"], "V3R1");
    // The same request again answers the same refund.
    let again = call(&env, "POST", path, Some(&refund("RF1", 400)))
        .await
        .json();
    assert_eq!(again["refund_id"], r["refund_id"]);
    call(&env, "POST", path, Some(&refund("RF1", 300)))
        .await
        .assert_error(400, "INVALID_REQUEST");
    call(&env, "POST", path, Some(&refund("RF2", 700)))
        .await
        .assert_error(403, "NOT_ENOUGH");
    let mut unknown = refund("RF3", 1);
    unknown["out_trade_no"] = json!("V3R9");
    call(&env, "POST", path, Some(&unknown))
        .await
        .assert_error(404, "RESOURCE_NOT_EXISTS");

    let q = call(&env, "GET", "/v3/refund/domestic/refunds/RF1", None).await;
    assert_eq!(
        (q.status, q.json()["refund_id"].clone()),
        (200, r["refund_id"].clone())
    );
    call(&env, "GET", "/v3/refund/domestic/refunds/RF9", None)
        .await
        .assert_error(404, "RESOURCE_NOT_EXISTS");

    assert!(env.state.wait_refund_acknowledged("RF1", WAIT).await);
    let got = inbox.all();
    assert_eq!(got.len(), 1);
    let (notification, resource) = open(&env, &got[0]);
    assert_eq!(notification.event_type, "REFUND.SUCCESS");
    assert_eq!(notification.resource.associated_data, "refund");
    assert_eq!(resource["out_refund_no"], "RF1");
    assert_eq!(resource["refund_status"], "SUCCESS");
    assert_eq!(resource["amount"]["refund"], 400);
    assert_eq!(env.state.refund("RF1").unwrap().api, PayApi::V3);
}

#[actix_web::test]
async fn certificates_download_decrypts_to_the_certificate_whose_serial_is_served() {
    let env = start().await;
    env.state.set_v3_sign_mode(SignMode::Platform);
    let a = call(&env, "GET", "/v3/certificates", None).await;
    assert_eq!(a.status, 200);
    let answer: CertificatesResponse = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(answer.data.len(), 1);
    let entry = &answer.data[0];
    assert_eq!(entry.encrypt_certificate.associated_data, "certificate");
    let key = ApiV3Key::new(SANDBOX_MCH_API_V3_KEY).unwrap();
    let pem = entry.encrypt_certificate.decrypt(&key).unwrap();
    let cert = PlatformCertificate::from_pem(&pem).unwrap();
    assert_eq!(cert.serial_no(), entry.serial_no);
    assert_eq!(cert.serial_no(), env.state.v3_keys().platform_serial_no);
    assert!(cert.is_valid_at(chrono::Utc::now()));
    assert!(entry.expire_time.ends_with("+08:00"));
    // The bootstrap: the downloaded certificate verifies the answer that carried it.
    Verifier::new()
        .with_certificate(cert)
        .verify(&a.signed())
        .unwrap();
    let wrong = ApiV3Key::new("0123456789abcdef0123456789abcdef").unwrap();
    assert_eq!(
        entry.encrypt_certificate.decrypt(&wrong),
        Err(V3Error::Decrypt)
    );
    send(&env, "GET", "/v3/certificates", "", None)
        .await
        .assert_error(401, "SIGN_ERROR");
}

#[actix_web::test]
async fn rsa_pay_sign_opens_the_cashier_for_v3_jsapi_orders_only() {
    let env = start().await;
    let mut body = jsapi_body(&env, "V3C1", 100, NOWHERE);
    body["appid"] = json!(SANDBOX_OA_APPID);
    body["payer"] = json!({ "openid": env.state.openid(SANDBOX_OA_APPID, "u1") });
    let prepay = call(&env, "POST", "/v3/pay/transactions/jsapi", Some(&body))
        .await
        .json()["prepay_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let package = format!("prepay_id={prepay}");
    let sign = signer(&env).jsapi_pay_sign(SANDBOX_OA_APPID, "1700000000", "NONCE123", &package);
    let params = |sign_type: &str, pay_sign: &str| {
        json!({
            "appId": SANDBOX_OA_APPID, "timeStamp": "1700000000", "nonceStr": "NONCE123",
            "package": package, "signType": sign_type, "paySign": pay_sign,
        })
    };
    let err_msg = |v: &Value| v["errMsg"].as_str().unwrap_or_default().to_owned();
    // Signed over another timestamp: refused.
    let other = signer(&env).jsapi_pay_sign(SANDBOX_OA_APPID, "1700000001", "NONCE123", &package);
    let (_, v) = env
        .post_json("/sandbox/jssdk/pay", &params("RSA", &other))
        .await;
    assert!(err_msg(&v).starts_with("chooseWXPay:fail"), "{v}");
    // An MD5 sign is not what a v3 order takes.
    let (_, v) = env
        .post_json("/sandbox/jssdk/pay", &params("MD5", "ABC"))
        .await;
    assert!(err_msg(&v).starts_with("chooseWXPay:fail"), "{v}");
    let (_, v) = env
        .post_json("/sandbox/jssdk/pay", &params("RSA", &sign))
        .await;
    assert_eq!(err_msg(&v), "chooseWXPay:ok", "{v}");
    assert!(v["cashierUrl"].as_str().is_some());
}

#[actix_web::test]
async fn service_env_names_the_v3_credentials_and_their_files() {
    let env = start().await;
    let vars: std::collections::HashMap<_, _> = env.sandbox.service_env().into_iter().collect();
    let keys = env.state.v3_keys();
    assert_eq!(vars["MCH_API_V3_KEY"], SANDBOX_MCH_API_V3_KEY);
    assert_eq!(vars["MCH_CERT_SERIAL_NO"], keys.merchant_serial_no);
    assert_eq!(vars["WECHATPAY_PUBLIC_KEY_ID"], keys.public_key_id);
    let read = |v: &str| std::fs::read_to_string(&vars[v]).unwrap();
    let cert = PlatformCertificate::from_pem(&read("MCH_CERT_PEM")).unwrap();
    assert_eq!(cert.serial_no(), vars["MCH_CERT_SERIAL_NO"]);
    let from_file =
        MerchantSigner::from_pem(SANDBOX_MCH_ID, cert.serial_no(), &read("MCH_KEY_PEM")).unwrap();
    assert!(
        cert.public_key()
            .verify(b"m", &from_file.sign(b"m"))
            .is_ok()
    );
    assert_eq!(
        PublicKey::from_pem(&read("WECHATPAY_PUBLIC_KEY_PEM")).unwrap(),
        PublicKey::from_pem(&keys.public_key_pem).unwrap()
    );
    let dir = std::path::PathBuf::from(&vars["MCH_KEY_PEM"]);
    env.sandbox.stop().await;
    assert!(!dir.exists(), "the temp files go with the sandbox");
}

/// With `v3_merchant` from a `TestPki`, the TLS client identity signs v3
/// requests too: one apiclient key and certificate for both APIs.
#[actix_web::test]
async fn a_given_merchant_identity_is_what_requests_are_checked_against() {
    let pki = wechat_sandbox::TestPki::generate(SANDBOX_MCH_ID).unwrap();
    let env = start_with(|cfg| cfg.v3_merchant = Some(pki.merchant_identity())).await;
    let cert = PlatformCertificate::from_pem(&pki.client_cert_pem).unwrap();
    assert_eq!(env.state.v3_keys().merchant_serial_no, cert.serial_no());
    let signer =
        MerchantSigner::from_pem(SANDBOX_MCH_ID, cert.serial_no(), &pki.client_key_pem).unwrap();
    let path = "/v3/certificates";
    let ok = send(
        &env,
        "GET",
        path,
        "",
        Some(signer.authorization("GET", path, "")),
    )
    .await;
    assert_eq!(ok.status, 200);
    // The sandbox's own default identity is not this one.
    let default = start().await;
    assert_ne!(default.state.v3_keys().merchant_serial_no, cert.serial_no());
    let auth = signer.authorization("GET", path, "");
    send(&default, "GET", path, "", Some(auth))
        .await
        .assert_error(401, "SIGN_ERROR");
}

/// A `payError` fault on a v3 path answers as WeChat's v3 does: its
/// `{code, message}` body, signed, with the code's HTTP status; `applied`
/// makes the request take effect behind the error (an unknown outcome).
#[actix_web::test]
async fn injected_business_errors_on_v3_paths_are_signed_v3_error_bodies() {
    let env = start().await;
    let (status, _) = env
        .post_json(
            "/sandbox/faults",
            &json!({ "path": "/v3/pay/transactions/jsapi", "kind": "payError",
                     "errCode": "SYSTEM_ERROR", "errCodeDes": "系统繁忙", "applied": true }),
        )
        .await;
    assert_eq!(status, 200);
    let answer = place(&env, "v3-fault-1", 100, NOWHERE).await;
    answer.assert_error(500, "SYSTEM_ERROR");
    env.state
        .v3_verifier()
        .verify(&answer.signed())
        .expect("the error answer is signed");
    // Applied behind the error: the order exists at "WeChat".
    let query = call(
        &env,
        "GET",
        &format!("/v3/pay/transactions/out-trade-no/v3-fault-1?mchid={SANDBOX_MCH_ID}"),
        None,
    )
    .await;
    assert_eq!(
        query.status,
        200,
        "{}",
        String::from_utf8_lossy(&query.body)
    );

    env.post_json(
        "/sandbox/faults",
        &json!({ "path": "/v3/pay/transactions/jsapi", "kind": "payError",
                 "errCode": "FREQUENCY_LIMITED" }),
    )
    .await;
    let limited = place(&env, "v3-fault-2", 100, NOWHERE).await;
    limited.assert_error(429, "FREQUENCY_LIMITED");
    let query = call(
        &env,
        "GET",
        &format!("/v3/pay/transactions/out-trade-no/v3-fault-2?mchid={SANDBOX_MCH_ID}"),
        None,
    )
    .await;
    query.assert_error(404, "ORDER_NOT_EXIST");
}
