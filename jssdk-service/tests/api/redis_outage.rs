use std::time::Duration;

use testkit::{RedisServer, eventually};

use crate::common::*;

async fn readyz(client: &reqwest::Client, base: &str) -> u16 {
    client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn redis_stopped_at_runtime_serves_the_local_copy_then_503_then_recovers() {
    if !RedisServer::available() {
        return;
    }
    let mut redis = RedisServer::start(&std::env::temp_dir())
        .await
        .expect("redis-server starts");
    let sb = start_sandbox().await;
    let app = spawn_instance(&sb, &[("REDIS_URL", &redis.url())], None).await;
    let client = client();
    let page = "https://shop.example/p";
    assert_eq!(readyz(&client, &app.base).await, 200);

    let (status, body) = get_json(&client, &config_url(&app.base, page)).await;
    assert_eq!(status, 200, "{body}");
    let first = current_ticket(&sb);
    assert_signed_with(&body, &first, page);

    redis.kill().expect("kill and reap our redis-server");
    let base = app.base.clone();
    eventually(
        "readyz reports the cache down",
        Duration::from_secs(15),
        || {
            let (client, base) = (client.clone(), base.clone());
            async move { readyz(&client, &base).await == 503 }
        },
    )
    .await;
    // Still valid in the process: served, and correctly signed.
    for _ in 0..3 {
        let (status, body) = get_json(&client, &config_url(&app.base, page)).await;
        assert_eq!(status, 200, "{body}");
        assert_signed_with(&body, &first, page);
    }

    // Once the local copy has expired: 503/5003, never a signature over a dead
    // ticket, and no fetch without the lock.
    sb.state().advance(Duration::from_secs(7201));
    let (status, body) = get_json(&client, &config_url(&app.base, page)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], 5003);
    assert_eq!(sb.state().calls(STABLE_TOKEN_PATH), 1);
    assert_eq!(sb.state().calls(TICKET_PATH), 1);

    // Redis back: ready again, and a new ticket is fetched once.
    redis.restart().await.expect("redis-server starts again");
    eventually("readyz recovers", Duration::from_secs(20), || {
        let (client, base) = (client.clone(), base.clone());
        async move { readyz(&client, &base).await == 200 }
    })
    .await;
    let (status, body) = get_json(&client, &config_url(&app.base, page)).await;
    assert_eq!(status, 200, "{body}");
    let second = current_ticket(&sb);
    assert_ne!(second, first);
    assert_signed_with(&body, &second, page);
    assert_eq!(sb.state().calls(STABLE_TOKEN_PATH), 2);
    assert_eq!(sb.state().calls(TICKET_PATH), 2);
}
