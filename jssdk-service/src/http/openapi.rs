//! jssdk-service's OpenAPI 3.1 document (API.md §4, jssdk-service), served
//! at `/openapi.json` and merged into `stack`'s `/docs`.
//!
//! The reply types below describe what the handlers send without being
//! their types (the document is written without touching a handler);
//! `tests/openapi.rs` holds them to the route table and to real replies.

#![allow(dead_code, reason = "the reply types exist for their schemas only")]

use serde_json::json;
use shared::openapi::{Auth, Op, document, uri};
use utoipa::ToSchema;
use utoipa::openapi::OpenApi;

/// `wx.config`'s parameters for one page.
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = WxConfig)]
struct WxConfig {
    app_id: String,
    /// Unix 秒（数字） · Unix seconds (a number)
    timestamp: i64,
    nonce_str: String,
    /// sha1("jsapi_ticket=T&noncestr=N&timestamp=TS&url=U")，U 不含 `#` 之后的部分 · U without its `#…` part
    signature: String,
    /// 至少包含 updateAppMessageShareData、updateTimelineShareData、chooseWXPay · at least these three
    js_api_list: Vec<String>,
}

/// `GET /internal/access-token`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = InternalAccessToken)]
struct InternalAccessToken {
    access_token: String,
    /// Unix 秒 · Unix seconds
    expires_at: i64,
}

pub fn openapi() -> OpenApi {
    let ops = vec![
        Op::get("/api/wechat/jssdkConfig")
            .summary("JS-SDK wx.config 签名", "JS-SDK wx.config signature")
            .describe(
                "为页面地址 `url` 生成 `wx.config` 参数。access_token 与 jsapi_ticket 在共享缓存中集中缓存并提前刷新：\
                 无论多少副本与并发请求，每个有效期只向微信取一次。响应带 `Cache-Control: no-store`。",
                "`wx.config` parameters for the page at `url`. The access_token and jsapi_ticket are \
                 cached centrally in the shared cache and renewed ahead of expiry: one fetch per \
                 expiry window however many replicas and requests. Answered with \
                 `Cache-Control: no-store`.",
            )
            .query(
                "url",
                true,
                uri(),
                "当前页面的完整地址（http 或 https，`#` 之后的部分会被去掉）",
                "the page's full URL (http or https; its `#…` part is dropped)",
                json!("https://shop.example/pay.html?from=menu"),
            )
            .ok::<WxConfig>(
                "wx.config 参数",
                "the wx.config parameters",
                json!({"appId": "wx0123456789abcdef", "timestamp": 1764547200,
                       "nonceStr": "Wm3WZYTPz0wzccnW",
                       "signature": "0f9de62fce790f9a083d5c99e95740ceb90c27ed",
                       "jsApiList": ["updateAppMessageShareData", "updateTimelineShareData", "chooseWXPay"]}),
            )
            .errors(&[400, 500, 502, 503, 504]),
        Op::get("/internal/access-token")
            .summary("供内部服务使用的 access_token", "The access_token, for the shop's own services")
            .describe(
                "需要 `Authorization: Bearer INTERNAL_TOKEN`；未设置 INTERNAL_TOKEN 时返回 404。网关不暴露 `/internal/`。",
                "Needs `Authorization: Bearer INTERNAL_TOKEN`; 404 when INTERNAL_TOKEN is unset. The \
                 gateway does not expose `/internal/`.",
            )
            .auth(Auth::Internal)
            .ok::<InternalAccessToken>(
                "access_token 与到期时间",
                "the access_token and when it expires",
                json!({"accessToken": "86_AbCdEf…", "expiresAt": 1764554400}),
            )
            .errors(&[401, 404, 500, 502, 503, 504]),
    ];
    document(
        "jssdk-service",
        env!("CARGO_PKG_VERSION"),
        "公众号 access_token 与 jsapi_ticket 的唯一持有者；wx.config 签名。",
        "The one holder of the official account's access_token and jsapi_ticket; wx.config signatures.",
        ops,
    )
}
