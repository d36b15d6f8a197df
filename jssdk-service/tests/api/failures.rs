use testkit::eventually;
use wechat_sandbox::FaultKind;

use crate::common::*;

fn errcode(code: i64, msg: &str) -> FaultKind {
    FaultKind::Errcode {
        errcode: code,
        errmsg: msg.into(),
    }
}

#[tokio::test]
async fn rejected_token_on_getticket_is_replaced_once_and_the_request_succeeds() {
    for code in [40001, 40014, 42001] {
        let sb = start_sandbox().await;
        let app = spawn_instance(&sb, &[], None).await;
        sb.state()
            .inject_fault(TICKET_PATH, errcode(code, "invalid credential"), 1);
        let page = "https://shop.example/p";
        let (status, body) = get_json(&client(), &config_url(&app.base, page)).await;
        assert_eq!(status, 200, "{code}: {body}");
        assert_signed_with(&body, &current_ticket(&sb), page);
        // One token, rejected; one more (force-refreshed); the ticket call retried once.
        assert_eq!(sb.state().calls(STABLE_TOKEN_PATH), 2, "{code}");
        assert_eq!(sb.state().calls(TICKET_PATH), 2, "{code}");
    }
}

#[tokio::test]
async fn a_token_rejected_twice_is_reported_not_retried_again() {
    let sb = start_sandbox().await;
    let app = spawn_instance(&sb, &[], None).await;
    sb.state()
        .inject_fault(TICKET_PATH, errcode(40001, "invalid credential"), 2);
    let (status, body) =
        get_json(&client(), &config_url(&app.base, "https://shop.example/p")).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], 40001);
    assert_eq!(body["message"], "invalid credential");
    assert_eq!(sb.state().calls(STABLE_TOKEN_PATH), 2);
    assert_eq!(sb.state().calls(TICKET_PATH), 2);
}

#[tokio::test]
async fn quota_exceeded_is_502_45009_and_not_retried() {
    let sb = start_sandbox().await;
    let app = spawn_instance(&sb, &[], None).await;
    let client = client();
    sb.state().inject_fault(
        STABLE_TOKEN_PATH,
        errcode(45009, "reach max api daily quota limit"),
        10,
    );
    for _ in 0..3 {
        let (status, body) =
            get_json(&client, &config_url(&app.base, "https://shop.example/p")).await;
        assert_eq!(status, 502, "{body}");
        assert_eq!(body["code"], 45009);
        assert_eq!(body["message"], "reach max api daily quota limit");
    }
    // One call: neither the client's retries nor the later requests call again
    // while the quota cool-down lasts.
    assert_eq!(sb.state().calls(STABLE_TOKEN_PATH), 1);
    assert_eq!(sb.state().calls(TICKET_PATH), 0);
}

#[tokio::test]
async fn quota_exceeded_on_getticket_is_reported_too() {
    let sb = start_sandbox().await;
    let app = spawn_instance(&sb, &[], None).await;
    let client = client();
    sb.state().inject_fault(
        TICKET_PATH,
        errcode(45009, "reach max api daily quota limit"),
        10,
    );
    for _ in 0..2 {
        let (status, body) =
            get_json(&client, &config_url(&app.base, "https://shop.example/p")).await;
        assert_eq!(status, 502, "{body}");
        assert_eq!(body["code"], 45009);
    }
    assert_eq!(sb.state().calls(STABLE_TOKEN_PATH), 1);
    assert_eq!(sb.state().calls(TICKET_PATH), 1);
}

#[tokio::test]
async fn a_failed_fetch_cools_down_then_recovers() {
    let sb = start_sandbox().await;
    let app = spawn_instance(
        &sb,
        &[
            ("WECHAT_RETRIES", "0"),
            ("JSSDK_FAILURE_COOLDOWN_MS", "300"),
        ],
        None,
    )
    .await;
    let client = client();
    sb.state().inject_fault(TICKET_PATH, FaultKind::Garbage, 1);
    let page = "https://shop.example/p";
    let (status, body) = get_json(&client, &config_url(&app.base, page)).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], 10009);
    // After the cool-down the next request fetches again and succeeds.
    let base = app.base.clone();
    eventually(
        "recovery after the cool-down",
        std::time::Duration::from_secs(10),
        || {
            let (client, url) = (client.clone(), config_url(&base, page));
            async move { get_json(&client, &url).await.0 == 200 }
        },
    )
    .await;
    assert_eq!(sb.state().calls(TICKET_PATH), 2);
    let (_, body) = get_json(&client, &config_url(&app.base, page)).await;
    assert_signed_with(&body, &current_ticket(&sb), page);
}

#[tokio::test]
async fn quota_exceeded_under_concurrent_load_on_several_replicas_is_one_call() {
    let sb = start_sandbox().await;
    let cache = shared::cache::Cache::memory();
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(spawn_instance(&sb, &[], Some(cache.clone())).await);
    }
    sb.state().inject_fault(
        STABLE_TOKEN_PATH,
        errcode(45009, "reach max api daily quota limit"),
        100,
    );
    let client = client();
    let replies = futures_util::future::join_all((0..60).map(|i| {
        let url = config_url(&instances[i % 3].base, "https://shop.example/p");
        let client = client.clone();
        async move { get_json(&client, &url).await }
    }))
    .await;
    for (status, body) in replies {
        assert_eq!(status, 502, "{body}");
        assert_eq!(body["code"], 45009);
    }
    assert_eq!(sb.state().calls(STABLE_TOKEN_PATH), 1);
    assert_eq!(sb.state().calls(TICKET_PATH), 0);
}
