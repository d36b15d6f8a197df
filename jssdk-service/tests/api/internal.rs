use crate::common::*;

const INTERNAL_TOKEN: &str = "internal-token-for-tests-0123";

#[tokio::test]
async fn internal_access_token_is_404_when_unconfigured() {
    let sb = start_sandbox().await;
    let app = spawn_instance(&sb, &[], None).await;
    let res = client()
        .get(format!("{}/internal/access-token", app.base))
        .bearer_auth(INTERNAL_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], 1004);
    assert_eq!(sb.state().calls(STABLE_TOKEN_PATH), 0);
}

#[tokio::test]
async fn internal_access_token_needs_the_bearer_token_and_returns_a_working_token() {
    let sb = start_sandbox().await;
    let app = spawn_instance(&sb, &[("INTERNAL_TOKEN", INTERNAL_TOKEN)], None).await;
    let client = client();
    let url = format!("{}/internal/access-token", app.base);

    for req in [
        client.get(&url),
        client
            .get(&url)
            .bearer_auth("internal-token-for-tests-0124"),
        client.get(&url).bearer_auth("internal"),
        client.get(&url).header("authorization", INTERNAL_TOKEN),
    ] {
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), 401);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["code"], 1002);
    }
    assert_eq!(sb.state().calls(STABLE_TOKEN_PATH), 0);

    let res = client
        .get(&url)
        .bearer_auth(INTERNAL_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], 0);
    let token = body["data"]["accessToken"].as_str().unwrap().to_owned();
    let expires_at = body["data"]["expiresAt"].as_i64().unwrap();
    let left = expires_at - sb.state().now().timestamp();
    assert!((7190..=7200).contains(&left), "expiresAt is {left} s ahead");

    // The token works at WeChat: getticket accepts it.
    let (status, ticket) = get_json(
        &client,
        &format!(
            "{}{TICKET_PATH}?access_token={token}&type=jsapi",
            sb.base_url()
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ticket["errcode"], 0, "{ticket}");

    // Cached: a second caller gets the same token without a WeChat call.
    let (_, again) = get_json(&client, &url).await;
    assert_eq!(again["code"], 1002);
    let res = client
        .get(&url)
        .bearer_auth(INTERNAL_TOKEN)
        .send()
        .await
        .unwrap();
    let again: serde_json::Value = res.json().await.unwrap();
    assert_eq!(again["data"]["accessToken"], token.as_str());
    assert_eq!(sb.state().calls(STABLE_TOKEN_PATH), 1);
}
