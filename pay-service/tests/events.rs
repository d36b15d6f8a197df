//! Merchant events end to end: a webhook receiver (an actix server in the
//! test) verifies every signature; events reach it once acknowledged each, in
//! order per order, through failures and retries; the admin listing shows
//! what is stuck; the audit trail names each change's request.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod common;

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use common::*;
use pay_service::migrations;
use serde_json::Value;
use testkit::all_backends;
use tokio::sync::watch;

const SECRET: &str = "merchant-webhook-secret-for-tests";

#[derive(Debug, Clone)]
struct Received {
    event_id: i64,
    kind: String,
    out_trade_no: String,
    answered: u16,
}

#[derive(Clone)]
struct Receiver {
    url: String,
    log: Arc<Mutex<Vec<Received>>>,
    seen: watch::Receiver<usize>,
    bad_signatures: Arc<Mutex<usize>>,
}

impl Receiver {
    fn log(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    fn acknowledged(&self) -> Vec<Received> {
        self.log()
            .into_iter()
            .filter(|r| r.answered == 200)
            .collect()
    }

    /// Waits (with a deadline) until `done` holds for the log.
    async fn wait_for(&self, done: impl Fn(&[Received]) -> bool) -> bool {
        let mut seen = self.seen.clone();
        let wait = async {
            loop {
                if done(&self.log()) {
                    return true;
                }
                if seen.changed().await.is_err() {
                    return false;
                }
            }
        };
        tokio::time::timeout(WAIT, wait).await.unwrap_or(false)
    }
}

fn verify(req: &HttpRequest, body: &str) -> bool {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let ts = header("x-wxpay-timestamp");
    let Ok(at) = ts.parse::<i64>() else {
        return false;
    };
    if (shared::db::now_unix() - at).abs() > 300 {
        return false;
    }
    let expected = hex::encode(shared::sign::hmac_sha256(
        SECRET.as_bytes(),
        format!("{ts}\n{body}").as_bytes(),
    ));
    shared::sign::constant_time_eq(expected.as_bytes(), header("x-wxpay-signature").as_bytes())
}

/// Answers 500 to the first `fail_first` requests (or to all, when None),
/// then 200; every request is logged with what it was answered.
async fn receiver(fail_first: Option<usize>) -> Receiver {
    let log: Arc<Mutex<Vec<Received>>> = Arc::default();
    let bad: Arc<Mutex<usize>> = Arc::default();
    let (tx, rx) = watch::channel(0usize);
    let tx = Arc::new(tx);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/wxpay", listener.local_addr().unwrap());
    let (l, b) = (log.clone(), bad.clone());
    let server = HttpServer::new(move || {
        let (log, bad, tx) = (l.clone(), b.clone(), tx.clone());
        App::new().route(
            "/hooks/wxpay",
            web::post().to(move |req: HttpRequest, body: String| {
                let (log, bad, tx) = (log.clone(), bad.clone(), tx.clone());
                async move {
                    if !verify(&req, &body) {
                        *bad.lock().unwrap() += 1;
                        return HttpResponse::Unauthorized().finish();
                    }
                    let v: Value = serde_json::from_str(&body).unwrap();
                    let mut log = log.lock().unwrap();
                    let fail = fail_first.is_none_or(|n| log.len() < n);
                    let answered = if fail { 500 } else { 200 };
                    log.push(Received {
                        event_id: v["eventId"].as_i64().unwrap(),
                        kind: v["type"].as_str().unwrap().to_owned(),
                        out_trade_no: v["outTradeNo"].as_str().unwrap().to_owned(),
                        answered,
                    });
                    tx.send_modify(|n| *n += 1);
                    if fail {
                        HttpResponse::InternalServerError().finish()
                    } else {
                        HttpResponse::Ok().finish()
                    }
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
    Receiver {
        url,
        log,
        seen: rx,
        bad_signatures: bad,
    }
}

fn webhook_vars<'a>(url: &'a str, failed_after: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("MERCHANT_WEBHOOK_URL", url),
        ("MERCHANT_WEBHOOK_SECRET", SECRET),
        ("WEBHOOK_INTERVAL_MS", "20"),
        ("WEBHOOK_RETRY_BASE_MS", "20"),
        ("WEBHOOK_RETRY_MAX_MS", "100"),
        ("WEBHOOK_FAILED_AFTER", failed_after),
    ]
}

async fn events(app: &TestApp, status: &str) -> Vec<Value> {
    let (code, body) = envelope(
        app.admin_get(&format!("/api/pay/admin/events?status={status}"))
            .await,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

/// Polls the admin listing until `n` events are delivered, with a deadline.
async fn delivered_count_reaches(app: &TestApp, n: usize) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if events(app, "delivered").await.len() >= n {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}

async fn refund_acknowledged(app: &TestApp, no: &str, fen: i64) {
    let (status, body) = envelope(app.refund(no, fen, "return").await).await;
    assert_eq!(status, 200, "{body}");
    let r = body["data"]["outRefundNo"].as_str().unwrap();
    assert!(app.sandbox.state().wait_refund_acknowledged(r, WAIT).await);
}

#[tokio::test]
async fn every_event_is_acknowledged_once_and_in_order_through_failures() {
    for db in all_backends(migrations) {
        let hook = receiver(Some(2)).await;
        let app = spawn_refund_app(&db, &webhook_vars(&hook.url, "5")).await;
        let a = app.paid_order("3.00").await;
        refund_acknowledged(&app, &a, 100).await;
        refund_acknowledged(&app, &a, 200).await;
        let b = app.v2pay("1.00").await["outTradeNo"]
            .as_str()
            .unwrap()
            .to_owned();
        let res = app
            .client
            .post(app.url(&format!("/api/pay/orders/{b}/close")))
            .bearer_auth(app.mp_token())
            .header("x-request-id", "close-request-42")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);

        assert!(
            hook.wait_for(|log| log.iter().filter(|r| r.answered == 200).count() >= 4)
                .await
        );
        let acked = hook.acknowledged();
        // Exactly once each: four distinct events, no repeats.
        let mut ids: Vec<i64> = acked.iter().map(|r| r.event_id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!((acked.len(), ids.len()), (4, 4));
        // In order per order.
        let of = |no: &str| -> Vec<(i64, String)> {
            acked
                .iter()
                .filter(|r| r.out_trade_no == no)
                .map(|r| (r.event_id, r.kind.clone()))
                .collect()
        };
        let for_a = of(&a);
        let kinds: Vec<&str> = for_a.iter().map(|(_, k)| k.as_str()).collect();
        assert_eq!(kinds, vec!["order.paid", "order.refund", "order.refund"]);
        assert!(for_a.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(
            of(&b).iter().map(|(_, k)| k.as_str()).collect::<Vec<_>>(),
            vec!["order.closed"]
        );
        // The receiver failed two requests on purpose; nothing acknowledged was sent again.
        let log = hook.log();
        assert_eq!(log.len(), 6);
        assert_eq!(log.iter().filter(|r| r.answered == 500).count(), 2);
        assert_eq!(*hook.bad_signatures.lock().unwrap(), 0);

        // The receiver logs before its answer reaches the dispatcher.
        assert!(delivered_count_reaches(&app, 4).await);
        assert!(events(&app, "pending").await.is_empty());
        assert!(events(&app, "failed").await.is_empty());
        let delivered = events(&app, "delivered").await;
        let first = &delivered[0];
        // The very first request was this event's, and it failed.
        assert!(first["attempts"].as_i64().unwrap() >= 2);
        let attempts: i64 = delivered
            .iter()
            .map(|e| e["attempts"].as_i64().unwrap())
            .sum();
        assert_eq!(attempts, 6);
        assert_eq!(first["payload"]["type"], "order.paid");
        assert_eq!(first["payload"]["amountFen"], 300);
        let refund = &delivered[2];
        assert_eq!(refund["payload"]["refundedFen"], 300);
        assert_eq!(refund["payload"]["refund"]["amountFen"], 200);

        // The audit trail names the request that closed b.
        let t = app.transitions(&b).await;
        assert_eq!(
            (t[0].source.as_str(), t[0].request_id.as_deref()),
            ("close", Some("close-request-42"))
        );
    }
}

#[tokio::test]
async fn a_failing_receiver_holds_back_later_events_and_is_listed_failed() {
    for db in all_backends(migrations) {
        let hook = receiver(None).await;
        let app = spawn_refund_app(&db, &webhook_vars(&hook.url, "2")).await;
        let a = app.paid_order("1.00").await;
        refund_acknowledged(&app, &a, 50).await;
        assert!(hook.wait_for(|log| log.len() >= 4).await);
        // Only ever the first event: the refund waits for it.
        let log = hook.log();
        let first = log[0].event_id;
        assert!(
            log.iter()
                .all(|r| r.event_id == first && r.kind == "order.paid"),
            "{log:?}"
        );

        let failed = events(&app, "failed").await;
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0]["id"], first);
        assert_eq!(failed[0]["state"], "failed");
        assert_eq!(failed[0]["lastError"], "HTTP 500");
        assert!(failed[0]["attempts"].as_i64().unwrap() >= 2);
        let pending = events(&app, "pending").await;
        assert_eq!(pending.len(), 1);
        assert_eq!(
            (pending[0]["type"].as_str(), pending[0]["attempts"].as_i64()),
            (Some("order.refund"), Some(0))
        );
        assert!(events(&app, "delivered").await.is_empty());
    }
}

#[tokio::test]
async fn reconciliation_changes_carry_the_pass_id() {
    for db in all_backends(migrations) {
        let app = spawn_app(&db).await;
        let no = app.v2pay("1.00").await["outTradeNo"]
            .as_str()
            .unwrap()
            .to_owned();
        app.sandbox
            .state()
            .pay_order(
                &no,
                wechat_sandbox::PayOptions {
                    notify: false,
                    fail_first_deliveries: 0,
                },
            )
            .unwrap();
        pay_service::reconcile_once(&app.state).await.unwrap();
        let t = app.transitions(&no).await;
        assert_eq!(t[0].source, "reconcile");
        assert!(
            t[0].request_id
                .as_deref()
                .unwrap()
                .starts_with("reconcile-"),
            "{t:?}"
        );
        // Without a webhook the event waits in the outbox.
        let events = pay_service::inspect::events(app.state.db(), &no)
            .await
            .unwrap();
        assert_eq!((events.len(), events[0].delivered), (1, false));
    }
}

#[tokio::test]
async fn two_replicas_deliver_each_event_once_in_order() {
    for db in all_backends(migrations) {
        let hook = receiver(Some(3)).await;
        let (sandbox, pki) = start_tls_sandbox().await;
        let (_pem, mut vars) = refund_vars(&sandbox, &pki);
        for (k, v) in webhook_vars(&hook.url, "5") {
            vars.push((k.to_owned(), v.to_owned()));
        }
        let borrowed: Vec<(&str, &str)> =
            vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let one = spawn_service(&db, &sandbox, &borrowed).await;
        let two = spawn_service(&db, &sandbox, &borrowed).await;
        let app = TestApp {
            base: one.base.clone(),
            state: one.state.clone(),
            sandbox,
            client: client(),
        };
        let mut orders = Vec::new();
        for _ in 0..3 {
            let no = app.paid_order("2.00").await;
            refund_acknowledged(&app, &no, 50).await;
            refund_acknowledged(&app, &no, 150).await;
            orders.push(no);
        }
        assert!(
            hook.wait_for(|log| log.iter().filter(|r| r.answered == 200).count() >= 9)
                .await
        );
        let acked = hook.acknowledged();
        let mut ids: Vec<i64> = acked.iter().map(|r| r.event_id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!((acked.len(), ids.len()), (9, 9));
        for no in &orders {
            let seq: Vec<(i64, &str)> = acked
                .iter()
                .filter(|r| &r.out_trade_no == no)
                .map(|r| (r.event_id, r.kind.as_str()))
                .collect();
            assert!(seq.windows(2).all(|w| w[0].0 < w[1].0), "{seq:?}");
            let kinds: Vec<&str> = seq.iter().map(|(_, k)| *k).collect();
            assert_eq!(kinds, vec!["order.paid", "order.refund", "order.refund"]);
        }
        // Never an event of an order before the previous one was acknowledged:
        // every attempt, failed or not, comes in id order per order.
        let log = hook.log();
        for no in &orders {
            let tried: Vec<i64> = log
                .iter()
                .filter(|r| &r.out_trade_no == no)
                .map(|r| r.event_id)
                .collect();
            assert!(tried.windows(2).all(|w| w[0] <= w[1]), "{tried:?}");
        }
        assert_eq!(*hook.bad_signatures.lock().unwrap(), 0);
        assert!(delivered_count_reaches(&app, 9).await);
        drop(two);
    }
}
