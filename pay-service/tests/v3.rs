//! WeChat Pay APIv3 end to end against the sandbox, on SQLite and, when
//! configured, PostgreSQL: each trade type in WeChat Pay public key mode,
//! platform certificate mode and switch-over; refunds; notifications applied
//! once across two replicas; every forged, stale, probing, tampered or
//! mismatched notification refused with nothing changed; and v2 orders made
//! before a switch to v3 finishing on v2.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod common;

use common::*;
use pay_service::{ApiVersion, inspect, migrations};
use serde_json::{Value, json};
use shared::wechatpay_v3::{ApiV3Key, EncryptedResource, Notification, PrivateKey};
use testkit::{TestDb, all_backends};
use wechat_sandbox::{PayApi, PayOptions, SANDBOX_MCH_API_V3_KEY, Sandbox, SignMode};

const NOTIFY: &str = "/api/pay/v3/notify";

/// `Wechatpay-*` header pairs.
type Headers = Vec<(&'static str, String)>;

/// How the service verifies WeChat's v3 signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keys {
    /// `WECHATPAY_PUBLIC_KEY_*` only; the sandbox signs with the public key.
    PublicKey,
    /// No public key: platform certificates downloaded; the sandbox signs
    /// with its platform certificate.
    Certificates,
    /// Both configured; the sandbox alternates per answer (switch-over).
    Switch,
}

impl Keys {
    fn sandbox_mode(self) -> SignMode {
        match self {
            Keys::PublicKey => SignMode::PublicKey,
            Keys::Certificates => SignMode::Platform,
            Keys::Switch => SignMode::Switch,
        }
    }

    fn vars(self) -> Vec<(&'static str, &'static str)> {
        let mut v = vec![("PAY_API_VERSION", "v3")];
        if self == Keys::Certificates {
            v.extend([
                ("WECHATPAY_PUBLIC_KEY_ID", ""),
                ("WECHATPAY_PUBLIC_KEY_PEM", ""),
            ]);
        }
        v
    }
}

async fn v3_app(db: &TestDb, keys: Keys) -> TestApp {
    let sandbox = start_sandbox(1.0).await;
    sandbox.state().set_v3_sign_mode(keys.sandbox_mode());
    let Service { base, state } = spawn_service(db, &sandbox, &keys.vars()).await;
    TestApp {
        base,
        state,
        sandbox,
        client: client(),
    }
}

fn calls(sandbox: &Sandbox, path: &str) -> u64 {
    sandbox.state().calls(path)
}

/// `POST /api/pay/orders` → (outTradeNo, data).
async fn create(app: &TestApp, token: &str, trade_type: &str, fen: i64) -> (String, Value) {
    let (status, body) = envelope(
        app.post_json(
            "/api/pay/orders",
            token,
            &json!({"amountFen": fen, "tradeType": trade_type}),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let data = body["data"].clone();
    (data["outTradeNo"].as_str().unwrap().to_owned(), data)
}

async fn pay_and_wait(app: &TestApp, no: &str) {
    app.sandbox
        .state()
        .pay_order(no, PayOptions::default())
        .unwrap();
    assert!(
        app.sandbox.state().wait_acknowledged(no, WAIT).await,
        "{no}"
    );
    assert_eq!(app.status_of(no).await, "PAID", "{no}");
}

async fn api_of(app: &TestApp, no: &str) -> ApiVersion {
    inspect::order(app.state.db(), no)
        .await
        .unwrap()
        .unwrap()
        .api
}

/// The JS-SDK stand-in checks an RSA paySign with the merchant certificate.
async fn sandbox_accepts_pay_params(app: &TestApp, p: &Value) {
    let res = app
        .client
        .post(format!("{}/sandbox/jssdk/pay", app.sandbox.base_url()))
        .json(p)
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["errMsg"], "chooseWXPay:ok", "{body}");
}

#[tokio::test]
async fn each_trade_type_end_to_end_in_both_key_modes_and_switch_over() {
    for db in all_backends(migrations) {
        for keys in [Keys::PublicKey, Keys::Certificates, Keys::Switch] {
            let app = v3_app(&db, keys).await;
            let sb = app.sandbox.state();

            // JSAPI (mini program) through the seed's v2Pay: RSA pay params.
            let data = app.v2pay("0.05").await;
            let no = data["outTradeNo"].as_str().unwrap().to_owned();
            assert_eq!(data["signType"], "RSA", "{keys:?}: {data}");
            assert!(data["package"].as_str().unwrap().starts_with("prepay_id="));
            sandbox_accepts_pay_params(&app, &data).await;
            assert_eq!(api_of(&app, &no).await, ApiVersion::V3);
            let at_wechat = app.sandbox_order(&no);
            assert_eq!(at_wechat.api, PayApi::V3);
            assert!(
                at_wechat.notify_url.ends_with(NOTIFY),
                "{}",
                at_wechat.notify_url
            );
            pay_and_wait(&app, &no).await;
            let t = app.transitions(&no).await;
            assert_eq!(t.len(), 1);
            assert_eq!(
                (t[0].from_status.as_str(), t[0].to_status.as_str()),
                ("NOTPAY", "PAID")
            );
            let events = inspect::events(app.state.db(), &no).await.unwrap();
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].event_type, "order.paid");

            // JSAPI (official account), H5 and Native through /api/pay/orders.
            let oa = app.token(OA, "u2", 2);
            let (no, data) = create(&app, &oa, "JSAPI", 7).await;
            assert_eq!(data["payParams"]["signType"], "RSA");
            sandbox_accepts_pay_params(&app, &data["payParams"]).await;
            pay_and_wait(&app, &no).await;
            let (no, data) = create(&app, &oa, "MWEB", 8).await;
            assert!(
                data["mwebUrl"].as_str().unwrap().contains("redirect_url="),
                "{data}"
            );
            pay_and_wait(&app, &no).await;
            let (no, data) = create(&app, &oa, "NATIVE", 9).await;
            assert!(
                data["codeUrl"].as_str().unwrap().starts_with("weixin://"),
                "{data}"
            );
            pay_and_wait(&app, &no).await;

            // Query: paid without a notification, found by ?sync=true.
            let (no, _) = create(&app, &oa, "NATIVE", 10).await;
            sb.pay_order(
                &no,
                PayOptions {
                    notify: false,
                    ..Default::default()
                },
            )
            .unwrap();
            let view = app.order_view(&format!("{no}?sync=true"), &oa).await;
            assert_eq!(view["status"], "PAID", "{view}");
            assert!(
                view["transactionId"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty())
            );
            // Close: a paid order cannot, an unpaid one closes at WeChat too.
            let res = app.post(&format!("/api/pay/orders/{no}/close"), &oa).await;
            expect_error(res, 409, 1005).await;
            let (no, _) = create(&app, &oa, "NATIVE", 11).await;
            let (status, body) =
                envelope(app.post(&format!("/api/pay/orders/{no}/close"), &oa).await).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["data"]["status"], "CLOSED");
            assert_eq!(
                app.sandbox_order(&no).state,
                wechat_sandbox::TradeState::Closed
            );

            // All of it over v3: v2's endpoints were never called.
            assert_eq!(calls(&app.sandbox, "/pay/unifiedorder"), 0);
            assert_eq!(calls(&app.sandbox, "/pay/orderquery"), 0);
            assert_eq!(calls(&app.sandbox, "/pay/closeorder"), 0);
            assert_eq!(calls(&app.sandbox, "/v3/pay/transactions/jsapi"), 2);
            assert_eq!(calls(&app.sandbox, "/v3/pay/transactions/h5"), 1);
            // Certificates are downloaded only without a public key, once.
            let downloads = calls(&app.sandbox, "/v3/certificates");
            match keys {
                Keys::Certificates => assert_eq!(downloads, 1, "{keys:?}"),
                Keys::PublicKey => assert_eq!(downloads, 0, "{keys:?}"),
                // The first platform-signed answer names a serial the public
                // key does not cover: one download.
                Keys::Switch => assert_eq!(downloads, 1, "{keys:?}"),
            }
        }
    }
}

#[tokio::test]
async fn answers_signed_by_an_unknown_key_are_no_answer() {
    for db in all_backends(migrations) {
        // Public key mode, but the sandbox signs with its platform
        // certificate and the service may not download it: certificate
        // downloads are refused by a fault, so no answer verifies.
        let app = v3_app(&db, Keys::PublicKey).await;
        app.sandbox.state().set_v3_sign_mode(SignMode::Platform);
        let res = app
            .client
            .post(format!("{}/sandbox/faults", app.sandbox.base_url()))
            .json(&json!({"path": "/v3/certificates", "kind": "http500", "count": 100}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
        let res = app.get("/api/mp/v2Pay?money=0.01", &app.mp_token()).await;
        let msg = expect_error(res, 502, 10009).await;
        assert!(msg.contains("does not verify"), "{msg}");
        // Refused for that reason, the order stays NOTPAY without a prepay_id.
        let orders = inspect::count_by_status(app.state.db()).await.unwrap();
        assert_eq!(orders, vec![(pay_service::Status::NotPay, 1)]);
    }
}

#[tokio::test]
async fn wechat_refusals_map_like_v2() {
    for db in all_backends(migrations) {
        let app = v3_app(&db, Keys::PublicKey).await;
        // SYSTEM_ERROR (HTTP 500), retries off in tests: no answer, 10009.
        let res = app
            .client
            .post(format!("{}/sandbox/faults", app.sandbox.base_url()))
            .json(&json!({"path": "/v3/pay/transactions/jsapi", "kind": "http500"}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
        let res = app.get("/api/mp/v2Pay?money=0.01", &app.mp_token()).await;
        expect_error(res, 502, 10009).await;
        assert_eq!(calls(&app.sandbox, "/v3/pay/transactions/jsapi"), 1);
        // A refusal (PARAM_ERROR: WeChat's description limit is 127 bytes,
        // ours 128) is a 502 naming WeChat's code.
        let oa = app.token(OA, "u2", 2);
        let res = app
            .post_json(
                "/api/pay/orders",
                &oa,
                &json!({"amountFen": 1, "tradeType": "NATIVE", "description": "d".repeat(128)}),
                None,
            )
            .await;
        let msg = expect_error(res, 502, 10009).await;
        assert!(msg.contains("PARAM_ERROR"), "{msg}");
        // ORDERPAID (closing an order paid at WeChat but not yet here): 409.
        let (no, _) = create(&app, &oa, "NATIVE", 3).await;
        app.sandbox
            .state()
            .pay_order(
                &no,
                PayOptions {
                    notify: false,
                    ..Default::default()
                },
            )
            .unwrap();
        let res = app.post(&format!("/api/pay/orders/{no}/close"), &oa).await;
        expect_error(res, 409, 1005).await;
        // …and the order was brought up to date by a v3 query.
        assert_eq!(app.status_of(&no).await, "PAID");
    }
}

#[tokio::test]
async fn v3_refunds_end_to_end() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[("PAY_API_VERSION", "v3")]).await;
        let no = app.paid_order("2.00").await;
        assert_eq!(api_of(&app, &no).await, ApiVersion::V3);
        let (status, body) = envelope(app.refund(&no, 50, "damaged").await).await;
        assert_eq!(status, 200, "{body}");
        let r = body["data"]["outRefundNo"].as_str().unwrap().to_owned();
        assert!(app.sandbox.state().wait_refund_acknowledged(&r, WAIT).await);
        let refund = inspect::refund(app.state.db(), &r).await.unwrap().unwrap();
        assert_eq!(refund.status, pay_service::RefundStatus::Success);
        assert_eq!(app.status_of(&no).await, "REFUND");
        let order = inspect::order(app.state.db(), &no).await.unwrap().unwrap();
        assert_eq!(order.refunded_fen, 50);
        assert_eq!(calls(&app.sandbox, "/v3/refund/domestic/refunds"), 1);
        assert_eq!(calls(&app.sandbox, "/secapi/pay/refund"), 0);
        // The refund notification came to the v3 route; a replay changes nothing.
        let t = app.transitions(&no).await;
        assert_eq!(t.len(), 2, "{t:?}");
        assert!(
            app.sandbox
                .state()
                .refund(&r)
                .unwrap()
                .notify_url
                .ends_with("/api/pay/v3/refund-notify")
        );
        // The refund notification again (a replay), and forged variants.
        let snap = app.sandbox.state().refund(&r).unwrap();
        let resource = json!({
            "mchid": wechat_sandbox::SANDBOX_MCH_ID,
            "out_trade_no": snap.out_trade_no,
            "transaction_id": snap.transaction_id,
            "out_refund_no": snap.out_refund_no,
            "refund_id": snap.refund_id,
            "refund_status": "SUCCESS",
            "success_time": "2026-12-01T10:00:00+08:00",
            "user_received_account": "支付用户零钱",
            "amount": {"total": 200, "refund": 50, "payer_total": 200, "payer_refund": 50},
        });
        let refund_notify = |resource: Value| {
            let key = ApiV3Key::new(SANDBOX_MCH_API_V3_KEY).unwrap();
            let sealed = EncryptedResource::seal(
                &key,
                &shared::random::alphanumeric(12),
                "refund",
                Some("refund"),
                resource.to_string().as_bytes(),
            )
            .unwrap();
            serde_json::to_string(&Notification {
                id: "EV-refund".into(),
                create_time: "2026-12-01T10:00:00+08:00".into(),
                event_type: "REFUND.SUCCESS".into(),
                resource_type: "encrypt-resource".into(),
                resource: sealed,
                summary: "退款成功".into(),
            })
            .unwrap()
        };
        let post = |body: String, forge: bool| {
            let mut headers = app.sandbox.state().v3_sign(body.as_bytes());
            if forge {
                headers = with_header(headers, "Wechatpay-Nonce", "another-nonce".into());
            }
            let req = app
                .client
                .post(app.url("/api/pay/v3/refund-notify"))
                .header("content-type", "application/json");
            let req = headers.into_iter().fold(req, |r, (k, v)| r.header(k, v));
            async move { req.body(body).send().await.unwrap().status().as_u16() }
        };
        assert_eq!(post(refund_notify(resource.clone()), false).await, 204);
        let mut other = resource.clone();
        other["mchid"] = json!("1900000999");
        assert_eq!(post(refund_notify(other), false).await, 400);
        let mut other = resource.clone();
        other["amount"]["total"] = json!(201);
        assert_eq!(post(refund_notify(other), false).await, 400);
        assert_eq!(post(refund_notify(resource.clone()), true).await, 401);
        assert_eq!(app.transitions(&no).await.len(), 2);
        let order = inspect::order(app.state.db(), &no).await.unwrap().unwrap();
        assert_eq!(order.refunded_fen, 50);
        // Beyond what is left: refused by us before WeChat is asked.
        let res = app.refund(&no, 151, "too much").await;
        expect_error(res, 409, 1005).await;
        // Refund query (v3) on the listing: nothing open, nothing asked.
        let (status, body) = envelope(
            app.admin_get(&format!("/api/pay/admin/orders/{no}/refunds"))
                .await,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"][0]["status"], "SUCCESS");
    }
}

/// A TRANSACTION.SUCCESS notification for `no` as WeChat would send it
/// (paid at the sandbox without notifying), `edit` changing the resource.
struct Forger<'a> {
    app: &'a TestApp,
    resource: Value,
}

impl<'a> Forger<'a> {
    fn new(app: &'a TestApp, no: &str) -> Self {
        let resource = app.sandbox.state().v3_transaction_resource(no).unwrap();
        assert_eq!(resource["trade_state"], "SUCCESS", "{resource}");
        Forger { app, resource }
    }

    fn body_with(&self, key: &str, resource: &Value, associated_data: &str) -> String {
        let key = ApiV3Key::new(key).unwrap();
        let sealed = EncryptedResource::seal(
            &key,
            &shared::random::alphanumeric(12),
            associated_data,
            Some("transaction"),
            resource.to_string().as_bytes(),
        )
        .unwrap();
        serde_json::to_string(&Notification {
            id: "EV-2018022511223320873".into(),
            create_time: "2015-05-20T13:29:35+08:00".into(),
            event_type: "TRANSACTION.SUCCESS".into(),
            resource_type: "encrypt-resource".into(),
            resource: sealed,
            summary: "支付成功".into(),
        })
        .unwrap()
    }

    fn body(&self, edit: impl FnOnce(&mut Value)) -> String {
        let mut r = self.resource.clone();
        edit(&mut r);
        self.body_with(SANDBOX_MCH_API_V3_KEY, &r, "transaction")
    }

    fn headers(&self, body: &[u8]) -> Vec<(&'static str, String)> {
        self.app.sandbox.state().v3_sign(body)
    }

    async fn post(&self, base: &str, body: impl Into<Vec<u8>>, headers: &[(&str, String)]) -> u16 {
        let body: Vec<u8> = body.into();
        let mut req = self
            .app
            .client
            .post(format!("{base}{NOTIFY}"))
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let res = req.body(body).send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        if status == 204 {
            assert!(text.is_empty(), "{text}");
        } else {
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}"));
            assert_eq!(v["code"], "FAIL", "{v}");
            assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        }
        status
    }

    async fn send(&self, body: String) -> u16 {
        let headers = self.headers(body.as_bytes());
        self.post(&self.app.base, body, &headers).await
    }
}

fn with_header(
    mut h: Vec<(&'static str, String)>,
    name: &str,
    value: String,
) -> Vec<(&'static str, String)> {
    for (k, v) in h.iter_mut() {
        if k.eq_ignore_ascii_case(name) {
            *v = value.clone();
        }
    }
    h
}

/// An order paid at the sandbox whose notification was never sent.
async fn silently_paid(app: &TestApp) -> String {
    let data = app.v2pay("0.10").await;
    let no = data["outTradeNo"].as_str().unwrap().to_owned();
    app.sandbox
        .state()
        .pay_order(
            &no,
            PayOptions {
                notify: false,
                ..Default::default()
            },
        )
        .unwrap();
    no
}

async fn assert_unchanged(app: &TestApp, no: &str, stored_before: usize) {
    assert_eq!(app.status_of(no).await, "NOTPAY");
    assert!(app.transitions(no).await.is_empty());
    assert!(
        inspect::events(app.state.db(), no)
            .await
            .unwrap()
            .is_empty()
    );
    let _ = stored_before;
}

#[tokio::test]
async fn refused_notifications_change_nothing() {
    for db in all_backends(migrations) {
        let app = v3_app(&db, Keys::PublicKey).await;
        let no = silently_paid(&app).await;
        let f = Forger::new(&app, &no);
        let good = f.body(|_| {});
        let good_headers = f.headers(good.as_bytes());
        let base = app.base.clone();

        // Before anything is opened: nothing stored either.
        let merchant_key =
            PrivateKey::from_pem(&app.sandbox.state().v3_keys().merchant.key_pem).unwrap();
        let forged_sig = merchant_key.sign(&shared::wechatpay_v3::response_message(
            &good_headers
                .iter()
                .find(|(k, _)| *k == "Wechatpay-Timestamp")
                .unwrap()
                .1,
            &good_headers
                .iter()
                .find(|(k, _)| *k == "Wechatpay-Nonce")
                .unwrap()
                .1,
            good.as_bytes(),
        ));
        let cases: Vec<(&str, Vec<u8>, Headers, u16)> = vec![
            (
                "forged signature",
                good.clone().into(),
                with_header(good_headers.clone(), "Wechatpay-Signature", forged_sig),
                401,
            ),
            (
                "timestamp 6 minutes old",
                good.clone().into(),
                app.sandbox
                    .state()
                    .v3_sign_at(good.as_bytes(), chrono::Utc::now().timestamp() - 360),
                401,
            ),
            (
                "unknown serial",
                good.clone().into(),
                with_header(
                    good_headers.clone(),
                    "Wechatpay-Serial",
                    "PUB_KEY_ID_0000000000000000000000000000".into(),
                ),
                401,
            ),
            (
                "body not the signed one",
                f.body(|r| r["amount"]["total"] = json!(1)).into(),
                good_headers.clone(),
                401,
            ),
            (
                "oversize body",
                vec![b' '; 2 * 1024 * 1024],
                good_headers.clone(),
                413,
            ),
        ];
        for (what, body, headers, status) in cases {
            assert_eq!(f.post(&base, body, &headers).await, status, "{what}");
            assert_unchanged(&app, &no, 0).await;
        }
        assert!(app.notifications(Some(&no)).await.is_empty());
        // Each refusal is kept as a hash, a size and a short prefix, not whole.
        let refused: Vec<_> = app
            .notifications(None)
            .await
            .into_iter()
            .filter(|n| n.kind == "v3_payment")
            .collect();
        let outcomes: Vec<&str> = refused.iter().map(|n| n.outcome.as_str()).collect();
        assert_eq!(
            outcomes,
            ["bad_sign", "stale", "unknown_serial", "bad_sign"],
            "{refused:?}"
        );
        let forged = &refused[0];
        assert_eq!(forged.body_size, Some(good.len() as i64));
        use sha2::Digest;
        assert_eq!(
            forged.body_sha256.as_deref(),
            Some(hex::encode(sha2::Sha256::digest(good.as_bytes())).as_str())
        );
        assert!(forged.raw_body.len() <= 256 && good.starts_with(&forged.raw_body));
        assert!(!forged.sign_verified);
        // The unknown serial cost one certificate download, no more (a minute
        // must pass before the next one).
        assert_eq!(calls(&app.sandbox, "/v3/certificates"), 1);
        let h = with_header(good_headers.clone(), "Wechatpay-Serial", "ABCDEF".into());
        assert_eq!(f.post(&base, good.clone(), &h).await, 401);
        assert_eq!(calls(&app.sandbox, "/v3/certificates"), 1);

        // Signed validly, but the resource does not decrypt or is not JSON.
        let mut tampered: Value = serde_json::from_str(&good).unwrap();
        let ct = tampered["resource"]["ciphertext"]
            .as_str()
            .unwrap()
            .to_owned();
        let flipped = if ct.starts_with('A') { "B" } else { "A" };
        tampered["resource"]["ciphertext"] = json!(format!("{flipped}{}", &ct[1..]));
        let mut other_ad: Value = serde_json::from_str(&good).unwrap();
        other_ad["resource"]["associated_data"] = json!("certificate");
        let valid_cases: Vec<(&str, String, u16)> = vec![
            ("tampered ciphertext", tampered.to_string(), 401),
            ("tampered associated data", other_ad.to_string(), 401),
            (
                "wrong APIv3 key",
                f.body_with(
                    "0123456789abcdef0123456789abcdef",
                    &f.resource,
                    "transaction",
                ),
                401,
            ),
            ("non-JSON", "<xml>not json</xml>".into(), 400),
        ];
        for (what, body, status) in valid_cases {
            assert_eq!(f.send(body).await, status, "{what}");
            assert_unchanged(&app, &no, 0).await;
        }
        // SIGNTEST probe, sent by the sandbox itself.
        let res = app
            .client
            .post(format!("{}/sandbox/v3/signtest", app.sandbox.base_url()))
            .json(&json!({"outTradeNo": no}))
            .send()
            .await
            .unwrap();
        let probe: Value = res.json().await.unwrap();
        assert_eq!(probe["httpStatus"], 401, "{probe}");
        assert_unchanged(&app, &no, 0).await;
        assert!(app.notifications(Some(&no)).await.is_empty());

        // Authentic, but not matching the order: refused, kept for an operator.
        let mismatches: Vec<(&str, String, &str)> = vec![
            (
                "another mchid",
                f.body(|r| r["mchid"] = json!("1900000999")),
                "mismatch",
            ),
            (
                "another appid",
                f.body(|r| r["appid"] = json!(OA)),
                "mismatch",
            ),
            (
                "different amount",
                f.body(|r| r["amount"]["total"] = json!(11)),
                "mismatch",
            ),
        ];
        for (what, body, outcome) in mismatches {
            assert_eq!(f.send(body).await, 400, "{what}");
            assert_unchanged(&app, &no, 0).await;
            let rows = app.notifications(Some(&no)).await;
            assert_eq!(rows.last().unwrap().outcome, outcome, "{what}");
        }
        // The order's number with its last character changed: a random
        // number ends in `X` one time in 62, so `X` alone is not "changed".
        let last = if no.ends_with('X') { 'Y' } else { 'X' };
        let unknown = format!("{}{last}", &no[..31]);
        assert_ne!(unknown, no);
        let body = f.body(|r| r["out_trade_no"] = json!(unknown));
        assert_eq!(f.send(body).await, 400, "unknown order");
        assert!(
            inspect::order(app.state.db(), &unknown)
                .await
                .unwrap()
                .is_none()
        );
        assert_unchanged(&app, &no, 0).await;

        // The genuine one applies; its replay answers 204 and changes nothing.
        assert_eq!(f.post(&base, good.clone(), &good_headers).await, 204);
        assert_eq!(app.status_of(&no).await, "PAID");
        assert_eq!(f.send(good.clone()).await, 204);
        assert_eq!(app.transitions(&no).await.len(), 1);
        assert_eq!(inspect::events(app.state.db(), &no).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn sixteen_concurrent_deliveries_on_two_replicas_apply_once() {
    for db in all_backends(migrations) {
        let app = v3_app(&db, Keys::PublicKey).await;
        let other = spawn_service(&db, &app.sandbox, &Keys::PublicKey.vars()).await;
        let no = silently_paid(&app).await;
        let f = Forger::new(&app, &no);
        let body = f.body(|_| {});
        let headers = f.headers(body.as_bytes());
        let sends = (0..16).map(|i| {
            let base = if i % 2 == 0 { &app.base } else { &other.base };
            f.post(base, body.clone(), &headers)
        });
        let statuses = futures_util::future::join_all(sends).await;
        assert!(statuses.iter().all(|s| *s == 204), "{statuses:?}");
        assert_eq!(app.status_of(&no).await, "PAID");
        let t = app.transitions(&no).await;
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!(inspect::events(app.state.db(), &no).await.unwrap().len(), 1);
        let applied = app
            .notifications(Some(&no))
            .await
            .iter()
            .filter(|n| n.outcome == "applied")
            .count();
        assert_eq!(applied, 1);
    }
}

#[tokio::test]
async fn v2_orders_made_before_a_switch_finish_on_v2() {
    for db in all_backends(migrations) {
        let (sandbox, pki) = start_tls_sandbox().await;
        let (_pem, vars) = refund_vars(&sandbox, &pki);
        let mut v2_vars: Vec<(&str, &str)> =
            vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let before = spawn_service(&db, &sandbox, &v2_vars).await;
        let old = TestApp {
            base: before.base,
            state: before.state,
            sandbox,
            client: client(),
        };
        let to_refund = old.paid_order("1.00").await;
        let to_close = old.v2pay("0.30").await["outTradeNo"]
            .as_str()
            .unwrap()
            .to_owned();
        let to_settle = silently_paid(&old).await;
        for no in [&to_refund, &to_close, &to_settle] {
            assert_eq!(api_of(&old, no).await, ApiVersion::V2);
        }

        // The same database, now with v3 for new orders.
        v2_vars.push(("PAY_API_VERSION", "v3"));
        let after = spawn_service(&db, &old.sandbox, &v2_vars).await;
        // The old replica keeps running (v2 notifications name its URL).
        let TestApp { sandbox, .. } = old;
        let new = TestApp {
            base: after.base,
            state: after.state,
            sandbox,
            client: client(),
        };
        let fresh = new.v2pay("0.01").await;
        assert_eq!(fresh["signType"], "RSA");
        let fresh_no = fresh["outTradeNo"].as_str().unwrap();
        assert_eq!(api_of(&new, fresh_no).await, ApiVersion::V3);

        // Close, settle (reconciliation) and refund the v2 orders: over v2.
        let v3_before = calls(&new.sandbox, "/v3/pay/transactions/jsapi");
        let token = new.mp_token();
        let (status, body) = envelope(
            new.post(&format!("/api/pay/orders/{to_close}/close"), &token)
                .await,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(calls(&new.sandbox, "/pay/closeorder"), 1);
        let report = pay_service::reconcile_once(&new.state).await.unwrap();
        assert!(report.paid >= 1, "{report:?}");
        assert_eq!(new.status_of(&to_settle).await, "PAID");
        assert!(calls(&new.sandbox, "/pay/orderquery") >= 1);
        let (status, body) = envelope(new.refund(&to_refund, 30, "v2 refund").await).await;
        assert_eq!(status, 200, "{body}");
        let r = body["data"]["outRefundNo"].as_str().unwrap().to_owned();
        assert!(new.sandbox.state().wait_refund_acknowledged(&r, WAIT).await);
        let refund = inspect::refund(new.state.db(), &r).await.unwrap().unwrap();
        assert_eq!(refund.status, pay_service::RefundStatus::Success);
        assert_eq!(calls(&new.sandbox, "/secapi/pay/refund"), 1);
        assert_eq!(calls(&new.sandbox, "/v3/refund/domestic/refunds"), 0);
        let v3_close = format!("/v3/pay/transactions/out-trade-no/{to_close}/close");
        assert_eq!(calls(&new.sandbox, &v3_close), 0);
        let v3_query = format!("/v3/pay/transactions/out-trade-no/{to_settle}");
        assert_eq!(calls(&new.sandbox, &v3_query), 0);
        assert_eq!(calls(&new.sandbox, "/v3/pay/transactions/jsapi"), v3_before);
    }
}

#[tokio::test]
async fn configuration_picks_the_api_and_names_what_is_missing() {
    let sandbox = start_sandbox(1.0).await;
    let env = |edit: &[(&str, &str)]| {
        let mut env = shared::config::Env::from_pairs(sandbox.service_env());
        env.extend([("SESSION_SECRET", SESSION_SECRET)]);
        env.extend(edit.iter().copied());
        pay_service::PayConfig::from_env(&env)
    };
    // v3 credentials present: v3 unless told otherwise.
    assert_eq!(env(&[]).unwrap().api_version, ApiVersion::V3);
    assert_eq!(
        env(&[("PAY_API_VERSION", "v2")]).unwrap().api_version,
        ApiVersion::V2
    );
    // Without them: v2, and v3 cannot be asked for.
    let no_v3 = [("MCH_API_V3_KEY", "")];
    assert_eq!(env(&no_v3).unwrap().api_version, ApiVersion::V2);
    let e = env(&[("MCH_API_V3_KEY", ""), ("PAY_API_VERSION", "v3")]).unwrap_err();
    assert!(e.to_string().contains("MCH_API_V3_KEY"), "{e}");
    let e = env(&[("PAY_API_VERSION", "v4")]).unwrap_err();
    assert!(e.to_string().contains("PAY_API_VERSION"), "{e}");
    // Each v3 value is checked and named.
    for (var, value) in [
        ("MCH_API_V3_KEY", "too-short"),
        ("MCH_CERT_SERIAL_NO", ""),
        ("MCH_CERT_SERIAL_NO", "not hex!"),
        ("MCH_KEY_PEM", ""),
        ("MCH_KEY_PEM", "/nonexistent/apiclient_key.pem"),
        ("WECHATPAY_PUBLIC_KEY_ID", ""),
    ] {
        let e = env(&[(var, value)]).unwrap_err().to_string();
        assert!(e.contains(var), "{var}={value:?}: {e}");
    }
    // A public key file that is not one.
    let cert = sandbox
        .service_env()
        .into_iter()
        .find(|(k, _)| *k == "MCH_CERT_PEM")
        .unwrap()
        .1;
    let e = env(&[("MCH_KEY_PEM", cert.as_str())])
        .unwrap_err()
        .to_string();
    assert!(e.contains("MCH_KEY_PEM"), "{e}");
    // Secrets never in Debug.
    let shown = format!("{:?}", env(&[]).unwrap());
    assert!(!shown.contains(SANDBOX_MCH_API_V3_KEY), "{shown}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
}

/// A replica on `db` with `cache` (shared with the other replica).
async fn replica_with_cache(
    db: &TestDb,
    sandbox: &Sandbox,
    vars: &[(&str, &str)],
    cache: shared::cache::Cache,
) -> Service {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut env = shared::config::Env::from_pairs(sandbox.service_env());
    env.extend([
        ("SESSION_SECRET", SESSION_SECRET),
        ("PUBLIC_BASE_URL", base.as_str()),
        ("DATABASE_URL", db.url.as_str()),
        ("RECONCILE_INTERVAL_SECONDS", "0"),
        ("WECHAT_RETRIES", "0"),
    ]);
    env.extend(vars.iter().copied());
    let config = pay_service::PayConfig::from_env(&env).unwrap();
    let state = pay_service::PayState::build(config, Some(cache))
        .await
        .unwrap();
    let app = pay_service::with_state(state.clone(), listener).unwrap();
    tokio::spawn(app.run_until_stopped());
    Service { base, state }
}

#[tokio::test]
async fn platform_certificates_are_downloaded_once_and_shared_through_the_cache() {
    let Some((cache, _prefix)) = testkit::redis_cache().await else {
        testkit::skip_or_fail("TEST_REDIS_URL is not set");
        return;
    };
    for db in all_backends(migrations) {
        let sandbox = start_sandbox(1.0).await;
        sandbox.state().set_v3_sign_mode(SignMode::Platform);
        let vars = Keys::Certificates.vars();
        let a = replica_with_cache(&db, &sandbox, &vars, cache.clone()).await;
        let b = replica_with_cache(&db, &sandbox, &vars, cache.clone()).await;
        let c = client();
        for (i, replica) in [&a, &b, &a, &b].into_iter().enumerate() {
            let token = replica
                .state
                .sessions()
                .issue(
                    10 + i as i64,
                    OA,
                    &sandbox.state().openid(OA, "u1"),
                    shared::session::SessionKind::Oa,
                )
                .0;
            let res = c
                .post(format!("{}/api/pay/orders", replica.base))
                .bearer_auth(&token)
                .json(&json!({"amountFen": 1, "tradeType": "NATIVE"}))
                .send()
                .await
                .unwrap();
            let (status, body) = envelope(res).await;
            assert_eq!(status, 200, "{body}");
        }
        // One download for both replicas; the second read the cache.
        assert_eq!(sandbox.state().calls("/v3/certificates"), 1);
        // Whatever is cached must be what WeChat handed out: a download
        // whose certificates do not decrypt with our APIv3 key is refused.
        let _ = cache.delete(CERTS_KEY).await;
        let _ = cache.delete("pay:v3:platform-certificates:download").await;
        let wrong_key = [("MCH_API_V3_KEY", "0123456789abcdef0123456789abcdef")];
        let mut wrong: Vec<(&str, &str)> = vars.clone();
        wrong.extend(wrong_key);
        let d = replica_with_cache(&db, &sandbox, &wrong, cache.clone()).await;
        let token = d
            .state
            .sessions()
            .issue(
                99,
                OA,
                &sandbox.state().openid(OA, "u1"),
                shared::session::SessionKind::Oa,
            )
            .0;
        let res = c
            .post(format!("{}/api/pay/orders", d.base))
            .bearer_auth(&token)
            .json(&json!({"amountFen": 1, "tradeType": "NATIVE"}))
            .send()
            .await
            .unwrap();
        let msg = expect_error(res, 502, 10009).await;
        assert!(msg.contains("does not verify"), "{msg}");
        assert_eq!(sandbox.state().calls("/v3/certificates"), 2);
        let _ = cache.delete(CERTS_KEY).await;
        let _ = cache.delete("pay:v3:platform-certificates:download").await;
    }
}

/// Where replicas share the last `/v3/certificates` answer.
const CERTS_KEY: &str = "pay:v3:platform-certificates:answer";
/// Where they once shared plain PEMs (a planted value there must not count
/// either).
const OLD_CERTS_KEY: &str = "pay:v3:platform-certificates";

/// An order made through `replica`, paid at the sandbox without a
/// notification.
async fn paid_silently_on(replica: &Service, sandbox: &Sandbox, uid: i64) -> String {
    let token = replica
        .state
        .sessions()
        .issue(
            uid,
            OA,
            &sandbox.state().openid(OA, "u1"),
            shared::session::SessionKind::Oa,
        )
        .0;
    let res = client()
        .post(format!("{}/api/pay/orders", replica.base))
        .bearer_auth(&token)
        .json(&json!({"amountFen": 1, "tradeType": "NATIVE"}))
        .send()
        .await
        .unwrap();
    let (status, body) = envelope(res).await;
    assert_eq!(status, 200, "{body}");
    let no = body["data"]["outTradeNo"].as_str().unwrap().to_owned();
    sandbox
        .state()
        .pay_order(
            &no,
            PayOptions {
                notify: false,
                ..Default::default()
            },
        )
        .unwrap();
    no
}

/// The `TRANSACTION.SUCCESS` notification of `no`, sealed with the APIv3 key.
fn success_notification(sandbox: &Sandbox, no: &str) -> String {
    let resource = sandbox.state().v3_transaction_resource(no).unwrap();
    let sealed = EncryptedResource::seal(
        &ApiV3Key::new(SANDBOX_MCH_API_V3_KEY).unwrap(),
        &shared::random::alphanumeric(12),
        "transaction",
        Some("transaction"),
        resource.to_string().as_bytes(),
    )
    .unwrap();
    serde_json::to_string(&Notification {
        id: format!("EV-{}", shared::random::alphanumeric(16)),
        create_time: "2015-05-20T13:29:35+08:00".into(),
        event_type: "TRANSACTION.SUCCESS".into(),
        resource_type: "encrypt-resource".into(),
        resource: sealed,
        summary: "支付成功".into(),
    })
    .unwrap()
}

async fn post_notification(base: &str, body: &str, headers: &[(&str, String)]) -> u16 {
    let mut req = client()
        .post(format!("{base}{NOTIFY}"))
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    req.body(body.to_owned())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn status_on(replica: &Service, no: &str) -> String {
    inspect::order(replica.state.db(), no)
        .await
        .unwrap()
        .unwrap()
        .status
        .as_str()
        .to_owned()
}

/// Whoever can write the cache cannot plant a certificate: a replica opens
/// the cached `/v3/certificates` answer with the APIv3 key as it opens a
/// download, so a notification signed with a planted certificate's key is
/// refused; the genuine answer another replica cached is used without a
/// download.
#[tokio::test]
async fn a_certificate_planted_in_the_cache_signs_nothing() {
    let Some((cache, _prefix)) = testkit::redis_cache().await else {
        testkit::skip_or_fail("TEST_REDIS_URL is not set");
        return;
    };
    for db in all_backends(migrations) {
        let sandbox = start_sandbox(1.0).await;
        sandbox.state().set_v3_sign_mode(SignMode::Platform);
        let vars = Keys::Certificates.vars();
        // The attacker's key and certificate: the sandbox's merchant
        // identity, a real RSA key with a self-signed certificate that
        // WeChat never handed out.
        let info = sandbox.state().v3_keys();
        let attacker_key = PrivateKey::from_pem(&info.merchant.key_pem).unwrap();
        let planted = serde_json::to_string(&[info.merchant.cert_pem.as_str()]).unwrap();
        for key in [CERTS_KEY, OLD_CERTS_KEY] {
            cache
                .set(key, &planted, std::time::Duration::from_secs(600))
                .await
                .unwrap();
        }
        // Also planted: an answer of WeChat's shape whose certificate is
        // sealed with a key that is not our APIv3 key.
        let forged_answer = json!({"data": [{
            "serial_no": info.merchant_serial_no,
            "effective_time": "2020-01-01T00:00:00+08:00",
            "expire_time": "2040-01-01T00:00:00+08:00",
            "encrypt_certificate": EncryptedResource::seal(
                &ApiV3Key::new("0123456789abcdef0123456789abcdef").unwrap(),
                "0123456789ab",
                "certificate",
                None,
                info.merchant.cert_pem.as_bytes(),
            ).unwrap(),
        }]});
        let a = replica_with_cache(&db, &sandbox, &vars, cache.clone()).await;
        let no = paid_silently_on(&a, &sandbox, 31).await;
        let body = success_notification(&sandbox, &no);
        let forged = |body: &str| -> Headers {
            let ts = chrono::Utc::now().timestamp().to_string();
            let nonce = shared::random::alphanumeric(32);
            let msg = shared::wechatpay_v3::response_message(&ts, &nonce, body.as_bytes());
            vec![
                ("Wechatpay-Serial", info.merchant_serial_no.clone()),
                ("Wechatpay-Timestamp", ts),
                ("Wechatpay-Nonce", nonce),
                ("Wechatpay-Signature", attacker_key.sign(&msg)),
            ]
        };
        assert_eq!(post_notification(&a.base, &body, &forged(&body)).await, 401);
        assert_eq!(status_on(&a, &no).await, "NOTPAY");
        // The planted value was not taken for certificates: the replica
        // downloaded them (and cached WeChat's answer in their place).
        assert_eq!(sandbox.state().calls("/v3/certificates"), 1);

        // The forged answer shape, on a fresh replica: refused as well.
        cache
            .set(
                CERTS_KEY,
                &forged_answer.to_string(),
                std::time::Duration::from_secs(600),
            )
            .await
            .unwrap();
        let _ = cache.delete("pay:v3:platform-certificates:download").await;
        let c = replica_with_cache(&db, &sandbox, &vars, cache.clone()).await;
        assert_eq!(post_notification(&c.base, &body, &forged(&body)).await, 401);
        assert_eq!(status_on(&c, &no).await, "NOTPAY");
        assert_eq!(sandbox.state().calls("/v3/certificates"), 2);

        // The genuine answer (cached by `c`'s download) serves a second
        // replica without a download of its own.
        let b = replica_with_cache(&db, &sandbox, &vars, cache.clone()).await;
        let headers = sandbox.state().v3_sign(body.as_bytes());
        assert_eq!(post_notification(&b.base, &body, &headers).await, 204);
        assert_eq!(status_on(&b, &no).await, "PAID");
        assert_eq!(sandbox.state().calls("/v3/certificates"), 2);
        for key in [
            CERTS_KEY,
            OLD_CERTS_KEY,
            "pay:v3:platform-certificates:download",
        ] {
            let _ = cache.delete(key).await;
        }
    }
}

#[tokio::test]
async fn system_errors_are_retried_and_unknown_refund_outcomes_stay_pending() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(
            &db,
            &[
                ("PAY_API_VERSION", "v3"),
                ("WECHAT_RETRIES", "1"),
                ("WECHAT_RETRY_BACKOFF_MS", "1"),
            ],
        )
        .await;
        let fault = |path: &str, count: u32| {
            let (client, url) = (
                app.client.clone(),
                format!("{}/sandbox/faults", app.sandbox.base_url()),
            );
            let body = json!({"path": path, "kind": "http500", "count": count});
            async move {
                let res = client.post(url).json(&body).send().await.unwrap();
                assert!(res.status().is_success());
            }
        };
        // One SYSTEM_ERROR, then the retry goes through.
        fault("/v3/pay/transactions/jsapi", 1).await;
        let no = app.paid_order("1.00").await;
        assert_eq!(calls(&app.sandbox, "/v3/pay/transactions/jsapi"), 2);
        // A refund whose every attempt fails: outcome unknown, PENDING, the
        // amount held.
        fault("/v3/refund/domestic/refunds", 2).await;
        let res = app.refund(&no, 40, "unknown").await;
        expect_error(res, 502, 10009).await;
        let (status, body) = envelope(
            app.admin_get(&format!("/api/pay/admin/orders/{no}/refunds"))
                .await,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"][0]["status"], "PENDING", "{body}");
        let order = inspect::order(app.state.db(), &no).await.unwrap().unwrap();
        assert_eq!(order.refund_reserved_fen, 40);
        assert_eq!(order.refunded_fen, 0);
    }
}

/// The v3 pay parameters' paySign checked by openssl with the merchant
/// certificate: SHA256withRSA over `appId\ntimeStamp\nnonceStr\npackage\n`.
#[tokio::test]
async fn jsapi_pay_sign_verifies_with_openssl() {
    use base64::Engine;
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        testkit::skip_or_fail("openssl is not installed");
        return;
    }
    let db = testkit::sqlite_db(migrations());
    let app = v3_app(&db, Keys::PublicKey).await;
    let p = app.v2pay("0.01").await;
    let message = format!(
        "{}\n{}\n{}\n{}\n",
        p["appId"].as_str().unwrap(),
        p["timeStamp"].as_str().unwrap(),
        p["nonceStr"].as_str().unwrap(),
        p["package"].as_str().unwrap()
    );
    let sig = base64::engine::general_purpose::STANDARD
        .decode(p["paySign"].as_str().unwrap())
        .unwrap();
    let files = PemFiles::write(&[("cert.pem", &app.sandbox.state().v3_keys().merchant.cert_pem)]);
    std::fs::write(files.dir.join("msg"), &message).unwrap();
    std::fs::write(files.dir.join("sig"), &sig).unwrap();
    let pubkey = std::process::Command::new("openssl")
        .args([
            "x509",
            "-in",
            &files.path("cert.pem"),
            "-noout",
            "-pubkey",
            "-out",
        ])
        .arg(files.path("pub.pem"))
        .status()
        .unwrap();
    assert!(pubkey.success());
    let verify = |msg: &str| {
        std::process::Command::new("openssl")
            .args([
                "dgst",
                "-sha256",
                "-verify",
                &files.path("pub.pem"),
                "-signature",
            ])
            .arg(files.path("sig"))
            .arg(files.path(msg))
            .output()
            .unwrap()
    };
    let out = verify("msg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // And not over anything else.
    std::fs::write(
        files.dir.join("other"),
        message.replace("prepay_id=", "prepay_id=x"),
    )
    .unwrap();
    assert!(!verify("other").status.success());
}
