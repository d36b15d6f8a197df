//! Sessions that must not verify, the login rate limit, WeChat timeouts, an
//! app that is not configured, and the health routes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod common;

use std::time::Duration;

use common::*;
use shared::config::Secret;
use shared::session::{Claims, SessionKeys, SessionKind};
use testkit::{all_backends, sqlite_db};
use wechat_sandbox::FaultKind;

/// Tokens that must not verify, made from a good one.
struct BadTokens {
    /// Another user's id under the original signature.
    tampered: String,
    /// Properly signed, expired a minute ago.
    expired: String,
    /// Signed with another deployment's secret.
    foreign: String,
}

fn bad_tokens(keys: &SessionKeys, token: &str) -> BadTokens {
    let claims = keys.verify(token).unwrap();
    let forged = keys.encode(&Claims {
        uid: claims.uid + 1,
        ..claims.clone()
    });
    let (payload, _) = forged.rsplit_once('.').unwrap();
    let (_, mac) = token.rsplit_once('.').unwrap();
    let now = claims.iat;
    BadTokens {
        tampered: format!("{payload}.{mac}"),
        expired: keys.encode(&Claims {
            iat: now - 120,
            exp: now - 60,
            ..claims.clone()
        }),
        foreign: SessionKeys::new(
            Secret::new("some-other-deployments-secret-000000000000"),
            Duration::from_secs(60),
        )
        .encode(&claims),
    }
}

#[tokio::test]
async fn tampered_expired_and_foreign_tokens_are_401() {
    for db in all_backends(auth_service::migrations) {
        let app = spawn_app(&db).await;
        let session = app.mp_session("u1").await;
        let token = session["token"].as_str().unwrap().to_owned();
        assert_eq!(app.get_bearer("/api/auth/me", &token).await.status(), 200);

        let keys = SessionKeys::new(Secret::new(SESSION_SECRET), Duration::from_secs(60));
        let claims = keys.verify(&token).unwrap();
        let BadTokens {
            tampered,
            expired,
            foreign,
        } = bad_tokens(&keys, &token);
        for bad in [
            tampered.as_str(),
            expired.as_str(),
            foreign.as_str(),
            "v1.x.y",
            "junk",
        ] {
            for path in ["/api/auth/me", "/api/wechat/getUserInfo"] {
                expect_error(app.get_bearer(path, bad).await, 401, 1002).await;
            }
        }
        // In the cookie too.
        let res = app
            .client
            .get(app.url("/api/auth/me"))
            .header("cookie", format!("wx_session={expired}"))
            .send()
            .await
            .unwrap();
        expect_error(res, 401, 1002).await;
        let res = app
            .client
            .get(app.url("/api/auth/me"))
            .header("cookie", format!("wx_session={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        // Properly signed, but for a user this database does not have.
        let ghost = keys.encode(&Claims {
            uid: 999_999,
            ..claims.clone()
        });
        expect_error(app.get_bearer("/api/auth/me", &ghost).await, 401, 1002).await;
        // An OA session cannot save a mini-program profile.
        let oa = keys.encode(&Claims {
            kind: SessionKind::Oa,
            ..claims
        });
        expect_error(
            app.get_bearer(&format!("/api/mp/login?userInfo={}", enc("{}")), &oa)
                .await,
            403,
            1003,
        )
        .await;
        app.sandbox.stop().await;
    }
}

#[tokio::test]
async fn login_routes_are_rate_limited_per_ip() {
    let db = sqlite_db(auth_service::migrations());
    let app = spawn_app_with(&db, &[("LOGIN_RATE_LIMIT", "3")]).await;
    let redirect = format!("/api/wechat/redirect?url={}", enc(SHOP));
    for _ in 0..3 {
        assert_eq!(app.get(&redirect).await.status(), 302);
    }
    let msg = expect_error(app.get(&redirect).await, 429, 1006).await;
    assert_eq!(msg, "too many requests, try again later");
    // Every login route shares the budget.
    let code = app.sandbox.state().issue_js_code(MP, "u1");
    expect_error(
        app.get(&format!("/api/mp/getSession?code={code}")).await,
        429,
        1006,
    )
    .await;
    expect_error(
        app.get("/api/wechat/getOpenId?code=x&state=y").await,
        429,
        1006,
    )
    .await;
    assert_eq!(app.sandbox.state().calls("/sns/jscode2session"), 0);
    // Behind the gateway (a loopback peer), X-Real-IP names the client.
    let res = app
        .client
        .get(app.url(&redirect))
        .header("x-real-ip", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    // Routes other than logins are not counted.
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.sandbox.stop().await;
}

#[tokio::test]
async fn wechat_timeouts_answer_504_10009() {
    let db = sqlite_db(auth_service::migrations());
    let app = spawn_app_with(
        &db,
        &[("WECHAT_TIMEOUT_MS", "300"), ("WECHAT_RETRIES", "0")],
    )
    .await;
    let sb = app.sandbox.state();
    sb.inject_fault(
        "/sns/jscode2session",
        FaultKind::Delay(Duration::from_secs(3)),
        1,
    );
    let code = sb.issue_js_code(MP, "u1");
    let msg = expect_error(
        app.get(&format!("/api/mp/getSession?code={code}")).await,
        504,
        10009,
    )
    .await;
    assert!(msg.starts_with("WeChat timed out"), "{msg}");
    assert_eq!(
        app.state
            .count_users(MP, &sb.openid(MP, "u1"))
            .await
            .unwrap(),
        0
    );

    // Garbage and HTTP 500 are 502/10009.
    sb.inject_fault("/sns/jscode2session", FaultKind::Garbage, 1);
    let code = sb.issue_js_code(MP, "u1");
    expect_error(
        app.get(&format!("/api/mp/getSession?code={code}")).await,
        502,
        10009,
    )
    .await;
    sb.inject_fault("/sns/jscode2session", FaultKind::Http500, 1);
    let code = sb.issue_js_code(MP, "u1");
    expect_error(
        app.get(&format!("/api/mp/getSession?code={code}")).await,
        502,
        10009,
    )
    .await;
    app.sandbox.stop().await;
}

#[tokio::test]
async fn an_unconfigured_app_answers_a_clear_404() {
    let db = sqlite_db(auth_service::migrations());
    let app = spawn_app_with(&db, &[("WX_APP_ID", ""), ("WX_APP_SECRET", "")]).await;
    let msg = expect_error(
        app.get(&format!("/api/wechat/redirect?url={}", enc(SHOP)))
            .await,
        404,
        1004,
    )
    .await;
    assert_eq!(
        msg,
        "official-account (WX_APP_ID) login is not configured on this server"
    );
    expect_error(
        app.get("/api/wechat/getOpenId?code=c&state=s").await,
        404,
        1004,
    )
    .await;
    // The mini program still works.
    app.mp_session("u3").await;
    app.sandbox.stop().await;

    let app = spawn_app_with(&db, &[("MP_APP_ID", ""), ("MP_APP_SECRET", "")]).await;
    let msg = expect_error(app.get("/api/mp/getSession?code=x").await, 404, 1004).await;
    assert_eq!(
        msg,
        "mini-program (MP_APP_ID) login is not configured on this server"
    );
    app.sandbox.stop().await;
}

#[tokio::test]
async fn health_and_envelope_basics() {
    let db = sqlite_db(auth_service::migrations());
    let app = spawn_app(&db).await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    let res = app.get("/api/auth/me").await;
    assert!(res.headers().contains_key("x-request-id"));
    expect_error(res, 401, 1002).await;
    expect_error(app.get("/api/nope").await, 404, 1004).await;
    // Logout is POST only.
    expect_error(app.get("/api/auth/logout").await, 404, 1004).await;
    app.sandbox.stop().await;
}
