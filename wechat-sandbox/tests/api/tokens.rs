use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;
use wechat_sandbox::{SANDBOX_MP_APPID, SANDBOX_OA_APPID, SANDBOX_OA_SECRET};

const TOKEN_PATH: &str = "/cgi-bin/token?grant_type=client_credential";

fn token_path() -> String {
    format!("{TOKEN_PATH}&appid={SANDBOX_OA_APPID}&secret={SANDBOX_OA_SECRET}")
}

async fn new_token(env: &Env) -> String {
    let v = env.get_json(&token_path()).await;
    assert_eq!(v["expires_in"], 7200);
    v["access_token"].as_str().unwrap().to_owned()
}

async fn ticket(env: &Env, token: &str) -> Value {
    env.get_json(&format!(
        "/cgi-bin/ticket/getticket?access_token={token}&type=jsapi"
    ))
    .await
}

async fn stable(env: &Env, force_refresh: bool) -> Value {
    let (status, v) = env
        .post_json(
            "/cgi-bin/stable_token",
            &json!({
                "grant_type": "client_credential",
                "appid": SANDBOX_OA_APPID,
                "secret": SANDBOX_OA_SECRET,
                "force_refresh": force_refresh,
            }),
        )
        .await;
    assert_eq!(status, 200);
    v
}

const INVALID: &str = "invalid credential, access_token is invalid or not latest";

#[tokio::test]
async fn a_new_token_leaves_the_previous_one_five_minutes() {
    let env = start().await;
    let first = new_token(&env).await;
    assert_eq!(ticket(&env, &first).await["errcode"], 0);
    let second = new_token(&env).await;
    assert_ne!(first, second);

    env.state.advance(Duration::from_secs(299));
    assert_eq!(ticket(&env, &first).await["errcode"], 0);
    env.state.advance(Duration::from_secs(2));
    assert_eq!(
        ticket(&env, &first).await,
        json!({"errcode": 40001, "errmsg": INVALID})
    );
    assert_eq!(ticket(&env, &second).await["errcode"], 0);

    env.state.advance(Duration::from_secs(7200));
    assert_eq!(
        ticket(&env, &second).await,
        json!({"errcode": 42001, "errmsg": "access_token expired"})
    );
}

#[tokio::test]
async fn token_requests_are_checked() {
    let env = start().await;
    let wrong = env
        .get_json(&format!(
            "{TOKEN_PATH}&appid={SANDBOX_OA_APPID}&secret=nope"
        ))
        .await;
    assert_eq!(
        wrong,
        json!({"errcode": 40125, "errmsg": "invalid appsecret"})
    );
    let unknown = env
        .get_json(&format!("{TOKEN_PATH}&appid=wxnope&secret=x"))
        .await;
    assert_eq!(
        unknown,
        json!({"errcode": 40013, "errmsg": "invalid appid"})
    );
    let grant = env
        .get_json(&format!(
            "/cgi-bin/token?grant_type=password&appid={SANDBOX_OA_APPID}&secret={SANDBOX_OA_SECRET}"
        ))
        .await;
    assert_eq!(
        grant,
        json!({"errcode": 40002, "errmsg": "invalid grant_type"})
    );
}

#[tokio::test]
async fn stable_token_is_stable_unless_forced() {
    let env = start().await;
    let a = stable(&env, false).await;
    assert_eq!(a["expires_in"], 7200);
    env.state.advance(Duration::from_secs(1000));
    let b = stable(&env, false).await;
    assert_eq!(b["access_token"], a["access_token"]);
    let left = b["expires_in"].as_u64().unwrap();
    assert!((6199..=6200).contains(&left), "{left}");

    // The plain token endpoint does not disturb the stable one.
    let plain = new_token(&env).await;
    assert_ne!(Value::from(plain), a["access_token"]);
    assert_eq!(stable(&env, false).await["access_token"], a["access_token"]);

    let forced = stable(&env, true).await;
    assert_ne!(forced["access_token"], a["access_token"]);
    assert_eq!(forced["expires_in"], 7200);
    let old = a["access_token"].as_str().unwrap();
    assert_eq!(ticket(&env, old).await["errcode"], 0);
    env.state.advance(Duration::from_secs(300));
    assert_eq!(ticket(&env, old).await["errcode"], 40001);

    // Once it expires, the next call brings a new one.
    env.state.advance(Duration::from_secs(7200));
    let renewed = stable(&env, false).await;
    assert_ne!(renewed["access_token"], forced["access_token"]);
    assert_eq!(renewed["expires_in"], 7200);
}

#[tokio::test]
async fn stable_token_errors() {
    let env = start().await;
    let cases = [
        (
            json!({"grant_type": "client_credential", "appid": SANDBOX_OA_APPID, "secret": "x"}),
            40125,
        ),
        (
            json!({"grant_type": "client_credential", "appid": "wxnope", "secret": "x"}),
            40013,
        ),
        (
            json!({"grant_type": "nope", "appid": SANDBOX_OA_APPID, "secret": SANDBOX_OA_SECRET}),
            40002,
        ),
    ];
    for (body, code) in cases {
        let (_, v) = env.post_json("/cgi-bin/stable_token", &body).await;
        assert_eq!(errcode(&v), code, "{body}");
    }
    let res = env
        .http
        .post(env.url("/cgi-bin/stable_token"))
        .body("not json")
        .send()
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    assert_eq!(v, json!({"errcode": 47001, "errmsg": "data format error"}));
}

#[tokio::test]
async fn getticket_returns_the_current_ticket_until_it_expires() {
    let env = start().await;
    assert_eq!(env.state.current_jsapi_ticket(SANDBOX_OA_APPID), None);
    let token = new_token(&env).await;
    let t1 = ticket(&env, &token).await;
    assert_eq!(t1["errcode"], 0);
    assert_eq!(t1["errmsg"], "ok");
    assert_eq!(t1["expires_in"], 7200);
    let value = t1["ticket"].as_str().unwrap();
    assert_eq!(
        env.state.current_jsapi_ticket(SANDBOX_OA_APPID).as_deref(),
        Some(value)
    );
    assert_eq!(env.state.current_jsapi_ticket(SANDBOX_MP_APPID), None);

    let t2 = ticket(&env, &token).await;
    assert_eq!(t2["ticket"], value);

    env.state.advance(Duration::from_secs(7200));
    assert_eq!(env.state.current_jsapi_ticket(SANDBOX_OA_APPID), None);
    let token = new_token(&env).await;
    let t3 = ticket(&env, &token).await;
    assert_ne!(t3["ticket"], value);
    assert_eq!(
        env.state.current_jsapi_ticket(SANDBOX_OA_APPID).as_deref(),
        t3["ticket"].as_str()
    );

    let bad_type = env
        .get_json(&format!(
            "/cgi-bin/ticket/getticket?access_token={token}&type=nope"
        ))
        .await;
    assert_eq!(
        bad_type,
        json!({"errcode": 40097, "errmsg": "invalid args"})
    );
    let missing = env.get_json("/cgi-bin/ticket/getticket?type=jsapi").await;
    assert_eq!(missing, json!({"errcode": 40001, "errmsg": INVALID}));
    let card = env
        .get_json(&format!(
            "/cgi-bin/ticket/getticket?access_token={token}&type=wx_card"
        ))
        .await;
    assert_eq!(card["errcode"], 0);
    assert_ne!(card["ticket"], t3["ticket"]);
}
