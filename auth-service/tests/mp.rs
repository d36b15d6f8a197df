//! Mini-program login as the seed's mini program does it: getSession with the
//! `wx.login` code, then login with `userInfo` and the Bearer token; open data
//! decryption; concurrent first logins.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::*;
use serde_json::json;
use shared::testing::all_backends;

#[tokio::test]
async fn seed_mini_program_requests_log_in_and_save_the_profile() {
    for db in all_backends(auth_service::migrations) {
        let app = spawn_app(&db).await;
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

        // The seed: GET /api/mp/login?userInfo=<JSON> with the Bearer token.
        let user_info = json!({
            "nickName": "张三", "avatarUrl": "https://thirdwx.qlogo.cn/mmopen/vi_32/x/132",
            "gender": 1, "province": "Guangdong", "city": "Shenzhen", "country": "China",
            "language": "zh_CN"
        });
        let res = app
            .get_bearer(
                &format!("/api/mp/login?userInfo={}", enc(&user_info.to_string())),
                &token,
            )
            .await;
        let (status, body) = envelope(res).await;
        assert_eq!(status, 200, "{body}");
        let user_id = body["data"]["userId"].as_i64().unwrap();

        let (_, me) = envelope(app.get_bearer("/api/auth/me", &token).await).await;
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

        // The same as a JSON body, by POST.
        let res = app
            .client
            .post(app.url("/api/mp/login"))
            .bearer_auth(&token)
            .json(&json!({"userInfo": {"nickName": "李小龙", "gender": 1}}))
            .send()
            .await
            .unwrap();
        let (status, body) = envelope(res).await;
        assert_eq!(
            (status, body["data"]["userId"].as_i64()),
            (200, Some(user_id))
        );
        let (_, info) = envelope(app.get_bearer("/api/wechat/getUserInfo", &token).await).await;
        assert_eq!(info["data"]["nickname"], "李小龙");
        assert_eq!(info["data"]["city"], "Shenzhen", "fields not sent are kept");

        // An openid in userInfo must be the token's.
        let other = json!({"openId": sb.openid(MP, "u2"), "nickName": "x"});
        expect_error(
            app.get_bearer(
                &format!("/api/mp/login?userInfo={}", enc(&other.to_string())),
                &token,
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
                &token,
            )
            .await;
        assert_eq!(res.status(), 200);

        // No token, bad userInfo.
        expect_error(
            app.get(&format!("/api/mp/login?userInfo={}", enc("{}")))
                .await,
            401,
            1002,
        )
        .await;
        let msg = expect_error(app.get_bearer("/api/mp/login", &token).await, 400, 1001).await;
        assert_eq!(msg, "userInfo is required");
        let msg = expect_error(
            app.get_bearer(
                &format!("/api/mp/login?userInfo={}", enc("{\"gender\":9}")),
                &token,
            )
            .await,
            400,
            1001,
        )
        .await;
        assert_eq!(msg, "userInfo.gender must be 0, 1 or 2");
        let (_, info) = envelope(app.get_bearer("/api/wechat/getUserInfo", &token).await).await;
        assert_eq!(
            info["data"]["nickname"], "张三",
            "refused requests change nothing"
        );

        // getSession errors.
        expect_error(app.get("/api/mp/getSession").await, 400, 1001).await;
        let msg = expect_error(
            app.get(&format!("/api/mp/getSession?code={code}")).await,
            502,
            40163,
        )
        .await;
        assert_eq!(msg, "code been used");
        expect_error(app.get("/api/mp/getSession?code=bogus").await, 502, 40029).await;
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
        assert_eq!(app.users.count_by_openid(MP, &openid).await.unwrap(), 1);
        assert_eq!(sb.calls("/sns/jscode2session"), 20);
        app.sandbox.stop().await;
    }
}

/// AES-128-CBC/PKCS#7 as WeChat encrypts open data, for data the sandbox
/// would not produce: our session_key with another app's watermark.
fn encrypt(session_key_b64: &str, plain: &serde_json::Value) -> (String, String) {
    use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
    let key: [u8; 16] = STANDARD
        .decode(session_key_b64)
        .unwrap()
        .try_into()
        .unwrap();
    let iv = [7u8; 16];
    let cipher = cbc::Encryptor::<aes::Aes128>::new(&key.into(), &iv.into())
        .encrypt_padded_vec_mut::<Pkcs7>(plain.to_string().as_bytes());
    (STANDARD.encode(cipher), STANDARD.encode(iv))
}

#[tokio::test]
async fn decrypt_checks_the_watermark_and_the_session() {
    for db in all_backends(auth_service::migrations) {
        let app = spawn_app(&db).await;
        let sb = app.sandbox.state();
        let session = app.mp_session("u1").await;
        let token = session["token"].as_str().unwrap().to_owned();
        let decrypt = |body: serde_json::Value, token: String| {
            app.client
                .post(app.url("/api/mp/decrypt"))
                .bearer_auth(token)
                .json(&body)
                .send()
        };

        let (data, iv) = sb.encrypt_open_data(
            MP,
            "u1",
            json!({"phoneNumber": "13800138000", "purePhoneNumber": "13800138000", "countryCode": "86"}),
        );
        let res = decrypt(json!({"encryptedData": data, "iv": iv}), token.clone())
            .await
            .unwrap();
        let (status, body) = envelope(res).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["phoneNumber"], "13800138000");
        assert_eq!(body["data"]["watermark"]["appid"], MP);

        // Our session_key, another app's watermark.
        let session_key = sb.session_key(MP, "u1").unwrap();
        let (data, iv) = encrypt(
            &session_key,
            &json!({"phoneNumber": "1", "watermark": {"appid": "wx0000000000000000", "timestamp": 1}}),
        );
        let res = decrypt(json!({"encryptedData": data, "iv": iv}), token.clone())
            .await
            .unwrap();
        let msg = expect_error(res, 400, 1001).await;
        assert_eq!(msg, "decrypted data belongs to another app");

        // Encrypted by WeChat for another app (the official account).
        let (data, iv) = sb.encrypt_open_data(OA, "u1", json!({"phoneNumber": "1"}));
        let res = decrypt(json!({"encryptedData": data, "iv": iv}), token.clone())
            .await
            .unwrap();
        expect_error(res, 400, 1001).await;

        // Missing fields, garbage.
        let res = decrypt(json!({"iv": "AAAAAAAAAAAAAAAAAAAAAA=="}), token.clone())
            .await
            .unwrap();
        expect_error(res, 400, 1001).await;
        let res = decrypt(
            json!({"encryptedData": "!!", "iv": "AAAAAAAAAAAAAAAAAAAAAA=="}),
            token.clone(),
        )
        .await
        .unwrap();
        assert_eq!(
            expect_error(res, 400, 1001).await,
            "encryptedData is not valid base64"
        );

        // A new wx.login rotates the key: data from the old key no longer decrypts,
        // data from the new one does.
        let (old_data, old_iv) = sb.encrypt_open_data(MP, "u1", json!({"n": 1}));
        let newer = app.mp_session("u1").await;
        let new_token = newer["token"].as_str().unwrap().to_owned();
        let res = decrypt(
            json!({"encryptedData": old_data, "iv": old_iv}),
            new_token.clone(),
        )
        .await
        .unwrap();
        expect_error(res, 400, 1001).await;
        let (data, iv) = sb.encrypt_open_data(MP, "u1", json!({"n": 2}));
        let res = decrypt(json!({"encryptedData": data, "iv": iv}), new_token)
            .await
            .unwrap();
        let (status, body) = envelope(res).await;
        assert_eq!((status, body["data"]["n"].as_i64()), (200, Some(2)));

        // No session, or an official-account session: refused.
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
        let me: serde_json::Value = envelope(app.get_bearer("/api/auth/me", &token).await)
            .await
            .1;
        let uid = me["data"]["userId"].as_i64().unwrap();
        let (oa_token, _) = keys.issue(uid, OA, "oSomeone", shared::session::SessionKind::Oa);
        let res = decrypt(json!({"encryptedData": "x", "iv": "y"}), oa_token)
            .await
            .unwrap();
        expect_error(res, 403, 1003).await;
        app.sandbox.stop().await;
    }
}
