//! Mini-program login as the seed's mini program does it: getSession with the
//! `wx.login` code, then login with `userInfo` and the Bearer token; open data
//! decryption; concurrent first logins.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::*;
use serde_json::json;
use testkit::all_backends;

/// getSession with a fresh `wx.login` code: the reply has exactly the
/// contract's fields, never the session_key. Answers the code and the token.
async fn step_get_session(app: &TestApp) -> (String, String) {
    let sb = app.sandbox.state();
    let code = sb.issue_js_code(MP, "u1");
    let res = app.get(&format!("/api/mp/getSession?code={code}")).await;
    let (status, body) = envelope(res).await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    let openid = sb.openid(MP, "u1");
    assert_eq!(data["openid"], openid);
    assert_eq!(data["unionid"], sb.users()[0].unionid);
    assert_eq!(data["expiresIn"], 7 * 24 * 3600);
    // Exactly these fields: the session_key never leaves the server.
    let mut keys: Vec<_> = data.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["expiresIn", "openid", "token", "unionid"]);
    let session_key = sb.session_key(MP, "u1").unwrap();
    assert!(!body.to_string().contains(&session_key));
    let token = data["token"].as_str().unwrap().to_owned();
    (code, token)
}

/// The seed: GET /api/mp/login?userInfo=<JSON> with the Bearer token; the
/// profile shows in `/api/auth/me`. Answers the user's id.
async fn step_seed_login_saves_the_profile(app: &TestApp, token: &str) -> i64 {
    let openid = app.sandbox.state().openid(MP, "u1");
    let user_info = json!({
        "nickName": "张三", "avatarUrl": "https://thirdwx.qlogo.cn/mmopen/vi_32/x/132",
        "gender": 1, "province": "Guangdong", "city": "Shenzhen", "country": "China",
        "language": "zh_CN"
    });
    let res = app
        .get_bearer(
            &format!("/api/mp/login?userInfo={}", enc(&user_info.to_string())),
            token,
        )
        .await;
    let (status, body) = envelope(res).await;
    assert_eq!(status, 200, "{body}");
    let user_id = body["data"]["userId"].as_i64().unwrap();

    let (_, me) = envelope(app.get_bearer("/api/auth/me", token).await).await;
    let me = &me["data"];
    assert_eq!(me["userId"].as_i64(), Some(user_id));
    assert_eq!(me["kind"], "mp");
    assert_eq!(me["appid"], MP);
    assert_eq!(me["openid"], openid);
    assert_eq!(me["nickname"], "张三");
    assert_eq!(
        me["headimgurl"],
        "https://thirdwx.qlogo.cn/mmopen/vi_32/x/132"
    );
    assert_eq!(
        (me["sex"].as_i64(), me["city"].as_str()),
        (Some(1), Some("Shenzhen"))
    );
    assert_eq!(me["language"], "zh_CN");
    user_id
}

/// The same as a JSON body, by POST: fields not sent are kept.
async fn step_a_json_body_by_post(app: &TestApp, token: &str, user_id: i64) {
    let res = app
        .client
        .post(app.url("/api/mp/login"))
        .bearer_auth(token)
        .json(&json!({"userInfo": {"nickName": "李小龙", "gender": 1}}))
        .send()
        .await
        .unwrap();
    let (status, body) = envelope(res).await;
    assert_eq!(
        (status, body["data"]["userId"].as_i64()),
        (200, Some(user_id))
    );
    let (_, info) = envelope(app.get_bearer("/api/wechat/getUserInfo", token).await).await;
    assert_eq!(info["data"]["nickname"], "李小龙");
    assert_eq!(info["data"]["city"], "Shenzhen", "fields not sent are kept");
}

/// An openid in userInfo must be the token's.
async fn step_user_info_openid_must_be_the_tokens(app: &TestApp, token: &str) {
    let sb = app.sandbox.state();
    let openid = sb.openid(MP, "u1");
    let other = json!({"openId": sb.openid(MP, "u2"), "nickName": "x"});
    expect_error(
        app.get_bearer(
            &format!("/api/mp/login?userInfo={}", enc(&other.to_string())),
            token,
        )
        .await,
        403,
        1003,
    )
    .await;
    let same = json!({"openId": openid, "nickName": "张三"});
    let res = app
        .get_bearer(
            &format!("/api/mp/login?userInfo={}", enc(&same.to_string())),
            token,
        )
        .await;
    assert_eq!(res.status(), 200);
}

/// No token, or bad userInfo: refused, and nothing changes.
async fn step_no_token_or_bad_user_info_is_refused(app: &TestApp, token: &str) {
    expect_error(
        app.get(&format!("/api/mp/login?userInfo={}", enc("{}")))
            .await,
        401,
        1002,
    )
    .await;
    let msg = expect_error(app.get_bearer("/api/mp/login", token).await, 400, 1001).await;
    assert_eq!(msg, "userInfo is required");
    let msg = expect_error(
        app.get_bearer(
            &format!("/api/mp/login?userInfo={}", enc("{\"gender\":9}")),
            token,
        )
        .await,
        400,
        1001,
    )
    .await;
    assert_eq!(msg, "userInfo.gender must be 0, 1 or 2");
    let (_, info) = envelope(app.get_bearer("/api/wechat/getUserInfo", token).await).await;
    assert_eq!(
        info["data"]["nickname"], "张三",
        "refused requests change nothing"
    );
}

/// getSession errors: no code, a used one, an unknown one.
async fn step_get_session_errors(app: &TestApp, code: &str) {
    expect_error(app.get("/api/mp/getSession").await, 400, 1001).await;
    let msg = expect_error(
        app.get(&format!("/api/mp/getSession?code={code}")).await,
        502,
        40163,
    )
    .await;
    assert_eq!(msg, "code been used");
    expect_error(app.get("/api/mp/getSession?code=bogus").await, 502, 40029).await;
}

#[tokio::test]
async fn seed_mini_program_requests_log_in_and_save_the_profile() {
    for db in all_backends(auth_service::migrations) {
        let app = spawn_app(&db).await;
        let (code, token) = step_get_session(&app).await;
        let user_id = step_seed_login_saves_the_profile(&app, &token).await;
        step_a_json_body_by_post(&app, &token, user_id).await;
        step_user_info_openid_must_be_the_tokens(&app, &token).await;
        step_no_token_or_bad_user_info_is_refused(&app, &token).await;
        step_get_session_errors(&app, &code).await;
        app.sandbox.stop().await;
    }
}

#[tokio::test]
async fn concurrent_first_logins_create_one_user() {
    for db in all_backends(auth_service::migrations) {
        let app = spawn_app(&db).await;
        let sb = app.sandbox.state();
        let codes: Vec<String> = (0..20).map(|_| sb.issue_js_code(MP, "u2")).collect();
        let replies = futures_util::future::join_all(codes.iter().map(|code| {
            let req = app
                .client
                .get(app.url(&format!("/api/mp/getSession?code={code}")));
            async move { envelope(req.send().await.unwrap()).await }
        }))
        .await;
        let openid = sb.openid(MP, "u2");
        let mut user_ids = std::collections::BTreeSet::new();
        for (status, body) in &replies {
            assert_eq!(*status, 200, "{body}");
            assert_eq!(body["data"]["openid"], openid);
            let token = body["data"]["token"].as_str().unwrap();
            let (_, me) = envelope(app.get_bearer("/api/auth/me", token).await).await;
            user_ids.insert(me["data"]["userId"].as_i64().unwrap());
        }
        assert_eq!(user_ids.len(), 1, "{user_ids:?}");
        assert_eq!(app.state.count_users(MP, &openid).await.unwrap(), 1);
        assert_eq!(sb.calls("/sns/jscode2session"), 20);
        app.sandbox.stop().await;
    }
}

/// AES-128-CBC/PKCS#7 as WeChat encrypts open data, for data the sandbox
/// would not produce: our session_key with another app's watermark.
fn encrypt(session_key_b64: &str, plain: &serde_json::Value) -> (String, String) {
    use aes::cipher::{BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};
    let key: [u8; 16] = STANDARD
        .decode(session_key_b64)
        .unwrap()
        .try_into()
        .unwrap();
    let iv = [7u8; 16];
    let cipher = cbc::Encryptor::<aes::Aes128>::new(&key.into(), &iv.into())
        .encrypt_padded_vec::<Pkcs7>(plain.to_string().as_bytes());
    (STANDARD.encode(cipher), STANDARD.encode(iv))
}

/// `POST /api/mp/decrypt` with `body` under `token`.
async fn decrypt(app: &TestApp, body: serde_json::Value, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/mp/decrypt"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Open data WeChat encrypted for our mini program decrypts, watermark and all.
async fn step_our_open_data_decrypts(app: &TestApp, token: &str) {
    let sb = app.sandbox.state();
    let (data, iv) = sb.encrypt_open_data(
        MP,
        "u1",
        json!({"phoneNumber": "13800138000", "purePhoneNumber": "13800138000", "countryCode": "86"}),
    );
    let res = decrypt(app, json!({"encryptedData": data, "iv": iv}), token).await;
    let (status, body) = envelope(res).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["phoneNumber"], "13800138000");
    assert_eq!(body["data"]["watermark"]["appid"], MP);
}

/// Another app's data, missing fields and garbage are refused.
async fn step_foreign_or_garbage_data_is_refused(app: &TestApp, token: &str) {
    let sb = app.sandbox.state();
    // Our session_key, another app's watermark.
    let session_key = sb.session_key(MP, "u1").unwrap();
    let (data, iv) = encrypt(
        &session_key,
        &json!({"phoneNumber": "1", "watermark": {"appid": "wx0000000000000000", "timestamp": 1}}),
    );
    let res = decrypt(app, json!({"encryptedData": data, "iv": iv}), token).await;
    let msg = expect_error(res, 400, 1001).await;
    assert_eq!(msg, "decrypted data belongs to another app");

    // Encrypted by WeChat for another app (the official account).
    let (data, iv) = sb.encrypt_open_data(OA, "u1", json!({"phoneNumber": "1"}));
    let res = decrypt(app, json!({"encryptedData": data, "iv": iv}), token).await;
    expect_error(res, 400, 1001).await;

    // Missing fields, garbage.
    let res = decrypt(app, json!({"iv": "AAAAAAAAAAAAAAAAAAAAAA=="}), token).await;
    expect_error(res, 400, 1001).await;
    let garbage = json!({"encryptedData": "!!", "iv": "AAAAAAAAAAAAAAAAAAAAAA=="});
    let res = decrypt(app, garbage, token).await;
    assert_eq!(
        expect_error(res, 400, 1001).await,
        "encryptedData is not valid base64"
    );
}

/// A new wx.login rotates the key: data from the old key no longer decrypts,
/// data from the new one does.
async fn step_a_new_login_rotates_the_key(app: &TestApp) {
    let sb = app.sandbox.state();
    let (old_data, old_iv) = sb.encrypt_open_data(MP, "u1", json!({"n": 1}));
    let newer = app.mp_session("u1").await;
    let new_token = newer["token"].as_str().unwrap().to_owned();
    let old = json!({"encryptedData": old_data, "iv": old_iv});
    expect_error(decrypt(app, old, &new_token).await, 400, 1001).await;
    let (data, iv) = sb.encrypt_open_data(MP, "u1", json!({"n": 2}));
    let res = decrypt(app, json!({"encryptedData": data, "iv": iv}), &new_token).await;
    let (status, body) = envelope(res).await;
    assert_eq!((status, body["data"]["n"].as_i64()), (200, Some(2)));
}

/// No session, or an official-account session: refused.
async fn step_only_mini_program_sessions_decrypt(app: &TestApp, token: &str) {
    let res = app
        .client
        .post(app.url("/api/mp/decrypt"))
        .json(&json!({"encryptedData": "x", "iv": "y"}))
        .send()
        .await
        .unwrap();
    expect_error(res, 401, 1002).await;
    let keys = shared::session::SessionKeys::new(
        shared::config::Secret::new(SESSION_SECRET),
        std::time::Duration::from_secs(60),
    );
    let me: serde_json::Value = envelope(app.get_bearer("/api/auth/me", token).await)
        .await
        .1;
    let uid = me["data"]["userId"].as_i64().unwrap();
    let (oa_token, _) = keys.issue(uid, OA, "oSomeone", shared::session::SessionKind::Oa);
    let res = decrypt(app, json!({"encryptedData": "x", "iv": "y"}), &oa_token).await;
    expect_error(res, 403, 1003).await;
}

#[tokio::test]
async fn decrypt_checks_the_watermark_and_the_session() {
    for db in all_backends(auth_service::migrations) {
        let app = spawn_app(&db).await;
        let session = app.mp_session("u1").await;
        let token = session["token"].as_str().unwrap().to_owned();
        step_our_open_data_decrypts(&app, &token).await;
        step_foreign_or_garbage_data_is_refused(&app, &token).await;
        step_a_new_login_rotates_the_key(&app).await;
        step_only_mini_program_sessions_decrypt(&app, &token).await;
        app.sandbox.stop().await;
    }
}

/// A login request that carries no `userInfo` is refused and saves nothing,
/// whichever way it is sent.
#[tokio::test]
async fn login_without_user_info_is_400_and_changes_nothing() {
    let db = testkit::sqlite_db(auth_service::migrations());
    let app = spawn_app(&db).await;
    let token = app.mp_session("u1").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let saved = json!({"nickName": "张三", "city": "深圳"});
    let res = app
        .get_bearer(
            &format!("/api/mp/login?userInfo={}", enc(&saved.to_string())),
            &token,
        )
        .await;
    assert_eq!(res.status(), 200);

    let post = |body: &'static str| {
        app.client
            .post(app.url("/api/mp/login"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for body in [
        "",
        "{}",
        r#"{"userInfo":null}"#,
        r#"{"foo":1}"#,
        r#"{"userinfo":{"nickName":"typo"}}"#,
    ] {
        let msg = expect_error(post(body).await.unwrap(), 400, 1001).await;
        assert!(msg.starts_with("userInfo is required"), "{body:?}: {msg}");
    }
    let msg = expect_error(app.get_bearer("/api/mp/login", &token).await, 400, 1001).await;
    assert_eq!(msg, "userInfo is required");
    let msg = expect_error(
        app.get_bearer(&format!("/api/mp/login?userInfo={}", enc("{}")), &token)
            .await,
        400,
        1001,
    )
    .await;
    assert!(msg.starts_with("userInfo is required"), "{msg}");

    let (_, info) = envelope(app.get_bearer("/api/wechat/getUserInfo", &token).await).await;
    assert_eq!(
        (
            info["data"]["nickname"].as_str(),
            info["data"]["city"].as_str()
        ),
        (Some("张三"), Some("深圳")),
        "refused requests change nothing"
    );
    app.sandbox.stop().await;
}
