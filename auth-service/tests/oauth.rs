//! Official-account web OAuth through the sandbox, as the seed's H5 client
//! drives it: redirect → consent page → allow → getOpenId → back to the page.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod common;

use common::*;
use testkit::all_backends;

/// The authorize URL the contract fixes, and the state inside it.
fn check_authorize_url(app: &TestApp, location: &str, scope: &str) -> String {
    let prefix = format!(
        "{}/connect/oauth2/authorize?appid={OA}&redirect_uri={}&response_type=code&scope={scope}&state=",
        app.sandbox.base_url(),
        enc(&app.url("/api/wechat/getOpenId")),
    );
    assert!(location.starts_with(&prefix), "{location}\n{prefix}");
    let state = location[prefix.len()..]
        .strip_suffix("#wechat_redirect")
        .expect("ends with #wechat_redirect");
    assert_eq!(state.len(), 32, "{state}");
    assert!(state.bytes().all(|b| b.is_ascii_alphanumeric()), "{state}");
    state.to_owned()
}

/// The browser's way from the H5 page to WeChat and back to getOpenId; answers
/// the getOpenId URL WeChat redirected to.
async fn through_wechat(app: &TestApp, return_url: &str, scope: &str) -> String {
    let res = app
        .get(&format!(
            "/api/wechat/redirect?url={}&scope={scope}",
            enc(return_url)
        ))
        .await;
    assert_eq!(res.status(), 302);
    let authorize = location(&res);
    let state = check_authorize_url(app, &authorize, scope);
    let res = app.client.get(&authorize).send().await.unwrap();
    let callback = if scope == "snsapi_userinfo" {
        assert_eq!(res.status(), 200);
        let html = res.text().await.unwrap();
        let allow = allow_link(&html);
        let res = app
            .client
            .get(format!("{}{allow}", app.sandbox.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 302);
        location(&res)
    } else {
        // snsapi_base: WeChat redirects at once, no page.
        assert_eq!(res.status(), 302);
        location(&res)
    };
    assert!(
        callback.starts_with(&format!("{}?code=", app.url("/api/wechat/getOpenId"))),
        "{callback}"
    );
    assert!(callback.ends_with(&format!("&state={state}")), "{callback}");
    callback
}

/// The callback: 302 back to the page with the session (HttpOnly) and the
/// seed's readable `openId` cookie.
async fn step_callback_sets_both_cookies(app: &TestApp, callback: &str, page: &str) {
    let sb = app.sandbox.state();
    let res = app.client.get(callback).send().await.unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(location(&res), page);
    let cookies = set_cookies(res.headers());
    let openid = sb.openid(OA, "u1");
    let ttl = 7 * 24 * 3600;
    let session = cookies
        .iter()
        .find(|c| c.starts_with("wx_session="))
        .expect("session cookie");
    assert!(
        session.ends_with(&format!("; HttpOnly; SameSite=Lax; Path=/; Max-Age={ttl}")),
        "{session}"
    );
    assert!(!session.contains("Secure"));
    assert!(
        cookies.contains(&format!(
            "openId={openid}; SameSite=Lax; Path=/; Max-Age={ttl}"
        )),
        "{cookies:?}"
    );
    assert_eq!(sb.calls("/sns/oauth2/access_token"), 1);
    assert_eq!(sb.calls("/sns/userinfo"), 1);
}

/// The cookie jar now carries wx_session: the profile, in Chinese.
async fn step_the_session_cookie_reads_the_profile(app: &TestApp) {
    let sb = app.sandbox.state();
    let openid = sb.openid(OA, "u1");
    // The cookie jar now carries wx_session.
    let (status, body) = envelope(app.get("/api/wechat/getUserInfo").await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["code"], 0);
    assert_eq!(
        body["data"],
        serde_json::json!({
            "openid": openid,
            "unionid": sb.users()[0].unionid,
            "nickname": "张三",
            "headimgurl": format!("{}/sandbox/avatar/u1.svg", app.sandbox.base_url()),
            "sex": 1,
            "province": "广东",
            "city": "深圳",
            "country": "中国",
        })
    );

    let (status, me) = envelope(app.get("/api/auth/me").await).await;
    assert_eq!(status, 200);
    assert_eq!(me["data"]["kind"], "oa");
    assert_eq!(me["data"]["appid"], OA);
    assert_eq!(me["data"]["nickname"], "张三");
    assert!(me["data"]["userId"].as_i64().unwrap() > 0);
}

/// Logout clears both cookies; the jar forgets the session.
async fn step_logout_clears_both_cookies(app: &TestApp) {
    let res = app
        .client
        .post(app.url("/api/auth/logout"))
        .send()
        .await
        .unwrap();
    let cleared = set_cookies(res.headers());
    assert!(
        cleared.contains(&"wx_session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0".to_owned()),
        "{cleared:?}"
    );
    assert!(cleared.contains(&"openId=; SameSite=Lax; Path=/; Max-Age=0".to_owned()));
    let (status, body) = envelope(res).await;
    assert_eq!((status, body["code"].as_i64()), (200, Some(0)));
    expect_error(app.get("/api/wechat/getUserInfo").await, 401, 1002).await;
}

#[tokio::test]
async fn h5_userinfo_login_lands_back_with_cookies_and_chinese_profile() {
    for db in all_backends(auth_service::migrations) {
        let app = spawn_app(&db).await;
        // What the H5 page's location looks like: a hash route and a query.
        let page = format!("{SHOP}/h5/index.html?from=menu#/profile");
        let callback = through_wechat(&app, &page, "snsapi_userinfo").await;
        step_callback_sets_both_cookies(&app, &callback, &page).await;
        step_the_session_cookie_reads_the_profile(&app).await;
        step_logout_clears_both_cookies(&app).await;
        app.sandbox.stop().await;
    }
}

#[tokio::test]
async fn base_scope_creates_a_bare_user_filled_in_by_a_later_userinfo_login() {
    for db in all_backends(auth_service::migrations) {
        let app = spawn_app(&db).await;
        let sb = app.sandbox.state();
        let page = format!("{SHOP}/h5/");
        // scope omitted: snsapi_base, WeChat redirects straight back.
        let res = app
            .get(&format!("/api/wechat/redirect?url={}", enc(&page)))
            .await;
        let authorize = location(&res);
        check_authorize_url(&app, &authorize, "snsapi_base");
        let callback = through_wechat(&app, &page, "snsapi_base").await;
        let res = app.client.get(&callback).send().await.unwrap();
        assert_eq!((res.status().as_u16(), location(&res)), (302, page.clone()));
        assert_eq!(sb.calls("/sns/userinfo"), 0);

        let (_, body) = envelope(app.get("/api/wechat/getUserInfo").await).await;
        let openid = sb.openid(OA, "u1");
        assert_eq!(
            body["data"],
            serde_json::json!({
                "openid": openid,
                "unionid": sb.users()[0].unionid,
                "nickname": null, "headimgurl": null, "sex": null,
                "province": null, "city": null, "country": null,
            })
        );
        let (_, me) = envelope(app.get("/api/auth/me").await).await;
        let first_id = me["data"]["userId"].as_i64().unwrap();

        // Later the same user agrees to share the profile: same row, filled in.
        let callback = through_wechat(&app, &page, "snsapi_userinfo").await;
        let res = app.client.get(&callback).send().await.unwrap();
        assert_eq!(res.status(), 302);
        let (_, me) = envelope(app.get("/api/auth/me").await).await;
        assert_eq!(me["data"]["userId"].as_i64(), Some(first_id));
        assert_eq!(me["data"]["nickname"], "张三");
        assert_eq!(app.state.count_users(OA, &openid).await.unwrap(), 1);

        // And a silent login afterwards keeps the profile.
        let callback = through_wechat(&app, &page, "snsapi_base").await;
        app.client.get(&callback).send().await.unwrap();
        let (_, me) = envelope(app.get("/api/auth/me").await).await;
        assert_eq!(me["data"]["nickname"], "张三");
        app.sandbox.stop().await;
    }
}

#[tokio::test]
async fn replayed_unknown_or_malformed_state_is_refused_before_any_wechat_call() {
    for db in all_backends(auth_service::migrations) {
        let app = spawn_app(&db).await;
        let sb = app.sandbox.state();
        let callback = through_wechat(&app, &format!("{SHOP}/"), "snsapi_userinfo").await;
        assert_eq!(
            app.client.get(&callback).send().await.unwrap().status(),
            302
        );
        assert_eq!(sb.calls("/sns/oauth2/access_token"), 1);

        // The same callback again (a replayed state).
        let msg = expect_error(app.client.get(&callback).send().await.unwrap(), 400, 1001).await;
        assert_eq!(msg, "state is unknown, expired or already used");
        let fresh_code = sb.issue_oauth_code(OA, "u1", "snsapi_base");
        for query in [
            format!("code={fresh_code}&state={}", "A".repeat(32)),
            format!("code={fresh_code}&state=short"),
            format!("code={fresh_code}&state={}", "b".repeat(129)),
            format!("code={fresh_code}"),
            "state=".to_owned(),
        ] {
            expect_error(
                app.get(&format!("/api/wechat/getOpenId?{query}")).await,
                400,
                1001,
            )
            .await;
        }
        assert_eq!(sb.calls("/sns/oauth2/access_token"), 1);
        assert_eq!(sb.calls("/sns/userinfo"), 1);
        app.sandbox.stop().await;
    }
}

/// A state from our own redirect, for a callback built by hand.
async fn fresh_state(app: &TestApp) -> String {
    let res = app
        .get(&format!("/api/wechat/redirect?url={}", enc(SHOP)))
        .await;
    check_authorize_url(app, &location(&res), "snsapi_base")
}

#[tokio::test]
async fn wechat_code_errors_are_relayed_with_wechats_code() {
    for db in all_backends(auth_service::migrations) {
        let app = spawn_app(&db).await;
        let sb = app.sandbox.state();
        let callback = through_wechat(&app, &format!("{SHOP}/"), "snsapi_base").await;
        app.client.get(&callback).send().await.unwrap();
        let used_code = url::Url::parse(&callback)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();

        let state = fresh_state(&app).await;
        let msg = expect_error(
            app.get(&format!(
                "/api/wechat/getOpenId?code={used_code}&state={state}"
            ))
            .await,
            502,
            40163,
        )
        .await;
        assert_eq!(msg, "code been used");

        let state = fresh_state(&app).await;
        let msg = expect_error(
            app.get(&format!(
                "/api/wechat/getOpenId?code=nosuchcode&state={state}"
            ))
            .await,
            502,
            40029,
        )
        .await;
        assert_eq!(msg, "invalid code");
        assert_eq!(sb.calls("/sns/oauth2/access_token"), 3);

        // Consent denied: WeChat comes back with the state and no code.
        let state = fresh_state(&app).await;
        let msg = expect_error(
            app.get(&format!("/api/wechat/getOpenId?state={state}"))
                .await,
            400,
            1001,
        )
        .await;
        assert!(msg.starts_with("code is required"), "{msg}");
        assert_eq!(sb.calls("/sns/oauth2/access_token"), 3);
        app.sandbox.stop().await;
    }
}

#[tokio::test]
async fn open_redirects_are_refused() {
    let db = testkit::sqlite_db(auth_service::migrations());
    let app = spawn_app(&db).await;
    for bad in [
        "//evil.example",
        "//evil.example/path",
        "javascript:alert(document.cookie)",
        "https://shop.example@evil.example",
        "https://shop.example@evil.example/",
        "https://evil.example/?https://shop.example",
        "https://shop.example.evil.example/",
        "https:\\\\evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "https://shop.example\\@evil.example",
        "%2F%2Fevil.example",
        "https%3A%2F%2Fevil.example",
        "https://shop.example%40evil.example",
        "http://shop.example/",
        "/relative",
        "",
    ] {
        let res = app
            .get(&format!(
                "/api/wechat/redirect?url={}&scope=snsapi_userinfo",
                enc(bad)
            ))
            .await;
        assert!(res.headers().get("location").is_none(), "{bad:?}");
        let msg = expect_error(res, 400, 1001).await;
        assert!(msg.starts_with("url "), "{bad:?}: {msg}");
    }
    // No url at all, and an unknown scope.
    expect_error(app.get("/api/wechat/redirect").await, 400, 1001).await;
    let msg = expect_error(
        app.get(&format!(
            "/api/wechat/redirect?url={}&scope=snsapi_login",
            enc(SHOP)
        ))
        .await,
        400,
        1001,
    )
    .await;
    assert_eq!(msg, "scope must be snsapi_base or snsapi_userinfo");
    app.sandbox.stop().await;
}

/// On Redis the state is shared by every replica and still single-use.
#[tokio::test]
async fn state_is_single_use_on_redis() {
    let Some((cache, _prefix)) = testkit::redis_cache().await else {
        return;
    };
    let db = testkit::sqlite_db(auth_service::migrations());
    let app = spawn_app_full(&db, &[], Some(cache)).await;
    let callback = through_wechat(&app, &format!("{SHOP}/x"), "snsapi_userinfo").await;
    let res = app.client.get(&callback).send().await.unwrap();
    assert_eq!(location(&res), format!("{SHOP}/x"));
    expect_error(app.client.get(&callback).send().await.unwrap(), 400, 1001).await;
    assert_eq!(app.sandbox.state().calls("/sns/oauth2/access_token"), 1);
    app.sandbox.stop().await;
}

/// A fresh browser: a cookie jar of its own, redirects not followed.
fn another_browser() -> reqwest::Client {
    shared::http_client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .no_proxy()
        .build()
        .unwrap()
}

/// Browser A's start of a login: the binding cookie its redirect sets.
async fn binding_cookie_of_a_redirect(app: &TestApp) -> String {
    let res = app
        .get(&format!("/api/wechat/redirect?url={}", enc(SHOP)))
        .await;
    set_cookies(res.headers())
        .into_iter()
        .find(|c| c.starts_with("wx_oauth="))
        .expect("redirect sets the OAuth binding cookie")
}

/// Another browser opening `callback`: refused before WeChat hears of it,
/// and no session.
async fn refused_in(app: &TestApp, browser: &reqwest::Client, callback: &str) {
    let res = browser.get(callback).send().await.unwrap();
    let cookies = set_cookies(res.headers());
    assert!(
        !cookies.iter().any(|c| c.starts_with("wx_session=")),
        "no session for the other browser: {cookies:?}"
    );
    let msg = expect_error(res, 400, 1001).await;
    assert_eq!(msg, "state was issued to another browser");
    let res = browser.get(app.url("/api/auth/me")).send().await.unwrap();
    expect_error(res, 401, 1002).await;
}

/// Login CSRF: a callback URL made in an attacker's browser and opened by a
/// victim must not log the victim in as the attacker.
#[tokio::test]
async fn state_is_bound_to_the_browser_that_asked_for_it() {
    for db in all_backends(auth_service::migrations) {
        let app = spawn_app(&db).await;
        let sb = app.sandbox.state();
        // Browser A (the attacker) starts a login and stops at the callback URL.
        let binding = binding_cookie_of_a_redirect(&app).await;
        assert!(
            binding.ends_with("; HttpOnly; SameSite=Lax; Path=/api/wechat; Max-Age=600"),
            "{binding}"
        );
        let callback = through_wechat(&app, &format!("{SHOP}/a"), "snsapi_userinfo").await;

        // Browser B (the victim) opens it: without the cookie, and with a
        // binding of its own from its own redirect.
        let victim = another_browser();
        refused_in(&app, &victim, &callback).await;
        let res = victim
            .get(app.url(&format!("/api/wechat/redirect?url={}", enc(SHOP))))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 302);
        refused_in(&app, &victim, &callback).await;
        // A cookie value we never issued is no binding either.
        let forged = app
            .client
            .get(&callback)
            .header("cookie", format!("wx_oauth={}", "x".repeat(32)));
        expect_error(forged.send().await.unwrap(), 400, 1001).await;
        assert_eq!(sb.calls("/sns/oauth2/access_token"), 0);

        // The browser the state was issued to still logs in with it, once,
        // and its binding cookie is cleared.
        let res = app.client.get(&callback).send().await.unwrap();
        assert_eq!(
            (res.status().as_u16(), location(&res)),
            (302, format!("{SHOP}/a"))
        );
        let cookies = set_cookies(res.headers());
        assert!(cookies.iter().any(|c| c.starts_with("wx_session=")));
        let cleared = "wx_oauth=; HttpOnly; SameSite=Lax; Path=/api/wechat; Max-Age=0";
        assert!(cookies.contains(&cleared.to_owned()), "{cookies:?}");
        assert_eq!(sb.calls("/sns/oauth2/access_token"), 1);
        expect_error(app.client.get(&callback).send().await.unwrap(), 400, 1001).await;
        app.sandbox.stop().await;
    }
}
