//! The OpenAPI document against the service: it names exactly the routes the
//! route table mounts (plus the health routes and `/openapi.json`), it is
//! what `/openapi.json` serves, and real replies match its schemas.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

use std::net::TcpListener;

use jssdk_service::{JssdkConfig, JssdkState};
use serde_json::{Value, json};
use shared::config::Env;
use testkit::openapi::{Document, mounted_routes};
use wechat_sandbox::{Sandbox, SandboxConfig};

const INTERNAL_TOKEN: &str = "internal-token-for-openapi-tests-0123";

fn document() -> Document {
    Document::new(serde_json::to_value(jssdk_service::openapi()).unwrap())
}

/// The sandbox and one instance on port 0, with `INTERNAL_TOKEN` set.
async fn spawn() -> (Sandbox, String, JssdkState) {
    let sandbox = Sandbox::start(SandboxConfig::for_tests()).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut env = Env::from_pairs(sandbox.service_env());
    env.extend([
        (
            "SESSION_SECRET",
            "jssdk-openapi-tests-session-secret-0123456789",
        ),
        ("PUBLIC_BASE_URL", base.as_str()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN),
    ]);
    let config = JssdkConfig::from_env(&env).unwrap();
    let state = JssdkState::build(config, None).await.unwrap();
    let app = jssdk_service::with_state(state.clone(), listener).unwrap();
    tokio::spawn(app.run_until_stopped());
    (sandbox, base, state)
}

#[actix_web::test]
async fn the_document_names_exactly_the_mounted_routes() {
    let (_sandbox, _base, state) = spawn().await;
    let readiness = state.readiness();
    let mounted = mounted_routes(move |cfg| {
        shared::telemetry::configure_health(cfg, readiness);
        jssdk_service::with_openapi(state)(cfg);
    })
    .await;
    assert!(mounted.len() >= 6, "{mounted:?}");
    document().assert_matches(&mounted);
}

#[tokio::test]
async fn openapi_json_serves_the_document_and_real_replies_match_it() {
    let doc = document();
    let (_sandbox, base, _state) = spawn().await;
    let http = shared::http_client::builder().no_proxy().build().unwrap();

    let served: Value = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, doc.json);

    let page = "https://shop.example/pay.html?from=menu#top";
    let res = http
        .get(format!("{base}/api/wechat/jssdkConfig"))
        .query(&[("url", page)])
        .send()
        .await
        .unwrap();
    let config = doc
        .check_reply("GET", "/api/wechat/jssdkConfig", res)
        .await
        .1;
    assert_eq!(config["code"], 0, "{config}");

    let res = http
        .get(format!("{base}/api/wechat/jssdkConfig?url=not-a-url"))
        .send()
        .await
        .unwrap();
    let e = doc
        .check_reply("GET", "/api/wechat/jssdkConfig", res)
        .await
        .1;
    assert_eq!(e["code"], 1001, "{e}");

    let res = http
        .get(format!("{base}/internal/access-token"))
        .bearer_auth(INTERNAL_TOKEN)
        .send()
        .await
        .unwrap();
    let token = doc
        .check_reply("GET", "/internal/access-token", res)
        .await
        .1;
    assert_eq!(token["code"], 0, "{token}");
    let res = http
        .get(format!("{base}/internal/access-token"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    let e = doc
        .check_reply("GET", "/internal/access-token", res)
        .await
        .1;
    assert_ne!(e["code"], 0, "{e}");
}

/// A reply of another shape fails the schema: an unknown field, a missing
/// one, a string timestamp.
#[test]
fn a_reply_of_another_shape_does_not_match() {
    let doc = document();
    let data = json!({"appId": "wx1", "timestamp": 1, "nonceStr": "n", "signature": "s",
                      "jsApiList": ["chooseWXPay"]});
    let ok = |data: Value| json!({"code": 0, "data": data, "message": "ok"});
    doc.validate(
        "GET",
        "/api/wechat/jssdkConfig",
        200,
        "application/json",
        &ok(data.clone()),
    );
    let mut extra = data.clone();
    extra["ticket"] = json!("T");
    let mut missing = data.clone();
    missing.as_object_mut().unwrap().remove("signature");
    let mut stringly = data;
    stringly["timestamp"] = json!("1");
    for bad in [extra, missing, stringly] {
        let body = ok(bad);
        let result = std::panic::catch_unwind(|| {
            doc.validate(
                "GET",
                "/api/wechat/jssdkConfig",
                200,
                "application/json",
                &body,
            )
        });
        assert!(result.is_err(), "{body} passed");
    }
}
