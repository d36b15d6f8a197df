//! Refunds end to end against the sandbox's TLS listener (client certificate
//! required), on SQLite and, when configured, PostgreSQL: full and partial
//! refunds, over-refunds (also racing), refund notifications applied once,
//! forged ones refused, refundquery settling open refunds, the admin guard,
//! and configuration errors at start.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod common;

use std::collections::BTreeMap;

use common::*;
use pay_service::migrations;
use pay_service::{PayConfig, inspect};
use serde_json::Value;
use shared::config::Env;
use testkit::all_backends;
use wechat_sandbox::{RefundStatus, SANDBOX_MCH_ID, SANDBOX_MCH_KEY, encrypt_req_info};

const NOTIFY: &str = "/api/pay/refund-notify";

async fn refund_ok(app: &TestApp, no: &str, fen: i64) -> Value {
    let (status, body) = envelope(app.refund(no, fen, "damaged").await).await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

async fn refunds_of(app: &TestApp, no: &str) -> Vec<Value> {
    let (status, body) = envelope(
        app.admin_get(&format!("/api/pay/admin/orders/{no}/refunds"))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

async fn order_row(app: &TestApp, no: &str) -> inspect::Order {
    inspect::order(app.state.db(), no).await.unwrap().unwrap()
}

#[tokio::test]
async fn full_and_partial_refunds_succeed_up_to_the_paid_amount() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[]).await;
        let no = app.paid_order("3.00").await;

        let first = refund_ok(&app, &no, 100).await;
        let r1 = first["outRefundNo"].as_str().unwrap().to_owned();
        assert_eq!(first["amountFen"], 100);
        assert_eq!(first["reason"], "damaged");
        assert_eq!(first["outTradeNo"], no.as_str());
        assert!(
            matches!(first["status"].as_str(), Some("PROCESSING" | "SUCCESS")),
            "{first}"
        );
        let sb = app.sandbox.state();
        assert!(sb.wait_refund_acknowledged(&r1, WAIT).await);
        let view = app.order_view(&no, &app.mp_token()).await;
        assert_eq!(
            (view["status"].as_str(), view["refundedFen"].as_i64()),
            (Some("REFUND"), Some(100))
        );

        // The rest, then nothing more.
        let second = refund_ok(&app, &no, 200).await;
        let r2 = second["outRefundNo"].as_str().unwrap().to_owned();
        assert!(sb.wait_refund_acknowledged(&r2, WAIT).await);
        let msg = expect_error(app.refund(&no, 1, "one more").await, 409, 1005).await;
        assert_eq!(msg, "amountFen 1 exceeds the 0 fen left to refund");

        let list = refunds_of(&app, &no).await;
        let shown: Vec<(String, i64, String)> = list
            .iter()
            .map(|r| {
                (
                    r["outRefundNo"].as_str().unwrap().to_owned(),
                    r["amountFen"].as_i64().unwrap(),
                    r["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                (r1.clone(), 100, "SUCCESS".to_owned()),
                (r2.clone(), 200, "SUCCESS".to_owned())
            ]
        );
        assert!(list.iter().all(|r| {
            r["refundId"]
                .as_str()
                .is_some_and(|id| id.starts_with("50000"))
        }));
        let order = order_row(&app, &no).await;
        assert_eq!(
            (
                order.refunded_fen,
                order.refund_reserved_fen,
                order.status.as_str()
            ),
            (300, 300, "REFUND")
        );
        let view = app.order_view(&no, &app.mp_token()).await;
        assert_eq!(view["refundedFen"], 300);

        // WeChat has exactly the two refunds.
        let at_wechat: Vec<u64> = sb.refunds_of(&no).iter().map(|r| r.refund_fee).collect();
        assert_eq!(at_wechat, vec![100, 200]);
        assert!(
            sb.refunds_of(&no)
                .iter()
                .all(|r| r.refund_desc.as_deref() == Some("damaged"))
        );

        // Transitions: paid, then one per refund, each with its source and request id.
        let t = app.transitions(&no).await;
        let steps: Vec<(&str, &str, &str)> = t
            .iter()
            .map(|t| {
                (
                    t.from_status.as_str(),
                    t.to_status.as_str(),
                    t.source.as_str(),
                )
            })
            .collect();
        assert_eq!(
            steps,
            vec![
                ("NOTPAY", "PAID", "notify"),
                ("PAID", "REFUND", "refund_notify"),
                ("REFUND", "REFUND", "refund_notify")
            ]
        );
        assert!(t.iter().all(|t| {
            t.request_id
                .as_deref()
                .is_some_and(|id| !id.is_empty() && id != "-")
        }));
        // One event per transition, in order, waiting in the outbox (no webhook).
        let events = inspect::events(app.state.db(), &no).await.unwrap();
        let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(kinds, vec!["order.paid", "order.refund", "order.refund"]);
    }
}

#[tokio::test]
async fn refunds_of_unpaid_or_unknown_orders_and_bad_input_are_refused() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[]).await;
        let unpaid = app.v2pay("1.00").await["outTradeNo"]
            .as_str()
            .unwrap()
            .to_owned();
        let msg = expect_error(app.refund(&unpaid, 10, "x").await, 409, 1005).await;
        assert_eq!(
            msg,
            "order is NOTPAY; only PAID or REFUND orders can be refunded"
        );
        expect_error(app.refund("NOSUCHORDER", 10, "x").await, 404, 1004).await;
        let no = app.paid_order("1.00").await;
        let msg = expect_error(app.refund(&no, 0, "x").await, 400, 1001).await;
        assert!(msg.contains("amountFen"), "{msg}");
        let msg = expect_error(app.refund(&no, 101, "x").await, 409, 1005).await;
        assert_eq!(msg, "amountFen 101 exceeds the 100 fen left to refund");
        let long = "退".repeat(81);
        let msg = expect_error(app.refund(&no, 1, &long).await, 400, 1001).await;
        assert!(msg.contains("reason"), "{msg}");
        let res = app
            .post_json(
                &format!("/api/pay/admin/orders/{no}/refunds"),
                ADMIN_TOKEN,
                &serde_json::json!({"amountFen": 1.5}),
                None,
            )
            .await;
        expect_error(res, 400, 1001).await;
        // Nothing reached WeChat, nothing is held.
        assert_eq!(app.sandbox.state().calls("/secapi/pay/refund"), 0);
        assert_eq!(order_row(&app, &no).await.refund_reserved_fen, 0);
        expect_error(
            app.admin_get("/api/pay/admin/orders/NOSUCHORDER/refunds")
                .await,
            404,
            1004,
        )
        .await;
    }
}

#[tokio::test]
async fn racing_refunds_never_exceed_the_paid_amount() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[]).await;
        let no = app.paid_order("3.00").await;
        let attempts =
            futures_util::future::join_all((0..4).map(|_| app.refund(&no, 200, "race"))).await;
        let mut statuses = Vec::new();
        for res in attempts {
            let (status, body) = envelope(res).await;
            statuses.push((status, body["code"].as_i64().unwrap()));
        }
        statuses.sort();
        assert_eq!(
            statuses,
            vec![(200, 0), (409, 1005), (409, 1005), (409, 1005)]
        );
        assert_eq!(app.sandbox.state().refunds_of(&no).len(), 1);
        assert_eq!(app.sandbox.state().calls("/secapi/pay/refund"), 1);
        let order = order_row(&app, &no).await;
        assert_eq!(order.refund_reserved_fen, 200);
    }
}

/// Holds refunds at the sandbox so the notification comes when the test says.
async fn processing_refund(app: &TestApp, money: &str, fen: i64) -> (String, String) {
    let no = app.paid_order(money).await;
    app.sandbox.state().hold_refunds(true);
    let data = refund_ok(app, &no, fen).await;
    assert_eq!(data["status"], "PROCESSING");
    assert!(data["refundId"].as_str().is_some());
    (no, data["outRefundNo"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_refund_notification_is_applied_once() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[]).await;
        let (no, r) = processing_refund(&app, "2.00", 150).await;
        let sb = app.sandbox.state();
        sb.complete_refund(&r, RefundStatus::Success, true).unwrap();
        assert!(sb.wait_refund_acknowledged(&r, WAIT).await);
        // WeChat retries what it thinks was lost: replays change nothing.
        let xml = sb.refund_notification_xml(&r).unwrap();
        for _ in 0..2 {
            let (status, reply) = app.notify_raw(NOTIFY, xml.clone()).await;
            assert_eq!(status, 200);
            assert!(success(&reply), "{reply:?}");
        }
        let order = order_row(&app, &no).await;
        assert_eq!((order.refunded_fen, order.status.as_str()), (150, "REFUND"));
        let refund = inspect::refund(app.state.db(), &r).await.unwrap().unwrap();
        assert_eq!(refund.status.as_str(), "SUCCESS");
        assert_eq!(
            refund.refund_id.as_deref(),
            Some(sb.refund(&r).unwrap().refund_id.as_str())
        );
        let t = app.transitions(&no).await;
        assert_eq!(t.iter().filter(|t| t.to_status == "REFUND").count(), 1);
        let outcomes: Vec<(String, String)> = app
            .notifications(Some(&no))
            .await
            .into_iter()
            .filter(|n| n.kind == "refund")
            .map(|n| (n.outcome, n.detail))
            .collect();
        assert_eq!(
            outcomes,
            vec![
                ("applied".to_owned(), String::new()),
                ("duplicate".to_owned(), String::new()),
                ("duplicate".to_owned(), String::new())
            ]
        );
        let events = inspect::events(app.state.db(), &no).await.unwrap();
        assert_eq!(events.len(), 2);
    }
}

fn refund_notification(appid: &str, mch_id: &str, req_info: &str) -> String {
    let f: BTreeMap<String, String> = [
        ("return_code", "SUCCESS"),
        ("appid", appid),
        ("mch_id", mch_id),
        ("nonce_str", "n0nce"),
        ("req_info", req_info),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    shared::xml::map_to_xml(&f)
}

fn inner_xml(no: &str, r: &str, fee: i64, status: &str) -> String {
    format!(
        "<root><out_trade_no>{no}</out_trade_no><out_refund_no>{r}</out_refund_no><refund_id>50000999</refund_id>\
         <refund_fee>{fee}</refund_fee><total_fee>200</total_fee><refund_status>{status}</refund_status>\
         <success_time>2026-11-25 10:00:00</success_time></root>"
    )
}

#[tokio::test]
async fn forged_or_undecryptable_refund_notifications_change_nothing() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[]).await;
        let (no, r) = processing_refund(&app, "2.00", 150).await;
        let good = inner_xml(&no, &r, 150, "SUCCESS");
        let cases: Vec<(String, &str)> = vec![
            // Encrypted with another key: a forger without MCH_KEY.
            (
                refund_notification(
                    MP,
                    SANDBOX_MCH_ID,
                    &encrypt_req_info("not-the-merchant-key", &good),
                ),
                "undecryptable",
            ),
            (
                refund_notification(MP, SANDBOX_MCH_ID, "bm90IGVuY3J5cHRlZA=="),
                "undecryptable",
            ),
            (
                refund_notification(MP, SANDBOX_MCH_ID, "%%%"),
                "undecryptable",
            ),
            (refund_notification(MP, SANDBOX_MCH_ID, ""), "undecryptable"),
            // Right key, wrong merchant or app.
            (
                refund_notification(MP, "1900000999", &encrypt_req_info(SANDBOX_MCH_KEY, &good)),
                "not_ours",
            ),
            (
                refund_notification(
                    "wxnotours",
                    SANDBOX_MCH_ID,
                    &encrypt_req_info(SANDBOX_MCH_KEY, &good),
                ),
                "not_ours",
            ),
            (
                refund_notification(
                    OA,
                    SANDBOX_MCH_ID,
                    &encrypt_req_info(SANDBOX_MCH_KEY, &good),
                ),
                "not_ours",
            ),
            // Right key, wrong amount or refund.
            (
                refund_notification(
                    MP,
                    SANDBOX_MCH_ID,
                    &encrypt_req_info(SANDBOX_MCH_KEY, &inner_xml(&no, &r, 151, "SUCCESS")),
                ),
                "mismatch",
            ),
            (
                refund_notification(
                    MP,
                    SANDBOX_MCH_ID,
                    &encrypt_req_info(
                        SANDBOX_MCH_KEY,
                        &inner_xml(&no, "NOSUCHREFUND", 150, "SUCCESS"),
                    ),
                ),
                "unknown_refund",
            ),
            (
                refund_notification(
                    MP,
                    SANDBOX_MCH_ID,
                    &encrypt_req_info(
                        SANDBOX_MCH_KEY,
                        "<!DOCTYPE r [<!ENTITY e \"x\">]><root><a>&e;</a></root>",
                    ),
                ),
                "undecryptable",
            ),
            (
                "<!DOCTYPE xml [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><xml><return_code>&e;</return_code></xml>"
                    .to_owned(),                "malformed",
            ),
            (
                "<xml><return_code>FAIL</return_code></xml>".to_owned(),
                "malformed",
            ),
        ];
        for (body, label) in &cases {
            let (status, reply) = app.notify_raw(NOTIFY, body.clone()).await;
            assert_eq!(status, 200);
            assert!(!success(&reply), "{label}: {reply:?}");
            assert_eq!(reply["return_msg"], *label, "{body}");
        }
        let big = format!("<xml><req_info>{}</req_info></xml>", "A".repeat(70_000));
        let (_, reply) = app.notify_raw(NOTIFY, big).await;
        assert_eq!(reply["return_msg"], "too_large");

        let order = order_row(&app, &no).await;
        assert_eq!(
            (
                order.refunded_fen,
                order.refund_reserved_fen,
                order.status.as_str()
            ),
            (0, 150, "PAID")
        );
        let refund = inspect::refund(app.state.db(), &r).await.unwrap().unwrap();
        assert_eq!(refund.status.as_str(), "PROCESSING");
        let kept = app
            .notifications(None)
            .await
            .into_iter()
            .filter(|n| n.kind == "refund")
            .count();
        assert_eq!(kept, cases.len());
    }
}

#[tokio::test]
async fn refundquery_settles_open_refunds_on_get_and_in_reconciliation() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[]).await;
        let sb = app.sandbox.state();
        // Succeeded at WeChat, notification lost: the admin's GET settles it.
        let (no, r) = processing_refund(&app, "2.00", 120).await;
        sb.complete_refund(&r, RefundStatus::Success, false)
            .unwrap();
        let list = refunds_of(&app, &no).await;
        assert_eq!(list[0]["status"], "SUCCESS");
        assert_eq!(order_row(&app, &no).await.refunded_fen, 120);
        let t = app.transitions(&no).await;
        assert_eq!(t.last().unwrap().source, "query");

        // Closed at WeChat: reconciliation releases the amount for a new refund.
        let (no2, r2) = processing_refund(&app, "1.00", 100).await;
        sb.complete_refund(&r2, RefundStatus::RefundClose, false)
            .unwrap();
        let report = pay_service::reconcile_once(&app.state).await.unwrap();
        assert_eq!(report.refunds_settled, 1);
        let refund = inspect::refund(app.state.db(), &r2).await.unwrap().unwrap();
        assert_eq!(
            (refund.status.as_str(), refund.error.as_deref()),
            ("FAILED", Some("WeChat refund status REFUNDCLOSE"))
        );
        let order = order_row(&app, &no2).await;
        assert_eq!(
            (order.refund_reserved_fen, order.status.as_str()),
            (0, "PAID")
        );
        sb.hold_refunds(false);
        let again = refund_ok(&app, &no2, 100).await;
        let r3 = again["outRefundNo"].as_str().unwrap().to_owned();
        assert!(sb.wait_refund_acknowledged(&r3, WAIT).await);
        let t = app.transitions(&no2).await;
        let last = t.last().unwrap();
        assert_eq!(
            (last.to_status.as_str(), last.source.as_str()),
            ("REFUND", "refund_notify")
        );
        assert!(t.iter().filter(|t| t.source == "reconcile").count() == 0);
    }
}

#[tokio::test]
async fn an_unusable_answer_keeps_the_amount_reserved_until_wechat_answers() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[]).await;
        let no = app.paid_order("1.00").await;
        app.sandbox.state().inject_fault(
            "/secapi/pay/refund",
            wechat_sandbox::FaultKind::Garbage,
            1,
        );
        expect_error(app.refund(&no, 60, "x").await, 502, 10009).await;
        // WeChat's answer is unknown: the 60 fen stay held.
        let msg = expect_error(app.refund(&no, 41, "x").await, 409, 1005).await;
        assert_eq!(msg, "amountFen 41 exceeds the 40 fen left to refund");
        let list = refunds_of(&app, &no).await;
        assert_eq!(list[0]["status"], "PENDING");
        assert_eq!(list.len(), 1);

        // Long after, WeChat still has no such refund: that is no answer to
        // the request (it may still be on its way), so nothing is released.
        let r = list[0]["outRefundNo"].as_str().unwrap().to_owned();
        let backdated = r.clone();
        db.db
            .run(move |conn| {
                use diesel::prelude::*;
                use pay_service::schema::pay_refunds;
                diesel::update(pay_refunds::table.filter(pay_refunds::out_refund_no.eq(backdated)))
                    .set(pay_refunds::created_at.eq(pay_refunds::created_at - 3600))
                    .execute(conn)?;
                Ok(())
            })
            .await
            .unwrap();
        let list = refunds_of(&app, &no).await;
        assert_eq!(list[0]["status"], "PENDING");
        assert_eq!(order_row(&app, &no).await.refund_reserved_fen, 60);
        // Reconciliation sends it again under the same number; WeChat takes it.
        let report = pay_service::reconcile_once(&app.state).await.unwrap();
        assert_eq!(report.refunds_settled, 1);
        assert!(app.sandbox.state().wait_refund_acknowledged(&r, WAIT).await);
        let at_wechat: Vec<(String, u64)> = app
            .sandbox
            .state()
            .refunds_of(&no)
            .into_iter()
            .map(|x| (x.out_refund_no, x.refund_fee))
            .collect();
        assert_eq!(at_wechat, vec![(r.clone(), 60)]);
        let list = refunds_of(&app, &no).await;
        assert_eq!(list[0]["status"], "SUCCESS");
        refund_ok(&app, &no, 40).await;
    }
}

#[tokio::test]
async fn admin_routes_need_the_token_and_vanish_without_it() {
    let db = testkit::sqlite_db(migrations());
    let plain = spawn_app(&db).await;
    for path in ["/api/pay/admin/events", "/api/pay/admin/orders/X/refunds"] {
        let msg = expect_error(plain.admin_get(path).await, 404, 1004).await;
        assert_eq!(msg, "no such route");
    }
    expect_error(plain.refund("X", 1, "x").await, 404, 1004).await;

    let app = spawn_refund_app(&db, &[]).await;
    let no = app.paid_order("1.00").await;
    let path = format!("/api/pay/admin/orders/{no}/refunds");
    expect_error(app.get(&path, "wrong-token-wrong-token").await, 401, 1002).await;
    let res = app.client.get(app.url(&path)).send().await.unwrap();
    expect_error(res, 401, 1002).await;
    // A user's session token is not the admin token.
    expect_error(app.get(&path, &app.mp_token()).await, 401, 1002).await;
    let res = app
        .post_json(
            &path,
            "wrong-token-wrong-token",
            &serde_json::json!({"amountFen": 1}),
            None,
        )
        .await;
    expect_error(res, 401, 1002).await;
    assert_eq!(app.sandbox.state().calls("/secapi/pay/refund"), 0);
    let msg = expect_error(
        app.admin_get("/api/pay/admin/events?status=stuck").await,
        400,
        1001,
    )
    .await;
    assert!(msg.contains("status"), "{msg}");
}

fn config_with(vars: &[(&str, &str)]) -> Result<PayConfig, String> {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("SESSION_SECRET", SESSION_SECRET),
        ("MCH_ID", SANDBOX_MCH_ID),
        ("MCH_KEY", SANDBOX_MCH_KEY),
        ("MP_APP_ID", MP),
        ("WECHATPAY_API_BASE", "https://api.mch.weixin.qq.com"),
    ];
    pairs.extend_from_slice(vars);
    PayConfig::from_env(&Env::from_pairs(pairs)).map_err(|e| e.to_string())
}

#[test]
fn a_missing_or_broken_client_certificate_stops_the_start() {
    let pki = wechat_sandbox::TestPki::generate(SANDBOX_MCH_ID).unwrap();
    let pem = PemFiles::write(&[
        ("cert.pem", &pki.client_cert_pem),
        ("key.pem", &pki.client_key_pem),
        ("garbage.pem", "not a certificate"),
    ]);
    let (cert, key, garbage) = (
        pem.path("cert.pem"),
        pem.path("key.pem"),
        pem.path("garbage.pem"),
    );
    let missing = pem.path("nowhere.pem");
    let token = ("ADMIN_TOKEN", ADMIN_TOKEN);

    let e = config_with(&[token]).unwrap_err();
    assert!(e.contains("MCH_CERT_PEM"), "{e}");
    let e = config_with(&[token, ("MCH_CERT_PEM", &cert)]).unwrap_err();
    assert!(e.contains("MCH_KEY_PEM"), "{e}");
    let e = config_with(&[token, ("MCH_CERT_PEM", &missing), ("MCH_KEY_PEM", &key)]).unwrap_err();
    assert!(
        e.contains("MCH_CERT_PEM") && e.contains("nowhere.pem"),
        "{e}"
    );
    let e = config_with(&[token, ("MCH_CERT_PEM", &garbage), ("MCH_KEY_PEM", &key)]).unwrap_err();
    assert!(e.contains("MCH_CERT_PEM"), "{e}");
    let e = config_with(&[token, ("MCH_CERT_PEM", &cert), ("MCH_KEY_PEM", &garbage)]).unwrap_err();
    assert!(e.contains("MCH_KEY_PEM"), "{e}");
    let e = config_with(&[token, ("MCH_P12", "/x/apiclient_cert.p12")]).unwrap_err();
    assert!(e.contains("MCH_P12") && e.contains("MCH_CERT_PEM"), "{e}");
    let e = config_with(&[
        token,
        ("MCH_CERT_PEM", &cert),
        ("MCH_KEY_PEM", &key),
        ("WECHATPAY_REFUND_BASE", "http://127.0.0.1:9"),
    ])
    .unwrap_err();
    assert!(e.contains("WECHATPAY_REFUND_BASE"), "{e}");
    let e = config_with(&[
        token,
        ("MCH_CERT_PEM", &cert),
        ("MCH_KEY_PEM", &key),
        ("WECHATPAY_CA_PEM", &garbage),
    ])
    .unwrap_err();
    assert!(e.contains("WECHATPAY_CA_PEM"), "{e}");
    let e = config_with(&[("ADMIN_TOKEN", "short")]).unwrap_err();
    assert!(e.contains("ADMIN_TOKEN"), "{e}");

    let ok = config_with(&[token, ("MCH_CERT_PEM", &cert), ("MCH_KEY_PEM", &key)]).unwrap();
    let refunds = ok.refunds.as_ref().unwrap();
    assert_eq!(refunds.base, "https://api.mch.weixin.qq.com");
    assert!(!format!("{ok:?}").contains("PRIVATE KEY"));
    assert!(!format!("{ok:?}").contains(ADMIN_TOKEN));
    // No ADMIN_TOKEN: refunds off, no certificate needed.
    assert!(config_with(&[]).unwrap().refunds.is_none());
}

#[tokio::test]
async fn an_idempotency_key_makes_a_retried_refund_the_same_refund() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[]).await;
        let no = app.paid_order("2.00").await;
        let path = format!("/api/pay/admin/orders/{no}/refunds");
        let ask = |key: &'static str, fen: i64| {
            let (app, path) = (&app, path.clone());
            async move {
                let body = serde_json::json!({"amountFen": fen, "reason": "late"});
                app.post_json(&path, ADMIN_TOKEN, &body, Some(key)).await
            }
        };
        // The first answer is lost: the refund is PENDING, its amount held.
        app.sandbox.state().inject_fault(
            "/secapi/pay/refund",
            wechat_sandbox::FaultKind::Garbage,
            1,
        );
        expect_error(ask("key-1", 80).await, 502, 10009).await;
        // The retry sends the same refund again and gets WeChat's answer.
        let (status, body) = envelope(ask("key-1", 80).await).await;
        assert_eq!(status, 200, "{body}");
        let r = body["data"]["outRefundNo"].as_str().unwrap().to_owned();
        assert!(app.sandbox.state().wait_refund_acknowledged(&r, WAIT).await);
        let (_, again) = envelope(ask("key-1", 80).await).await;
        assert_eq!(again["data"]["outRefundNo"], r.as_str());
        assert_eq!(again["data"]["status"], "SUCCESS");
        let msg = expect_error(ask("key-1", 81).await, 409, 1005).await;
        assert_eq!(
            msg,
            "Idempotency-Key was already used with a different request"
        );
        // Racing requests with one key: one refund.
        let racing = futures_util::future::join_all((0..3).map(|_| ask("key-2", 20))).await;
        let mut nos = Vec::new();
        for res in racing {
            let (status, body) = envelope(res).await;
            assert_eq!(status, 200, "{body}");
            nos.push(body["data"]["outRefundNo"].as_str().unwrap().to_owned());
        }
        nos.dedup();
        assert_eq!(nos.len(), 1);
        let at_wechat: Vec<u64> = app
            .sandbox
            .state()
            .refunds_of(&no)
            .iter()
            .map(|r| r.refund_fee)
            .collect();
        assert_eq!(at_wechat, vec![80, 20]);
        assert_eq!(order_row(&app, &no).await.refund_reserved_fen, 100);
    }
}

#[tokio::test]
async fn a_closed_refund_notification_releases_the_amount_once_and_change_holds_it() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[]).await;
        for (end, status, reserved, first) in [
            (RefundStatus::RefundClose, "FAILED", 0, "released"),
            (RefundStatus::Change, "CHANGE", 150, "needs_operator"),
        ] {
            let (no, r) = processing_refund(&app, "2.00", 150).await;
            let sb = app.sandbox.state();
            sb.complete_refund(&r, end, true).unwrap();
            assert!(sb.wait_refund_acknowledged(&r, WAIT).await);
            let (_, reply) = app
                .notify_raw(NOTIFY, sb.refund_notification_xml(&r).unwrap())
                .await;
            assert!(success(&reply), "{reply:?}");
            let refund = inspect::refund(app.state.db(), &r).await.unwrap().unwrap();
            assert_eq!(refund.status.as_str(), status);
            assert!(
                refund
                    .error
                    .as_deref()
                    .unwrap()
                    .starts_with(&format!("WeChat refund status {}", end.as_str())),
                "{refund:?}"
            );
            // CHANGE: the money may still reach the payer once an operator
            // acts, so the amount stays held.
            let order = order_row(&app, &no).await;
            assert_eq!(
                (
                    order.refund_reserved_fen,
                    order.refunded_fen,
                    order.status.as_str()
                ),
                (reserved, 0, "PAID")
            );
            let outcomes: Vec<String> = app
                .notifications(Some(&no))
                .await
                .into_iter()
                .filter(|n| n.kind == "refund")
                .map(|n| n.outcome)
                .collect();
            assert_eq!(outcomes, vec![first, "duplicate"]);
            // No status change, no event beyond the payment's.
            assert_eq!(app.transitions(&no).await.len(), 1);
            sb.hold_refunds(false);
        }
    }
}
