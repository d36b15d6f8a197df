//! Sessions end before their expiry: logout revokes the token for every
//! service sharing the cache, `all=true` ends all of a user's sessions, and a
//! rotated-out secret (`SESSION_SECRET_PREVIOUS`) still verifies old tokens.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod common;

use std::time::Duration;

use common::*;
use shared::config::Secret;
use shared::session::{SessionError, SessionKeys, SessionKind};
use testkit::sqlite_db;

/// The secret tokens were signed with before the rotation.
const OLD_SECRET: &str = "the-secret-before-the-rotation-0123456789";

async fn logout(app: &TestApp, query: &str, token: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/auth/logout{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn me_status(app: &TestApp, token: &str) -> u16 {
    app.get_bearer("/api/auth/me", token)
        .await
        .status()
        .as_u16()
}

fn token_of(session: &serde_json::Value) -> String {
    session["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_logged_out_token_is_refused_here_and_on_every_replica() {
    // Two replicas of auth-service sharing one Redis (and one database).
    let Some((cache, _prefix)) = testkit::redis_cache().await else {
        return;
    };
    let db = sqlite_db(auth_service::migrations());
    let one = spawn_app_full(&db, &[], Some(cache.clone())).await;
    let two = spawn_app_full(&db, &[], Some(cache)).await;
    let token = token_of(&one.mp_session("u1").await);
    let other = token_of(&one.mp_session("u1").await);
    assert_eq!(me_status(&two, &token).await, 200);

    let res = logout(&one, "", &token).await;
    let (status, body) = envelope(res).await;
    assert_eq!((status, body["code"].as_i64()), (200, Some(0)), "{body}");
    for app in [&one, &two] {
        let msg = expect_error(app.get_bearer("/api/auth/me", &token).await, 401, 1002).await;
        assert_eq!(msg, "session ended by logout");
        expect_error(
            app.get_bearer("/api/wechat/getUserInfo", &token).await,
            401,
            1002,
        )
        .await;
        // The same user's other session is not this token.
        assert_eq!(me_status(app, &other).await, 200);
    }
    // Logging out again, or without a session, still clears the cookies.
    assert_eq!(logout(&one, "", &token).await.status(), 200);
    let res = one
        .client
        .post(one.url("/api/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    one.sandbox.stop().await;
    two.sandbox.stop().await;
}

#[tokio::test]
async fn logout_all_ends_every_session_of_that_user_only() {
    for cache in testkit::all_caches().await {
        let db = sqlite_db(auth_service::migrations());
        let app = spawn_app_full(&db, &[], Some(cache)).await;
        let first = token_of(&app.mp_session("u1").await);
        let second = token_of(&app.mp_session("u1").await);
        let someone_else = token_of(&app.mp_session("u2").await);
        assert_eq!(me_status(&app, &first).await, 200);

        let res = logout(&app, "?all=true", &second).await;
        assert_eq!(res.status(), 200);
        for token in [&first, &second] {
            expect_error(app.get_bearer("/api/auth/me", token).await, 401, 1002).await;
        }
        assert_eq!(me_status(&app, &someone_else).await, 200);
        // A login afterwards is a new session, untouched by the logout.
        let again = token_of(&app.mp_session("u1").await);
        assert_eq!(me_status(&app, &again).await, 200);

        // Ending every session needs a live one, to know whose.
        expect_error(logout(&app, "?all=true", &first).await, 401, 1002).await;
        let res = app
            .client
            .post(app.url("/api/auth/logout?all=true"))
            .send()
            .await
            .unwrap();
        expect_error(res, 401, 1002).await;
        expect_error(logout(&app, "?all=maybe", &again).await, 400, 1001).await;
        assert_eq!(me_status(&app, &again).await, 200);
        app.sandbox.stop().await;
    }
}

#[tokio::test]
async fn the_previous_secret_verifies_old_tokens_during_a_rotation() {
    let db = sqlite_db(auth_service::migrations());
    let app = spawn_app_with(&db, &[("SESSION_SECRET_PREVIOUS", OLD_SECRET)]).await;
    // A user, and a token for them signed before the rotation.
    let session = app.mp_session("u1").await;
    let (_, me) = envelope(app.get_bearer("/api/auth/me", &token_of(&session)).await).await;
    let uid = me["data"]["userId"].as_i64().unwrap();
    let openid = me["data"]["openid"].as_str().unwrap();
    let old_keys = SessionKeys::new(Secret::new(OLD_SECRET), Duration::from_secs(600));
    let (old_token, _) = old_keys.issue(uid, MP, openid, SessionKind::Mp);
    assert_eq!(me_status(&app, &old_token).await, 200);

    // New tokens are signed with the current secret only.
    let current = SessionKeys::new(Secret::new(SESSION_SECRET), Duration::from_secs(600));
    let new_token = token_of(&app.mp_session("u1").await);
    assert!(current.verify(&new_token).is_ok());
    assert_eq!(old_keys.verify(&new_token), Err(SessionError::BadSignature));
    // An old token can be logged out like any other.
    assert_eq!(logout(&app, "", &old_token).await.status(), 200);
    expect_error(app.get_bearer("/api/auth/me", &old_token).await, 401, 1002).await;
    app.sandbox.stop().await;

    // Once the rotation is over (no SESSION_SECRET_PREVIOUS), old tokens are refused.
    let app = spawn_app(&db).await;
    let (old_token, _) = old_keys.issue(uid, MP, openid, SessionKind::Mp);
    let msg = expect_error(app.get_bearer("/api/auth/me", &old_token).await, 401, 1002).await;
    assert_eq!(msg, "invalid session token");
    app.sandbox.stop().await;
}

/// With the cache down nobody can tell whether a token was revoked: session
/// routes answer 503/5003 rather than trust it, and work again once it is back.
#[tokio::test]
async fn sessions_fail_closed_while_the_cache_is_down() {
    if !testkit::RedisServer::available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("auth-sessions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut redis = testkit::RedisServer::start(&dir).await.unwrap();
    let db = sqlite_db(auth_service::migrations());
    let app = spawn_app_with(&db, &[("REDIS_URL", redis.url().as_str())]).await;
    let token = token_of(&app.mp_session("u1").await);
    assert_eq!(me_status(&app, &token).await, 200);

    redis.kill().unwrap();
    expect_error(app.get_bearer("/api/auth/me", &token).await, 503, 5003).await;
    // Nor can a logout be recorded: it says so instead of pretending.
    expect_error(logout(&app, "", &token).await, 503, 5003).await;

    redis.restart().await.unwrap();
    testkit::eventually(
        "the session verifies again",
        Duration::from_secs(20),
        || {
            let app = &app;
            let token = &token;
            async move { me_status(app, token).await == 200 }
        },
    )
    .await;
    app.sandbox.stop().await;
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}
