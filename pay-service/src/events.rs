//! Merchant events: an outbox row per PAID, REFUND and CLOSED transition,
//! written in the transaction that makes the change ([`enqueue`]), and the
//! dispatcher that POSTs them to `MERCHANT_WEBHOOK_URL`, signed (API.md §4):
//! `X-Wxpay-Timestamp` and `X-Wxpay-Signature` = hex HMAC-SHA256 with
//! `MERCHANT_WEBHOOK_SECRET` over `timestamp + "\n" + body`.
//!
//! Delivery is at least once and in order per order: an event is claimed only
//! when no earlier event of its order is undelivered, so event N+1 waits until
//! N is acknowledged (any 2xx). Replicas claim disjoint rows with
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL; on SQLite a cache lock serialises
//! passes. A claim leases the row for [`WebhookConfig::lease`]; a replica that
//! dies mid-delivery leaves it to be sent again after the lease.
//!
//! Listing (`GET /api/pay/admin/events?status=`): `delivered`; `failed` = not
//! delivered after `WEBHOOK_FAILED_AFTER` attempts or more (still retried, at
//! the longest backoff); `pending` = not delivered, fewer attempts than that.

use std::time::Duration;

use diesel::dsl::{exists, not};
use diesel::prelude::*;
use serde::Serialize;
use shared::db::{Database, DbConnection, DbError, now_unix};

use crate::audit::Cause;
use crate::config::WebhookConfig;
use crate::error::PayError;
use crate::metrics;
use crate::schema::pay_events;
use crate::state::PayState;
use crate::store::{Order, Status};
use crate::worker;

/// SQLite has no row locks to skip: passes are serialised by this cache lock.
const LOCK_KEY: &str = "pay:events:lock";
/// Claim rounds per pass: each round can release the next event of every
/// order whose previous one was just acknowledged.
const MAX_ROUNDS: usize = 32;

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

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Writes the event for `order` (as it stands after the change) inside the
/// caller's transaction. Statuses without an event are skipped.
pub(crate) fn enqueue(
    conn: &mut DbConnection,
    order: &Order,
    from: Status,
    cause: &Cause,
    refund: Option<&RefundFacts>,
) -> Result<(), DbError> {
    let Some(kind) = event_type(order.status()) else {
        return Ok(());
    };
    let now = now_unix();
    let payload = serde_json::json!({
        "type": kind,
        "outTradeNo": order.out_trade_no,
        "status": order.status(),
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
    diesel::insert_into(pay_events::table)
        .values((
            pay_events::out_trade_no.eq(&order.out_trade_no),
            pay_events::event_type.eq(kind),
            pay_events::payload.eq(payload.to_string()),
            pay_events::delivered.eq(false),
            pay_events::attempts.eq(0i64),
            pay_events::next_attempt_ms.eq(now_ms()),
            pay_events::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = pay_events)]
pub struct Event {
    pub id: i64,
    pub out_trade_no: String,
    pub event_type: String,
    pub payload: String,
    pub delivered: bool,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub created_at: i64,
}

impl Event {
    /// The JSON body sent: the stored payload plus `eventId`, the receiver's
    /// key for dropping duplicates.
    pub fn body(&self) -> String {
        let mut v: serde_json::Value =
            serde_json::from_str(&self.payload).unwrap_or_else(|_| serde_json::json!({}));
        if let Some(map) = v.as_object_mut() {
            map.insert("eventId".into(), self.id.into());
        }
        v.to_string()
    }
}

/// The listing's filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventFilter {
    Pending,
    Failed,
    Delivered,
}

impl EventFilter {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(EventFilter::Pending),
            "failed" => Some(EventFilter::Failed),
            "delivered" => Some(EventFilter::Delivered),
            _ => None,
        }
    }
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

impl EventView {
    fn of(e: Event, failed_after: i64) -> Self {
        let state = if e.delivered {
            "delivered"
        } else if e.attempts >= failed_after {
            "failed"
        } else {
            "pending"
        };
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
    db: &Database,
    filter: EventFilter,
    failed_after: i64,
    limit: i64,
) -> Result<Vec<EventView>, DbError> {
    db.run(move |conn| {
        let mut q = pay_events::table
            .order(pay_events::id.asc())
            .limit(limit)
            .select(Event::as_select())
            .into_boxed();
        q = match filter {
            EventFilter::Delivered => q.filter(pay_events::delivered.eq(true)),
            EventFilter::Failed => q
                .filter(pay_events::delivered.eq(false))
                .filter(pay_events::attempts.ge(failed_after)),
            EventFilter::Pending => q
                .filter(pay_events::delivered.eq(false))
                .filter(pay_events::attempts.lt(failed_after)),
        };
        let rows: Vec<Event> = q.load(conn)?;
        Ok(rows
            .into_iter()
            .map(|e| EventView::of(e, failed_after))
            .collect())
    })
    .await
}

/// Every event of an order, oldest first (operators and tests).
pub async fn of_order(db: &Database, out_trade_no: &str) -> Result<Vec<Event>, DbError> {
    let no = out_trade_no.to_owned();
    db.run(move |conn| {
        Ok(pay_events::table
            .filter(pay_events::out_trade_no.eq(no))
            .order(pay_events::id.asc())
            .select(Event::as_select())
            .load(conn)?)
    })
    .await
}

/// Claims up to `batch` due events, each the oldest undelivered one of its
/// order, and leases them until `now + lease`.
async fn claim(db: &Database, batch: i64, lease: Duration) -> Result<Vec<Event>, DbError> {
    let lease_ms = lease.as_millis() as i64;
    db.transaction(move |conn| {
        let now = now_ms();
        let earlier = diesel::alias!(pay_events as earlier);
        let due = pay_events::table
            .filter(pay_events::delivered.eq(false))
            .filter(pay_events::next_attempt_ms.le(now))
            .filter(not(exists(
                earlier
                    .filter(
                        earlier
                            .field(pay_events::out_trade_no)
                            .eq(pay_events::out_trade_no),
                    )
                    .filter(earlier.field(pay_events::delivered).eq(false))
                    .filter(earlier.field(pay_events::id).lt(pay_events::id)),
            )))
            .order(pay_events::id.asc())
            .limit(batch)
            .select(pay_events::id);
        let ids: Vec<i64> = match conn {
            DbConnection::Pg(c) => due.for_update().skip_locked().load(c)?,
            DbConnection::Sqlite(c) => {
                // Passes are serialised by the cache lock (see `dispatch_once`);
                // the write lock comes first so that this transaction never
                // has to upgrade while an order's transition is committing.
                diesel::sql_query("UPDATE pay_events SET attempts = attempts WHERE id = -1")
                    .execute(c)?;
                due.load(c)?
            }
        };
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        diesel::update(pay_events::table.filter(pay_events::id.eq_any(&ids)))
            .set(pay_events::next_attempt_ms.eq(now + lease_ms))
            .execute(conn)?;
        Ok(pay_events::table
            .filter(pay_events::id.eq_any(&ids))
            .order(pay_events::id.asc())
            .select(Event::as_select())
            .load(conn)?)
    })
    .await
}

async fn mark_delivered(db: &Database, id: i64) -> Result<(), DbError> {
    db.run(move |conn| {
        let now = now_unix();
        diesel::update(pay_events::table.filter(pay_events::id.eq(id)))
            .set((
                pay_events::delivered.eq(true),
                pay_events::delivered_at.eq(now),
                pay_events::attempts.eq(pay_events::attempts + 1),
                pay_events::last_attempt_at.eq(now),
                pay_events::last_error.eq(None::<String>),
            ))
            .execute(conn)?;
        Ok(())
    })
    .await
}

async fn mark_failed(
    db: &Database,
    event: &Event,
    error: String,
    backoff: Duration,
) -> Result<(), DbError> {
    let id = event.id;
    let next = now_ms() + backoff.as_millis() as i64;
    db.run(move |conn| {
        diesel::update(pay_events::table.filter(pay_events::id.eq(id)))
            .set((
                pay_events::attempts.eq(pay_events::attempts + 1),
                pay_events::last_attempt_at.eq(now_unix()),
                pay_events::last_error.eq(Some(error)),
                pay_events::next_attempt_ms.eq(next),
            ))
            .execute(conn)?;
        Ok(())
    })
    .await
}

/// `retry_base × 2^(attempts − 1)`, at most `retry_max`; `attempts` counts the
/// one that just failed.
pub fn backoff(cfg: &WebhookConfig, attempts: i64) -> Duration {
    let doublings = (attempts.max(1) - 1).min(30) as u32;
    cfg.retry_base
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(cfg.retry_max)
}

/// `hex(HMAC-SHA256(secret, timestamp + "\n" + body))`.
pub fn signature(secret: &str, timestamp: &str, body: &str) -> String {
    hex::encode(shared::sign::hmac_sha256(
        secret.as_bytes(),
        format!("{timestamp}\n{body}").as_bytes(),
    ))
}

/// One POST; Ok on any 2xx, else a short reason (never the URL: it may
/// carry a token).
async fn post(http: &reqwest::Client, cfg: &WebhookConfig, event: &Event) -> Result<(), String> {
    let body = event.body();
    let timestamp = now_unix().to_string();
    let sig = signature(cfg.secret.expose(), &timestamp, &body);
    let res = http
        .post(cfg.url.as_str())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Wxpay-Timestamp", &timestamp)
        .header("X-Wxpay-Signature", sig)
        .header("X-Wxpay-Event-Id", event.id.to_string())
        .body(body)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                "timed out".to_owned()
            } else if e.is_connect() {
                "connection failed".to_owned()
            } else {
                "request failed".to_owned()
            }
        })?;
    let status = res.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", status.as_u16()))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DispatchReport {
    /// Another replica held the pass lock (SQLite); nothing was done.
    pub skipped: bool,
    pub delivered: usize,
    pub failed: usize,
}

/// One dispatch pass. Safe on many replicas at once.
pub async fn dispatch_once(state: &PayState) -> Result<DispatchReport, PayError> {
    let Some(webhook) = state.webhook.clone() else {
        return Ok(DispatchReport::default());
    };
    let pass = pass(state, &webhook.http, &webhook.config);
    let report = worker::exclusive(state, LOCK_KEY, "events", pass).await?;
    Ok(report.unwrap_or(DispatchReport {
        skipped: true,
        ..Default::default()
    }))
}

async fn pass(
    state: &PayState,
    http: &reqwest::Client,
    cfg: &WebhookConfig,
) -> Result<DispatchReport, PayError> {
    let mut report = DispatchReport::default();
    for _ in 0..MAX_ROUNDS {
        let claimed = claim(&state.db, cfg.batch, cfg.lease()).await?;
        if claimed.is_empty() {
            break;
        }
        let mut progressed = false;
        for event in claimed {
            match post(http, cfg, &event).await {
                Ok(()) => {
                    mark_delivered(&state.db, event.id).await?;
                    metrics::EVENTS.with_label_values(&["delivered"]).inc();
                    report.delivered += 1;
                    progressed = true;
                }
                Err(why) => {
                    let attempts = event.attempts + 1;
                    tracing::warn!(event_id = event.id, out_trade_no = %event.out_trade_no, attempts, error = %why, "merchant event not acknowledged; retried later");
                    mark_failed(&state.db, &event, why, backoff(cfg, attempts)).await?;
                    metrics::EVENTS.with_label_values(&["failed"]).inc();
                    report.failed += 1;
                }
            }
        }
        if !progressed {
            break;
        }
    }
    Ok(report)
}

/// Runs passes every `interval` until the task is aborted.
pub(crate) async fn run(state: PayState, interval: Duration) {
    worker::every(state, interval, "event dispatch", |state| async move {
        dispatch_once(&state).await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hex_hmac_over_timestamp_newline_body() {
        // RFC 4231 test case 2 shape: key "Jefe", data as given.
        let sig = signature("Jefe", "what do ya want ", "for nothing?");
        // "what do ya want " + "\n" + "for nothing?" differs from the RFC's
        // data by the newline, so compare against the HMAC computed directly.
        let direct = hex::encode(shared::sign::hmac_sha256(
            b"Jefe",
            b"what do ya want \nfor nothing?",
        ));
        assert_eq!(sig, direct);
        assert_eq!(sig.len(), 64);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let cfg = WebhookConfig {
            url: "http://127.0.0.1:9/hook".parse().unwrap(),
            secret: shared::config::Secret::new("s"),
            interval: Duration::from_millis(10),
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_millis(350),
            failed_after: 5,
            timeout: Duration::from_secs(1),
            batch: 10,
        };
        assert_eq!(backoff(&cfg, 1), Duration::from_millis(100));
        assert_eq!(backoff(&cfg, 2), Duration::from_millis(200));
        assert_eq!(backoff(&cfg, 3), Duration::from_millis(350));
        assert_eq!(backoff(&cfg, 60), Duration::from_millis(350));
    }
}
