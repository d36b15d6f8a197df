//! Daily bill reconciliation against the sandbox's bills (v3 `tradebill` and
//! v2 `downloadbill`), on SQLite and PostgreSQL: a clean day, each planted
//! discrepancy found once, a lost notification applied through the bill,
//! "No Bill Exist" → 409 and a later retry, unusable bills stored nowhere,
//! two replicas running a day once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod common;

use std::time::Duration;

use chrono::NaiveDate;
use common::*;
use pay_service::inspect;
use pay_service::{BillPassOutcome, PayConfig, PayState, bills_once, migrations};
use serde_json::{Value, json};
use shared::config::Env;
use testkit::{TestDb, all_backends, eventually};
use wechat_sandbox::PayOptions;

async fn admin_post(app: &TestApp, path: &str) -> reqwest::Response {
    app.post(path, ADMIN_TOKEN).await
}

/// POST (run) or GET (stored) the day's reconciliation: status and envelope.
async fn reconcile(app: &TestApp, day: NaiveDate) -> (u16, Value) {
    envelope(admin_post(app, &format!("/api/pay/admin/reconciliations?date={day}")).await).await
}

async fn stored(app: &TestApp, day: NaiveDate) -> (u16, Value) {
    envelope(
        app.admin_get(&format!("/api/pay/admin/reconciliations?date={day}"))
            .await,
    )
    .await
}

/// The Beijing day the sandbox paid `no` on.
fn pay_day(app: &TestApp, no: &str) -> NaiveDate {
    let time_end = app.sandbox_order(no).time_end.expect("paid");
    NaiveDate::parse_from_str(&time_end[..8], "%Y%m%d").unwrap()
}

/// Moves the sandbox clock past 09:00 (Beijing) of the day after `day`,
/// when WeChat's bill of `day` exists.
fn close_day(app: &TestApp, day: NaiveDate) {
    let state = app.sandbox.state();
    let ready = day.succ_opt().unwrap().and_hms_opt(9, 0, 1).unwrap();
    let now = (state.now() + chrono::Duration::hours(8)).naive_utc();
    if ready > now {
        state.advance(Duration::from_secs(
            (ready - now).num_seconds().unsigned_abs() + 1,
        ));
    }
}

/// An order paid at the sandbox whose notification never came: NOTPAY here.
async fn paid_without_notification(app: &TestApp, money: &str) -> String {
    let data = app.v2pay(money).await;
    let no = data["outTradeNo"].as_str().unwrap().to_owned();
    app.sandbox
        .state()
        .pay_order(
            &no,
            PayOptions {
                notify: false,
                ..PayOptions::default()
            },
        )
        .unwrap();
    no
}

/// A refund of `fen` of `no` that succeeded (its notification applied here).
async fn refunded(app: &TestApp, no: &str, fen: i64) -> String {
    let (status, body) = envelope(app.refund(no, fen, "bill test").await).await;
    assert_eq!(status, 200, "{body}");
    let out_refund_no = body["data"]["outRefundNo"].as_str().unwrap().to_owned();
    let db = app.state.db().clone();
    let r = out_refund_no.clone();
    eventually("the refund succeeds here", WAIT, || {
        let (db, r) = (db.clone(), r.clone());
        async move {
            inspect::refund(&db, &r)
                .await
                .unwrap()
                .is_some_and(|x| x.status.as_str() == "SUCCESS")
        }
    })
    .await;
    out_refund_no
}

fn kinds(result: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = result["discrepancies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_owned(),
                d["outTradeNo"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

async fn discrepancy_events(app: &TestApp, no: &str) -> usize {
    inspect::events(app.state.db(), no)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event_type == "RECONCILIATION_DISCREPANCY")
        .count()
}

/// The answer is what the OpenAPI document (and API.md) says.
fn conforms(method: &str, body: &Value) {
    let doc =
        testkit::openapi::Document::new(serde_json::to_value(pay_service::openapi()).unwrap());
    doc.validate(
        method,
        "/api/pay/admin/reconciliations",
        200,
        "application/json",
        body,
    );
}

async fn plant(app: &TestApp, day: NaiveDate, body: Value) {
    let res = app
        .client
        .post(format!(
            "{}/sandbox/bills/{day}/discrepancies",
            app.sandbox.base_url()
        ))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_clean_day_then_each_planted_kind_is_found_exactly_once() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[]).await;
        let a = app.paid_order("1.00").await;
        let b = app.paid_order("2.00").await;
        let c = app.paid_order("0.30").await;
        let refund = refunded(&app, &c, 10).await;
        let day = pay_day(&app, &a);
        assert_eq!(pay_day(&app, &c), day);
        close_day(&app, day);

        // A clean day: every payment and the refund matched.
        let (status, body) = reconcile(&app, day).await;
        assert_eq!(status, 200, "{body}");
        let data = &body["data"];
        assert_eq!(data["date"], day.to_string());
        assert_eq!(data["billRows"], 4, "{data}");
        assert_eq!(data["matched"], 4, "{data}");
        assert_eq!(data["discrepancies"], json!([]));
        assert_eq!(stored(&app, day).await.1["data"], *data);
        assert_eq!(app.sandbox.state().calls("/v3/bill/tradebill"), 1);

        // Planted: a payment missing from the bill, another for a different
        // amount, a trade unknown here.
        plant(&app, day, json!({"kind": "DROP_ROW", "outTradeNo": a})).await;
        plant(
            &app,
            day,
            json!({"kind": "CHANGE_AMOUNT", "outTradeNo": b, "amountFen": 201}),
        )
        .await;
        plant(
            &app,
            day,
            json!({"kind": "UNKNOWN_TRADE", "outTradeNo": "STRANGER1", "amountFen": 999}),
        )
        .await;
        let (status, body) = reconcile(&app, day).await;
        assert_eq!(status, 200, "{body}");
        conforms("POST", &body);
        conforms("GET", &stored(&app, day).await.1);
        let data = body["data"].clone();
        assert_eq!(
            kinds(&data),
            vec![
                ("AMOUNT_MISMATCH".to_owned(), b.clone()),
                ("MISSING_AT_WECHAT".to_owned(), a.clone()),
                ("MISSING_LOCAL".to_owned(), "STRANGER1".to_owned()),
            ]
        );
        let mismatch = data["discrepancies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["kind"] == "AMOUNT_MISMATCH")
            .unwrap();
        assert_eq!(
            (
                mismatch["localFen"].as_i64(),
                mismatch["wechatFen"].as_i64()
            ),
            (Some(200), Some(201))
        );
        assert_eq!(data["billRows"], 4);
        assert_eq!(data["matched"], 2, "{data}");
        // The run replaced the stored result.
        assert_eq!(stored(&app, day).await.1["data"], data);
        // One merchant event per discrepancy; a rerun sends none again.
        for no in [&a, &b, &"STRANGER1".to_owned()] {
            assert_eq!(discrepancy_events(&app, no).await, 1, "{no}");
        }
        let (_, again) = reconcile(&app, day).await;
        assert_eq!(again["data"], data);
        for no in [&a, &b] {
            assert_eq!(discrepancy_events(&app, no).await, 1, "{no}");
        }
        // The metrics are exported (their values are process-wide, and the
        // tests of this file run side by side: only their presence is checked).
        let metrics = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for kind in [
            "MISSING_LOCAL",
            "MISSING_AT_WECHAT",
            "AMOUNT_MISMATCH",
            "STATUS_MISMATCH",
        ] {
            assert!(
                metrics.contains(&format!("pay_bill_discrepancies{{kind=\"{kind}\"}}")),
                "{kind}"
            );
        }
        assert!(metrics.contains("pay_bill_last_reconciled_timestamp_seconds "));
        // The refund row is still matched; nothing was changed here.
        assert_eq!(app.status_of(&a).await, "PAID");
        assert_eq!(
            inspect::refund(app.state.db(), &refund)
                .await
                .unwrap()
                .unwrap()
                .amount_fen,
            10
        );
    }
}

#[tokio::test]
async fn a_lost_notification_is_applied_through_the_bill_and_a_closed_order_is_reported() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[]).await;
        let paid = app.paid_order("0.50").await;
        let lost = paid_without_notification(&app, "0.70").await;
        // Closed here (by hand), yet paid at WeChat.
        let closed = paid_without_notification(&app, "0.90").await;
        {
            use diesel::prelude::*;
            use pay_service::schema::pay_orders;
            let no = closed.clone();
            app.state
                .db()
                .run(move |conn| {
                    diesel::update(pay_orders::table.filter(pay_orders::out_trade_no.eq(no)))
                        .set(pay_orders::status.eq("CLOSED"))
                        .execute(conn)?;
                    Ok(())
                })
                .await
                .unwrap();
        }
        assert_eq!(app.status_of(&lost).await, "NOTPAY");
        let day = pay_day(&app, &paid);
        close_day(&app, day);

        let (status, body) = reconcile(&app, day).await;
        assert_eq!(status, 200, "{body}");
        conforms("POST", &body);
        let data = &body["data"];
        assert_eq!(
            kinds(data),
            vec![("STATUS_MISMATCH".to_owned(), closed.clone())]
        );
        let d = &data["discrepancies"][0];
        assert_eq!(
            (d["localStatus"].as_str(), d["wechatStatus"].as_str()),
            (Some("CLOSED"), Some("SUCCESS"))
        );
        assert_eq!(data["matched"], 2);
        // The lost one was confirmed by orderquery and settled by the bill.
        assert_eq!(app.status_of(&lost).await, "PAID");
        assert!(app.sandbox.state().calls("/pay/orderquery") >= 1);
        let transitions = app.transitions(&lost).await;
        assert_eq!(transitions.len(), 1);
        assert_eq!(
            (
                transitions[0].to_status.as_str(),
                transitions[0].source.as_str()
            ),
            ("PAID", "bill")
        );
        let paid_events: Vec<_> = inspect::events(app.state.db(), &lost).await.unwrap();
        assert!(
            paid_events.iter().any(|e| e.event_type == "order.paid"),
            "{paid_events:?}"
        );
        // The closed order is only reported: still CLOSED.
        assert_eq!(app.status_of(&closed).await, "CLOSED");
        assert_eq!(discrepancy_events(&app, &closed).await, 1);
    }
}

/// A config like the test services', for replicas built by hand.
fn replica_config(db: &TestDb, app: &TestApp, pem: &PemFiles) -> PayConfig {
    let mut env = Env::from_pairs(app.sandbox.service_env());
    env.extend([
        ("SESSION_SECRET", SESSION_SECRET),
        ("PUBLIC_BASE_URL", app.base.as_str()),
        ("DATABASE_URL", db.url.as_str()),
        ("RECONCILE_INTERVAL_SECONDS", "0"),
        ("BILL_INTERVAL_SECONDS", "0"),
        ("WECHAT_RETRIES", "0"),
        ("PAY_API_VERSION", "v2"),
        ("ADMIN_TOKEN", ADMIN_TOKEN),
    ]);
    env.set("MCH_CERT_PEM", pem.path("apiclient_cert.pem"));
    env.set("MCH_KEY_PEM", pem.path("apiclient_key.pem"));
    env.set("WECHATPAY_CA_PEM", pem.path("wechat_ca.pem"));
    env.set("WECHATPAY_REFUND_BASE", app.sandbox.tls_base_url().unwrap());
    PayConfig::from_env(&env).unwrap()
}

#[tokio::test]
async fn no_bill_yet_is_409_the_job_retries_and_two_replicas_run_a_day_once() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[("BILL_INTERVAL_SECONDS", "0")]).await;
        let no = app.paid_order("0.10").await;
        let day = pay_day(&app, &no);

        // Before WeChat made the day's bill: 409/1005, nothing stored.
        let (status, body) = reconcile(&app, day).await;
        assert_eq!((status, body["code"].as_i64()), (409, Some(1005)), "{body}");
        let (status, body) = stored(&app, day).await;
        assert_eq!((status, body["code"].as_i64()), (409, Some(1005)));
        // A day without trades has no bill either.
        let (status, _) = reconcile(&app, day.pred_opt().unwrap()).await;
        assert_eq!(status, 409);
        // Malformed dates.
        for bad in ["2026-13-01", "20261129", ""] {
            let (status, body) = envelope(
                admin_post(&app, &format!("/api/pay/admin/reconciliations?date={bad}")).await,
            )
            .await;
            assert_eq!((status, body["code"].as_i64()), (400, Some(1001)), "{bad}");
        }

        // Two replicas sharing the database and the cache (as with Redis).
        let cache = shared::cache::Cache::memory();
        let replicas = [
            PayState::build(replica_config(&db, &app, &app.pem), Some(cache.clone()))
                .await
                .unwrap(),
            PayState::build(replica_config(&db, &app, &app.pem), Some(cache.clone()))
                .await
                .unwrap(),
        ];
        // 10:00 Beijing the next day: the day is due.
        let due = day
            .succ_opt()
            .unwrap()
            .and_hms_opt(2, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp();
        // Before BILL_HOUR: nothing.
        let early = bills_once(&replicas[0], due - 3600).await.unwrap();
        assert_eq!(early.outcome, BillPassOutcome::NotDue);
        // Due, but WeChat has no bill yet: tried again later.
        let first = bills_once(&replicas[0], due).await.unwrap();
        assert_eq!(first.outcome, BillPassOutcome::NoBill);
        assert_eq!(first.date.as_deref(), Some(day.to_string().as_str()));
        assert_eq!(stored(&app, day).await.0, 409);

        close_day(&app, day);
        app.sandbox.state().reset_counts();
        let (a, b) = tokio::join!(bills_once(&replicas[0], due), bills_once(&replicas[1], due));
        let outcomes = [a.unwrap().outcome, b.unwrap().outcome];
        let runs = outcomes
            .iter()
            .filter(|o| matches!(o, BillPassOutcome::Reconciled { .. }))
            .count();
        assert_eq!(runs, 1, "{outcomes:?}");
        assert_eq!(app.sandbox.state().calls("/v3/bill/tradebill"), 1);
        assert_eq!(stored(&app, day).await.1["data"]["matched"], 1);
        // Later passes that day do nothing.
        for r in &replicas {
            assert_eq!(
                bills_once(r, due + 600).await.unwrap().outcome,
                BillPassOutcome::AlreadyDone
            );
        }
        assert_eq!(app.sandbox.state().calls("/v3/bill/tradebill"), 1);
    }
}

/// A manual run takes the daily job's lock: while the job (or another run)
/// holds it, the run is 409/1005 and downloads nothing; once it is free the
/// run goes ahead and frees it again.
#[tokio::test]
async fn a_manual_run_waits_for_the_running_reconciliation() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[("BILL_INTERVAL_SECONDS", "0")]).await;
        let no = app.paid_order("0.10").await;
        let day = pay_day(&app, &no);
        close_day(&app, day);
        // A replica whose cache the test holds (as the job's replica shares
        // Redis with it).
        let cache = shared::cache::Cache::memory();
        let state = PayState::build(replica_config(&db, &app, &app.pem), Some(cache.clone()))
            .await
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = pay_service::with_state(state, listener).unwrap();
        tokio::spawn(server.run_until_stopped());
        let run = || async {
            let res = app
                .client
                .post(format!("{base}/api/pay/admin/reconciliations?date={day}"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            envelope(res).await
        };
        app.sandbox.state().reset_counts();
        // The daily job holds the lock.
        assert!(
            cache
                .set_nx("pay:bills:lock", "the-job", Duration::from_secs(60))
                .await
                .unwrap()
        );
        let (status, body) = run().await;
        assert_eq!((status, body["code"].as_i64()), (409, Some(1005)), "{body}");
        let msg = body["message"].as_str().unwrap_or_default();
        assert!(msg.contains("reconciliation is running"), "{body}");
        assert_eq!(app.sandbox.state().calls("/pay/downloadbill"), 0);
        assert_eq!(app.sandbox.state().calls("/v3/bill/tradebill"), 0);
        assert_eq!(
            cache.get("pay:bills:lock").await.unwrap().as_deref(),
            Some("the-job")
        );
        assert_eq!(stored(&app, day).await.0, 409, "nothing stored");
        // The job finished: the run goes ahead and leaves the lock free.
        assert!(cache.delete("pay:bills:lock").await.unwrap());
        let (status, body) = run().await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["matched"], 1, "{body}");
        assert_eq!(cache.get("pay:bills:lock").await.unwrap(), None);
    }
}

#[tokio::test]
async fn truncated_wrongly_hashed_or_inconsistent_bills_store_nothing() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[]).await;
        let no = app.paid_order("0.20").await;
        paid_without_notification(&app, "0.40").await;
        let day = pay_day(&app, &no);
        close_day(&app, day);
        for kind in ["TRUNCATE", "WRONG_HASH", "WRONG_TOTALS"] {
            plant(&app, day, json!({"kind": kind})).await;
            let (status, body) = reconcile(&app, day).await;
            assert_eq!(
                (status, body["code"].as_i64()),
                (502, Some(10009)),
                "{kind}: {body}"
            );
            assert_eq!(stored(&app, day).await.0, 409, "{kind}");
            app.client
                .delete(format!(
                    "{}/sandbox/bills/{day}/discrepancies",
                    app.sandbox.base_url()
                ))
                .send()
                .await
                .unwrap();
        }
        // Nothing was applied from the refused bills either.
        let lost: Vec<_> = inspect::count_by_status(app.state.db()).await.unwrap();
        assert!(
            lost.iter().any(|(s, n)| s.as_str() == "NOTPAY" && *n == 1),
            "{lost:?}"
        );
        // The untouched bill is fine.
        let (status, body) = reconcile(&app, day).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["discrepancies"], json!([]));
    }
}

#[tokio::test]
async fn the_v2_downloadbill_reconciles_too() {
    for db in all_backends(migrations) {
        // No APIv3 key: the bill comes from /pay/downloadbill.
        let app = spawn_refund_app(&db, &[("MCH_API_V3_KEY", "")]).await;
        let a = app.paid_order("3.00").await;
        let b = app.paid_order("4.00").await;
        let day = pay_day(&app, &a);
        let (status, _) = reconcile(&app, day).await;
        assert_eq!(status, 409);
        close_day(&app, day);
        let (status, body) = reconcile(&app, day).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["matched"], 2);
        assert_eq!(app.sandbox.state().calls("/v3/bill/tradebill"), 0);
        assert_eq!(app.sandbox.state().calls("/pay/downloadbill"), 2);
        plant(
            &app,
            day,
            json!({"kind": "CHANGE_AMOUNT", "outTradeNo": b, "amountFen": 1}),
        )
        .await;
        let (_, body) = reconcile(&app, day).await;
        assert_eq!(
            kinds(&body["data"]),
            vec![("AMOUNT_MISMATCH".to_owned(), b.clone())]
        );
        // A truncated v2 download is refused by its missing totals.
        plant(&app, day, json!({"kind": "TRUNCATE"})).await;
        let (status, _) = reconcile(&app, day).await;
        assert_eq!(status, 502);
        assert_eq!(
            stored(&app, day).await.1["data"]["discrepancies"][0]["kind"],
            "AMOUNT_MISMATCH"
        );
    }
}

#[tokio::test]
async fn the_reconcile_command_prints_a_table_and_exits_1_on_discrepancies() {
    for db in all_backends(migrations) {
        let app = spawn_app(&db).await;
        let no = app.v2pay("0.60").await["outTradeNo"]
            .as_str()
            .unwrap()
            .to_owned();
        app.sandbox
            .state()
            .pay_order(&no, PayOptions::default())
            .unwrap();
        assert!(app.sandbox.state().wait_acknowledged(&no, WAIT).await);
        let day = pay_day(&app, &no);
        close_day(&app, day);
        let mut vars: Vec<(String, String)> = app
            .sandbox
            .service_env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        for (k, v) in [
            ("SESSION_SECRET", SESSION_SECRET),
            ("PUBLIC_BASE_URL", app.base.as_str()),
            ("DATABASE_URL", db.url.as_str()),
            ("PAY_API_VERSION", "v2"),
            ("RUST_LOG", "error"),
        ] {
            vars.push((k.to_owned(), v.to_owned()));
        }
        let run = |date: String| {
            let vars = vars.clone();
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_pay-service"))
                    .args(["reconcile", "--date", &date])
                    .env_clear()
                    .envs(vars)
                    .output()
                    .unwrap()
            })
        };
        let clean = run(day.to_string()).await.unwrap();
        let out = String::from_utf8_lossy(&clean.stdout);
        assert_eq!(
            clean.status.code(),
            Some(0),
            "{out}{}",
            String::from_utf8_lossy(&clean.stderr)
        );
        assert!(
            out.contains(&format!(
                "bill {day} (v3): 1 rows, 1 matched, 0 discrepancies"
            )),
            "{out}"
        );

        plant(
            &app,
            day,
            json!({"kind": "CHANGE_AMOUNT", "outTradeNo": no, "amountFen": 61}),
        )
        .await;
        let found = run(day.to_string()).await.unwrap();
        let out = String::from_utf8_lossy(&found.stdout);
        assert_eq!(found.status.code(), Some(1), "{out}");
        assert!(out.contains("KIND"), "{out}");
        let line = out
            .lines()
            .find(|l| l.starts_with("AMOUNT_MISMATCH"))
            .expect("a row");
        assert!(line.contains(&no) && line.contains("0.60 / 0.61"), "{line}");
        // The stored result is the command's.
        let stored = inspect_reconciliation(&app, day).await;
        assert_eq!(stored["discrepancies"][0]["kind"], "AMOUNT_MISMATCH");

        // No bill for that day: status 2, the reason on stderr.
        let none = run(day.pred_opt().unwrap().to_string()).await.unwrap();
        assert_eq!(none.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&none.stderr).contains("no bill"));
        let usage = run("yesterday".into()).await.unwrap();
        assert_eq!(usage.status.code(), Some(2));
    }
}

/// The stored result, read as the admin route would show it (no admin
/// token in this app: through the library).
async fn inspect_reconciliation(app: &TestApp, day: NaiveDate) -> Value {
    let view = pay_service::stored_reconciliation(&app.state, day)
        .await
        .unwrap();
    serde_json::to_value(view).unwrap()
}
