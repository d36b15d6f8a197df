use crate::common::*;

#[tokio::test]
async fn signature_matches_an_independent_computation_and_drops_the_fragment() {
    let sb = start_sandbox().await;
    let app = spawn_instance(&sb, &[], None).await;
    let client = client();
    let page = "https://shop.example/goods?id=7&from=share#/detail?tab=2";

    let res = client
        .get(config_url(&app.base, page))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert!(res.headers().contains_key("x-request-id"));
    let body: serde_json::Value = res.json().await.unwrap();
    let ticket = current_ticket(&sb);
    assert_signed_with(&body, &ticket, page);

    // The fragment is not signed: the same nonce and timestamp over the URL
    // with its fragment would give another signature.
    let data = &body["data"];
    let with_fragment = shared::sign::jssdk_signature(
        &ticket,
        data["nonceStr"].as_str().unwrap(),
        data["timestamp"].as_i64().unwrap(),
        page,
    );
    assert_ne!(data["signature"], with_fragment);
    // Sixteen random alphanumerics (jssdk_service::signature::NONCE_LEN).
    let nonce = data["nonceStr"].as_str().unwrap();
    assert_eq!(nonce.len(), 16, "{nonce}");
    assert!(nonce.bytes().all(|b| b.is_ascii_alphanumeric()), "{nonce}");

    let ts = data["timestamp"].as_i64().unwrap();
    let sandbox_now = sb.state().now().timestamp();
    assert!(
        (sandbox_now - ts).abs() <= 5,
        "timestamp {ts} is seconds, now {sandbox_now}"
    );
    let apis: Vec<&str> = data["jsApiList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for needed in [
        "updateAppMessageShareData",
        "updateTimelineShareData",
        "chooseWXPay",
    ] {
        assert!(apis.contains(&needed), "jsApiList lacks {needed}");
    }

    // A second page: same ticket, fresh nonce, no further WeChat call.
    let (status, body2) = get_json(&client, &config_url(&app.base, "http://127.0.0.1:8080/")).await;
    assert_eq!(status, 200);
    assert_signed_with(&body2, &ticket, "http://127.0.0.1:8080/");
    assert_ne!(body2["data"]["nonceStr"], data["nonceStr"]);
    assert_eq!(sb.state().calls(STABLE_TOKEN_PATH), 1);
    assert_eq!(sb.state().calls(TICKET_PATH), 1);

    let metrics = client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("jssdk_signatures_total"));
    assert!(metrics.contains("jssdk_upstream_fetches_total{kind=\"jsapi_ticket\",outcome=\"ok\"}"));
    // The second page was signed from the process's own copy.
    assert!(
        metrics.contains("jssdk_cache_lookups_total{kind=\"jsapi_ticket\",result=\"process\"}")
    );
}

#[tokio::test]
async fn missing_or_relative_url_is_400_1001_and_calls_nobody() {
    let sb = start_sandbox().await;
    let app = spawn_instance(&sb, &[], None).await;
    let client = client();
    let cases = [
        format!("{}/api/wechat/jssdkConfig", app.base),
        format!("{}/api/wechat/jssdkConfig?url=", app.base),
        config_url(&app.base, "/goods?id=7"),
        config_url(&app.base, "shop.example/goods"),
        config_url(&app.base, "ftp://shop.example/goods"),
        config_url(&app.base, "javascript:alert(1)"),
        // `+` is a space in a query, and a page URL has none.
        format!(
            "{}/api/wechat/jssdkConfig?url=https://shop.example/a+b",
            app.base
        ),
        // Which of two is meant is anybody's guess.
        format!(
            "{}&url={}",
            config_url(&app.base, "https://shop.example/a"),
            "https%3A%2F%2Fshop.example%2Fb"
        ),
    ];
    for url in cases {
        let (status, body) = get_json(&client, &url).await;
        assert_eq!(status, 400, "{url}");
        assert_eq!(body["code"], 1001, "{url}");
        assert_eq!(body["data"], serde_json::Value::Null);
        assert!(body["message"].as_str().unwrap().contains("url"), "{body}");
    }
    assert_eq!(sb.state().calls(STABLE_TOKEN_PATH), 0);
    assert_eq!(sb.state().calls(TICKET_PATH), 0);
}

/// The query is read as `web::Query` would read it: the name may be
/// percent-encoded too, other parameters are ignored, and the value is signed
/// as decoded.
#[tokio::test]
async fn the_url_parameter_is_read_as_a_form_would_be() {
    let sb = start_sandbox().await;
    let app = spawn_instance(&sb, &[], None).await;
    let client = client();
    let page = "https://shop.example/p?q=a%20b";
    let url = format!(
        "{}/api/wechat/jssdkConfig?from=share&u%72l={}&",
        app.base, "https%3A%2F%2Fshop.example%2Fp%3Fq%3Da%2520b"
    );
    let (status, body) = get_json(&client, &url).await;
    assert_eq!(status, 200, "{body}");
    assert_signed_with(&body, &current_ticket(&sb), page);
}
