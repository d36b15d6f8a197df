//! Replicas on one Redis keep the token and ticket in the process: a warm
//! request reads nothing from Redis, and a change one replica makes reaches the
//! others through a change notice (`jssdk-service/src/tokens/sync.rs`).

use std::sync::Arc;
use std::time::Duration;

use jssdk_service::Clock;
use testkit::{RedisServer, eventually};
use wechat_sandbox::Sandbox;

use crate::common::*;

/// How many times the Redis at `url` has run `command` (INFO commandstats).
async fn command_count(url: &str, command: &str) -> u64 {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

async fn wait_live(instance: &Instance) {
    let tokens = instance.state.tokens.clone();
    eventually("change notices live", Duration::from_secs(15), || {
        let live = tokens.notices_live();
        async move { live }
    })
    .await;
}

async fn signed(client: &reqwest::Client, instance: &Instance, page: &str) -> serde_json::Value {
    let (status, body) = get_json(client, &config_url(&instance.base, page)).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn own_redis() -> Option<RedisServer> {
    if !RedisServer::available() {
        return None;
    }
    Some(
        RedisServer::start(&std::env::temp_dir())
            .await
            .expect("redis-server starts"),
    )
}

#[tokio::test]
async fn a_warm_request_reads_nothing_from_redis() {
    let Some(redis) = own_redis().await else {
        return;
    };
    let sb = start_sandbox().await;
    let app = spawn_instance(&sb, &[("REDIS_URL", &redis.url())], None).await;
    wait_live(&app).await;
    let client = client();
    let page = "https://shop.example/warm";
    let first = signed(&client, &app, page).await;
    let ticket = current_ticket(&sb);
    assert_signed_with(&first, &ticket, page);
    // The cold request read Redis (and found nothing).
    assert!(command_count(&redis.url(), "get").await > 0);

    let gets = command_count(&redis.url(), "get").await;
    for i in 0..200 {
        let page = format!("https://shop.example/warm/{i}");
        let body = signed(&client, &app, &page).await;
        assert_signed_with(&body, &ticket, &page);
    }
    assert_eq!(
        command_count(&redis.url(), "get").await,
        gets,
        "warm requests must not read Redis"
    );
    assert_eq!(sb.state().calls(TICKET_PATH), 1);
}

/// The sandbox's clock set back: a replica whose clock runs behind still
/// takes an expired ticket for valid, so only a notice can tell it otherwise.
struct BehindClock(Arc<wechat_sandbox::SandboxState>, i64);

impl Clock for BehindClock {
    fn now_ms(&self) -> i64 {
        self.0.now().timestamp_millis() - self.1
    }
}

/// Replica A fetches a new ticket; replica B, which holds the old one in its
/// process and (its clock an hour behind) still takes it for valid, serves
/// A's new one once A's notice arrives: well before B's trust window for a
/// checked copy (`TRUST_WHILE_LIVE`, 60 s) would have run out without it.
/// B never calls WeChat itself.
#[tokio::test]
async fn a_ticket_one_replica_fetched_is_served_by_another_after_its_notice() {
    let Some(redis) = own_redis().await else {
        return;
    };
    let sb: Sandbox = start_sandbox().await;
    let url = redis.url();
    let a = spawn_instance(&sb, &[("REDIS_URL", &url)], None).await;
    let b = spawn_instance_with_clock(
        &sb,
        &[("REDIS_URL", &url)],
        None,
        Arc::new(BehindClock(sb.state(), 3_600_000)),
    )
    .await;
    wait_live(&a).await;
    wait_live(&b).await;
    let client = client();
    let page = "https://shop.example/notices";

    let body = signed(&client, &a, page).await;
    let first = current_ticket(&sb);
    assert_signed_with(&body, &first, page);
    let body = signed(&client, &b, page).await;
    assert_signed_with(&body, &first, page);

    // Past the first ticket's expiry on A's clock (not yet on B's): A
    // fetches a new one and announces it.
    sb.state().advance(Duration::from_secs(7201));
    let body = signed(&client, &a, page).await;
    let second = current_ticket(&sb);
    assert_ne!(second, first);
    assert_signed_with(&body, &second, page);
    assert_eq!(sb.state().calls(TICKET_PATH), 2);

    let (b_base, c, second_ticket) = (b.base.clone(), client.clone(), second.clone());
    eventually(
        "B serves A's new ticket (the notice bound; without notices B would keep the old one for 60 s)",
        Duration::from_secs(10),
        || {
            let (c, url, t) = (c.clone(), config_url(&b_base, page), second_ticket.clone());
            async move {
                let (status, body) = get_json(&c, &url).await;
                status == 200
                    && body["data"]["signature"]
                        == shared::sign::jssdk_signature(
                            &t,
                            body["data"]["nonceStr"].as_str().unwrap_or(""),
                            body["data"]["timestamp"].as_i64().unwrap_or(0),
                            page,
                        )
            }
        },
    )
    .await;
    let body = signed(&client, &b, page).await;
    assert_signed_with(&body, &second, page);
    // B learnt it from Redis, not from WeChat.
    assert_eq!(sb.state().calls(TICKET_PATH), 2);
    assert_eq!(sb.state().calls(STABLE_TOKEN_PATH), 2);
}
