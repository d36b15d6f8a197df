use std::time::Duration;

use crate::common::*;
use wechat_sandbox::{SANDBOX_MP_APPID, SANDBOX_OA_APPID, SANDBOX_OA_SECRET};

const CALLBACK: &str = "https://shop.example/api/wechat/getOpenId";

fn authorize_path(scope: &str, redirect_uri: &str, state: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("appid", SANDBOX_OA_APPID),
        ("redirect_uri", redirect_uri),
        ("response_type", "code"),
        ("scope", scope),
        ("state", state),
    ];
    pairs.extend_from_slice(extra);
    format!("/connect/oauth2/authorize?{}", query_string(&pairs))
}

fn exchange_path(code: &str, secret: &str) -> String {
    format!(
        "/sns/oauth2/access_token?{}",
        query_string(&[
            ("appid", SANDBOX_OA_APPID),
            ("secret", secret),
            ("code", code),
            ("grant_type", "authorization_code"),
        ])
    )
}

fn userinfo_path(token: &str, openid: &str) -> String {
    format!(
        "/sns/userinfo?{}",
        query_string(&[
            ("access_token", token),
            ("openid", openid),
            ("lang", "zh_CN")
        ])
    )
}

#[tokio::test]
async fn snsapi_base_redirects_at_once_and_its_code_is_single_use() {
    let env = start().await;
    let res = env
        .get(&authorize_path(
            "snsapi_base",
            "https://shop.example/cb?from=menu",
            "Ab12",
            &[],
        ))
        .await;
    assert_eq!(res.status(), 302);
    let loc = location(&res);
    assert!(
        loc.starts_with("https://shop.example/cb?from=menu&code="),
        "{loc}"
    );
    let q = query_of(&loc);
    assert_eq!(q["from"], "menu");
    assert_eq!(q["state"], "Ab12");
    let code = &q["code"];

    let grant = env.get_json(&exchange_path(code, SANDBOX_OA_SECRET)).await;
    let u1 = &env.state.users()[0];
    assert_eq!(grant["openid"], env.state.openid(SANDBOX_OA_APPID, "u1"));
    assert_eq!(grant["scope"], "snsapi_base");
    assert_eq!(grant["expires_in"], 7200);
    assert_eq!(grant["unionid"], u1.unionid.as_str());
    assert!(grant["refresh_token"].as_str().unwrap().len() > 20);

    let again = env.get_json(&exchange_path(code, SANDBOX_OA_SECRET)).await;
    assert_eq!(
        again,
        serde_json::json!({"errcode": 40163, "errmsg": "code been used"})
    );

    // A base grant may not read the profile.
    let token = grant["access_token"].as_str().unwrap();
    let info = env
        .get_json(&userinfo_path(token, grant["openid"].as_str().unwrap()))
        .await;
    assert_eq!(
        info,
        serde_json::json!({"errcode": 48001, "errmsg": "api unauthorized"})
    );
}

#[tokio::test]
async fn the_user_comes_from_the_query_or_the_cookie() {
    let env = start().await;
    let res = env
        .get(&authorize_path(
            "snsapi_base",
            CALLBACK,
            "s",
            &[("sandbox_user", "u2")],
        ))
        .await;
    let code = query_of(&location(&res))["code"].clone();
    let grant = env.get_json(&exchange_path(&code, SANDBOX_OA_SECRET)).await;
    assert_eq!(grant["openid"], env.state.openid(SANDBOX_OA_APPID, "u2"));

    let res = env
        .http
        .get(env.url(&authorize_path("snsapi_base", CALLBACK, "s", &[])))
        .header("cookie", "sandbox_user=u3")
        .send()
        .await
        .unwrap();
    let code = query_of(&location(&res))["code"].clone();
    let grant = env.get_json(&exchange_path(&code, SANDBOX_OA_SECRET)).await;
    assert_eq!(grant["openid"], env.state.openid(SANDBOX_OA_APPID, "u3"));
}

#[tokio::test]
async fn codes_expire_after_five_minutes_and_are_bound_to_their_app() {
    let env = start().await;
    let fresh = env
        .state
        .issue_oauth_code(SANDBOX_OA_APPID, "u1", "snsapi_base");
    let stale = env
        .state
        .issue_oauth_code(SANDBOX_OA_APPID, "u1", "snsapi_base");
    env.state.advance(Duration::from_secs(299));
    let ok = env
        .get_json(&exchange_path(&fresh, SANDBOX_OA_SECRET))
        .await;
    assert_eq!(ok["openid"], env.state.openid(SANDBOX_OA_APPID, "u1"));

    env.state.advance(Duration::from_secs(2));
    let expired = env
        .get_json(&exchange_path(&stale, SANDBOX_OA_SECRET))
        .await;
    assert_eq!(
        expired,
        serde_json::json!({"errcode": 40029, "errmsg": "invalid code"})
    );

    let unknown = env
        .get_json(&exchange_path("nosuchcode", SANDBOX_OA_SECRET))
        .await;
    assert_eq!(errcode(&unknown), 40029);

    let other_app = env
        .state
        .issue_oauth_code(SANDBOX_MP_APPID, "u1", "snsapi_base");
    let res = env
        .get_json(&exchange_path(&other_app, SANDBOX_OA_SECRET))
        .await;
    assert_eq!(errcode(&res), 40029);
}

#[tokio::test]
async fn credentials_are_checked() {
    let env = start().await;
    let code = env
        .state
        .issue_oauth_code(SANDBOX_OA_APPID, "u1", "snsapi_base");
    let wrong = env.get_json(&exchange_path(&code, "not-the-secret")).await;
    assert_eq!(
        wrong,
        serde_json::json!({"errcode": 40125, "errmsg": "invalid appsecret"})
    );

    let unknown_app = env
        .get_json(&format!(
            "/sns/oauth2/access_token?appid=wxnope&secret=x&code={code}&grant_type=authorization_code"
        ))
        .await;
    assert_eq!(
        unknown_app,
        serde_json::json!({"errcode": 40013, "errmsg": "invalid appid"})
    );

    // The failed attempts did not spend the code.
    let ok = env.get_json(&exchange_path(&code, SANDBOX_OA_SECRET)).await;
    assert_eq!(ok["scope"], "snsapi_base");
}

/// The `href` of the `<a>` whose text follows `marker` (HTML-unescaped).
fn href_after(html: &str, marker: &str) -> String {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in page"));
    let rest = &html[at..];
    let start = rest.find("href=\"").unwrap() + 6;
    let end = start + rest[start..].find('"').unwrap();
    rest[start..end].replace("&amp;", "&")
}

#[tokio::test]
async fn consent_page_lists_the_users_and_allow_returns_a_code() {
    let env = start().await;
    let res = env
        .get(&authorize_path(
            "snsapi_userinfo",
            "https://shop.example/#/me",
            "St4te",
            &[],
        ))
        .await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = res.text().await.unwrap();
    assert!(html.contains("<html lang=\"zh-CN\">"));
    for name in [
        "张三",
        "李小龙",
        "微信用户😀",
        "昵称、头像",
        ">允许</a>",
        ">拒绝</a>",
    ] {
        assert!(html.contains(name), "{name} missing from consent page");
    }
    assert_eq!(html.matches(">允许</a>").count(), 3);

    let allow = href_after(&html, "<strong>李小龙</strong>");
    assert!(allow.starts_with("/sandbox/oauth/allow?"), "{allow}");
    let res = env.get(&allow).await;
    assert_eq!(res.status(), 302);
    let loc = location(&res);
    // WeChat puts the query before the SPA fragment.
    assert!(loc.starts_with("https://shop.example/?code="), "{loc}");
    assert!(loc.ends_with("&state=St4te#/me"), "{loc}");
    let code = query_of(&loc)["code"].clone();

    let grant = env.get_json(&exchange_path(&code, SANDBOX_OA_SECRET)).await;
    assert_eq!(grant["scope"], "snsapi_userinfo");
    let openid = env.state.openid(SANDBOX_OA_APPID, "u2");
    assert_eq!(grant["openid"], openid);
    let info = env
        .get_json(&userinfo_path(
            grant["access_token"].as_str().unwrap(),
            &openid,
        ))
        .await;
    let avatar = format!("{}/sandbox/avatar/u2.svg", env.base);
    assert_eq!(
        info,
        serde_json::json!({
            "openid": openid,
            "nickname": "李小龙",
            "sex": 1,
            "province": "浙江",
            "city": "杭州",
            "country": "中国",
            "headimgurl": avatar,
            "privilege": [],
            "unionid": env.state.users()[1].unionid,
        })
    );
    let svg = env.get("/sandbox/avatar/u2.svg").await;
    assert_eq!(svg.status(), 200);
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().contains(">李</text>"));
}

#[tokio::test]
async fn deny_returns_the_state_without_a_code() {
    let env = start().await;
    let html = env
        .get(&authorize_path("snsapi_userinfo", CALLBACK, "keep me", &[]))
        .await
        .text()
        .await
        .unwrap();
    let deny = href_after(&html, "</ul>");
    let res = env.get(&deny).await;
    assert_eq!(res.status(), 302);
    let loc = location(&res);
    let q = query_of(&loc);
    assert_eq!(q.get("state").map(String::as_str), Some("keep me"));
    assert!(!q.contains_key("code"), "{loc}");
    assert!(loc.starts_with(&format!("{CALLBACK}?state=")));
}

#[tokio::test]
async fn bad_authorize_requests_get_wechats_error_page() {
    let env = start().await;
    let cases = [
        (
            format!(
                "/connect/oauth2/authorize?{}",
                query_string(&[
                    ("appid", "wxnope"),
                    ("redirect_uri", CALLBACK),
                    ("response_type", "code"),
                    ("scope", "snsapi_base")
                ])
            ),
            "appid 参数错误",
        ),
        (
            format!(
                "/connect/oauth2/authorize?{}",
                query_string(&[
                    ("appid", SANDBOX_OA_APPID),
                    ("response_type", "code"),
                    ("scope", "snsapi_base")
                ])
            ),
            "redirect_uri 参数错误",
        ),
        (
            authorize_path("snsapi_login", CALLBACK, "s", &[]),
            "Scope 参数错误或没有 Scope 权限",
        ),
        // A mini program cannot do web OAuth.
        (
            format!(
                "/connect/oauth2/authorize?{}",
                query_string(&[
                    ("appid", SANDBOX_MP_APPID),
                    ("redirect_uri", CALLBACK),
                    ("response_type", "code"),
                    ("scope", "snsapi_base")
                ])
            ),
            "appid 参数错误",
        ),
    ];
    for (path, message) in cases {
        let res = env.get(&path).await;
        assert_eq!(res.status(), 200, "{path}");
        assert!(res.headers().get("location").is_none());
        let html = res.text().await.unwrap();
        assert!(html.contains(message), "{path}: {html}");
    }
}

#[tokio::test]
async fn web_access_tokens_expire_and_check_the_openid() {
    let env = start().await;
    let code = env
        .state
        .issue_oauth_code(SANDBOX_OA_APPID, "u1", "snsapi_userinfo");
    let grant = env.get_json(&exchange_path(&code, SANDBOX_OA_SECRET)).await;
    let token = grant["access_token"].as_str().unwrap();
    let openid = grant["openid"].as_str().unwrap();

    let info = env.get_json(&userinfo_path(token, openid)).await;
    assert_eq!(info["nickname"], "张三");
    let mismatch = env
        .get_json(&userinfo_path(
            token,
            &env.state.openid(SANDBOX_OA_APPID, "u2"),
        ))
        .await;
    assert_eq!(
        mismatch,
        serde_json::json!({"errcode": 40003, "errmsg": "invalid openid"})
    );
    let unknown = env.get_json(&userinfo_path("nosuchtoken", openid)).await;
    assert_eq!(errcode(&unknown), 40001);

    env.state.advance(Duration::from_secs(7200));
    let expired = env.get_json(&userinfo_path(token, openid)).await;
    assert_eq!(
        expired,
        serde_json::json!({"errcode": 42001, "errmsg": "access_token expired"})
    );

    // The refresh token still gets a new one.
    let refreshed = env
        .get_json(&format!(
            "/sns/oauth2/refresh_token?{}",
            query_string(&[
                ("appid", SANDBOX_OA_APPID),
                ("grant_type", "refresh_token"),
                ("refresh_token", grant["refresh_token"].as_str().unwrap()),
            ])
        ))
        .await;
    assert_eq!(refreshed["openid"], openid);
    let info = env
        .get_json(&userinfo_path(
            refreshed["access_token"].as_str().unwrap(),
            openid,
        ))
        .await;
    assert_eq!(info["nickname"], "张三");
}
