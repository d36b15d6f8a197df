use std::time::Duration;

use futures_util::future::join_all;
use shared::cache::Cache;
use wechat_sandbox::FaultKind;

use crate::common::*;

const REQUESTS: usize = 300;

/// `REQUESTS` concurrent cold requests spread over the instances; every one
/// must be signed with the sandbox's one ticket.
async fn storm(sb: &wechat_sandbox::Sandbox, instances: &[Instance]) {
    let client = client();
    let page = "https://shop.example/storm?x=1#top";
    let replies = join_all((0..REQUESTS).map(|i| {
        let url = config_url(&instances[i % instances.len()].base, page);
        let client = client.clone();
        async move { get_json(&client, &url).await }
    }))
    .await;
    let ticket = current_ticket(sb);
    for (status, body) in &replies {
        assert_eq!(*status, 200, "{body}");
        assert_signed_with(body, &ticket, page);
    }
}

#[tokio::test]
async fn concurrent_cold_requests_in_one_process_fetch_once() {
    let sb = start_sandbox().await;
    let app = spawn_instance(&sb, &[], None).await;
    // A slow WeChat, so that every request arrives while the fetch is in flight.
    sb.state().inject_fault(
        STABLE_TOKEN_PATH,
        FaultKind::Delay(Duration::from_millis(300)),
        1,
    );
    storm(&sb, &[app]).await;
    assert_eq!(sb.state().calls(STABLE_TOKEN_PATH), 1);
    assert_eq!(sb.state().calls(TICKET_PATH), 1);
}

#[tokio::test]
async fn three_replicas_sharing_redis_fetch_once_per_kind() {
    let Some(redis_url) = testkit::service_url("TEST_REDIS_URL") else {
        return;
    };
    for (endpoint, token_path) in [("stable", STABLE_TOKEN_PATH), ("token", TOKEN_PATH)] {
        let sb = start_sandbox().await;
        // A key prefix of this test's own; each replica its own connection and
        // its own in-process state.
        let prefix = format!("wxpay_test_{}:", shared::random::alphanumeric(16));
        let mut instances = Vec::new();
        let cleanup = Cache::connect(Some(&redis_url), &prefix)
            .await
            .expect("Redis answers");
        for _ in 0..3 {
            let cache = Cache::connect(Some(&redis_url), &prefix)
                .await
                .expect("Redis answers");
            assert!(cache.is_shared());
            instances
                .push(spawn_instance(&sb, &[("WX_TOKEN_ENDPOINT", endpoint)], Some(cache)).await);
        }
        sb.state()
            .inject_fault(token_path, FaultKind::Delay(Duration::from_millis(300)), 1);
        storm(&sb, &instances).await;
        assert_eq!(sb.state().calls(token_path), 1, "{endpoint}");
        assert_eq!(sb.state().calls(TICKET_PATH), 1, "{endpoint}");
        let other = if token_path == TOKEN_PATH {
            STABLE_TOKEN_PATH
        } else {
            TOKEN_PATH
        };
        assert_eq!(sb.state().calls(other), 0, "{endpoint}");
        // Leave the shared test Redis as it was (the lock keys are gone already).
        for kind in ["access_token", "jsapi_ticket"] {
            let key = format!("jssdk:{}:{kind}", wechat_sandbox::SANDBOX_OA_APPID);
            assert!(cleanup.delete(&key).await.unwrap(), "{key} was shared");
            assert!(!cleanup.delete(&format!("{key}:lock")).await.unwrap());
        }
    }
}

/// A replica whose fetch is slow holds the lock; another replica waits at most
/// `JSSDK_LOCK_WAIT_MS`, then answers 504/10009 rather than fetching too (or
/// signing with anything else). Once the fetch lands, both serve it.
#[tokio::test]
async fn waiting_for_another_replicas_fetch_is_bounded() {
    let sb = start_sandbox().await;
    let shared_cache = Cache::memory();
    let slow = spawn_instance(&sb, &[], Some(shared_cache.clone())).await;
    let impatient = spawn_instance(&sb, &[("JSSDK_LOCK_WAIT_MS", "300")], Some(shared_cache)).await;
    sb.state().inject_fault(
        STABLE_TOKEN_PATH,
        FaultKind::Delay(Duration::from_secs(3)),
        1,
    );
    let client = client();
    let page = "https://shop.example/p";

    let first = tokio::spawn({
        let (client, url) = (client.clone(), config_url(&slow.base, page));
        async move { get_json(&client, &url).await }
    });
    wait_for_calls(&sb, STABLE_TOKEN_PATH, 1).await;
    let (status, body) = get_json(&client, &config_url(&impatient.base, page)).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["code"], 10009);

    let (status, body) = first.await.unwrap();
    assert_eq!(status, 200, "{body}");
    let ticket = current_ticket(&sb);
    assert_signed_with(&body, &ticket, page);
    let (status, body) = get_json(&client, &config_url(&impatient.base, page)).await;
    assert_eq!(status, 200, "{body}");
    assert_signed_with(&body, &ticket, page);
    assert_eq!(sb.state().calls(STABLE_TOKEN_PATH), 1);
    assert_eq!(sb.state().calls(TICKET_PATH), 1);
}
