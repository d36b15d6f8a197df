use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use shared::sign::{SignType, verify_pay_sign};

use crate::common::*;
use wechat_sandbox::{
    DeliveryAttempt, MAX_DELIVERY_ATTEMPTS, PayOptions, SANDBOX_MCH_ID, SANDBOX_MCH_KEY,
    SANDBOX_MP_APPID, TradeState,
};

const WAIT: Duration = Duration::from_secs(20);

/// How the test merchant answers the n-th notification it receives (1-based).
type Answer = fn(usize) -> HttpResponse;

/// A received notification: its Content-Type and its fields.
type Notification = (String, BTreeMap<String, String>);

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Notification>>>);

impl Received {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn all(&self) -> Vec<Notification> {
        self.0.lock().unwrap().clone()
    }
}

/// A merchant notify endpoint on port 0; returns its notify_url.
async fn merchant(answer: Answer) -> (String, Received) {
    let received = Received::default();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = received.clone();
    let server = HttpServer::new(move || {
        let seen = seen.clone();
        App::new().route(
            "/api/pay/notify",
            web::post().to(move |req: actix_web::HttpRequest, body: web::Bytes| {
                let seen = seen.clone();
                async move {
                    let content_type = req
                        .headers()
                        .get("content-type")
                        .map(|v| v.to_str().unwrap_or_default().to_owned())
                        .unwrap_or_default();
                    let fields = shared::xml::parse(&body, 1 << 16).unwrap_or_default();
                    let n = {
                        let mut all = seen.0.lock().unwrap();
                        all.push((content_type, fields));
                        all.len()
                    };
                    answer(n)
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
    (format!("http://{addr}/api/pay/notify"), received)
}

fn reply(success: bool) -> HttpResponse {
    let body = if success {
        shared::xml::notify_reply(true, "OK")
    } else {
        shared::xml::notify_reply(false, "not yet")
    };
    HttpResponse::Ok().content_type("text/xml").body(body)
}

async fn place_order(env: &Env, no: &str, notify_url: &str, sign_type: SignType) {
    let mut fields = jsapi_order(&env.state, no, 888);
    fields.insert("notify_url".into(), notify_url.into());
    fields.insert("attach".into(), "coupon=A1".into());
    let r = env.post_pay("/pay/unifiedorder", &fields, sign_type).await;
    assert_eq!(r["result_code"], "SUCCESS", "{r:?}");
}

fn attempt(attempt: u32, http_status: Option<u16>, acknowledged: bool) -> DeliveryAttempt {
    DeliveryAttempt {
        attempt,
        http_status,
        acknowledged,
    }
}

#[tokio::test]
async fn retried_until_the_merchant_answers_success() {
    let env = start_with(|c| c.time_scale = 10_000.0).await;
    let (url, received) = merchant(|n| reply(n >= 3)).await;
    place_order(&env, "NT1", &url, SignType::HmacSha256).await;
    let tid = env
        .state
        .pay_order(
            "NT1",
            PayOptions {
                notify: true,
                fail_first_deliveries: 0,
            },
        )
        .unwrap();
    assert!(env.state.wait_acknowledged("NT1", WAIT).await);
    assert_eq!(
        env.state.deliveries("NT1"),
        vec![
            attempt(1, Some(200), false),
            attempt(2, Some(200), false),
            attempt(3, Some(200), true),
        ]
    );
    assert!(env.state.wait_deliveries_finished("NT1", WAIT).await);
    assert_eq!(received.count(), 3);

    let (content_type, n) = &received.all()[0];
    assert_eq!(content_type, "text/xml");
    assert!(verify_pay_sign(n, SANDBOX_MCH_KEY), "{n:?}");
    let openid = env.state.openid(SANDBOX_MP_APPID, "u1");
    let time_end = env.state.order("NT1").unwrap().time_end.unwrap();
    let expected = [
        ("return_code", "SUCCESS"),
        ("result_code", "SUCCESS"),
        ("appid", SANDBOX_MP_APPID),
        ("mch_id", SANDBOX_MCH_ID),
        ("openid", openid.as_str()),
        ("is_subscribe", "N"),
        ("trade_type", "JSAPI"),
        ("bank_type", "OTHERS"),
        ("total_fee", "888"),
        ("fee_type", "CNY"),
        ("cash_fee", "888"),
        ("transaction_id", tid.as_str()),
        ("out_trade_no", "NT1"),
        ("attach", "coupon=A1"),
        ("time_end", time_end.as_str()),
        ("sign_type", "HMAC-SHA256"),
    ];
    for (k, v) in expected {
        assert_eq!(n.get(k).map(String::as_str), Some(v), "{k}");
    }
    let mut keys: Vec<&str> = n.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want: Vec<&str> = expected
        .iter()
        .map(|(k, _)| *k)
        .chain(["nonce_str", "sign"])
        .collect();
    want.sort_unstable();
    assert_eq!(keys, want);
}

#[tokio::test]
async fn lost_deliveries_are_recorded_without_contacting_the_merchant() {
    let env = start_with(|c| c.time_scale = 10_000.0).await;
    let (url, received) = merchant(|_| reply(true)).await;
    place_order(&env, "NT2", &url, SignType::Md5).await;
    env.state
        .pay_order(
            "NT2",
            PayOptions {
                notify: true,
                fail_first_deliveries: 3,
            },
        )
        .unwrap();
    assert!(env.state.wait_acknowledged("NT2", WAIT).await);
    assert_eq!(
        env.state.deliveries("NT2"),
        vec![
            attempt(1, None, false),
            attempt(2, None, false),
            attempt(3, None, false),
            attempt(4, Some(200), true),
        ]
    );
    assert_eq!(received.count(), 1);
    let (_, n) = &received.all()[0];
    assert!(verify_pay_sign(n, SANDBOX_MCH_KEY));
    assert!(
        !n.contains_key("sign_type"),
        "MD5 notifications carry no sign_type"
    );
}

#[tokio::test]
async fn an_unacknowledging_merchant_gets_exactly_sixteen_attempts() {
    // The whole schedule is about 24 hours; a million-fold clock makes it ~90 ms.
    let env = start_with(|c| c.time_scale = 1_000_000.0).await;
    let (url, received) = merchant(|_| HttpResponse::InternalServerError().finish()).await;
    place_order(&env, "NT3", &url, SignType::Md5).await;
    env.state.pay_order("NT3", PayOptions::default()).unwrap();
    assert!(env.state.wait_deliveries_finished("NT3", WAIT).await);
    let deliveries = env.state.deliveries("NT3");
    assert_eq!(MAX_DELIVERY_ATTEMPTS, 16);
    assert_eq!(
        deliveries,
        (1..=16)
            .map(|n| attempt(n, Some(500), false))
            .collect::<Vec<_>>()
    );
    assert_eq!(received.count(), 16);
    assert!(
        !env.state
            .wait_acknowledged("NT3", Duration::from_millis(50))
            .await
    );
}

#[tokio::test]
async fn a_success_body_with_another_status_is_not_an_acknowledgement() {
    let env = start_with(|c| c.time_scale = 10_000.0).await;
    let (url, _received) = merchant(|n| {
        if n == 1 {
            HttpResponse::Accepted().body(shared::xml::notify_reply(true, "OK"))
        } else if n == 2 {
            HttpResponse::Ok().body("SUCCESS")
        } else {
            reply(true)
        }
    })
    .await;
    place_order(&env, "NT4", &url, SignType::Md5).await;
    env.state.pay_order("NT4", PayOptions::default()).unwrap();
    assert!(env.state.wait_acknowledged("NT4", WAIT).await);
    assert_eq!(
        env.state.deliveries("NT4"),
        vec![
            attempt(1, Some(202), false),
            attempt(2, Some(200), false),
            attempt(3, Some(200), true),
        ]
    );
}

#[tokio::test]
async fn advancing_the_clock_brings_the_next_attempt_forward() {
    // Real-time clock: without the advance the retry would be 15 s away.
    let env = start().await;
    let (url, _received) = merchant(|n| reply(n >= 2)).await;
    place_order(&env, "NT5", &url, SignType::Md5).await;
    env.state.pay_order("NT5", PayOptions::default()).unwrap();
    assert!(env.state.wait_deliveries("NT5", 1, WAIT).await);
    assert_eq!(
        env.state.deliveries("NT5"),
        vec![attempt(1, Some(200), false)]
    );
    assert!(
        !env.state
            .wait_acknowledged("NT5", Duration::from_millis(200))
            .await
    );

    env.state.advance(Duration::from_secs(15));
    assert!(
        env.state
            .wait_acknowledged("NT5", Duration::from_secs(5))
            .await
    );
    assert_eq!(
        env.state.deliveries("NT5"),
        vec![attempt(1, Some(200), false), attempt(2, Some(200), true)]
    );
}

#[tokio::test]
async fn control_route_pays_and_reports_deliveries() {
    let env = start_with(|c| c.time_scale = 10_000.0).await;
    let (url, received) = merchant(|_| reply(true)).await;
    place_order(&env, "NT6", &url, SignType::Md5).await;
    let (status, paid) = env
        .post_json(
            "/sandbox/orders/NT6/pay",
            &serde_json::json!({ "notify": true, "failFirstDeliveries": 0 }),
        )
        .await;
    assert_eq!(status, 200);
    let tid = paid["transactionId"].as_str().unwrap();
    assert_eq!(tid.len(), 28);
    assert!(env.state.wait_acknowledged("NT6", WAIT).await);
    assert_eq!(received.count(), 1);

    let order = env.get_json("/sandbox/orders/NT6").await;
    assert_eq!(order["state"], "SUCCESS");
    assert_eq!(order["transactionId"], tid);
    assert_eq!(order["totalFee"], 888);
    assert_eq!(order["outTradeNo"], "NT6");
    let deliveries = env.get_json("/sandbox/orders/NT6/deliveries").await;
    assert_eq!(
        deliveries,
        serde_json::json!([{ "attempt": 1, "httpStatus": 200, "acknowledged": true }])
    );

    let (status, again) = env
        .post_json("/sandbox/orders/NT6/pay", &serde_json::json!({}))
        .await;
    assert_eq!(
        (status, again["error"].as_str()),
        (409, Some("order already paid"))
    );
    let (status, _) = env
        .post_json("/sandbox/orders/NOPE/pay", &serde_json::json!({}))
        .await;
    assert_eq!(status, 404);
    assert_eq!(env.get("/sandbox/orders/NOPE").await.status(), 404);

    // Paying without notify records nothing.
    place_order(&env, "NT7", &url, SignType::Md5).await;
    let (status, _) = env
        .post_json(
            "/sandbox/orders/NT7/pay",
            &serde_json::json!({ "notify": false }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(env.state.order("NT7").unwrap().state, TradeState::Success);
    assert!(
        !env.state
            .wait_deliveries("NT7", 1, Duration::from_millis(100))
            .await
    );
    assert_eq!(env.state.deliveries("NT7"), vec![]);
}
