//! Payment notifications and reconciliation, end to end through the sandbox,
//! on every backend: each refused notification changes nothing, and however
//! often a genuine one arrives (on however many replicas) the order changes once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod common;

use std::time::Duration;

use common::*;
use diesel::prelude::*;
use pay_service::migrations;
use pay_service::schema::pay_orders;
use shared::db::now_unix;
use shared::sign::SignType;
use testkit::{TestDb, all_backends};
use wechat_sandbox::{PayOptions, SANDBOX_MCH_KEY, TradeState};

const SILENT: PayOptions = PayOptions {
    notify: false,
    fail_first_deliveries: 0,
};

async fn new_order(app: &TestApp, money: &str) -> String {
    app.v2pay(money).await["outTradeNo"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_paid_notification_marks_the_order_paid_once() {
    for db in all_backends(migrations) {
        let app = spawn_app(&db).await;
        let no = new_order(&app, "0.29").await;
        let tx = app
            .sandbox
            .state()
            .pay_order(&no, PayOptions::default())
            .unwrap();
        assert!(app.sandbox.state().wait_acknowledged(&no, WAIT).await);
        let view = app.order_view(&no, &app.mp_token()).await;
        assert_eq!(view["status"], "PAID");
        assert_eq!(view["transactionId"], tx.as_str());
        assert_eq!(view["amountFen"], 29);
        assert!(view["paidAt"].as_i64().unwrap() > now_unix() - 3600);
        let t = app.transitions(&no).await;
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].to_status.as_str(), t[0].source.as_str()),
            ("PAID", "notify")
        );
        let n = app.notifications(Some(&no)).await;
        assert_eq!(n.len(), 1);
        assert_eq!(
            (n[0].outcome.as_str(), n[0].sign_verified),
            ("applied", true)
        );
        assert!(n[0].raw_body.contains(&tx));
        let deliveries = app.sandbox.state().deliveries(&no);
        assert_eq!(deliveries.len(), 1);
        assert_eq!(deliveries[0].http_status, Some(200));
    }
}

#[tokio::test]
async fn lost_deliveries_are_retried_until_one_lands() {
    for db in all_backends(migrations) {
        // The sandbox runs 1000× faster: WeChat's 15s/15s/30s retries take
        // 60 ms. Orders must outlive that clock, hence a day's expiry.
        let app = spawn_app_with(&db, &[("ORDER_EXPIRE_MINUTES", "1440")], 1000.0).await;
        let no = new_order(&app, "1").await;
        app.sandbox
            .state()
            .pay_order(
                &no,
                PayOptions {
                    notify: true,
                    fail_first_deliveries: 3,
                },
            )
            .unwrap();
        assert!(app.sandbox.state().wait_acknowledged(&no, WAIT).await);
        let d = app.sandbox.state().deliveries(&no);
        assert_eq!(d.len(), 4);
        assert!(
            d[..3]
                .iter()
                .all(|a| a.http_status.is_none() && !a.acknowledged)
        );
        assert!(d[3].acknowledged);
        assert_eq!(app.status_of(&no).await, "PAID");
        assert_eq!(app.transitions(&no).await.len(), 1);
        assert_eq!(app.notifications(Some(&no)).await.len(), 1);
    }
}

#[tokio::test]
async fn reconciliation_settles_orders_whose_notification_never_came() {
    for db in all_backends(migrations) {
        // Checks ten minutes apart, the orders' first one made due by hand:
        // with checks a second apart (the tests' usual setting) the unpaid
        // order fell due again whenever the wall clock crossed a second
        // between the two passes below.
        let app = spawn_app_with(&db, &[("RECONCILE_AFTER_SECONDS", "600")], 1.0).await;
        let paid = new_order(&app, "3").await;
        let unpaid = new_order(&app, "4").await;
        check_due_now(&db, &[&paid, &unpaid]).await;
        let tx = app.sandbox.state().pay_order(&paid, SILENT).unwrap();
        let report = pay_service::reconcile_once(&app.state).await.unwrap();
        assert_eq!(
            (report.checked, report.paid, report.closed, report.errors),
            (2, 1, 0, 0)
        );
        let view = app.order_view(&paid, &app.mp_token()).await;
        assert_eq!(
            (view["status"].as_str(), view["transactionId"].as_str()),
            (Some("PAID"), Some(tx.as_str()))
        );
        let t = app.transitions(&paid).await;
        assert_eq!((t.len(), t[0].source.as_str()), (1, "reconcile"));
        assert_eq!(app.status_of(&unpaid).await, "NOTPAY");
        // The unpaid one is not asked about again until its next check is due.
        let report = pay_service::reconcile_once(&app.state).await.unwrap();
        assert_eq!(report.checked, 0);
        assert_eq!(app.sandbox.state().calls("/pay/orderquery"), 2);
        // The notification arriving late changes nothing more.
        let late = notification_xml(
            &app.sandbox_order(&paid),
            SANDBOX_MCH_KEY,
            SignType::Md5,
            |_| {},
        );
        let (_, reply) = app.notify_raw("/api/pay/notify", late).await;
        assert!(success(&reply));
        assert_eq!(app.transitions(&paid).await.len(), 1);
    }
}

#[tokio::test]
async fn reconciliation_waits_for_the_configured_delay() {
    for db in all_backends(migrations) {
        let app = spawn_app_with(&db, &[("RECONCILE_AFTER_SECONDS", "3600")], 1.0).await;
        let no = new_order(&app, "1").await;
        app.sandbox.state().pay_order(&no, SILENT).unwrap();
        let report = pay_service::reconcile_once(&app.state).await.unwrap();
        assert_eq!(report.checked, 0);
        assert_eq!(app.status_of(&no).await, "NOTPAY");
        assert_eq!(app.sandbox.state().calls("/pay/orderquery"), 0);
    }
}

/// As if the orders' reconciliation delay had passed.
async fn check_due_now(db: &TestDb, nos: &[&str]) {
    let nos: Vec<String> = nos.iter().map(|n| n.to_string()).collect();
    db.db
        .run(move |conn| {
            diesel::update(pay_orders::table.filter(pay_orders::out_trade_no.eq_any(nos)))
                .set(pay_orders::next_check_at.eq(now_unix() - 1))
                .execute(conn)?;
            Ok(())
        })
        .await
        .unwrap();
}

async fn expire_now(db: &TestDb, no: &str) {
    let no = no.to_owned();
    db.db
        .run(move |conn| {
            diesel::update(pay_orders::table.filter(pay_orders::out_trade_no.eq(no)))
                .set(pay_orders::expires_at.eq(now_unix() - 1))
                .execute(conn)?;
            Ok(())
        })
        .await
        .unwrap();
}

async fn execute(db: &TestDb, sql: &'static str) {
    db.db
        .run(move |conn| {
            diesel::sql_query(sql).execute(conn)?;
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_database_failure_answers_fail_and_the_retry_lands() {
    for db in all_backends(migrations) {
        let app = spawn_app(&db).await;
        let no = new_order(&app, "1").await;
        app.sandbox.state().pay_order(&no, SILENT).unwrap();
        let xml = notification_xml(
            &app.sandbox_order(&no),
            SANDBOX_MCH_KEY,
            SignType::Md5,
            |_| {},
        );
        // The transition's own record cannot be written: the whole
        // transaction rolls back and WeChat is told to retry.
        execute(
            &db,
            "ALTER TABLE pay_order_transitions RENAME TO pay_order_transitions_away",
        )
        .await;
        let (_, reply) = app.notify_raw("/api/pay/notify", xml.clone()).await;
        execute(
            &db,
            "ALTER TABLE pay_order_transitions_away RENAME TO pay_order_transitions",
        )
        .await;
        assert!(!success(&reply));
        assert_eq!(app.status_of(&no).await, "NOTPAY");
        assert!(app.notifications(Some(&no)).await.is_empty());
        let (_, reply) = app.notify_raw("/api/pay/notify", xml).await;
        assert!(success(&reply));
        assert_eq!(app.status_of(&no).await, "PAID");
        assert_eq!(app.transitions(&no).await.len(), 1);
    }
}

#[tokio::test]
async fn reconciliation_closes_expired_unpaid_orders_at_wechat_first() {
    for db in all_backends(migrations) {
        let app = spawn_app(&db).await;
        let no = new_order(&app, "1").await;
        expire_now(&db, &no).await;
        let report = pay_service::reconcile_once(&app.state).await.unwrap();
        assert_eq!((report.checked, report.closed), (1, 1));
        assert_eq!(app.status_of(&no).await, "CLOSED");
        assert_eq!(app.sandbox_order(&no).state, TradeState::Closed);
        assert_eq!(app.sandbox.state().calls("/pay/closeorder"), 1);
        let t = app.transitions(&no).await;
        assert_eq!(
            (t.len(), t[0].to_status.as_str(), t[0].source.as_str()),
            (1, "CLOSED", "reconcile")
        );
        assert!(app.sandbox.state().pay_order(&no, SILENT).is_err());
    }
}

#[tokio::test]
async fn forged_mismatched_and_unknown_notifications_change_nothing() {
    for db in all_backends(migrations) {
        let app = spawn_app(&db).await;
        let no = new_order(&app, "0.29").await;
        app.sandbox.state().pay_order(&no, SILENT).unwrap();
        let order = app.sandbox_order(&no);
        let md5 = SignType::Md5;
        let cases = [
            (
                "bad_sign",
                notification_xml(&order, "not-the-merchant-key-000000000000", md5, |_| {}),
            ),
            (
                "mismatch",
                notification_xml(&order, SANDBOX_MCH_KEY, md5, |f| {
                    f.insert("total_fee".into(), "1".into());
                    f.insert("cash_fee".into(), "1".into());
                }),
            ),
            (
                "mismatch",
                notification_xml(&order, SANDBOX_MCH_KEY, md5, |f| {
                    f.insert("appid".into(), OA.into());
                }),
            ),
            (
                "mismatch",
                notification_xml(&order, SANDBOX_MCH_KEY, md5, |f| {
                    f.insert("mch_id".into(), "1234567890".into());
                }),
            ),
            (
                "unknown_order",
                notification_xml(&order, SANDBOX_MCH_KEY, md5, |f| {
                    f.insert(
                        "out_trade_no".into(),
                        "20260101000000NoSuchOrder000000".into(),
                    );
                }),
            ),
            (
                "malformed",
                notification_xml(&order, SANDBOX_MCH_KEY, md5, |f| {
                    f.remove("total_fee");
                }),
            ),
        ];
        for (outcome, xml) in &cases {
            for path in ["/api/pay/notify", "/api/mp/payCallback"] {
                let (status, reply) = app.notify_raw(path, xml.clone()).await;
                assert_eq!(status, 200);
                assert!(!success(&reply), "{outcome} was acknowledged");
                assert_eq!(reply["return_code"], "FAIL");
            }
        }
        assert_eq!(app.status_of(&no).await, "NOTPAY");
        assert!(app.transitions(&no).await.is_empty());
        let recorded: Vec<String> = app
            .notifications(None)
            .await
            .into_iter()
            .map(|n| n.outcome)
            .collect();
        let expected: Vec<String> = cases
            .iter()
            .flat_map(|(o, _)| [o.to_string(), o.to_string()])
            .collect();
        assert_eq!(recorded, expected);

        // The genuine one, then replays: one transition, every reply SUCCESS.
        let genuine = notification_xml(&order, SANDBOX_MCH_KEY, md5, |_| {});
        for i in 0..4 {
            let path = if i % 2 == 0 {
                "/api/pay/notify"
            } else {
                "/api/mp/payCallback"
            };
            let (_, reply) = app.notify_raw(path, genuine.clone()).await;
            assert!(success(&reply), "attempt {i}: {reply:?}");
            assert_eq!(reply["return_msg"], "OK");
        }
        assert_eq!(app.status_of(&no).await, "PAID");
        assert_eq!(app.transitions(&no).await.len(), 1);
        let outcomes: Vec<String> = app
            .notifications(Some(&no))
            .await
            .into_iter()
            .map(|n| n.outcome)
            .collect();
        assert_eq!(
            &outcomes[outcomes.len() - 4..],
            ["applied", "duplicate", "duplicate", "duplicate"]
        );
        // A forged one for the paid order is still refused.
        let forged = notification_xml(&order, "not-the-merchant-key-000000000000", md5, |_| {});
        let (_, reply) = app.notify_raw("/api/pay/notify", forged).await;
        assert!(!success(&reply));
    }
}

#[tokio::test]
async fn hostile_bodies_are_refused_and_change_nothing() {
    for db in all_backends(migrations) {
        let app = spawn_app(&db).await;
        let no = new_order(&app, "1").await;
        app.sandbox.state().pay_order(&no, SILENT).unwrap();
        let genuine = notification_xml(
            &app.sandbox_order(&no),
            SANDBOX_MCH_KEY,
            SignType::Md5,
            |_| {},
        );
        let laughs = format!(
            r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>{}"#,
            genuine.replace("<bank_type>", "<attach>&lol3;</attach><bank_type>")
        );
        let xxe = format!(
            r#"<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>{}"#,
            genuine
        );
        let mut non_utf8 = genuine.clone().into_bytes();
        let at = non_utf8.len() - 10;
        non_utf8.splice(at..at, [0xff, 0xfe]);
        let huge = format!("{}{}", genuine, " ".repeat(2 * 1024 * 1024));
        let bodies: Vec<Vec<u8>> = vec![
            laughs.into_bytes(),
            xxe.into_bytes(),
            non_utf8,
            huge.into_bytes(),
            Vec::new(),
            b"not xml at all".to_vec(),
            b"<xml><a><b>nested</b></a></xml>".to_vec(),
        ];
        for body in bodies {
            let len = body.len();
            let (status, reply) = app.notify_raw("/api/pay/notify", body).await;
            assert_eq!(status, 200);
            assert!(!success(&reply), "a {len}-byte body was acknowledged");
        }
        assert_eq!(app.status_of(&no).await, "NOTPAY");
        assert!(app.transitions(&no).await.is_empty());
        let recorded = app.notifications(None).await;
        // Everything but the oversized body (never read) is kept for an operator.
        assert_eq!(recorded.len(), 6);
        assert!(
            recorded
                .iter()
                .all(|n| n.outcome == "malformed" && !n.sign_verified)
        );
    }
}

#[tokio::test]
async fn two_replicas_apply_one_notification_once() {
    for db in all_backends(migrations) {
        let sandbox = start_sandbox(1.0).await;
        let a = spawn_service(&db, &sandbox, &[]).await;
        let b = spawn_service(&db, &sandbox, &[]).await;
        let app = TestApp {
            base: a.base.clone(),
            state: a.state.clone(),
            sandbox,
            client: client(),
        };
        let no = new_order(&app, "9.99").await;
        app.sandbox.state().pay_order(&no, SILENT).unwrap();
        let xml = notification_xml(
            &app.sandbox_order(&no),
            SANDBOX_MCH_KEY,
            SignType::Md5,
            |_| {},
        );
        let sends = (0..16).map(|i| {
            let base = if i % 2 == 0 {
                a.base.clone()
            } else {
                b.base.clone()
            };
            let (client, xml) = (app.client.clone(), xml.clone());
            tokio::spawn(async move { notify_raw(&client, &base, "/api/pay/notify", xml).await })
        });
        let replies = futures_util::future::join_all(sends).await;
        for r in replies {
            let (status, reply) = r.unwrap();
            assert_eq!(status, 200);
            assert!(success(&reply), "{reply:?}");
        }
        assert_eq!(app.status_of(&no).await, "PAID");
        assert_eq!(app.transitions(&no).await.len(), 1);
        let outcomes: Vec<String> = app
            .notifications(Some(&no))
            .await
            .into_iter()
            .map(|n| n.outcome)
            .collect();
        assert_eq!(outcomes.len(), 16);
        assert_eq!(outcomes.iter().filter(|o| *o == "applied").count(), 1);
        assert_eq!(outcomes.iter().filter(|o| *o == "duplicate").count(), 15);
        // Both replicas reconciling at once ask WeChat once per order.
        let other = new_order(&app, "1").await;
        app.sandbox.state().pay_order(&other, SILENT).unwrap();
        let (ra, rb) = tokio::join!(
            pay_service::reconcile_once(&a.state),
            pay_service::reconcile_once(&b.state)
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra.paid + rb.paid, 1, "{ra:?} {rb:?}");
        assert_eq!(app.transitions(&other).await.len(), 1);
    }
}

#[tokio::test]
async fn the_background_worker_reconciles_by_itself() {
    for db in all_backends(migrations) {
        let app = spawn_app_with(&db, &[("RECONCILE_INTERVAL_SECONDS", "1")], 1.0).await;
        let no = new_order(&app, "1").await;
        let tx = app.sandbox.state().pay_order(&no, SILENT).unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let view = app.order_view(&no, &app.mp_token()).await;
            if view["status"] == "PAID" {
                assert_eq!(view["transactionId"], tx.as_str());
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not reconciled in time"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let t = app.transitions(&no).await;
        assert_eq!((t.len(), t[0].source.as_str()), (1, "reconcile"));
    }
}

#[tokio::test]
async fn health_and_metrics_are_served() {
    for db in all_backends(migrations) {
        let app = spawn_app(&db).await;
        let no = new_order(&app, "1").await;
        app.sandbox
            .state()
            .pay_order(&no, PayOptions::default())
            .unwrap();
        assert!(app.sandbox.state().wait_acknowledged(&no, WAIT).await);
        pay_service::reconcile_once(&app.state).await.unwrap();
        for path in ["/healthz", "/readyz"] {
            let res = app.client.get(app.url(path)).send().await.unwrap();
            assert_eq!(res.status(), 200, "{path}");
        }
        let metrics = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for needle in [
            r#"pay_notifications_total{outcome="applied"}"#,
            r#"pay_order_transitions_total{source="notify",status="PAID"}"#,
            r#"pay_orders_created_total{trade_type="JSAPI"}"#,
            r#"pay_orders{status="PAID"}"#,
            r#"wechat_call_duration_seconds_count{outcome="ok",path="/pay/unifiedorder"}"#,
        ] {
            assert!(metrics.contains(needle), "{needle} missing");
        }
        assert!(!metrics.contains(SANDBOX_MCH_KEY));
    }
}

#[tokio::test]
async fn failed_payment_reports_are_acknowledged_only_for_known_orders() {
    for db in all_backends(migrations) {
        let app = spawn_app(&db).await;
        let no = new_order(&app, "1").await;
        let order = app.sandbox_order(&no);
        let failed = |f: &mut std::collections::BTreeMap<String, String>| {
            f.insert("result_code".into(), "FAIL".into());
            f.insert("err_code".into(), "NOTENOUGH".into());
        };
        let xml = notification_xml(&order, SANDBOX_MCH_KEY, SignType::Md5, failed);
        let (_, reply) = app.notify_raw("/api/pay/notify", xml).await;
        assert!(success(&reply));
        let unknown = notification_xml(&order, SANDBOX_MCH_KEY, SignType::Md5, |f| {
            failed(f);
            f.insert(
                "out_trade_no".into(),
                "20260101000000NoSuchOrder000000".into(),
            );
        });
        let (_, reply) = app.notify_raw("/api/pay/notify", unknown).await;
        assert!(!success(&reply));
        assert_eq!(app.status_of(&no).await, "NOTPAY");
        assert!(app.transitions(&no).await.is_empty());
        let outcomes: Vec<String> = app
            .notifications(None)
            .await
            .into_iter()
            .map(|n| n.outcome)
            .collect();
        assert_eq!(outcomes, ["payment_failed", "unknown_order"]);
    }
}
