//! `/readyz` reflects what pay-service itself needs (issue #19): its
//! database. With Redis down the replica stays in the Service, so WeChat's
//! notifications are still applied, while a user's request, whose session is
//! checked against revocations in Redis, answers 503 on its own.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod common;

use common::*;
use pay_service::migrations;
use testkit::{RedisServer, all_backends};
use wechat_sandbox::PayOptions;

#[tokio::test]
async fn readiness_follows_the_database_not_redis() {
    if !RedisServer::available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!(
        "wxpay-pay-ready-{}",
        shared::random::alphanumeric(8)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for db in all_backends(migrations) {
        let mut redis = RedisServer::start(&dir).await.expect("redis-server starts");
        let app = spawn_app_with(&db, &[("REDIS_URL", redis.url().as_str())], 1.0).await;
        let ready = || async { app.client.get(app.url("/readyz")).send().await.unwrap() };
        assert_eq!(ready().await.status(), 200, "{}", db.url);
        let no = app.v2pay("1").await["outTradeNo"]
            .as_str()
            .unwrap()
            .to_owned();

        redis.kill().unwrap();
        // The user's routes need the cache: refused while it is down.
        let res = app
            .get(&format!("/api/pay/orders/{no}"), &app.mp_token())
            .await;
        assert_eq!(
            res.status(),
            503,
            "a session cannot be checked without Redis"
        );
        // Readiness does not: the replica keeps receiving notifications.
        let res = ready().await;
        let status = res.status();
        assert_eq!(status, 200, "{}: {}", db.url, res.text().await.unwrap());
        app.sandbox
            .state()
            .pay_order(&no, PayOptions::default())
            .unwrap();
        assert!(
            app.sandbox.state().wait_acknowledged(&no, WAIT).await,
            "the notification is applied while Redis is down"
        );
        assert_eq!(app.status_of(&no).await, "PAID");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
