use std::time::Duration;

use aes::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::common::*;
use wechat_sandbox::{SANDBOX_MP_APPID, SANDBOX_MP_SECRET, SANDBOX_OA_APPID, SANDBOX_OA_SECRET};

fn session_path(appid: &str, secret: &str, code: &str) -> String {
    format!(
        "/sns/jscode2session?{}",
        query_string(&[
            ("appid", appid),
            ("secret", secret),
            ("js_code", code),
            ("grant_type", "authorization_code"),
        ])
    )
}

fn decrypt(session_key: &str, encrypted: &str, iv: &str) -> Value {
    let key: [u8; 16] = STANDARD.decode(session_key).unwrap().try_into().unwrap();
    let iv: [u8; 16] = STANDARD.decode(iv).unwrap().try_into().unwrap();
    let plain = cbc::Decryptor::<aes::Aes128>::new(&key.into(), &iv.into())
        .decrypt_padded_vec::<Pkcs7>(&STANDARD.decode(encrypted).unwrap())
        .expect("decrypts with the session key");
    serde_json::from_slice(&plain).unwrap()
}

#[tokio::test]
async fn login_gives_an_app_specific_openid_and_a_fresh_session_key() {
    let env = start().await;
    let code = env.state.issue_js_code(SANDBOX_MP_APPID, "u2");
    let session = env
        .get_json(&session_path(SANDBOX_MP_APPID, SANDBOX_MP_SECRET, &code))
        .await;
    let openid = env.state.openid(SANDBOX_MP_APPID, "u2");
    assert_eq!(session["openid"], openid);
    assert_ne!(openid, env.state.openid(SANDBOX_OA_APPID, "u2"));
    assert_eq!(session["unionid"], env.state.users()[1].unionid.as_str());
    let key = session["session_key"].as_str().unwrap();
    assert_eq!(STANDARD.decode(key).unwrap().len(), 16);
    assert_eq!(
        env.state.session_key(SANDBOX_MP_APPID, "u2").as_deref(),
        Some(key)
    );

    let reused = env
        .get_json(&session_path(SANDBOX_MP_APPID, SANDBOX_MP_SECRET, &code))
        .await;
    assert_eq!(
        reused,
        json!({"errcode": 40163, "errmsg": "code been used"})
    );

    let code = env.state.issue_js_code(SANDBOX_MP_APPID, "u2");
    let second = env
        .get_json(&session_path(SANDBOX_MP_APPID, SANDBOX_MP_SECRET, &code))
        .await;
    assert_eq!(second["openid"], openid);
    let key2 = second["session_key"].as_str().unwrap();
    assert_ne!(key, key2);
    assert_eq!(
        env.state.session_key(SANDBOX_MP_APPID, "u2").as_deref(),
        Some(key2)
    );
}

#[tokio::test]
async fn js_codes_are_checked_like_wechat_does() {
    let env = start().await;
    let code = env.state.issue_js_code(SANDBOX_MP_APPID, "u1");
    let wrong_secret = env
        .get_json(&session_path(SANDBOX_MP_APPID, "nope", &code))
        .await;
    assert_eq!(
        wrong_secret,
        json!({"errcode": 40125, "errmsg": "invalid appsecret"})
    );
    // An official account is not a mini program.
    let oa = env
        .get_json(&session_path(SANDBOX_OA_APPID, SANDBOX_OA_SECRET, &code))
        .await;
    assert_eq!(oa, json!({"errcode": 40013, "errmsg": "invalid appid"}));
    let unknown = env
        .get_json(&session_path(SANDBOX_MP_APPID, SANDBOX_MP_SECRET, "nope"))
        .await;
    assert_eq!(unknown, json!({"errcode": 40029, "errmsg": "invalid code"}));

    env.state.advance(Duration::from_secs(301));
    let expired = env
        .get_json(&session_path(SANDBOX_MP_APPID, SANDBOX_MP_SECRET, &code))
        .await;
    assert_eq!(expired, json!({"errcode": 40029, "errmsg": "invalid code"}));
    assert_eq!(env.state.session_key(SANDBOX_MP_APPID, "u1"), None);
}

#[tokio::test]
async fn open_data_decrypts_with_the_current_session_key() {
    let env = start().await;
    let (status, code) = env
        .post_json("/sandbox/mp/code", &json!({ "user": "u3" }))
        .await;
    assert_eq!(status, 200);
    let code = code["code"].as_str().unwrap().to_owned();

    // Before any login there is no key to encrypt for.
    let (status, _) = env
        .post_json(
            "/sandbox/mp/encrypt",
            &json!({ "user": "u3", "data": { "a": 1 } }),
        )
        .await;
    assert_eq!(status, 409);

    let session = env
        .get_json(&session_path(SANDBOX_MP_APPID, SANDBOX_MP_SECRET, &code))
        .await;
    let key = session["session_key"].as_str().unwrap();

    let phone = json!({ "phoneNumber": "13800138000", "purePhoneNumber": "13800138000", "countryCode": "86" });
    let (status, sealed) = env
        .post_json(
            "/sandbox/mp/encrypt",
            &json!({ "user": "u3", "data": phone }),
        )
        .await;
    assert_eq!(status, 200);
    let opened = decrypt(
        key,
        sealed["encryptedData"].as_str().unwrap(),
        sealed["iv"].as_str().unwrap(),
    );
    assert_eq!(opened["phoneNumber"], "13800138000");
    assert_eq!(opened["watermark"]["appid"], SANDBOX_MP_APPID);
    let ts = opened["watermark"]["timestamp"].as_i64().unwrap();
    assert!((ts - env.state.now().timestamp()).abs() <= 5, "{ts}");

    let (data, iv) =
        env.state
            .encrypt_open_data(SANDBOX_MP_APPID, "u3", json!({ "nickName": "微信用户😀" }));
    let opened = decrypt(key, &data, &iv);
    assert_eq!(opened["nickName"], "微信用户😀");
    assert_eq!(opened["watermark"]["appid"], SANDBOX_MP_APPID);

    let (status, body) = env
        .post_json("/sandbox/mp/code", &json!({ "user": "nobody" }))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unknown sandbox user"))
    );
}
