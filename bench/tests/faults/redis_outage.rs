//! Redis killed and started again while jssdkConfig is under load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use jssdk_service::JssdkConfig;
use shared::sign::{jssdk_signature, strip_fragment};
use testkit::{RedisServer, eventually};
use wechat_sandbox::{SANDBOX_OA_APPID, Sandbox};

use crate::common::*;

#[derive(Default)]
struct Tally {
    signed_right: AtomicUsize,
    signed_wrong: AtomicUsize,
    unavailable: AtomicUsize,
    unexpected: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn answered(&self) -> usize {
        self.signed_right.load(Ordering::SeqCst)
            + self.signed_wrong.load(Ordering::SeqCst)
            + self.unavailable.load(Ordering::SeqCst)
            + self.unexpected.lock().unwrap().len()
    }
}

/// One jssdkConfig request, judged: a 200 must be signed with a ticket the
/// sandbox had issued when the request went out or came back; the only other
/// acceptable answer is 503/5003.
async fn one(client: &reqwest::Client, base: &str, sb: &Sandbox, i: usize, tally: &Tally) {
    let page = format!("https://shop.example/outage/{i}#x");
    let before = sb.state().current_jsapi_ticket(SANDBOX_OA_APPID);
    let res = client
        .get(format!("{base}/api/wechat/jssdkConfig"))
        .query(&[("url", page.as_str())])
        .send()
        .await;
    let after = sb.state().current_jsapi_ticket(SANDBOX_OA_APPID);
    let Ok(res) = res else {
        tally.unexpected.lock().unwrap().push("no answer".into());
        return;
    };
    let status = res.status().as_u16();
    let body: serde_json::Value = res.json().await.unwrap_or_default();
    match (status, body["code"].as_i64()) {
        (200, Some(0)) => {
            let d = &body["data"];
            let nonce = d["nonceStr"].as_str().unwrap_or_default();
            let ts = d["timestamp"].as_i64().unwrap_or_default();
            let right = [before, after].into_iter().flatten().any(|ticket| {
                d["signature"] == jssdk_signature(&ticket, nonce, ts, strip_fragment(&page))
            });
            let counter = if right {
                &tally.signed_right
            } else {
                &tally.signed_wrong
            };
            counter.fetch_add(1, Ordering::SeqCst);
        }
        (503, Some(5003)) => {
            tally.unavailable.fetch_add(1, Ordering::SeqCst);
        }
        _ => tally
            .unexpected
            .lock()
            .unwrap()
            .push(format!("{status} {body}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_load_never_yields_a_wrong_signature() {
    if !RedisServer::available() {
        return;
    }
    let dir = std::env::temp_dir();
    let mut redis = RedisServer::start(&dir).await.expect("redis-server starts");
    let sb = Arc::new(start_sandbox(1.0).await);
    let (listener, base) = bind();
    let redis_url = redis.url();
    let env = env_for(&sb, &base, &[("REDIS_URL", redis_url.as_str())]);
    let config = JssdkConfig::from_env(&env).expect("config");
    let app = jssdk_service::with_listener(config, listener)
        .await
        .expect("starts");
    tokio::spawn(app.run_until_stopped());
    let client = client();
    wait_status(
        &client,
        &format!("{base}/readyz"),
        200,
        Duration::from_secs(20),
    )
    .await;

    // Load: four clients asking for ever new pages until told to stop.
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (client, base, sb) = (client.clone(), base.clone(), sb.clone());
        let (tally, stop, next) = (tally.clone(), stop.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let i = next.fetch_add(1, Ordering::SeqCst);
                one(&client, &base, &sb, i, &tally).await;
            }
        }));
    }
    let answered_at_least = |n: usize| {
        let tally = tally.clone();
        move || {
            let tally = tally.clone();
            async move { tally.answered() >= n }
        }
    };
    eventually(
        "50 answers before the outage",
        Duration::from_secs(20),
        answered_at_least(50),
    )
    .await;

    redis.kill().expect("kill our redis-server");
    wait_status(
        &client,
        &format!("{base}/readyz"),
        503,
        Duration::from_secs(20),
    )
    .await;
    let (answered, right, unavailable) = (
        tally.answered(),
        tally.signed_right.load(Ordering::SeqCst),
        tally.unavailable.load(Ordering::SeqCst),
    );
    // Each request now waits out the cache client's reconnect attempts
    // (seconds), so fewer answers come: enough for two rounds of every client.
    let outage_started = std::time::Instant::now();
    eventually(
        "8 answers during the outage",
        Duration::from_secs(60),
        answered_at_least(answered + 8),
    )
    .await;
    let outage_rate = (tally.answered() - answered) as f64 / outage_started.elapsed().as_secs_f64();
    let right_during = tally.signed_right.load(Ordering::SeqCst) - right;
    let unavailable_during = tally.unavailable.load(Ordering::SeqCst) - unavailable;
    eprintln!(
        "during the outage: {right_during} signed, {unavailable_during} unavailable, {outage_rate:.1} answers/s"
    );

    redis.restart().await.expect("redis-server starts again");
    wait_status(
        &client,
        &format!("{base}/readyz"),
        200,
        Duration::from_secs(30),
    )
    .await;
    let recovered = tally.signed_right.load(Ordering::SeqCst);
    eventually(
        "50 correct signatures after recovery",
        Duration::from_secs(30),
        || {
            let tally = tally.clone();
            async move { tally.signed_right.load(Ordering::SeqCst) >= recovered + 50 }
        },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }

    let unexpected = tally.unexpected.lock().unwrap().clone();
    assert!(unexpected.is_empty(), "unexpected answers: {unexpected:?}");
    assert_eq!(
        tally.signed_wrong.load(Ordering::SeqCst),
        0,
        "a wrong signature was served"
    );
    // The ticket in the process was still valid: served through the outage.
    assert!(right_during >= 8, "{right_during} signed during the outage");
    assert_eq!(unavailable_during, 0);
    // WeChat was asked once at start and once more after the restart had
    // emptied Redis, under the lock: never during the outage.
    assert_eq!(sb.state().calls("/cgi-bin/ticket/getticket"), 2);
    assert_eq!(sb.state().calls("/cgi-bin/stable_token"), 2);
}
