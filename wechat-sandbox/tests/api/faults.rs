use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shared::sign::SignType;

use crate::common::*;
use wechat_sandbox::{FaultKind, SANDBOX_OA_APPID, SANDBOX_OA_SECRET};

fn token_path() -> String {
    format!(
        "/cgi-bin/token?grant_type=client_credential&appid={SANDBOX_OA_APPID}&secret={SANDBOX_OA_SECRET}"
    )
}

#[tokio::test]
async fn an_injected_errcode_is_served_for_exactly_n_calls() {
    let env = start().await;
    env.state.inject_fault(
        "/cgi-bin/token",
        FaultKind::Errcode {
            errcode: 45009,
            errmsg: "reach max api daily quota limit".into(),
        },
        2,
    );
    for _ in 0..2 {
        let v = env.get_json(&token_path()).await;
        assert_eq!(
            v,
            json!({"errcode": 45009, "errmsg": "reach max api daily quota limit"})
        );
    }
    let v = env.get_json(&token_path()).await;
    assert_eq!(v["expires_in"], 7200);
    assert_eq!(env.state.calls("/cgi-bin/token"), 3);
}

#[tokio::test]
async fn http500_garbage_and_delay_through_the_control_route() {
    let env = start().await;
    let (status, _) = env
        .post_json(
            "/sandbox/faults",
            &json!({"path": "/cgi-bin/token", "kind": "http500", "count": 1}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = env
        .post_json(
            "/sandbox/faults",
            &json!({"path": "/cgi-bin/token", "kind": "garbage", "count": 1}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = env
        .post_json(
            "/sandbox/faults",
            &json!({"path": "/cgi-bin/token", "kind": "delay", "delayMs": 300, "count": 1}),
        )
        .await;
    assert_eq!(status, 200);

    assert_eq!(env.get(&token_path()).await.status(), 500);

    let res = env.get(&token_path()).await;
    assert_eq!(res.status(), 200);
    let body = res.bytes().await.unwrap();
    assert!(serde_json::from_slice::<Value>(&body).is_err());
    assert!(shared::xml::parse(&body, 1 << 16).is_err());

    let started = Instant::now();
    let v = env.get_json(&token_path()).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(v["expires_in"], 7200);

    assert_eq!(env.get_json(&token_path()).await["expires_in"], 7200);
    assert_eq!(env.state.calls("/cgi-bin/token"), 4);

    let (status, err) = env
        .post_json(
            "/sandbox/faults",
            &json!({"path": "/cgi-bin/token", "kind": "errcode"}),
        )
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("kind errcode needs errcode"))
    );
}

#[tokio::test]
async fn pay_endpoints_fail_in_xml() {
    let env = start().await;
    env.state.inject_fault(
        "/pay/unifiedorder",
        FaultKind::Errcode {
            errcode: -1,
            errmsg: "系统繁忙".into(),
        },
        1,
    );
    let fields = jsapi_order(&env.state, "F1", 1);
    let reply = env
        .post_pay("/pay/unifiedorder", &fields, SignType::Md5)
        .await;
    assert_eq!(
        reply,
        map(&[("return_code", "FAIL"), ("return_msg", "系统繁忙")])
    );
    assert_eq!(env.state.order("F1"), None);
    let reply = env
        .post_pay("/pay/unifiedorder", &fields, SignType::Md5)
        .await;
    assert_eq!(reply["result_code"], "SUCCESS");
}

#[tokio::test]
async fn calls_are_counted_per_path_and_reset() {
    let env = start().await;
    env.get_json(&token_path()).await;
    env.get_json("/sns/userinfo?access_token=x&openid=y").await;
    env.get_json("/sns/userinfo?access_token=x&openid=y").await;
    // The sandbox's own routes are not WeChat traffic.
    env.get_json("/sandbox/users").await;
    let expected: BTreeMap<String, u64> = [
        ("/cgi-bin/token".to_owned(), 1),
        ("/sns/userinfo".to_owned(), 2),
    ]
    .into();
    assert_eq!(env.state.call_counts(), expected);
    let over_http: BTreeMap<String, u64> =
        serde_json::from_value(env.get_json("/sandbox/calls").await).unwrap();
    assert_eq!(over_http, expected);

    env.state
        .inject_fault("/sns/userinfo", FaultKind::Http500, 5);
    let (status, _) = env.post_json("/sandbox/reset", &json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(env.state.call_counts(), BTreeMap::new());
    assert_eq!(env.state.calls("/sns/userinfo"), 0);
    // The fault went with the reset.
    let v = env.get_json("/sns/userinfo?access_token=x&openid=y").await;
    assert_eq!(errcode(&v), 40001);
    assert_eq!(env.state.calls("/sns/userinfo"), 1);
}
