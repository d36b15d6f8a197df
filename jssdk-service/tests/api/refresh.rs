use std::time::Duration;

use crate::common::*;

/// With the background refresher on: values are fetched before any request,
/// renewed inside the refresh window (5 min) and replaced once expired, all
/// without a request waiting; pages are signed with the sandbox's current
/// ticket throughout.
#[tokio::test]
async fn values_are_renewed_ahead_of_expiry_in_the_background() {
    for (endpoint, token_path) in [("stable", STABLE_TOKEN_PATH), ("token", TOKEN_PATH)] {
        let sb = start_sandbox().await;
        let app = spawn_instance(
            &sb,
            &[
                ("WX_TOKEN_ENDPOINT", endpoint),
                ("JSSDK_BACKGROUND_REFRESH", "on"),
                ("JSSDK_REFRESH_CHECK_MS", "20"),
                ("JSSDK_REFRESH_AHEAD_SECONDS", "300"),
            ],
            None,
        )
        .await;
        let client = client();
        let page = "https://shop.example/p#x";

        // Warmed at start, before any request.
        wait_for_calls(&sb, token_path, 1).await;
        wait_for_calls(&sb, TICKET_PATH, 1).await;
        let first = current_ticket(&sb);
        let (_, body) = get_json(&client, &config_url(&app.base, page)).await;
        assert_signed_with(&body, &first, page);

        // 200 s left: inside the window, so both are renewed. The sandbox hands
        // out the same ticket (and, for stable_token, the same token) until it
        // expires.
        sb.state().advance(Duration::from_secs(7000));
        wait_for_calls(&sb, token_path, 2).await;
        wait_for_calls(&sb, TICKET_PATH, 2).await;
        let (_, body) = get_json(&client, &config_url(&app.base, page)).await;
        assert_signed_with(&body, &first, page);

        // Past the first expiry: the refresher replaces what expired.
        sb.state().advance(Duration::from_secs(300));
        // /cgi-bin/token gave a fresh token at the renewal, still valid now.
        let token_calls = if endpoint == "stable" { 3 } else { 2 };
        wait_for_calls(&sb, TICKET_PATH, 3).await;
        wait_for_calls(&sb, token_path, token_calls).await;
        let second = current_ticket(&sb);
        assert_ne!(second, first, "{endpoint}: the expired ticket was replaced");
        let (status, body) = get_json(&client, &config_url(&app.base, page)).await;
        assert_eq!(status, 200);
        assert_signed_with(&body, &second, page);
        // The request itself waited on nobody.
        assert_eq!(sb.state().calls(TICKET_PATH), 3, "{endpoint}");
        assert_eq!(sb.state().calls(token_path), token_calls, "{endpoint}");
    }
}

/// Without the refresher, an expired ticket is fetched on the next request.
#[tokio::test]
async fn an_expired_value_is_fetched_again_on_demand() {
    let sb = start_sandbox().await;
    let app = spawn_instance(&sb, &[], None).await;
    let client = client();
    let page = "https://shop.example/p";
    let (_, body) = get_json(&client, &config_url(&app.base, page)).await;
    let first = current_ticket(&sb);
    assert_signed_with(&body, &first, page);
    sb.state().advance(Duration::from_secs(7201));
    let (status, body) = get_json(&client, &config_url(&app.base, page)).await;
    assert_eq!(status, 200, "{body}");
    let second = current_ticket(&sb);
    assert_ne!(first, second);
    assert_signed_with(&body, &second, page);
    assert_eq!(sb.state().calls(STABLE_TOKEN_PATH), 2);
    assert_eq!(sb.state().calls(TICKET_PATH), 2);
}
