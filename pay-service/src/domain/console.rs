//! What the operator console reads and does besides refunds and
//! reconciliation runs: the order list (filters checked here, pages by
//! keyset behind an opaque cursor), an order's whole story (transitions,
//! notifications, refunds, merchant events; read from the database only,
//! WeChat is not asked), a merchant event made due again, and the list of
//! reconciled days.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::audit::{self, Cause};
use super::bills;
use super::events::{failed_after, state_of};
use super::state::PayState;
use crate::db::console::{self as db, OrderFilter, ReconciliationDay};
use crate::db::notifications::Notification;
use crate::db::orders::Order;
use crate::db::outbox::{self, Event, now_ms};
use crate::db::refunds::{self, Refund};
use crate::db::transitions::{self, Transition};
use crate::db::{ApiVersion, RefundStatus, Status, TradeType};
use crate::error::PayError;

/// Orders per page unless `limit` says otherwise, and the most it may say.
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;
/// The most days the reconciliation list answers.
pub const MAX_DAYS: i64 = 366;

/// The order list's query as sent: every value text, checked here so that
/// each bad one gets a message naming it.
#[derive(Debug, Clone, Default)]
pub struct OrderAsk {
    pub status: Option<String>,
    pub trade_type: Option<String>,
    pub api: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub min_fen: Option<String>,
    pub max_fen: Option<String>,
    pub q: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<String>,
}

/// An order as the list shows it (no payer data: the user id only on the
/// order's own page).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    pub out_trade_no: String,
    pub transaction_id: Option<String>,
    pub status: Status,
    pub trade_type: TradeType,
    pub api: ApiVersion,
    pub amount_fen: i64,
    pub refunded_fen: i64,
    pub refund_reserved_fen: i64,
    pub description: String,
    pub created_at: i64,
    pub paid_at: Option<i64>,
}

impl From<&Order> for OrderItem {
    fn from(o: &Order) -> Self {
        OrderItem {
            out_trade_no: o.out_trade_no.clone(),
            transaction_id: o.transaction_id.clone(),
            status: o.status,
            trade_type: o.trade_type,
            api: o.api,
            amount_fen: o.amount_fen,
            refunded_fen: o.refunded_fen,
            refund_reserved_fen: o.refund_reserved_fen,
            description: o.description.clone(),
            created_at: o.created_at,
            paid_at: o.paid_at,
        }
    }
}

/// One page; `next_cursor` is None on the last.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderPage {
    pub items: Vec<OrderItem>,
    pub next_cursor: Option<String>,
}

fn parse_opt<T>(
    raw: Option<&str>,
    parse: impl Fn(&str) -> Option<T>,
    what: &str,
) -> Result<Option<T>, PayError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => parse(s).map(Some).ok_or_else(|| PayError::invalid(what)),
    }
}

fn integer(raw: Option<&str>, name: &str) -> Result<Option<i64>, PayError> {
    parse_opt(
        raw,
        |s| s.parse::<i64>().ok().filter(|n| *n >= 0),
        &format!("{name} must be a whole number, 0 or more"),
    )
}

/// The opaque cursor of the page after `last`: its keyset position.
fn encode_cursor(last: &Order) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}.{}", last.created_at, last.id))
}

/// The position a cursor of [`encode_cursor`] holds; anything else is a
/// 400, not an empty page or a wrong one.
fn decode_cursor(raw: &str) -> Result<(i64, i64), PayError> {
    let bad = || {
        PayError::invalid(
            "cursor is malformed: send back the nextCursor of the previous page as is",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (at, id) = text.split_once('.').ok_or_else(bad)?;
    let at: i64 = at.parse().map_err(|_| bad())?;
    let id: i64 = id.parse().map_err(|_| bad())?;
    if at < 0 || id <= 0 {
        return Err(bad());
    }
    Ok((at, id))
}

/// The filter and page size `ask` means, or a 400 naming the bad value.
pub fn parse_ask(ask: &OrderAsk) -> Result<(OrderFilter, i64), PayError> {
    let status = parse_opt(
        ask.status.as_deref(),
        Status::parse,
        "status must be NOTPAY, PAID, CLOSED, REFUND or PAYERROR",
    )?;
    let trade_type = parse_opt(
        ask.trade_type.as_deref(),
        TradeType::parse,
        "tradeType must be JSAPI, MWEB or NATIVE",
    )?;
    let api = parse_opt(
        ask.api.as_deref(),
        ApiVersion::parse,
        "api must be v2 or v3",
    )?;
    let (from, to) = (
        integer(ask.from.as_deref(), "from")?,
        integer(ask.to.as_deref(), "to")?,
    );
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return Err(PayError::invalid(
            "from must be before to (Unix seconds, [from, to))",
        ));
    }
    let min_fen = integer(ask.min_fen.as_deref(), "minFen")?;
    let max_fen = integer(ask.max_fen.as_deref(), "maxFen")?;
    if let (Some(lo), Some(hi)) = (min_fen, max_fen)
        && lo > hi
    {
        return Err(PayError::invalid("minFen must not be above maxFen"));
    }
    let q = parse_opt(
        ask.q.as_deref(),
        |s| (s.len() <= 64).then(|| s.to_owned()),
        "q must be an out_trade_no or a transaction_id (at most 64 characters)",
    )?;
    let before = match ask.cursor.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(c) => Some(decode_cursor(c)?),
    };
    let limit = parse_opt(
        ask.limit.as_deref(),
        |s| {
            s.parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
        },
        "limit must be between 1 and 200",
    )?
    .unwrap_or(DEFAULT_LIMIT);
    let filter = OrderFilter {
        status,
        trade_type,
        api,
        from,
        to,
        min_fen,
        max_fen,
        q,
        before,
    };
    Ok((filter, limit))
}

/// One page of the order list, newest first. One row more than the page is
/// read: whether it exists decides if there is a next page, so the last
/// page never links to an empty one.
pub async fn orders(state: &PayState, ask: &OrderAsk) -> Result<OrderPage, PayError> {
    let (filter, limit) = parse_ask(ask)?;
    let mut rows = db::orders(&state.db, filter, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = match rows.last() {
        Some(last) if more => Some(encode_cursor(last)),
        _ => None,
    };
    Ok(OrderPage {
        items: rows.iter().map(OrderItem::from).collect(),
        next_cursor,
    })
}

/// The order on its own page.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderDetail {
    #[serde(flatten)]
    pub item: OrderItem,
    pub user_id: i64,
    pub expires_at: i64,
    /// What a refund may still take: the paid amount less what refunds in
    /// flight or done hold; 0 unless PAID or REFUND.
    pub refundable_fen: i64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransitionView {
    pub from: String,
    pub to: String,
    pub source: String,
    pub at: i64,
    pub request_id: Option<String>,
}

impl From<Transition> for TransitionView {
    fn from(t: Transition) -> Self {
        TransitionView {
            from: t.from_status,
            to: t.to_status,
            source: t.source,
            at: t.at,
            request_id: t.request_id,
        }
    }
}

/// A notification received for the order: verified or not, what became of
/// it (`outcome`) and why (`detail`). The body is not shown.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    pub id: i64,
    pub kind: String,
    pub sign_verified: bool,
    pub outcome: String,
    pub detail: String,
    pub received_at: i64,
}

impl From<Notification> for NotificationView {
    fn from(n: Notification) -> Self {
        NotificationView {
            id: n.id,
            kind: n.kind,
            sign_verified: n.sign_verified,
            outcome: n.outcome,
            detail: n.detail,
            received_at: n.received_at,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleRefund {
    pub out_refund_no: String,
    pub amount_fen: i64,
    pub status: RefundStatus,
    pub reason: String,
    pub operator: Option<String>,
    pub refund_id: Option<String>,
    pub created_at: i64,
    pub succeeded_at: Option<i64>,
    pub error: Option<String>,
}

impl From<Refund> for ConsoleRefund {
    fn from(r: Refund) -> Self {
        ConsoleRefund {
            out_refund_no: r.out_refund_no,
            amount_fen: r.amount_fen,
            status: r.status,
            reason: r.reason,
            operator: r.operator,
            refund_id: r.refund_id,
            created_at: r.created_at,
            succeeded_at: r.succeeded_at,
            error: r.error,
        }
    }
}

/// A merchant event and its deliveries so far.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleEvent {
    pub id: i64,
    pub out_trade_no: String,
    pub event_type: String,
    /// `pending`, `failed` (after `WEBHOOK_FAILED_AFTER` attempts) or `delivered`.
    pub state: &'static str,
    pub delivered: bool,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<i64>,
    /// When the dispatcher may send it next, Unix milliseconds.
    pub next_attempt_ms: i64,
    pub delivered_at: Option<i64>,
    pub created_at: i64,
}

impl ConsoleEvent {
    fn of(e: Event, failed_after: i64) -> Self {
        ConsoleEvent {
            state: state_of(&e, failed_after),
            id: e.id,
            out_trade_no: e.out_trade_no,
            event_type: e.event_type,
            delivered: e.delivered,
            attempts: e.attempts,
            last_error: e.last_error,
            last_attempt_at: e.last_attempt_at,
            next_attempt_ms: e.next_attempt_ms,
            delivered_at: e.delivered_at,
            created_at: e.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderStory {
    pub order: OrderDetail,
    pub transitions: Vec<TransitionView>,
    pub notifications: Vec<NotificationView>,
    pub refunds: Vec<ConsoleRefund>,
    pub events: Vec<ConsoleEvent>,
}

fn refundable(o: &Order) -> i64 {
    if matches!(o.status, Status::Paid | Status::Refund) {
        o.amount_fen - o.refund_reserved_fen
    } else {
        0
    }
}

/// The order `out_trade_no` and everything recorded about it; 404 when
/// there is no such order.
pub async fn order(state: &PayState, out_trade_no: &str) -> Result<OrderStory, PayError> {
    let order = crate::db::orders::get(&state.db, out_trade_no)
        .await?
        .ok_or(PayError::OrderNotFound)?;
    let transitions = transitions::of_order(&state.db, out_trade_no).await?;
    let notifications = db::notifications_of(&state.db, out_trade_no).await?;
    let refunds = refunds::of_order(&state.db, out_trade_no).await?;
    let events = outbox::of_order(&state.db, out_trade_no).await?;
    let failed_after = failed_after(state);
    Ok(OrderStory {
        order: OrderDetail {
            item: OrderItem::from(&order),
            user_id: order.user_id,
            expires_at: order.expires_at,
            refundable_fen: refundable(&order),
        },
        transitions: transitions.into_iter().map(Into::into).collect(),
        notifications: notifications.into_iter().map(Into::into).collect(),
        refunds: refunds.into_iter().map(Into::into).collect(),
        events: events
            .into_iter()
            .map(|e| ConsoleEvent::of(e, failed_after))
            .collect(),
    })
}

/// Makes the undelivered event `id` due now, for `operator`: the
/// dispatcher's next pass sends it (after its order's earlier events). 404
/// for no such event, 409 once delivered. Delivery stays at least once: a
/// send already under way may still land too, and receivers drop a repeated
/// `eventId`.
pub async fn retry_event(
    state: &PayState,
    id: i64,
    operator: &str,
    cause: &Cause,
) -> Result<ConsoleEvent, PayError> {
    let not_found = || PayError::NotFound(format!("no such event: {id}"));
    if !db::make_due(&state.db, id, now_ms()).await? {
        return match db::event(&state.db, id).await? {
            None => Err(not_found()),
            Some(_) => Err(PayError::Conflict(format!(
                "event {id} is delivered already"
            ))),
        };
    }
    let event = db::event(&state.db, id).await?.ok_or_else(not_found)?;
    audit::event_retried(id, &event.out_trade_no, operator, cause);
    Ok(ConsoleEvent::of(event, failed_after(state)))
}

/// A reconciled day as the list shows it (its discrepancies counted; the
/// day's own route lists them).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DayView {
    pub date: String,
    pub api: String,
    pub bill_rows: i64,
    pub matched: i64,
    pub discrepancies: i64,
    pub reconciled_at: i64,
}

impl From<ReconciliationDay> for DayView {
    fn from(d: ReconciliationDay) -> Self {
        DayView {
            date: d.bill_date,
            api: d.api,
            bill_rows: d.bill_rows,
            matched: d.matched,
            discrepancies: d.discrepancies,
            reconciled_at: d.reconciled_at,
        }
    }
}

/// The reconciled days in `[from, to]` (`YYYY-MM-DD`, both optional, at most
/// 366 days apart), newest first, at most 366 of them.
pub async fn days(
    state: &PayState,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Vec<DayView>, PayError> {
    let date = |raw: Option<&str>| match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => bills::parse_date(s).map(Some),
    };
    let (from, to) = (date(from)?, date(to)?);
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(PayError::invalid("from must not be after to"));
        }
        if (t - f).num_days() >= MAX_DAYS {
            return Err(PayError::invalid(
                "from and to may be at most 366 days apart",
            ));
        }
    }
    let show = |d: Option<chrono::NaiveDate>, none: &str| {
        d.map_or_else(|| none.to_owned(), |d| d.format("%Y-%m-%d").to_string())
    };
    let rows = db::reconciliations(
        &state.db,
        show(from, "0000-00-00"),
        show(to, "9999-99-99"),
        MAX_DAYS,
    )
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(f: impl FnOnce(&mut OrderAsk)) -> OrderAsk {
        let mut a = OrderAsk::default();
        f(&mut a);
        a
    }

    fn message(a: &OrderAsk) -> String {
        parse_ask(a).unwrap_err().to_string()
    }

    #[test]
    fn a_cursor_round_trips_and_anything_else_is_refused() {
        let c = URL_SAFE_NO_PAD.encode("1764547200.42");
        assert_eq!(decode_cursor(&c).unwrap(), (1764547200, 42));
        for bad in [
            "x",
            "!!!",
            &URL_SAFE_NO_PAD.encode("1764547200"),
            &URL_SAFE_NO_PAD.encode("a.1"),
            &URL_SAFE_NO_PAD.encode("1.0"),
            &URL_SAFE_NO_PAD.encode("-1.5"),
            &URL_SAFE_NO_PAD.encode("1.2.3"),
        ] {
            let e = decode_cursor(bad).unwrap_err().to_string();
            assert!(e.contains("cursor is malformed"), "{bad}: {e}");
        }
    }

    #[test]
    fn each_bad_filter_is_named() {
        assert!(message(&ask(|a| a.status = Some("SUCCESS".into()))).contains("status"));
        assert!(message(&ask(|a| a.trade_type = Some("APP".into()))).contains("tradeType"));
        assert!(message(&ask(|a| a.api = Some("v1".into()))).contains("api"));
        assert!(message(&ask(|a| a.from = Some("yesterday".into()))).contains("from"));
        assert!(message(&ask(|a| a.min_fen = Some("1.5".into()))).contains("minFen"));
        assert!(message(&ask(|a| a.max_fen = Some("-1".into()))).contains("maxFen"));
        for limit in ["0", "201", "ten"] {
            assert!(message(&ask(|a| a.limit = Some(limit.into()))).contains("limit"));
        }
        let e = message(&ask(|a| {
            a.from = Some("10".into());
            a.to = Some("10".into());
        }));
        assert!(e.contains("before"), "{e}");
        let e = message(&ask(|a| {
            a.min_fen = Some("10".into());
            a.max_fen = Some("9".into());
        }));
        assert!(e.contains("minFen"), "{e}");
    }

    #[test]
    fn empty_values_are_no_filter_and_the_limit_defaults_to_50() {
        let (f, limit) = parse_ask(&ask(|a| {
            a.status = Some(String::new());
            a.q = Some("  ".into());
        }))
        .unwrap();
        assert_eq!((f, limit), (OrderFilter::default(), DEFAULT_LIMIT));
        let (f, limit) = parse_ask(&ask(|a| {
            a.status = Some("PAID".into());
            a.limit = Some("200".into());
        }))
        .unwrap();
        assert_eq!((f.status, limit), (Some(Status::Paid), 200));
    }
}
