//! `pay_events`, the outbox of merchant events: written with the transition
//! that causes each ([`super::transitions::record`]), claimed and marked by
//! the dispatcher.
//!
//! Claims: an event is claimed only when no earlier event of its order is
//! undelivered, so event N+1 waits until N is acknowledged. Replicas claim
//! disjoint rows with `FOR UPDATE SKIP LOCKED` on PostgreSQL; on SQLite the
//! caller serialises passes with a cache lock. A claim leases the row.

use std::time::Duration;

use diesel::dsl::{exists, not};
use diesel::prelude::*;
use shared::db::{Database, DbConnection, DbError, now_unix};

use super::schema::pay_events;

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
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

/// An event about to be written: undelivered, never attempted.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub out_trade_no: String,
    pub event_type: &'static str,
    pub payload: String,
    pub next_attempt_ms: i64,
    pub created_at: i64,
}

pub(super) fn insert(conn: &mut DbConnection, e: &NewEvent) -> Result<(), DbError> {
    diesel::insert_into(pay_events::table)
        .values((
            pay_events::out_trade_no.eq(&e.out_trade_no),
            pay_events::event_type.eq(e.event_type),
            pay_events::payload.eq(&e.payload),
            pay_events::delivered.eq(false),
            pay_events::attempts.eq(0i64),
            pay_events::next_attempt_ms.eq(e.next_attempt_ms),
            pay_events::created_at.eq(e.created_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// The listing's filter: `failed` = undelivered after `failed_after`
/// attempts or more, `pending` = undelivered with fewer.
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

/// Events in `filter`, oldest first, at most `limit`.
pub async fn list(
    db: &Database,
    filter: EventFilter,
    failed_after: i64,
    limit: i64,
) -> Result<Vec<Event>, DbError> {
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
        Ok(q.load(conn)?)
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
pub async fn claim(db: &Database, batch: i64, lease: Duration) -> Result<Vec<Event>, DbError> {
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
                // Passes are serialised by the caller's cache lock; the write
                // lock comes first so that this transaction never has to
                // upgrade while an order's transition is committing.
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

pub async fn mark_delivered(db: &Database, id: i64) -> Result<(), DbError> {
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

/// Counts a failed attempt; the next one is due at `next_attempt_ms`.
pub async fn mark_failed(
    db: &Database,
    id: i64,
    error: String,
    next_attempt_ms: i64,
) -> Result<(), DbError> {
    db.run(move |conn| {
        diesel::update(pay_events::table.filter(pay_events::id.eq(id)))
            .set((
                pay_events::attempts.eq(pay_events::attempts + 1),
                pay_events::last_attempt_at.eq(now_unix()),
                pay_events::last_error.eq(Some(error)),
                pay_events::next_attempt_ms.eq(next_attempt_ms),
            ))
            .execute(conn)?;
        Ok(())
    })
    .await
}
