//! WeChat answering HTTP 500, errcode -1, or not in time: a bounded number of
//! attempts (1 + WECHAT_RETRIES, counted by the sandbox), a clear error, and
//! the rest of the process answering meanwhile.

use std::time::Duration;

use shared::sign::{jssdk_signature, strip_fragment};
use testkit::eventually;
use wechat_sandbox::{FaultKind, SANDBOX_OA_APPID};

use crate::common::*;

const JSCODE: &str = "/sns/jscode2session";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_wechat_is_tried_one_plus_retries_times_then_reported() {
    let app = start_stack(&[("WECHAT_TIMEOUT_MS", "300"), ("WECHAT_RETRIES", "2")]).await;
    let client = client();
    let cases = [
        ("HTTP 500", FaultKind::Http500, 502, 10009),
        (
            "errcode -1",
            FaultKind::Errcode {
                errcode: -1,
                errmsg: "system error".into(),
            },
            502,
            -1,
        ),
        (
            "no answer in time",
            FaultKind::Delay(Duration::from_millis(1500)),
            504,
            10009,
        ),
    ];
    for (what, fault, status, code) in cases {
        let before = app.sandbox.calls(JSCODE);
        // More faults queued than attempts allowed: a fourth call would show.
        app.sandbox.inject_fault(JSCODE, fault, 4);
        let (s, body) = get_json(get_session(&client, &app)).await;
        assert_eq!(
            (s, body["code"].as_i64()),
            (status, Some(code)),
            "{what}: {body}"
        );
        assert!(body["data"].is_null(), "{what}: {body}");
        assert!(
            !body["message"].as_str().unwrap().is_empty(),
            "{what}: {body}"
        );
        assert_eq!(
            app.sandbox.calls(JSCODE) - before,
            3,
            "{what}: 1 + WECHAT_RETRIES calls"
        );
        app.sandbox.clear_faults();
    }
    // WeChat well again: one call, a session.
    let before = app.sandbox.calls(JSCODE);
    let (s, body) = get_json(get_session(&client, &app)).await;
    assert_eq!(s, 200, "{body}");
    assert!(body["data"]["token"].is_string(), "{body}");
    assert_eq!(app.sandbox.calls(JSCODE) - before, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_routes_answer_while_a_wechat_call_hangs() {
    let app = start_stack(&[("WECHAT_TIMEOUT_MS", "5000"), ("WECHAT_RETRIES", "0")]).await;
    let client = client();
    let page = "https://shop.example/while-hanging";
    let config = || {
        client
            .get(format!("{}/api/wechat/jssdkConfig", app.base))
            .query(&[("url", page)])
    };
    let (s, body) = get_json(config()).await;
    assert_eq!(s, 200, "warm-up: {body}");

    let before = app.sandbox.calls(JSCODE);
    app.sandbox
        .inject_fault(JSCODE, FaultKind::Delay(Duration::from_secs(30)), 1);
    let hanging = tokio::spawn(get_json(get_session(&client, &app)));
    let sandbox = app.sandbox.clone();
    eventually("getSession reached WeChat", Duration::from_secs(10), || {
        let sandbox = sandbox.clone();
        async move { sandbox.calls(JSCODE) > before }
    })
    .await;

    assert_eq!(
        status_of(&client, &format!("{}/healthz", app.base)).await,
        200
    );
    let (s, body) = get_json(config()).await;
    assert_eq!(s, 200, "{body}");
    let d = &body["data"];
    let ticket = app.sandbox.current_jsapi_ticket(SANDBOX_OA_APPID).unwrap();
    let expected = jssdk_signature(
        &ticket,
        d["nonceStr"].as_str().unwrap(),
        d["timestamp"].as_i64().unwrap(),
        strip_fragment(page),
    );
    assert_eq!(d["signature"], expected);
    assert!(
        !hanging.is_finished(),
        "the other routes answered while getSession still waited for WeChat"
    );

    let (s, body) = hanging.await.unwrap();
    assert_eq!((s, body["code"].as_i64()), (504, Some(10009)), "{body}");
    assert_eq!(app.sandbox.calls(JSCODE) - before, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_wechat_pay_is_tried_one_plus_retries_times_then_reported() {
    const UNIFIEDORDER: &str = "/pay/unifiedorder";
    // APIv2's unifiedorder is the call faulted here (stack pays over v3 by default).
    let app = start_stack(&[
        ("WECHAT_TIMEOUT_MS", "300"),
        ("WECHAT_RETRIES", "2"),
        ("PAY_API_VERSION", "v2"),
    ])
    .await;
    let client = client();
    let (s, body) = get_json(get_session(&client, &app)).await;
    assert_eq!(s, 200, "{body}");
    let token = body["data"]["token"].as_str().unwrap().to_owned();
    let v2pay = || {
        client
            .get(format!("{}/api/mp/v2Pay", app.base))
            .query(&[("money", "0.01")])
            .bearer_auth(&token)
    };
    let cases = [
        ("HTTP 500", FaultKind::Http500, 502),
        (
            "no answer in time",
            FaultKind::Delay(Duration::from_millis(1500)),
            504,
        ),
    ];
    for (what, fault, status) in cases {
        let before = app.sandbox.calls(UNIFIEDORDER);
        app.sandbox.inject_fault(UNIFIEDORDER, fault, 4);
        let (s, body) = get_json(v2pay()).await;
        assert_eq!(
            (s, body["code"].as_i64()),
            (status, Some(10009)),
            "{what}: {body}"
        );
        assert_eq!(
            app.sandbox.calls(UNIFIEDORDER) - before,
            3,
            "{what}: 1 + WECHAT_RETRIES calls"
        );
        app.sandbox.clear_faults();
    }
    let before = app.sandbox.calls(UNIFIEDORDER);
    let (s, body) = get_json(v2pay()).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(app.sandbox.calls(UNIFIEDORDER) - before, 1);
}
