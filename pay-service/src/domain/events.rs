//! Merchant events (API.md §4): what each PAID, REFUND and CLOSED transition
//! tells the merchant, written to the outbox in the transition's own
//! transaction ([`super::settle::record_change`]); how the admin listing
//! shows them; and what the dispatcher (`jobs`) claims, sends and marks.
//!
//! Listing (`GET /api/pay/admin/events?status=`): `delivered`; `failed` = not
//! delivered after `WEBHOOK_FAILED_AFTER` attempts or more (still retried, at
//! the longest backoff); `pending` = not delivered, fewer attempts than that.

use std::time::Duration;

use serde::Serialize;
use shared::db::{DbError, now_unix};

use super::audit::Cause;
use super::state::PayState;
use crate::db::Status;
use crate::db::orders::Order;
use crate::db::outbox::{self, Event, EventFilter, NewEvent, now_ms};

/// What a REFUND event says about the refund that caused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundFacts {
    pub out_refund_no: String,
    pub refund_id: Option<String>,
    pub amount_fen: i64,
}

fn event_type(status: Status) -> Option<&'static str> {
    match status {
        Status::Paid => Some("order.paid"),
        Status::Refund => Some("order.refund"),
        Status::Closed => Some("order.closed"),
        Status::NotPay | Status::PayError => None,
    }
}

/// The event for `order` as it stands after a change from `from`; None for
/// statuses that have none.
pub(super) fn new_event(
    order: &Order,
    from: Status,
    cause: &Cause,
    refund: Option<&RefundFacts>,
) -> Option<NewEvent> {
    let kind = event_type(order.status)?;
    let now = now_unix();
    let payload = serde_json::json!({
        "type": kind,
        "outTradeNo": order.out_trade_no,
        "status": order.status,
        "previousStatus": from,
        "amountFen": order.amount_fen,
        "refundedFen": order.refunded_fen,
        "tradeType": order.trade_type,
        "transactionId": order.transaction_id,
        "paidAt": order.paid_at,
        "refund": refund,
        "source": cause.source,
        "requestId": cause.request_id,
        "occurredAt": now,
    });
    Some(NewEvent {
        out_trade_no: order.out_trade_no.clone(),
        event_type: kind,
        payload: payload.to_string(),
        next_attempt_ms: now_ms(),
        created_at: now,
    })
}

/// The JSON body sent: the stored payload plus `eventId`, the receiver's
/// key for dropping duplicates.
pub fn body(event: &Event) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(&event.payload).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(map) = v.as_object_mut() {
        map.insert("eventId".into(), event.id.into());
    }
    v.to_string()
}

/// An event as `GET /api/pay/admin/events` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub id: i64,
    pub out_trade_no: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// `pending`, `failed` or `delivered`.
    pub state: &'static str,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<i64>,
    /// Unix milliseconds; meaningless once delivered.
    pub next_attempt_ms: i64,
    pub delivered_at: Option<i64>,
    pub created_at: i64,
    pub payload: serde_json::Value,
}

/// `delivered`; `failed` after `failed_after` attempts or more; else `pending`.
pub(super) fn state_of(e: &Event, failed_after: i64) -> &'static str {
    if e.delivered {
        "delivered"
    } else if e.attempts >= failed_after {
        "failed"
    } else {
        "pending"
    }
}

/// `WEBHOOK_FAILED_AFTER` (its default without a webhook configured).
pub(super) fn failed_after(state: &PayState) -> i64 {
    state
        .config
        .webhook
        .as_ref()
        .map(|w| w.failed_after)
        .unwrap_or(crate::config::DEFAULT_WEBHOOK_FAILED_AFTER)
}

impl EventView {
    fn of(e: Event, failed_after: i64) -> Self {
        let state = state_of(&e, failed_after);
        EventView {
            payload: serde_json::from_str(&e.payload).unwrap_or(serde_json::Value::Null),
            id: e.id,
            out_trade_no: e.out_trade_no,
            event_type: e.event_type,
            state,
            attempts: e.attempts,
            last_error: e.last_error,
            last_attempt_at: e.last_attempt_at,
            next_attempt_ms: e.next_attempt_ms,
            delivered_at: e.delivered_at,
            created_at: e.created_at,
        }
    }
}

/// Events in `filter`, oldest first, at most `limit`.
pub async fn list(
    state: &PayState,
    filter: EventFilter,
    limit: i64,
) -> Result<Vec<EventView>, DbError> {
    let failed_after = failed_after(state);
    let rows = outbox::list(&state.db, filter, failed_after, limit).await?;
    Ok(rows
        .into_iter()
        .map(|e| EventView::of(e, failed_after))
        .collect())
}

/// Claims up to `batch` due events (each the oldest undelivered one of its
/// order), leased for `lease`.
pub async fn claim(state: &PayState, batch: i64, lease: Duration) -> Result<Vec<Event>, DbError> {
    outbox::claim(&state.db, batch, lease).await
}

/// The merchant acknowledged the event.
pub async fn delivered(state: &PayState, id: i64) -> Result<(), DbError> {
    outbox::mark_delivered(&state.db, id).await
}

/// The merchant did not acknowledge: counted, and due again after `backoff`.
pub async fn not_delivered(
    state: &PayState,
    event: &Event,
    error: String,
    backoff: Duration,
) -> Result<(), DbError> {
    let next = now_ms() + backoff.as_millis() as i64;
    outbox::mark_failed(&state.db, event.id, error, next).await
}
