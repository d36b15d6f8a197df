//! pay-service's OpenAPI 3.1 document (API.md §4: orders, notifications v2
//! and v3, refunds, merchant events, reconciliation), served at
//! `/openapi.json` and merged into `stack`'s `/docs`.
//!
//! The types below describe what the handlers take and send without being
//! their types, so that the document is written without touching a handler;
//! `tests/openapi.rs` holds them to the route table and to real replies
//! (unknown fields are refused, so a reply that grows a field fails there
//! until it is documented here).

#![allow(dead_code, reason = "the types exist for their schemas only")]

use serde_json::json;
use shared::openapi::{
    Auth, Op, any_object, body, boolean, document, empty, integer, one_of_strings, string,
};
use utoipa::ToSchema;
use utoipa::openapi::OpenApi;
use utoipa::openapi::schema::{ObjectBuilder, Type};

/// An order's state.
#[derive(ToSchema)]
#[serde(rename_all = "UPPERCASE")]
#[schema(as = OrderStatus)]
pub(super) enum OrderStatus {
    /// 未支付 · not paid
    NotPay,
    /// 已支付 · paid
    Paid,
    /// 已关闭 · closed
    Closed,
    /// 已（部分）退款 · refunded (in part or whole)
    Refund,
    /// 支付失败 · payment failed
    PayError,
}

/// How the payer pays.
#[derive(ToSchema)]
#[schema(as = TradeType)]
pub(super) enum TradeType {
    /// 公众号或小程序内 `wx.requestPayment` / `chooseWXPay` · inside WeChat
    #[serde(rename = "JSAPI")]
    Jsapi,
    /// 外部浏览器 H5 支付 · H5 payment in another browser
    #[serde(rename = "MWEB")]
    Mweb,
    /// 扫码支付 · scanning a QR code
    #[serde(rename = "NATIVE")]
    Native,
}

/// `wx.requestPayment`'s parameters (`timeStamp` and `nonceStr` are strings,
/// as WeChat requires).
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = PayParams)]
struct PayParams {
    app_id: String,
    time_stamp: String,
    nonce_str: String,
    /// `prepay_id=…`
    package: String,
    /// MD5、HMAC-SHA256（APIv2）或 RSA（APIv3） · MD5, HMAC-SHA256 (APIv2) or RSA (APIv3)
    sign_type: String,
    pay_sign: String,
}

/// `GET /api/mp/v2Pay`: the order number and the pay parameters, flat.
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = MpPayResult)]
struct MpPayResult {
    out_trade_no: String,
    app_id: String,
    time_stamp: String,
    nonce_str: String,
    package: String,
    sign_type: String,
    pay_sign: String,
}

/// `POST /api/pay/orders`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = CreateOrderRequest)]
struct CreateOrderRequest {
    /// 金额（分），在 MIN_ORDER_FEN 与 MAX_ORDER_FEN 之间 · the amount in fen, within MIN_ORDER_FEN..MAX_ORDER_FEN
    amount_fen: i64,
    description: Option<String>,
    trade_type: TradeType,
    /// MWEB：支付后回到的页面（允许的源内） · MWEB: the page to return to after paying (an allowed origin)
    redirect_url: Option<String>,
}

/// The created order: JSAPI carries `payParams`, MWEB `mwebUrl`, NATIVE `codeUrl`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = CreatedOrder)]
struct CreatedOrder {
    out_trade_no: String,
    pay_params: Option<PayParams>,
    mweb_url: Option<String>,
    code_url: Option<String>,
}

/// An order as its owner sees it.
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = Order)]
struct Order {
    out_trade_no: String,
    status: OrderStatus,
    amount_fen: i64,
    trade_type: TradeType,
    /// 微信支付订单号，支付后才有 · WeChat's transaction id, once paid
    transaction_id: Option<String>,
    /// 支付时间，Unix 秒 · when it was paid, Unix seconds
    paid_at: Option<i64>,
    /// 已成功退款的金额（分） · refunds WeChat confirmed, in fen
    refunded_fen: i64,
}

/// A refund's state.
#[derive(ToSchema)]
#[serde(rename_all = "UPPERCASE")]
#[schema(as = RefundStatus)]
pub(super) enum RefundStatus {
    /// 已预留金额，尚未得到微信答复 · amount reserved, WeChat's answer not known yet
    Pending,
    /// 微信已受理 · WeChat accepted; the money is on its way
    Processing,
    Success,
    /// 微信拒绝或关闭，预留已释放 · WeChat refused or closed it; the reservation was released
    Failed,
    /// 退款异常（CHANGE），需人工处理，金额仍预留 · the money could not reach the payer; an operator must act, the amount stays reserved
    Change,
}

/// `POST /api/pay/admin/orders/{outTradeNo}/refunds`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = RefundRequest)]
struct RefundRequest {
    /// 退款金额（分），不超过可退余额 · the amount in fen, at most what is left to refund
    amount_fen: i64,
    reason: Option<String>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = Refund)]
struct Refund {
    out_refund_no: String,
    out_trade_no: String,
    amount_fen: i64,
    reason: String,
    status: RefundStatus,
    /// 微信退款单号 · WeChat's refund id
    refund_id: Option<String>,
    error: Option<String>,
    /// Unix 秒 · Unix seconds
    created_at: i64,
    succeeded_at: Option<i64>,
    /// 发起退款的操作员（ADMIN_TOKENS 名称） · the operator who asked (ADMIN_TOKENS name)
    operator: Option<String>,
}

/// A merchant event in the outbox (`MERCHANT_WEBHOOK_URL`).
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = MerchantEvent)]
struct MerchantEvent {
    id: i64,
    out_trade_no: String,
    /// PAID、REFUND、CLOSED …
    #[serde(rename = "type")]
    event_type: String,
    /// pending、failed 或 delivered
    state: String,
    attempts: i64,
    last_error: Option<String>,
    last_attempt_at: Option<i64>,
    /// 下次投递时间，Unix 毫秒 · the next attempt, Unix milliseconds
    next_attempt_ms: i64,
    delivered_at: Option<i64>,
    created_at: i64,
    /// 投递给商户的 JSON · the JSON delivered to the merchant
    #[schema(value_type = Object)]
    payload: serde_json::Value,
}

/// What a reconciliation found wrong.
#[derive(ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = DiscrepancyKind)]
enum DiscrepancyKind {
    /// 账单中有、本地没有 · in the bill, not here
    MissingLocal,
    /// 本地已支付或已退款、账单中没有 · paid or refunded here, not in the bill
    MissingAtWechat,
    AmountMismatch,
    StatusMismatch,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = Discrepancy)]
struct Discrepancy {
    kind: DiscrepancyKind,
    out_trade_no: String,
    out_refund_no: Option<String>,
    transaction_id: Option<String>,
    local_fen: Option<i64>,
    wechat_fen: Option<i64>,
    local_status: Option<String>,
    wechat_status: Option<String>,
}

/// One day's reconciliation against WeChat's bill.
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = Reconciliation)]
pub(super) struct Reconciliation {
    /// YYYY-MM-DD（北京时间） · YYYY-MM-DD (Beijing time)
    date: String,
    bill_rows: i64,
    matched: i64,
    discrepancies: Vec<Discrepancy>,
}

const NO: &str = "T202612010000000001";

fn order_example() -> serde_json::Value {
    json!({"outTradeNo": NO, "status": "PAID", "amountFen": 1, "tradeType": "JSAPI",
           "transactionId": "4200002026120100000001", "paidAt": 1764547260, "refundedFen": 0})
}

fn pay_params_example() -> serde_json::Value {
    json!({"appId": "wx0123456789abcdef", "timeStamp": "1764547200", "nonceStr": "5K8264ILTKCH16CQ",
           "package": "prepay_id=wx201410272009395522657a690389285100", "signType": "MD5",
           "paySign": "C380BEC2BFD727A4B6845133519F3AD6"})
}

fn refund_example() -> serde_json::Value {
    json!({"outRefundNo": "R202612010000000001", "outTradeNo": NO, "amountFen": 1,
           "reason": "顾客退货", "status": "PROCESSING", "refundId": "50000000002026120100000001",
           "createdAt": 1764550800})
}

/// The v2 notification reply WeChat expects.
fn xml_reply(ok: bool) -> serde_json::Value {
    if ok {
        json!(
            "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
        )
    } else {
        json!(
            "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[bad_sign]]></return_msg></xml>"
        )
    }
}

fn v2_notify(path: &'static str, zh: &str, en: &str, example: &str) -> Op {
    Op::post(path)
        .summary(zh, en)
        .describe(
            "微信的 XML 通知。校验签名及 appid、mch_id、金额与本地订单一致；无论到达多少次只生效一次；\
             持久记录后才答 SUCCESS，否则答 FAIL（微信会重试）。未知订单、签名错误或金额不符的通知永远不会得到 SUCCESS，也不改变任何订单。",
            "WeChat's XML notification. The sign, appid, mch_id and amount are checked against \
             the stored order; applied once however often it arrives; answered SUCCESS only once \
             durably recorded, otherwise FAIL (WeChat retries). A notification for an unknown \
             order, with a bad sign or another amount is never answered SUCCESS and changes no order.",
        )
        .auth(Auth::WechatPaySignature)
        .raw_body(
            "text/xml",
            string(),
            "微信支付通知（XML）",
            "WeChat Pay's notification (XML)",
            json!(example),
        )
        .response(
            200,
            body(
                "text/xml",
                string(),
                "return_code 为 SUCCESS（已记录）或 FAIL（微信重试）",
                "return_code SUCCESS (recorded) or FAIL (WeChat retries)",
                xml_reply(true),
            ),
        )
}

fn v3_notify(path: &'static str, zh: &str, en: &str) -> Op {
    let fail = |zh: &str, en: &str, message: &str| {
        body(
            "application/json",
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property("code", one_of_strings(&["FAIL"]))
                .required("code")
                .property("message", string())
                .required("message")
                .into(),
            zh,
            en,
            json!({"code": "FAIL", "message": message}),
        )
    };
    Op::post(path)
        .summary(zh, en)
        .describe(
            "微信支付 APIv3 的 JSON 通知。用 `Wechatpay-Serial` 指定的微信支付公钥或平台证书验证 `Wechatpay-Signature`；\
             时间戳与当前相差超过 5 分钟、或以 `WECHATPAY/SIGNTEST/` 开头的签名被拒绝；`resource` 用 APIv3 密钥以 AES-256-GCM 解密，\
             appid、mchid、out_trade_no 与金额必须与本地订单一致。只生效一次；持久记录后答 204，否则 4xx/5xx（微信重试），未通过任何检查的通知不改变任何东西。",
            "WeChat Pay APIv3's JSON notification. `Wechatpay-Signature` is verified with the \
             WeChat Pay public key or platform certificate `Wechatpay-Serial` names; a timestamp \
             more than 5 minutes off, or a signature starting `WECHATPAY/SIGNTEST/`, is refused; \
             `resource` is decrypted with AES-256-GCM under the APIv3 key, and appid, mchid, \
             out_trade_no and the amount must match the stored order. Applied once; 204 once \
             durably recorded, otherwise 4xx/5xx (WeChat retries). A notification failing any \
             check changes nothing.",
        )
        .auth(Auth::WechatPaySignature)
        .header("Wechatpay-Serial", true, "验签密钥的序列号或公钥 ID", "the verifying key's serial or public key id", "PUB_KEY_ID_0114232134912410000000000000")
        .header("Wechatpay-Timestamp", true, "Unix 秒", "Unix seconds", "1764547200")
        .header("Wechatpay-Nonce", true, "随机串", "nonce", "fdasflkja484w")
        .header("Wechatpay-Signature", true, "Base64 SHA256withRSA", "Base64 SHA256withRSA", "cVwQ…==")
        .raw_body(
            "application/json",
            any_object(),
            "通知（resource 为密文）",
            "the notification (resource encrypted)",
            json!({"id": "EV-2018022511223320873", "create_time": "2026-12-01T10:00:00+08:00",
                   "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS",
                   "summary": "支付成功",
                   "resource": {"algorithm": "AEAD_AES_256_GCM", "original_type": "transaction",
                                "ciphertext": "…", "associated_data": "transaction", "nonce": "fdasflkja484"}}),
        )
        .response(204, empty("已记录", "recorded"))
        .response(400, fail("通知内容无效", "the notification is invalid", "bad_resource"))
        .response(401, fail("签名无效、过期或为探测", "signature invalid, stale or a probe", "bad_signature"))
        .response(413, fail("请求体过大", "body too large", "too_large"))
        .response(500, fail("暂时无法记录（微信重试）", "could not record it now (WeChat retries)", "db_error"))
}

fn reconciliation(op: Op) -> Op {
    op.auth(Auth::Admin)
        .query(
            "date",
            true,
            string(),
            "账单日期 YYYY-MM-DD（北京时间）",
            "the bill's day, YYYY-MM-DD (Beijing time)",
            json!("2026-11-30"),
        )
        .ok::<Reconciliation>(
            "对账结果",
            "the reconciliation",
            json!({"date": "2026-11-30", "billRows": 2, "matched": 1,
                   "discrepancies": [{"kind": "AMOUNT_MISMATCH", "outTradeNo": NO,
                                      "transactionId": "4200002026120100000001",
                                      "localFen": 100, "wechatFen": 99}]}),
        )
        .errors(&[400, 401, 404, 409, 500, 502, 503, 504])
}

fn order_no(op: Op) -> Op {
    op.path_param(
        "outTradeNo",
        "商户订单号",
        "the merchant's order number",
        NO,
    )
}

pub fn openapi() -> OpenApi {
    let idempotency = |op: Op| {
        op.header(
            "Idempotency-Key",
            false,
            "相同的键与请求体返回同一订单",
            "the same key and body return the same order",
            "7f1c0a52-0d9e-4f7b-9a51-2d1c1d4e0a77",
        )
    };
    let mut ops = vec![
        idempotency(
            Op::get("/api/mp/v2Pay")
                .summary("小程序支付（种子的写法）", "Mini-program payment (the seed's call)")
                .describe(
                    "创建 JSAPI 订单（用户的 openid、`notify_url = {PUBLIC_BASE_URL}/api/pay/notify`），返回 `wx.requestPayment` 的参数。\
                     `money` 以元为单位，精确小数，至多两位。",
                    "Creates a JSAPI order (the user's openid, `notify_url = \
                     {PUBLIC_BASE_URL}/api/pay/notify`) and returns `wx.requestPayment`'s \
                     parameters. `money` is in yuan, an exact decimal with at most 2 places.",
                )
                .auth(Auth::Session)
                .query("money", true, string(), "金额（元）", "the amount in yuan", json!("0.01"))
                .query(
                    "userOpenid",
                    false,
                    string(),
                    "若给出，须与令牌的用户一致，否则 403",
                    "when given, must be the token's user, else 403",
                    json!("oSandboxMp0000000000000001"),
                )
                .query("description", false, string(), "商品描述", "what is bought", json!("测试商品")),
        )
        .ok::<MpPayResult>(
            "订单号与支付参数",
            "the order number and the pay parameters",
            {
                let mut v = pay_params_example();
                v["outTradeNo"] = json!(NO);
                v
            },
        )
        .errors(&[400, 401, 403, 404, 409, 500, 502, 503, 504]),
        idempotency(
            Op::post("/api/pay/orders")
                .summary("创建订单", "Create an order")
                .describe(
                    "JSAPI 使用会话所属的应用（小程序或公众号）；MWEB 带 scene_info，NATIVE 带 product_id。签名无法验证的微信支付应答视为无应答（10009）。",
                    "JSAPI uses the session's app (mini program or official account); MWEB \
                     carries scene_info, NATIVE product_id. A WeChat Pay reply whose sign does not \
                     verify counts as no reply (10009).",
                )
                .auth(Auth::Session),
        )
        .json_body::<CreateOrderRequest>(
            true,
            "订单",
            "the order",
            json!({"amountFen": 1, "description": "测试商品", "tradeType": "JSAPI"}),
        )
        .ok::<CreatedOrder>(
            "已创建",
            "created",
            json!({"outTradeNo": NO, "payParams": pay_params_example()}),
        )
        .errors(&[400, 401, 403, 404, 409, 500, 502, 503, 504]),
        order_no(Op::get("/api/pay/orders/{outTradeNo}"))
            .summary("查询订单（仅订单所有者）", "An order (its owner only)")
            .auth(Auth::Session)
            .query(
                "sync",
                false,
                boolean(),
                "先向微信查询并更新",
                "ask WeChat first and update",
                json!(false),
            )
            .ok::<Order>("订单", "the order", order_example())
            .errors(&[400, 401, 404, 500, 502, 503, 504]),
        order_no(Op::post("/api/pay/orders/{outTradeNo}/close"))
            .summary("关闭订单", "Close an order")
            .describe(
                "在微信与本地关闭订单；已支付的订单返回 409。",
                "Closes the order at WeChat and here; a PAID order is 409.",
            )
            .auth(Auth::Session)
            .ok::<Order>("已关闭的订单", "the closed order", {
                let mut v = order_example();
                v["status"] = json!("CLOSED");
                if let Some(o) = v.as_object_mut() {
                    o.remove("transactionId");
                    o.remove("paidAt");
                }
                v
            })
            .errors(&[401, 404, 409, 500, 502, 503, 504]),
        order_no(Op::get("/api/pay/orders/{outTradeNo}/qrcode.svg"))
            .summary("扫码支付二维码", "The NATIVE order's QR code")
            .auth(Auth::Session)
            .response(
                200,
                body(
                    "image/svg+xml",
                    string(),
                    "code_url 的二维码",
                    "the code_url as a QR code",
                    json!("<svg xmlns=\"http://www.w3.org/2000/svg\" …></svg>"),
                ),
            )
            .errors(&[401, 404, 500, 503]),
        v2_notify(
            "/api/pay/notify",
            "支付结果通知（APIv2）",
            "Payment notification (APIv2)",
            "<xml><appid><![CDATA[wx0123]]></appid><mch_id>1230000109</mch_id><out_trade_no>T202612010000000001</out_trade_no><result_code>SUCCESS</result_code><total_fee>1</total_fee><transaction_id>4200002026120100000001</transaction_id><sign>…</sign></xml>",
        ),
        v2_notify(
            "/api/mp/payCallback",
            "支付结果通知（种子的路径）",
            "Payment notification (the seed's path)",
            "<xml><appid><![CDATA[wx0123]]></appid><mch_id>1230000109</mch_id><out_trade_no>T202612010000000001</out_trade_no><result_code>SUCCESS</result_code><total_fee>1</total_fee><sign>…</sign></xml>",
        ),
        v2_notify(
            "/api/pay/refund-notify",
            "退款结果通知（APIv2，req_info 加密）",
            "Refund notification (APIv2, req_info encrypted)",
            "<xml><return_code>SUCCESS</return_code><appid><![CDATA[wx0123]]></appid><mch_id>1230000109</mch_id><req_info><![CDATA[T87GAHG17TGAHG1TGHAHAHA1Y1CIOA9UGJH1GAHV871HAGAGQYQQPOOJMXNBCXBVNMNMAJAA]]></req_info></xml>",
        ),
        v3_notify("/api/pay/v3/notify", "支付结果通知（APIv3）", "Payment notification (APIv3)"),
        v3_notify(
            "/api/pay/v3/refund-notify",
            "退款结果通知（APIv3）",
            "Refund notification (APIv3)",
        ),
        order_no(Op::post("/api/pay/admin/orders/{outTradeNo}/refunds"))
            .summary("申请退款（管理）", "Request a refund (admin)")
            .describe(
                "需要 `Authorization: Bearer ADMIN_TOKEN`；未设置 ADMIN_TOKEN 时返回 404。可带 `Idempotency-Key`。",
                "Needs `Authorization: Bearer ADMIN_TOKEN`; 404 when ADMIN_TOKEN is unset. \
                 `Idempotency-Key` may be sent.",
            )
            .auth(Auth::Admin)
            .header(
                "Idempotency-Key",
                false,
                "相同的键与请求体返回同一退款",
                "the same key and body return the same refund",
                "r-7f1c0a52",
            )
            .json_body::<RefundRequest>(true, "退款", "the refund", json!({"amountFen": 1, "reason": "顾客退货"}))
            .ok::<Refund>("退款", "the refund", refund_example())
            .errors(&[400, 401, 404, 409, 500, 502, 503, 504]),
        order_no(Op::get("/api/pay/admin/orders/{outTradeNo}/refunds"))
            .summary("订单的退款（管理）", "An order's refunds (admin)")
            .describe(
                "未完成的退款会先向微信查询。",
                "Open refunds are first asked about at WeChat.",
            )
            .auth(Auth::Admin)
            .ok_list::<Refund>("退款列表", "the refunds", json!([refund_example()]))
            .errors(&[401, 404, 500, 502, 503, 504]),
        Op::get("/api/pay/admin/events")
            .summary("商户事件（管理）", "Merchant events (admin)")
            .describe(
                "发往 MERCHANT_WEBHOOK_URL 的事件（头 X-Wxpay-Timestamp 与 X-Wxpay-Signature，HMAC-SHA256）。",
                "The events sent to MERCHANT_WEBHOOK_URL (headers X-Wxpay-Timestamp and \
                 X-Wxpay-Signature, HMAC-SHA256).",
            )
            .auth(Auth::Admin)
            .query(
                "status",
                false,
                one_of_strings(&["failed", "pending", "delivered"]),
                "默认 failed",
                "failed by default",
                json!("failed"),
            )
            .query("limit", false, integer(), "1 到 1000，默认 100", "1 to 1000, 100 by default", json!(100))
            .ok_list::<MerchantEvent>(
                "事件",
                "the events",
                json!([{"id": 1, "outTradeNo": NO, "type": "PAID", "state": "failed", "attempts": 8,
                        "lastError": "HTTP 500", "lastAttemptAt": 1764550800,
                        "nextAttemptMs": 1764554400000_i64, "deliveredAt": null,
                        "createdAt": 1764547260, "payload": {"outTradeNo": NO, "amountFen": 1}}]),
            )
            .errors(&[400, 401, 404, 500, 503]),
        reconciliation(
            Op::post("/api/pay/admin/reconciliations")
                .summary("立即对账（管理）", "Reconcile now (admin)")
                .describe(
                    "下载该日的微信账单（商户用过的每个 API 版本）并与本地订单和退款比对；尚无账单时返回 409。",
                    "Downloads that day's WeChat bill (for each API the merchant used) and \
                     compares it with the orders and refunds here; 409 when there is no bill yet.",
                ),
        ),
        super::openapi_console::reconciliations_get(),
    ];
    ops.extend(super::openapi_console::ops());
    ops.extend(super::openapi_charts::ops());
    document(
        "pay-service",
        env!("CARGO_PKG_VERSION"),
        "订单、微信支付（APIv2 与 APIv3）、支付与退款通知、退款、商户事件与对账。金额一律为整数分。",
        "Orders, WeChat Pay (APIv2 and APIv3), payment and refund notifications, refunds, \
         merchant events and reconciliation. Money is integer fen throughout.",
        ops,
    )
}
