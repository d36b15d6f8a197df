//! auth-service's OpenAPI 3.1 document (API.md §4, auth-service), served at
//! `/openapi.json` and merged into `stack`'s `/docs`.
//!
//! The reply types below describe what the handlers send; they are not the
//! handlers' own types, so that the document can be written without touching
//! a handler. `tests/openapi.rs` keeps them in step: it fails when the route
//! table and the document differ, and validates real replies against these
//! schemas (unknown fields are refused, so a field added to a reply and not
//! here fails too).

#![allow(dead_code, reason = "the reply types exist for their schemas only")]

use serde_json::json;
use shared::openapi::{
    Auth, Op, any_object, boolean, document, one_of_strings, redirect, string, uri,
};
use utoipa::ToSchema;
use utoipa::openapi::OpenApi;
use utoipa::openapi::schema::{ObjectBuilder, Type};

/// `GET /api/wechat/getUserInfo`: the seed's shape.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WechatUserInfo)]
struct WechatUserInfo {
    openid: String,
    /// 仅当公众号绑定了开放平台 · only when the account is bound to an Open Platform account
    unionid: Option<String>,
    nickname: Option<String>,
    headimgurl: Option<String>,
    /// 0 未知 · unknown, 1 男 · male, 2 女 · female
    sex: Option<i32>,
    province: Option<String>,
    city: Option<String>,
    country: Option<String>,
}

/// `GET /api/mp/getSession`. `session_key` never leaves the server.
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = MpSession)]
struct MpSession {
    openid: String,
    unionid: Option<String>,
    /// 会话令牌，作为 `Authorization: Bearer` 发送 · the session token, sent as `Authorization: Bearer`
    token: String,
    /// 令牌有效期（秒） · the token's lifetime in seconds
    expires_in: u64,
}

/// `GET|POST /api/mp/login`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = MpLoginResult)]
struct MpLoginResult {
    user_id: i64,
}

/// `POST /api/mp/decrypt`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = MpDecryptRequest)]
struct MpDecryptRequest {
    /// `wx.getUserProfile` / `getPhoneNumber` 等返回的 encryptedData (Base64)
    encrypted_data: String,
    /// 同时返回的 iv (Base64) · the iv returned with it (Base64)
    iv: String,
}

/// Which login made the session.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = SessionKind)]
enum SessionKind {
    /// 公众号网页授权 · official-account web OAuth
    Oa,
    /// 小程序登录 · mini-program login
    Mp,
}

/// `GET /api/auth/me`: the session's user row and the session.
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = Me)]
struct Me {
    user_id: i64,
    appid: String,
    openid: String,
    unionid: Option<String>,
    nickname: Option<String>,
    headimgurl: Option<String>,
    sex: Option<i32>,
    province: Option<String>,
    city: Option<String>,
    country: Option<String>,
    language: Option<String>,
    /// Unix 秒 · Unix seconds
    created_at: i64,
    /// Unix 秒 · Unix seconds
    updated_at: i64,
    kind: SessionKind,
    /// 会话到期时间，Unix 秒 · when the session ends, Unix seconds
    expires_at: i64,
}

/// A profile as the mini program sends it (`wx.getUserProfile`'s
/// `userInfo`), or the official account's spelling.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = MpUserInfo)]
struct MpUserInfo {
    nick_name: Option<String>,
    avatar_url: Option<String>,
    gender: Option<i32>,
    province: Option<String>,
    city: Option<String>,
    country: Option<String>,
    language: Option<String>,
    /// 若给出，必须是令牌所属用户的 openid，否则 403 · when given, must be the token's user, else 403
    openid: Option<String>,
}

const OPENID: &str = "oSandboxMp0000000000000001";

pub fn openapi() -> OpenApi {
    let user_info = json!({
        "nickName": "张三", "avatarUrl": "https://thirdwx.qlogo.cn/mmopen/vi_32/x/132",
        "gender": 1, "province": "Guangdong", "city": "Shenzhen", "country": "China",
        "language": "zh_CN"
    });
    let ops = vec![
        Op::get("/api/wechat/redirect")
            .summary("发起公众号网页授权", "Start official-account web OAuth")
            .describe(
                "302 到微信授权页（`{WECHAT_OPEN_BASE}/connect/oauth2/authorize`），`redirect_uri` 为 \
                 `{PUBLIC_BASE_URL}/api/wechat/getOpenId`。`state` 随机、一次性、10 分钟有效，并绑定到发起请求的浏览器（HttpOnly cookie）。",
                "302 to WeChat's consent page (`{WECHAT_OPEN_BASE}/connect/oauth2/authorize`) with \
                 `redirect_uri` = `{PUBLIC_BASE_URL}/api/wechat/getOpenId`. The `state` is random, \
                 single-use, kept 10 minutes, and bound to the asking browser (an HttpOnly cookie).",
            )
            .query(
                "url",
                true,
                uri(),
                "登录后返回的页面：绝对地址，且在允许的源（ALLOWED_REDIRECT_ORIGINS）内",
                "where the browser returns after login: absolute, on an allowed origin (ALLOWED_REDIRECT_ORIGINS)",
                json!("https://shop.example/pay.html"),
            )
            .query(
                "scope",
                false,
                one_of_strings(&["snsapi_base", "snsapi_userinfo"]),
                "授权范围，默认 snsapi_base（静默）",
                "the OAuth scope; snsapi_base (silent) by default",
                json!("snsapi_userinfo"),
            )
            .response(
                302,
                redirect(
                    "跳转到微信授权页",
                    "to WeChat's consent page",
                    "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wx0123&redirect_uri=https%3A%2F%2Fshop.example%2Fapi%2Fwechat%2FgetOpenId&response_type=code&scope=snsapi_base&state=Ab12Cd34Ef56Gh78#wechat_redirect",
                ),
            )
            .errors(&[400, 404, 429, 500, 503]),
        Op::get("/api/wechat/getOpenId")
            .summary("公众号授权回调", "Official-account OAuth callback")
            .describe(
                "用 `code` 向微信换取 openid（snsapi_userinfo 时还读取用户资料），创建或更新用户，设置 \
                 `wx_session`（HttpOnly）与种子的可读 cookie `openId`，然后 302 回到发起时的 `url`。\
                 未知、过期、已用过或属于另一浏览器的 `state` 返回 400，且不调用微信。",
                "Exchanges `code` at WeChat (and reads the profile for snsapi_userinfo), creates or \
                 updates the user, sets `wx_session` (HttpOnly) and the seed's readable `openId` \
                 cookie, then 302s back to the `url` given at the start. An unknown, expired, reused \
                 or other browser's `state` is 400 with no WeChat call.",
            )
            .query("code", true, string(), "微信返回的 code", "the code WeChat returned", json!("081AbCdE0xyz"))
            .query(
                "state",
                true,
                string(),
                "发起时生成的 state",
                "the state issued at the start",
                json!("Ab12Cd34Ef56Gh78"),
            )
            .response(
                302,
                redirect("登录成功，回到原页面", "logged in, back to the page", "https://shop.example/pay.html"),
            )
            .errors(&[400, 404, 429, 500, 502, 503, 504]),
        Op::get("/api/wechat/getUserInfo")
            .summary("当前用户的微信资料", "The session user's WeChat profile")
            .auth(Auth::Session)
            .ok::<WechatUserInfo>(
                "用户资料",
                "the profile",
                json!({"openid": "oSandboxOa0000000000000001", "nickname": "张三",
                       "headimgurl": "https://thirdwx.qlogo.cn/mmopen/vi_32/x/132", "sex": 1,
                       "province": "Guangdong", "city": "Shenzhen", "country": "China"}),
            )
            .errors(&[401, 500, 503]),
        Op::get("/api/mp/getSession")
            .summary("小程序登录", "Mini-program login")
            .describe(
                "用 `wx.login` 的 code 调用 `jscode2session`，创建用户并返回会话令牌；session_key 只保存在服务端。",
                "Calls `jscode2session` with the `wx.login` code, creates the user and returns a \
                 session token; the session_key stays on the server.",
            )
            .query("code", true, string(), "wx.login 返回的 code", "the code from wx.login", json!("0a3Xyz000abc"))
            .ok::<MpSession>(
                "会话",
                "the session",
                json!({"openid": OPENID, "token": "v1.eyJ1aWQiOjF9.c2ln", "expiresIn": 604800}),
            )
            .errors(&[400, 404, 429, 500, 502, 503, 504]),
        Op::get("/api/mp/login")
            .summary("保存小程序用户资料（种子的 GET 形式）", "Save the mini-program user's profile (the seed's GET form)")
            .auth(Auth::Session)
            .query(
                "userInfo",
                true,
                string(),
                "JSON 字符串形式的 userInfo（种子的写法）",
                "userInfo as a JSON string (as the seed sends it)",
                json!(user_info.to_string()),
            )
            .ok::<MpLoginResult>("已保存", "saved", json!({"userId": 1}))
            .errors(&[400, 401, 403, 404, 429, 500, 503]),
        Op::post("/api/mp/login")
            .summary("保存小程序用户资料", "Save the mini-program user's profile")
            .describe(
                "请求体为 `{\"userInfo\": {…}}` 或资料对象本身；也接受查询参数 `userInfo`。`userInfo` 中的 openid 若与令牌不同则 403。",
                "The body is `{\"userInfo\": {…}}` or the profile object itself; the `userInfo` query \
                 parameter works too. An openid inside `userInfo` that is not the token's is 403.",
            )
            .auth(Auth::Session)
            .json_body::<MpUserInfo>(true, "用户资料", "the profile", json!({"userInfo": user_info}))
            .ok::<MpLoginResult>("已保存", "saved", json!({"userId": 1}))
            .errors(&[400, 401, 403, 404, 429, 500, 503]),
        Op::post("/api/mp/decrypt")
            .summary("解密小程序开放数据", "Decrypt mini-program open data")
            .describe(
                "用服务端保存的 session_key 解密 `encryptedData`，并检查水印中的 appid。",
                "Decrypts `encryptedData` with the server-held session_key and checks the \
                 watermark's appid.",
            )
            .auth(Auth::Session)
            .json_body::<MpDecryptRequest>(
                true,
                "加密数据",
                "the encrypted data",
                json!({"encryptedData": "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZM…", "iv": "r7BXXKkLb8qrSNn05n0qiA=="}),
            )
            .ok_with(
                any_object().into(),
                "解密后的数据",
                "the decrypted data",
                json!({"phoneNumber": "13800138000", "watermark": {"appid": "wx0123", "timestamp": 1764547200}}),
            )
            .errors(&[400, 401, 404, 500, 503]),
        Op::get("/api/auth/me")
            .summary("当前会话的用户", "The session's user")
            .auth(Auth::Session)
            .ok::<Me>(
                "用户与会话",
                "the user and the session",
                json!({"userId": 1, "appid": "wx0123", "openid": OPENID, "unionid": null,
                       "nickname": "张三", "headimgurl": null, "sex": 1, "province": "Guangdong",
                       "city": "Shenzhen", "country": "China", "language": "zh_CN",
                       "createdAt": 1764547200, "updatedAt": 1764547200, "kind": "mp",
                       "expiresAt": 1765152000}),
            )
            .errors(&[401, 500, 503]),
        Op::post("/api/auth/logout")
            .summary("退出登录", "Log out")
            .describe(
                "吊销当前令牌（所有服务立即生效）并清除 cookie；`all=true` 时吊销该用户的全部会话。",
                "Revokes this token (for every service at once) and clears the cookies; with \
                 `all=true` every session of the user.",
            )
            .query("all", false, boolean(), "退出所有设备", "log out everywhere", json!(false))
            .ok_with(
                ObjectBuilder::new().schema_type(Type::Null).into(),
                "已退出",
                "logged out",
                json!(null),
            )
            .errors(&[400, 500, 503]),
    ];
    document(
        "auth-service",
        env!("CARGO_PKG_VERSION"),
        "用户与会话：公众号网页授权、小程序登录。",
        "Users and sessions: official-account web OAuth and mini-program login.",
        ops,
    )
}
