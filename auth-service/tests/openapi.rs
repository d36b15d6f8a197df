//! The OpenAPI document against the service: it names exactly the routes the
//! route table mounts (plus the health routes and `/openapi.json`), it is
//! what `/openapi.json` serves, and real replies match its schemas.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod common;

use common::*;
use serde_json::{Value, json};
use testkit::openapi::{Document, mounted_routes};

fn document() -> Document {
    Document::new(serde_json::to_value(auth_service::openapi()).unwrap())
}

#[actix_web::test]
async fn the_document_names_exactly_the_mounted_routes() {
    let db = testkit::sqlite_db(auth_service::migrations());
    let app = spawn_app(&db).await;
    let state = app.state.clone();
    let readiness = state.readiness();
    let mounted = mounted_routes(move |cfg| {
        shared::telemetry::configure_health(cfg, readiness);
        auth_service::with_openapi(state)(cfg);
    })
    .await;
    assert!(mounted.len() >= 13, "{mounted:?}");
    document().assert_matches(&mounted);
}

#[tokio::test]
async fn openapi_json_serves_the_document() {
    let db = testkit::sqlite_db(auth_service::migrations());
    let app = spawn_app(&db).await;
    let res = app.get("/openapi.json").await;
    assert_eq!(res.status(), 200);
    let served: Value = res.json().await.unwrap();
    assert_eq!(served, document().json);
    assert_eq!(served["openapi"], "3.1.0");
    // Both languages, the envelope and the error codes are in it.
    let info = served["info"]["description"].as_str().unwrap();
    for needle in [
        "1001",
        "10009",
        "5003",
        "参数缺失",
        "missing or invalid parameter",
    ] {
        assert!(info.contains(needle), "{needle} not in {info}");
    }
}

#[tokio::test]
async fn real_replies_match_the_document() {
    let doc = document();
    let db = testkit::sqlite_db(auth_service::migrations());
    let app = spawn_app(&db).await;

    // Mini-program login, profile, me, logout.
    let code = app.sandbox.state().issue_js_code(MP, "u1");
    let res = app.get(&format!("/api/mp/getSession?code={code}")).await;
    let session = doc.check_reply("GET", "/api/mp/getSession", res).await.1;
    assert_eq!(session["code"], 0, "{session}");
    let token = session["data"]["token"].as_str().unwrap().to_owned();

    let user_info = json!({"nickName": "张三", "gender": 1, "city": "Shenzhen"});
    let res = app
        .get_bearer(
            &format!("/api/mp/login?userInfo={}", enc(&user_info.to_string())),
            &token,
        )
        .await;
    let login = doc.check_reply("GET", "/api/mp/login", res).await.1;
    assert_eq!(login["code"], 0, "{login}");
    let res = app
        .client
        .post(app.url("/api/mp/login"))
        .bearer_auth(&token)
        .json(&json!({"userInfo": user_info}))
        .send()
        .await
        .unwrap();
    doc.check_reply("POST", "/api/mp/login", res).await;

    let res = app.get_bearer("/api/auth/me", &token).await;
    let me = doc.check_reply("GET", "/api/auth/me", res).await.1;
    assert_eq!(me["data"]["kind"], "mp", "{me}");
    let res = app.get_bearer("/api/wechat/getUserInfo", &token).await;
    let info = doc
        .check_reply("GET", "/api/wechat/getUserInfo", res)
        .await
        .1;
    assert_eq!(info["data"]["nickname"], "张三", "{info}");

    // Errors, in the error envelope.
    let res = app.get("/api/mp/getSession").await;
    let e = doc.check_reply("GET", "/api/mp/getSession", res).await.1;
    assert_eq!(e["code"], 1001);
    let res = app.get("/api/auth/me").await;
    let e = doc.check_reply("GET", "/api/auth/me", res).await.1;
    assert_eq!(e["code"], 1002);
    let res = app
        .client
        .post(app.url("/api/mp/decrypt"))
        .bearer_auth(&token)
        .json(&json!({"encryptedData": "AAAA", "iv": "AAAA"}))
        .send()
        .await
        .unwrap();
    let e = doc.check_reply("POST", "/api/mp/decrypt", res).await.1;
    assert_eq!(e["code"], 1001, "{e}");

    // OAuth's first step is a redirect; a foreign return URL is refused.
    let res = app
        .get(&format!(
            "/api/wechat/redirect?url={}",
            enc(&format!("{SHOP}/pay.html"))
        ))
        .await;
    assert_eq!(res.status(), 302);
    doc.check_reply("GET", "/api/wechat/redirect", res).await;
    let res = app
        .get(&format!(
            "/api/wechat/redirect?url={}",
            enc("https://evil.example/")
        ))
        .await;
    let e = doc.check_reply("GET", "/api/wechat/redirect", res).await.1;
    assert_eq!(e["code"], 1001);

    let res = app
        .client
        .post(app.url("/api/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let out = doc.check_reply("POST", "/api/auth/logout", res).await.1;
    assert_eq!(out["code"], 0, "{out}");
}

/// The schemas are strict enough to catch a reply that changed shape: a
/// field the document does not know, or a missing one.
#[test]
fn a_reply_of_another_shape_does_not_match() {
    let doc = document();
    let good = json!({"code": 0, "data": {"userId": 1}, "message": "ok"});
    doc.validate("GET", "/api/mp/login", 200, "application/json", &good);
    for bad in [
        json!({"code": 0, "data": {"userId": 1, "sessionKey": "x"}, "message": "ok"}),
        json!({"code": 0, "data": {}, "message": "ok"}),
        json!({"code": 1, "data": {"userId": 1}, "message": "ok"}),
        json!({"code": 0, "data": {"userId": "1"}, "message": "ok"}),
    ] {
        let result = std::panic::catch_unwind(|| {
            doc.validate("GET", "/api/mp/login", 200, "application/json", &bad)
        });
        assert!(result.is_err(), "{bad} passed");
    }
}
