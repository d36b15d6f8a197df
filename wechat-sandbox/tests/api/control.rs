use serde_json::json;

use crate::common::*;
use wechat_sandbox::{SANDBOX_MP_APPID, SANDBOX_OA_APPID, SANDBOX_OA_SECRET};

#[tokio::test]
async fn users_are_listed_with_their_openids() {
    let env = start().await;
    let users = env.get_json("/sandbox/users").await;
    let users = users.as_array().unwrap();
    assert_eq!(users.len(), 3);
    let nicknames: Vec<&str> = users
        .iter()
        .map(|u| u["nickname"].as_str().unwrap())
        .collect();
    assert_eq!(nicknames, ["张三", "李小龙", "微信用户😀"]);
    for (u, user) in users.iter().zip(env.state.users()) {
        assert_eq!(u["key"], user.key.as_str());
        assert_eq!(u["unionid"], user.unionid.as_str());
        assert_eq!(
            u["openids"][SANDBOX_OA_APPID],
            env.state.openid(SANDBOX_OA_APPID, &user.key)
        );
        assert_eq!(
            u["openids"][SANDBOX_MP_APPID],
            env.state.openid(SANDBOX_MP_APPID, &user.key)
        );
        assert_eq!(
            u["headimgurl"],
            format!("{}/sandbox/avatar/{}.svg", env.base, user.key)
        );
    }
    let openids: std::collections::HashSet<String> = users
        .iter()
        .flat_map(|u| u["openids"].as_object().unwrap().values())
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(openids.len(), 6, "openids are unique per user and app");
    assert!(openids.iter().all(|o| o.len() == 28 && o.starts_with('o')));
}

#[tokio::test]
async fn the_clock_moves_over_http() {
    let env = start().await;
    let token = env
        .get_json(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={SANDBOX_OA_APPID}&secret={SANDBOX_OA_SECRET}"
        ))
        .await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = env.state.now();
    let (status, body) = env
        .post_json("/sandbox/time/advance", &json!({"seconds": 7200}))
        .await;
    assert_eq!(status, 200);
    assert!(body["now"].as_str().is_some());
    assert!(env.state.now() - before >= chrono::Duration::seconds(7200));
    let v = env
        .get_json(&format!(
            "/cgi-bin/ticket/getticket?access_token={token}&type=jsapi"
        ))
        .await;
    assert_eq!(v["errcode"], 42001);

    let (status, _) = env
        .post_json("/sandbox/time/advance", &json!({"seconds": -1}))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn oauth_codes_can_be_issued_without_a_browser() {
    let env = start().await;
    let (status, body) = env
        .post_json(
            "/sandbox/oauth/code",
            &json!({"user": "u3", "scope": "snsapi_userinfo"}),
        )
        .await;
    assert_eq!(status, 200);
    let code = body["code"].as_str().unwrap();
    let grant = env
        .get_json(&format!(
            "/sns/oauth2/access_token?appid={SANDBOX_OA_APPID}&secret={SANDBOX_OA_SECRET}&code={code}&grant_type=authorization_code"
        ))
        .await;
    assert_eq!(grant["openid"], env.state.openid(SANDBOX_OA_APPID, "u3"));
    assert_eq!(grant["scope"], "snsapi_userinfo");

    let (status, _) = env
        .post_json(
            "/sandbox/oauth/code",
            &json!({"user": "u1", "appid": SANDBOX_MP_APPID}),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn unknown_avatars_are_not_found_and_stop_is_clean() {
    let env = start().await;
    assert_eq!(env.get("/sandbox/avatar/u9.svg").await.status(), 404);
    assert_eq!(env.get("/sandbox/avatar/u1.png").await.status(), 404);
    let url = env.url("/sandbox/users");
    let http = env.http.clone();
    env.sandbox.stop().await;
    assert!(
        http.get(url).send().await.is_err(),
        "nothing listens after stop"
    );
}
