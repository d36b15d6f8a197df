//! The OpenAPI entries of the operator console's JSON routes (sign-in,
//! the order list and page, event retry, the reconciled days), added to
//! `openapi::openapi()`'s document. As there, these types describe the
//! replies without being the handlers' types.

#![allow(dead_code, reason = "the types exist for their schemas only")]

use serde_json::json;
use shared::openapi::{Auth, Op, integer, one_of_strings, string};
use utoipa::ToSchema;

use super::openapi::{OrderStatus, Reconciliation, RefundStatus, TradeType};

const NO: &str = "T202612010000000001";

/// The WeChat Pay API an order uses.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = ApiVersion)]
enum ApiVersion {
    V2,
    V3,
}

/// `POST /api/pay/admin/session`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = SignInRequest)]
struct SignInRequest {
    /// 操作员的管理令牌（ADMIN_TOKENS） · the operator's admin token (ADMIN_TOKENS)
    token: String,
}

/// A console session (its id is only in the HttpOnly cookie).
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = AdminSession)]
struct AdminSession {
    operator: String,
    /// 修改类请求须在 X-CSRF-Token 头中带上 · send it as X-CSRF-Token with every change
    csrf_token: String,
    /// Unix 秒 · Unix seconds
    expires_at: i64,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = SignedOut)]
struct SignedOut {
    operator: String,
}

/// An order in the console's list.
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = ConsoleOrder)]
struct ConsoleOrder {
    out_trade_no: String,
    transaction_id: Option<String>,
    status: OrderStatus,
    trade_type: TradeType,
    api: ApiVersion,
    amount_fen: i64,
    refunded_fen: i64,
    /// 进行中与已完成退款占用的金额（分） · held by refunds in flight or done, in fen
    refund_reserved_fen: i64,
    description: String,
    created_at: i64,
    paid_at: Option<i64>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = OrderPage)]
struct OrderPage {
    items: Vec<ConsoleOrder>,
    /// 下一页的游标；最后一页为 null · the next page's cursor; null on the last page
    next_cursor: Option<String>,
}

/// The order on its own page.
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = ConsoleOrderDetail)]
struct ConsoleOrderDetail {
    out_trade_no: String,
    transaction_id: Option<String>,
    status: OrderStatus,
    trade_type: TradeType,
    api: ApiVersion,
    amount_fen: i64,
    refunded_fen: i64,
    refund_reserved_fen: i64,
    description: String,
    created_at: i64,
    paid_at: Option<i64>,
    user_id: i64,
    expires_at: i64,
    /// 还可退款的金额（分） · what refunds may still take, in fen
    refundable_fen: i64,
}

/// A status change from the audit trail.
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = OrderTransition)]
struct OrderTransition {
    from: String,
    to: String,
    /// notify、query、reconcile、close、unifiedorder、refund、refund_notify …
    source: String,
    at: i64,
    request_id: Option<String>,
}

/// A notification received for the order: verified or refused, and why.
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = ReceivedNotification)]
struct ReceivedNotification {
    id: i64,
    /// payment、refund、v3_payment、v3_refund
    kind: String,
    sign_verified: bool,
    /// applied、duplicate、mismatch …
    outcome: String,
    detail: String,
    received_at: i64,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = ConsoleRefund)]
struct ConsoleRefund {
    out_refund_no: String,
    amount_fen: i64,
    status: RefundStatus,
    reason: String,
    operator: Option<String>,
    refund_id: Option<String>,
    created_at: i64,
    succeeded_at: Option<i64>,
    error: Option<String>,
}

/// A merchant event of the order and its deliveries.
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = ConsoleEvent)]
struct ConsoleEvent {
    id: i64,
    out_trade_no: String,
    /// order.paid、order.refund、order.closed …
    event_type: String,
    state: EventState,
    delivered: bool,
    attempts: i64,
    last_error: Option<String>,
    last_attempt_at: Option<i64>,
    /// 下次投递时间，Unix 毫秒 · the next attempt, Unix milliseconds
    next_attempt_ms: i64,
    delivered_at: Option<i64>,
    created_at: i64,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = EventState)]
enum EventState {
    Pending,
    /// 尝试 WEBHOOK_FAILED_AFTER 次仍未送达（仍会重试） · undelivered after WEBHOOK_FAILED_AFTER attempts (still retried)
    Failed,
    Delivered,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = OrderStory)]
struct OrderStory {
    order: ConsoleOrderDetail,
    transitions: Vec<OrderTransition>,
    notifications: Vec<ReceivedNotification>,
    refunds: Vec<ConsoleRefund>,
    events: Vec<ConsoleEvent>,
}

/// A reconciled day, its discrepancies counted.
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = ReconciledDay)]
struct ReconciledDay {
    /// YYYY-MM-DD（北京时间） · YYYY-MM-DD (Beijing time)
    date: String,
    api: ApiVersion,
    bill_rows: i64,
    matched: i64,
    discrepancies: i64,
    reconciled_at: i64,
}

/// With `date`: that day's result; without: the reconciled days.
#[derive(ToSchema)]
#[serde(untagged)]
#[schema(as = ReconciliationAnswer)]
enum ReconciliationAnswer {
    Day(Reconciliation),
    Days(Vec<ReconciledDay>),
}

const COOKIE_NOTE_ZH: &str = "管理接口接受 `Authorization: Bearer` 管理令牌，或控制台登录后的 HttpOnly cookie `wxpay_admin`；\
     使用 cookie 时，GET/HEAD 以外的请求须带 `X-CSRF-Token`（会话的 csrfToken），带 `Origin` 时须为本站，否则 403。";
const COOKIE_NOTE_EN: &str = "The admin routes take the admin token as `Authorization: Bearer`, or the \
     console's HttpOnly cookie `wxpay_admin` set at sign-in; with the cookie, requests other than \
     GET/HEAD must carry `X-CSRF-Token` (the session's csrfToken) and, when they send `Origin`, \
     come from this site; otherwise 403.";

fn session_example() -> serde_json::Value {
    json!({"operator": "alice", "csrfToken": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
           "expiresAt": 1764576000})
}

fn order_item_example() -> serde_json::Value {
    json!({"outTradeNo": NO, "transactionId": "4200002026120100000001", "status": "PAID",
           "tradeType": "JSAPI", "api": "v2", "amountFen": 100, "refundedFen": 0,
           "refundReservedFen": 30, "description": "测试商品", "createdAt": 1764547200,
           "paidAt": 1764547260})
}

fn event_example() -> serde_json::Value {
    json!({"id": 7, "outTradeNo": NO, "eventType": "order.paid", "state": "pending",
           "delivered": false, "attempts": 5, "lastError": "HTTP 500",
           "lastAttemptAt": 1764550800, "nextAttemptMs": 1764550900000_i64,
           "deliveredAt": null, "createdAt": 1764547260})
}

pub(super) fn ops() -> Vec<Op> {
    vec![
        Op::post("/api/pay/admin/session")
            .summary("控制台登录", "Console sign-in")
            .describe(
                "以操作员的管理令牌换取会话：设置 cookie `wxpay_admin`（HttpOnly、SameSite=Strict、Path=/、Max-Age=28800，\
                 PUBLIC_BASE_URL 为 https 时加 Secure）。令牌错误计入与 Bearer 相同的失败登录审计与每分钟限额（429）。",
                "Trades an operator's admin token for a session: sets the cookie `wxpay_admin` \
                 (HttpOnly, SameSite=Strict, Path=/, Max-Age=28800, Secure when PUBLIC_BASE_URL \
                 is https). A wrong token is a failed login, audited and counted against the \
                 same per-minute budget as a wrong Bearer token (429).",
            )
            .json_body::<SignInRequest>(true, "管理令牌", "the admin token", json!({"token": "…"}))
            .ok::<AdminSession>("会话", "the session", session_example())
            .errors(&[400, 401, 403, 404, 429, 500, 503]),
        Op::get("/api/pay/admin/session")
            .summary("当前控制台会话", "The console session")
            .describe(
                "cookie 对应的会话（含 csrfToken）；未登录时 401。",
                "The cookie's session (with its csrfToken); 401 when not signed in.",
            )
            .ok::<AdminSession>("会话", "the session", session_example())
            .errors(&[401, 404, 429, 500, 503]),
        Op::delete("/api/pay/admin/session")
            .summary("控制台退出", "Console sign-out")
            .describe(
                "结束会话并清除 cookie；须带 X-CSRF-Token。",
                "Ends the session and clears the cookie; needs X-CSRF-Token.",
            )
            .auth(Auth::Admin)
            .ok::<SignedOut>("已退出", "signed out", json!({"operator": "alice"}))
            .errors(&[401, 403, 404, 429, 500, 503]),
        Op::get("/api/pay/admin/orders")
            .summary("订单列表（管理）", "Orders (admin)")
            .describe(
                &format!(
                    "最新的在前，按 (created_at, id) 键集分页：把 nextCursor 原样作为 cursor 传回取下一页。{COOKIE_NOTE_ZH}"
                ),
                &format!(
                    "Newest first, paged by keyset on (created_at, id): send nextCursor back \
                     as cursor for the next page. {COOKIE_NOTE_EN}"
                ),
            )
            .auth(Auth::Admin)
            .query(
                "status",
                false,
                one_of_strings(&["NOTPAY", "PAID", "CLOSED", "REFUND", "PAYERROR"]),
                "订单状态",
                "the order's status",
                json!("PAID"),
            )
            .query(
                "tradeType",
                false,
                one_of_strings(&["JSAPI", "MWEB", "NATIVE"]),
                "支付方式",
                "the trade type",
                json!("JSAPI"),
            )
            .query("api", false, one_of_strings(&["v2", "v3"]), "API 版本", "the API version", json!("v3"))
            .query("from", false, integer(), "创建时间下限（含），Unix 秒", "created at or after, Unix seconds", json!(1764518400))
            .query("to", false, integer(), "创建时间上限（不含），Unix 秒", "created before, Unix seconds", json!(1764604800))
            .query("minFen", false, integer(), "最小金额（分）", "the least amount, fen", json!(1))
            .query("maxFen", false, integer(), "最大金额（分）", "the largest amount, fen", json!(100000))
            .query(
                "q",
                false,
                string(),
                "商户订单号或微信支付订单号（精确）",
                "an out_trade_no or a transaction_id, exactly",
                json!(NO),
            )
            .query("cursor", false, string(), "上一页的 nextCursor", "the previous page's nextCursor", json!("MTc2NDU0NzIwMC40Mg"))
            .query("limit", false, integer(), "1 到 200，默认 50", "1 to 200, 50 by default", json!(50))
            .ok::<OrderPage>(
                "一页订单",
                "a page of orders",
                json!({"items": [order_item_example()], "nextCursor": "MTc2NDU0NzIwMC40Mg"}),
            )
            .errors(&[400, 401, 404, 429, 500, 503]),
        Op::get("/api/pay/admin/orders/{outTradeNo}")
            .path_param("outTradeNo", "商户订单号", "the merchant's order number", NO)
            .summary("订单详情（管理）", "An order's page (admin)")
            .describe(
                "订单、状态变更记录、收到的通知（验签通过或被拒及原因）、退款与商户事件；只读数据库，不询问微信。",
                "The order, its status changes, the notifications received (verified or \
                 refused, with the reason), refunds and merchant events; read from the \
                 database only, WeChat is not asked.",
            )
            .auth(Auth::Admin)
            .ok::<OrderStory>("订单详情", "the order's page", {
                let mut order = order_item_example();
                order["userId"] = json!(1);
                order["expiresAt"] = json!(1764549000);
                order["refundableFen"] = json!(70);
                json!({"order": order,
                       "transitions": [{"from": "NOTPAY", "to": "PAID", "source": "notify",
                                        "at": 1764547261, "requestId": "req-1"}],
                       "notifications": [{"id": 3, "kind": "payment", "signVerified": true,
                                          "outcome": "applied", "detail": "", "receivedAt": 1764547261}],
                       "refunds": [{"outRefundNo": "R202612010000000001", "amountFen": 30,
                                    "status": "PROCESSING", "reason": "顾客退货", "operator": "alice",
                                    "refundId": "50000000002026120100000001", "createdAt": 1764550800,
                                    "succeededAt": null, "error": null}],
                       "events": [event_example()]})
            })
            .errors(&[401, 404, 429, 500, 503]),
        Op::post("/api/pay/admin/events/{id}/retry")
            .path_param("id", "事件 id", "the event's id", "7")
            .summary("重试商户事件（管理）", "Retry a merchant event (admin)")
            .describe(
                "未送达（pending 或 failed）的事件立即到期，由投递程序下一轮发送（同一订单的较早事件先送）；已送达的返回 409。记入审计日志。",
                "An undelivered (pending or failed) event becomes due now; the dispatcher's \
                 next pass sends it (after its order's earlier events). A delivered one is 409. \
                 Audited.",
            )
            .auth(Auth::Admin)
            .ok::<ConsoleEvent>("事件", "the event", event_example())
            .errors(&[400, 401, 403, 404, 409, 429, 500, 503]),
    ]
}

/// `GET /api/pay/admin/reconciliations`: one day with `date`, the days without.
pub(super) fn reconciliations_get() -> Op {
    Op::get("/api/pay/admin/reconciliations")
        .summary("对账结果（管理）", "Reconciliation results (admin)")
        .describe(
            "带 `date`：该日的对账结果（含全部差异）；尚无结果时 409。不带：已对账的日期列表（from、to 之间，最新的在前，至多 366 天）。",
            "With `date`: that day's result (every discrepancy); 409 when there is none yet. \
             Without: the reconciled days between from and to, newest first, at most 366.",
        )
        .auth(Auth::Admin)
        .query(
            "date",
            false,
            string(),
            "账单日期 YYYY-MM-DD（北京时间）",
            "the bill's day, YYYY-MM-DD (Beijing time)",
            json!("2026-11-30"),
        )
        .query("from", false, string(), "列表的起始日期（含）", "the list's first day", json!("2026-11-01"))
        .query("to", false, string(), "列表的结束日期（含）", "the list's last day", json!("2026-11-30"))
        .ok::<ReconciliationAnswer>(
            "对账结果或日期列表",
            "a result, or the days",
            json!([{"date": "2026-11-30", "api": "v3", "billRows": 2, "matched": 1,
                    "discrepancies": 1, "reconciledAt": 1764554400}]),
        )
        .errors(&[400, 401, 404, 409, 429, 500, 502, 503, 504])
}
