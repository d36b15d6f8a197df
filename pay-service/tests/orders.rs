//! Placing, reading and closing orders through the sandbox, on every backend.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod common;

use common::*;
use pay_service::migrations;
use serde_json::json;
use shared::sign::{SignType, pay_sign_pairs};
use testkit::all_backends;
use wechat_sandbox::{FaultKind, PayOptions, SANDBOX_MCH_KEY};

fn check_pay_sign(data: &serde_json::Value, sign_type: SignType) {
    let s = |k: &str| {
        data[k]
            .as_str()
            .unwrap_or_else(|| panic!("{k} is a string: {data}"))
    };
    let expected = pay_sign_pairs(
        [
            ("appId", s("appId")),
            ("timeStamp", s("timeStamp")),
            ("nonceStr", s("nonceStr")),
            ("package", s("package")),
            ("signType", s("signType")),
        ],
        SANDBOX_MCH_KEY,
        sign_type,
    );
    assert_eq!(s("paySign"), expected);
    assert_eq!(s("signType"), sign_type.as_str());
    assert!(s("timeStamp").parse::<i64>().is_ok());
}

#[tokio::test]
async fn v2pay_converts_yuan_exactly_and_signs_pay_params() {
    for db in all_backends(migrations) {
        let app = spawn_app(&db).await;
        let data = app.v2pay("0.29").await;
        let no = data["outTradeNo"].as_str().unwrap();
        assert_eq!(no.len(), 32);
        let sb = app.sandbox_order(no);
        assert_eq!(sb.total_fee, 29);
        assert_eq!(sb.trade_type, "JSAPI");
        assert_eq!(sb.appid, MP);
        assert_eq!(
            sb.openid.as_deref(),
            Some(app.sandbox.state().openid(MP, "u1").as_str())
        );
        assert_eq!(sb.notify_url, app.url("/api/pay/notify"));
        assert_eq!(sb.sign_type, "MD5");
        assert_eq!(sb.time_expire.as_deref().map(str::len), Some(14));
        assert_eq!(data["appId"], MP);
        assert_eq!(data["package"], format!("prepay_id={}", sb.prepay_id));
        check_pay_sign(&data, SignType::Md5);

        let view = app.order_view(no, &app.mp_token()).await;
        assert_eq!(
            view,
            json!({"outTradeNo": no, "status": "NOTPAY", "amountFen": 29, "tradeType": "JSAPI", "refundedFen": 0})
        );
        assert_eq!(app.sandbox.state().calls("/pay/unifiedorder"), 1);
    }
}

#[tokio::test]
async fn amounts_outside_the_bounds_or_inexact_are_refused() {
    for db in all_backends(migrations) {
        let app = spawn_app_with(
            &db,
            &[("MAX_ORDER_FEN", "1000"), ("MIN_ORDER_FEN", "10")],
            1.0,
        )
        .await;
        let token = app.mp_token();
        for money in [
            "", "1.234", "-1", "0", "0.00", "abc", "1e2", "0.09", "10.01", "0.1%2B1",
        ] {
            let res = app
                .get(&format!("/api/mp/v2Pay?money={money}"), &token)
                .await;
            let msg = expect_error(res, 400, 1001).await;
            assert!(msg.contains("money"), "{money}: {msg}");
        }
        expect_error(app.get("/api/mp/v2Pay", &token).await, 400, 1001).await;
        for fen in [0, 9, 1001, -5] {
            let res = app
                .post_json(
                    "/api/pay/orders",
                    &token,
                    &json!({"amountFen": fen, "tradeType": "JSAPI"}),
                    None,
                )
                .await;
            let msg = expect_error(res, 400, 1001).await;
            assert!(msg.contains("amountFen"), "{msg}");
        }
        let res = app
            .post_json(
                "/api/pay/orders",
                &token,
                &json!({"amountFen": 1.5, "tradeType": "JSAPI"}),
                None,
            )
            .await;
        expect_error(res, 400, 1001).await;
        let res = app
            .post_json(
                "/api/pay/orders",
                &token,
                &json!({"amountFen": 100, "tradeType": "APP"}),
                None,
            )
            .await;
        expect_error(res, 400, 1001).await;
        assert_eq!(app.sandbox.state().calls("/pay/unifiedorder"), 0);
        // The bounds themselves are fine.
        assert_eq!(
            app.sandbox_order(app.v2pay("10.00").await["outTradeNo"].as_str().unwrap())
                .total_fee,
            1000
        );
        assert_eq!(
            app.sandbox_order(app.v2pay("0.1").await["outTradeNo"].as_str().unwrap())
                .total_fee,
            10
        );
    }
}

#[tokio::test]
async fn sessions_must_be_valid_configured_and_match_user_openid() {
    for db in all_backends(migrations) {
        let app = spawn_app(&db).await;
        let res = app
            .client
            .get(app.url("/api/mp/v2Pay?money=1"))
            .send()
            .await
            .unwrap();
        expect_error(res, 401, 1002).await;
        let stranger = app
            .state
            .sessions()
            .issue(9, "wxnotours", "oX", shared::session::SessionKind::Mp)
            .0;
        expect_error(app.get("/api/mp/v2Pay?money=1", &stranger).await, 403, 1003).await;
        let other = app.sandbox.state().openid(MP, "u2");
        let res = app
            .get(
                &format!("/api/mp/v2Pay?money=1&userOpenid={other}"),
                &app.mp_token(),
            )
            .await;
        expect_error(res, 403, 1003).await;
        assert_eq!(app.sandbox.state().calls("/pay/unifiedorder"), 0);
        let mine = app.sandbox.state().openid(MP, "u1");
        let res = app
            .get(
                &format!("/api/mp/v2Pay?money=1&userOpenid={mine}"),
                &app.mp_token(),
            )
            .await;
        assert_eq!(res.status(), 200);
        // An official-account session pays JSAPI with its own appid and openid.
        let oa = app.token(OA, "u2", 2);
        let res = app
            .post_json(
                "/api/pay/orders",
                &oa,
                &json!({"amountFen": 100, "tradeType": "JSAPI"}),
                None,
            )
            .await;
        let (status, body) = envelope(res).await;
        assert_eq!(status, 200, "{body}");
        let sb = app.sandbox_order(body["data"]["outTradeNo"].as_str().unwrap());
        assert_eq!(
            (sb.appid.as_str(), sb.openid.clone()),
            (OA, Some(app.sandbox.state().openid(OA, "u2")))
        );
        assert_eq!(body["data"]["payParams"]["appId"], OA);
        check_pay_sign(&body["data"]["payParams"], SignType::Md5);
    }
}

#[tokio::test]
async fn idempotency_key_returns_the_same_order_and_refuses_another_body() {
    for db in all_backends(migrations) {
        let app = spawn_app(&db).await;
        let token = app.mp_token();
        let body = json!({"amountFen": 500, "tradeType": "JSAPI", "description": "tea"});
        let first = envelope(
            app.post_json("/api/pay/orders", &token, &body, Some("key-1"))
                .await,
        )
        .await;
        let again = envelope(
            app.post_json("/api/pay/orders", &token, &body, Some("key-1"))
                .await,
        )
        .await;
        assert_eq!((first.0, again.0), (200, 200));
        let no = first.1["data"]["outTradeNo"].as_str().unwrap();
        assert_eq!(again.1["data"]["outTradeNo"], no);
        assert_eq!(
            again.1["data"]["payParams"]["package"],
            first.1["data"]["payParams"]["package"]
        );
        assert_eq!(app.sandbox.state().calls("/pay/unifiedorder"), 1);

        let other = json!({"amountFen": 501, "tradeType": "JSAPI", "description": "tea"});
        let res = app
            .post_json("/api/pay/orders", &token, &other, Some("key-1"))
            .await;
        expect_error(res, 409, 1005).await;
        // v2Pay under the same key is another request.
        let res = app
            .client
            .get(app.url("/api/mp/v2Pay?money=5"))
            .bearer_auth(&token)
            .header("Idempotency-Key", "key-1")
            .send()
            .await
            .unwrap();
        expect_error(res, 409, 1005).await;
        // Another user's key space is their own.
        let u2 = app.token(MP, "u2", 2);
        let theirs = envelope(
            app.post_json("/api/pay/orders", &u2, &body, Some("key-1"))
                .await,
        )
        .await;
        assert_eq!(theirs.0, 200);
        assert_ne!(theirs.1["data"]["outTradeNo"], no);
        let bad = app
            .post_json("/api/pay/orders", &token, &body, Some(&"k".repeat(129)))
            .await;
        expect_error(bad, 400, 1001).await;
        assert_eq!(app.sandbox.state().calls("/pay/unifiedorder"), 2);
    }
}

#[tokio::test]
async fn mweb_orders_carry_scene_info_and_an_allowed_redirect() {
    for db in all_backends(migrations) {
        let app = spawn_app(&db).await;
        let token = app.token(OA, "u1", 1);
        let body = json!({"amountFen": 100, "tradeType": "MWEB", "redirectUrl": "https://shop.example/paid?id=7"});
        let (status, res) =
            envelope(app.post_json("/api/pay/orders", &token, &body, None).await).await;
        assert_eq!(status, 200, "{res}");
        let no = res["data"]["outTradeNo"].as_str().unwrap();
        let sb = app.sandbox_order(no);
        assert_eq!(sb.trade_type, "MWEB");
        assert_eq!(
            res["data"]["mwebUrl"],
            format!(
                "{}&redirect_url=https%3A%2F%2Fshop%2Eexample%2Fpaid%3Fid%3D7",
                sb.mweb_url.unwrap()
            )
        );
        let body = json!({"amountFen": 100, "tradeType": "MWEB"});
        let (_, res) = envelope(app.post_json("/api/pay/orders", &token, &body, None).await).await;
        let url = res["data"]["mwebUrl"].as_str().unwrap();
        let enc = percent_encode(&format!("{}/", app.base));
        assert!(url.ends_with(&format!("&redirect_url={enc}")), "{url}");
        for bad in ["https://evil.example/x", "javascript:alert(1)", "/relative"] {
            let body = json!({"amountFen": 100, "tradeType": "MWEB", "redirectUrl": bad});
            expect_error(
                app.post_json("/api/pay/orders", &token, &body, None).await,
                400,
                1001,
            )
            .await;
        }
        assert_eq!(app.sandbox.state().calls("/pay/unifiedorder"), 2);
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn native_orders_have_a_code_url_and_a_qr_image_for_their_owner() {
    for db in all_backends(migrations) {
        let app = spawn_app(&db).await;
        let token = app.token(OA, "u1", 1);
        let body = json!({"amountFen": 1999, "tradeType": "NATIVE", "description": "书"});
        let (status, res) =
            envelope(app.post_json("/api/pay/orders", &token, &body, None).await).await;
        assert_eq!(status, 200, "{res}");
        let no = res["data"]["outTradeNo"].as_str().unwrap();
        let sb = app.sandbox_order(no);
        assert_eq!(sb.product_id.as_deref(), Some(no));
        assert_eq!(sb.body, "书");
        assert_eq!(res["data"]["codeUrl"], sb.code_url.unwrap());
        let qr = app
            .get(&format!("/api/pay/orders/{no}/qrcode.svg"), &token)
            .await;
        assert_eq!(qr.status(), 200);
        assert_eq!(qr.headers()["content-type"], "image/svg+xml");
        let svg = qr.text().await.unwrap();
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
        let stranger = app.token(OA, "u2", 2);
        expect_error(
            app.get(&format!("/api/pay/orders/{no}/qrcode.svg"), &stranger)
                .await,
            404,
            1004,
        )
        .await;
        let jsapi = app.v2pay("1").await;
        let jsapi_no = jsapi["outTradeNo"].as_str().unwrap();
        expect_error(
            app.get(
                &format!("/api/pay/orders/{jsapi_no}/qrcode.svg"),
                &app.mp_token(),
            )
            .await,
            404,
            1004,
        )
        .await;
    }
}

#[tokio::test]
async fn orders_are_visible_to_their_owner_only() {
    for db in all_backends(migrations) {
        let app = spawn_app(&db).await;
        let no = app.v2pay("1").await["outTradeNo"]
            .as_str()
            .unwrap()
            .to_owned();
        let u2 = app.token(MP, "u2", 2);
        expect_error(
            app.get(&format!("/api/pay/orders/{no}"), &u2).await,
            404,
            1004,
        )
        .await;
        expect_error(
            app.post(&format!("/api/pay/orders/{no}/close"), &u2).await,
            404,
            1004,
        )
        .await;
        expect_error(
            app.get("/api/pay/orders/20260101000000nosuchorder0000000", &u2)
                .await,
            404,
            1004,
        )
        .await;
        let res = app
            .client
            .get(app.url(&format!("/api/pay/orders/{no}")))
            .send()
            .await
            .unwrap();
        expect_error(res, 401, 1002).await;
        assert_eq!(app.status_of(&no).await, "NOTPAY");
        assert_eq!(app.sandbox.state().calls("/pay/closeorder"), 0);
    }
}

#[tokio::test]
async fn close_closes_at_wechat_and_here_and_refuses_paid_orders() {
    for db in all_backends(migrations) {
        let app = spawn_app(&db).await;
        let token = app.mp_token();
        let no = app.v2pay("1").await["outTradeNo"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, body) = envelope(
            app.post(&format!("/api/pay/orders/{no}/close"), &token)
                .await,
        )
        .await;
        assert_eq!(
            (status, body["data"]["status"].as_str()),
            (200, Some("CLOSED")),
            "{body}"
        );
        assert_eq!(
            app.sandbox_order(&no).state,
            wechat_sandbox::TradeState::Closed
        );
        let (status, body) = envelope(
            app.post(&format!("/api/pay/orders/{no}/close"), &token)
                .await,
        )
        .await;
        assert_eq!(
            (status, body["data"]["status"].as_str()),
            (200, Some("CLOSED"))
        );
        let t = app.transitions(&no).await;
        assert_eq!(t.len(), 1);
        assert_eq!(
            (
                t[0].from_status.as_str(),
                t[0].to_status.as_str(),
                t[0].source.as_str()
            ),
            ("NOTPAY", "CLOSED", "close")
        );
        assert_eq!(app.sandbox.state().calls("/pay/closeorder"), 1);

        let paid = app.v2pay("2").await["outTradeNo"]
            .as_str()
            .unwrap()
            .to_owned();
        app.sandbox
            .state()
            .pay_order(&paid, PayOptions::default())
            .unwrap();
        assert!(app.sandbox.state().wait_acknowledged(&paid, WAIT).await);
        expect_error(
            app.post(&format!("/api/pay/orders/{paid}/close"), &token)
                .await,
            409,
            1005,
        )
        .await;
        assert_eq!(app.status_of(&paid).await, "PAID");

        // Paid at WeChat, not yet known here: WeChat refuses to close, the
        // order is synced and the close refused.
        let racing = app.v2pay("3").await["outTradeNo"]
            .as_str()
            .unwrap()
            .to_owned();
        app.sandbox
            .state()
            .pay_order(
                &racing,
                PayOptions {
                    notify: false,
                    fail_first_deliveries: 0,
                },
            )
            .unwrap();
        expect_error(
            app.post(&format!("/api/pay/orders/{racing}/close"), &token)
                .await,
            409,
            1005,
        )
        .await;
        assert_eq!(app.status_of(&racing).await, "PAID");
    }
}

#[tokio::test]
async fn sync_asks_wechat_and_applies_the_payment() {
    for db in all_backends(migrations) {
        let app = spawn_app(&db).await;
        let token = app.mp_token();
        let no = app.v2pay("0.57").await["outTradeNo"]
            .as_str()
            .unwrap()
            .to_owned();
        let view = app.order_view(&format!("{no}?sync=true"), &token).await;
        assert_eq!(view["status"], "NOTPAY");
        let tx = app
            .sandbox
            .state()
            .pay_order(
                &no,
                PayOptions {
                    notify: false,
                    fail_first_deliveries: 0,
                },
            )
            .unwrap();
        assert_eq!(app.order_view(&no, &token).await["status"], "NOTPAY");
        let view = app.order_view(&format!("{no}?sync=true"), &token).await;
        assert_eq!(view["status"], "PAID");
        assert_eq!(view["transactionId"], tx);
        assert_eq!(view["amountFen"], 57);
        assert!(view["paidAt"].as_i64().unwrap() > 1_700_000_000);
        let t = app.transitions(&no).await;
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].source, "query");
        assert_eq!(app.sandbox.state().calls("/pay/orderquery"), 2);
    }
}

#[tokio::test]
async fn hmac_sha256_orders_work_end_to_end() {
    for db in all_backends(migrations) {
        let app = spawn_app_with(&db, &[("PAY_SIGN_TYPE", "HMAC-SHA256")], 1.0).await;
        let data = app.v2pay("12.34").await;
        check_pay_sign(&data, SignType::HmacSha256);
        let no = data["outTradeNo"].as_str().unwrap();
        let sb = app.sandbox_order(no);
        assert_eq!((sb.sign_type.as_str(), sb.total_fee), ("HMAC-SHA256", 1234));
        let tx = app
            .sandbox
            .state()
            .pay_order(no, PayOptions::default())
            .unwrap();
        assert!(app.sandbox.state().wait_acknowledged(no, WAIT).await);
        let view = app.order_view(no, &app.mp_token()).await;
        assert_eq!(
            (view["status"].as_str(), view["transactionId"].as_str()),
            (Some("PAID"), Some(tx.as_str()))
        );
        assert_eq!(app.transitions(no).await.len(), 1);
    }
}

#[tokio::test]
async fn wechat_failures_are_10009_and_create_nothing_payable() {
    for db in all_backends(migrations) {
        let app = spawn_app(&db).await;
        let token = app.mp_token();
        let sandbox = app.sandbox.state();
        sandbox.inject_fault("/pay/unifiedorder", FaultKind::Garbage, 1);
        expect_error(app.get("/api/mp/v2Pay?money=1", &token).await, 502, 10009).await;
        sandbox.inject_fault(
            "/pay/unifiedorder",
            FaultKind::Errcode {
                errcode: -1,
                errmsg: "签名错误".into(),
            },
            1,
        );
        let msg = expect_error(app.get("/api/mp/v2Pay?money=1", &token).await, 502, 10009).await;
        assert!(msg.contains("签名错误"), "{msg}");
        // A retry under the same Idempotency-Key reaches WeChat with the same order.
        sandbox.inject_fault("/pay/unifiedorder", FaultKind::Http500, 1);
        let req = || {
            app.client
                .get(app.url("/api/mp/v2Pay?money=1"))
                .bearer_auth(&token)
                .header("Idempotency-Key", "retry-me")
        };
        expect_error(req().send().await.unwrap(), 502, 10009).await;
        let (status, body) = envelope(req().send().await.unwrap()).await;
        assert_eq!(status, 200, "{body}");
        let no = body["data"]["outTradeNo"].as_str().unwrap();
        assert_eq!(app.sandbox_order(no).total_fee, 100);
    }
}

/// unifiedorder's reply was lost, yet WeChat has the order and it was paid: the
/// retry under the same Idempotency-Key gets ORDERPAID, relayed as 409, and the
/// order is synced to PAID.
#[tokio::test]
async fn orderpaid_from_wechat_is_relayed_as_a_conflict_and_synced() {
    for db in all_backends(migrations) {
        let app = spawn_app(&db).await;
        let token = app.mp_token();
        let body = json!({"amountFen": 300, "tradeType": "JSAPI"});
        let (status, res) = envelope(
            app.post_json("/api/pay/orders", &token, &body, Some("lost"))
                .await,
        )
        .await;
        assert_eq!(status, 200, "{res}");
        let no = res["data"]["outTradeNo"].as_str().unwrap().to_owned();
        app.sandbox
            .state()
            .pay_order(
                &no,
                PayOptions {
                    notify: false,
                    fail_first_deliveries: 0,
                },
            )
            .unwrap();
        let forget = no.clone();
        db.db
            .run(move |conn| {
                use diesel::prelude::*;
                use pay_service::schema::pay_orders::dsl::*;
                diesel::update(pay_orders.filter(out_trade_no.eq(forget)))
                    .set(prepay_id.eq(None::<String>))
                    .execute(conn)?;
                Ok(())
            })
            .await
            .unwrap();
        let res = app
            .post_json("/api/pay/orders", &token, &body, Some("lost"))
            .await;
        let msg = expect_error(res, 409, 1005).await;
        assert!(msg.contains("ORDERPAID"), "{msg}");
        assert_eq!(app.status_of(&no).await, "PAID");
        let t = app.transitions(&no).await;
        assert_eq!((t.len(), t[0].source.as_str()), (1, "query"));
    }
}

#[tokio::test]
async fn concurrent_requests_with_one_idempotency_key_make_one_order() {
    for db in all_backends(migrations) {
        let app = spawn_app(&db).await;
        let token = app.mp_token();
        let body = json!({"amountFen": 700, "tradeType": "JSAPI"});
        let sends = (0..8).map(|_| {
            let req = app
                .client
                .post(app.url("/api/pay/orders"))
                .bearer_auth(&token)
                .header("Idempotency-Key", "double-click")
                .json(&body);
            async move { envelope(req.send().await.unwrap()).await }
        });
        let replies = futures_util::future::join_all(sends).await;
        let nos: std::collections::BTreeSet<String> = replies
            .iter()
            .map(|(status, body)| {
                assert_eq!(*status, 200, "{body}");
                body["data"]["outTradeNo"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(nos.len(), 1);
        let no = nos.into_iter().next().unwrap();
        assert_eq!(app.sandbox_order(&no).total_fee, 700);
        assert_eq!(
            pay_service::inspect::count_by_status(app.state.db())
                .await
                .unwrap(),
            vec![(pay_service::Status::NotPay, 1)]
        );
    }
}
