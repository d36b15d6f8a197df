//! `pay_refunds`: rows and their status changes, each guarded in SQL by the
//! statuses it may start from.

use diesel::prelude::*;
use shared::db::{Database, DbConnection, DbError, now_unix};

use super::schema::pay_refunds;
use super::types::RefundStatus;
use super::with_reason;

/// Statuses WeChat may still change: PENDING (our request's answer is
/// unknown), PROCESSING (accepted), CHANGE (waiting for an operator at the
/// merchant platform). Each holds its amount on the order.
pub const OPEN: [RefundStatus; 3] = [
    RefundStatus::Pending,
    RefundStatus::Processing,
    RefundStatus::Change,
];

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = pay_refunds)]
pub struct Refund {
    pub id: i64,
    pub out_refund_no: String,
    pub out_trade_no: String,
    pub amount_fen: i64,
    pub reason: String,
    pub status: RefundStatus,
    pub refund_id: Option<String>,
    pub error: Option<String>,
    pub request_id: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub succeeded_at: Option<i64>,
    /// The admin operator who asked for it.
    pub operator: Option<String>,
}

impl Refund {
    /// PENDING, PROCESSING or CHANGE: WeChat may still change it.
    pub fn is_open(&self) -> bool {
        OPEN.contains(&self.status)
    }
}

/// A refund about to be asked of WeChat.
#[derive(Debug, Clone)]
pub struct NewRefund<'a> {
    pub out_refund_no: &'a str,
    pub out_trade_no: &'a str,
    pub amount_fen: i64,
    pub reason: &'a str,
    pub request_id: &'a str,
    pub operator: &'a str,
}

/// Locks the refund's row (PostgreSQL), or takes SQLite's write lock, before
/// anything is read: a deferred SQLite transaction that reads first and
/// writes later fails instead of waiting when another writer got in between.
/// Lock order everywhere: refund row, then order row.
pub fn lock(conn: &mut DbConnection, out_refund_no: &str) -> Result<Option<Refund>, DbError> {
    diesel::update(pay_refunds::table.filter(pay_refunds::out_refund_no.eq(out_refund_no)))
        .set(pay_refunds::updated_at.eq(pay_refunds::updated_at))
        .execute(conn)?;
    load(conn, out_refund_no)
}

pub fn load(conn: &mut DbConnection, out_refund_no: &str) -> Result<Option<Refund>, DbError> {
    Ok(pay_refunds::table
        .filter(pay_refunds::out_refund_no.eq(out_refund_no))
        .select(Refund::as_select())
        .first(conn)
        .optional()
        .map_err(with_reason)?)
}

/// The refund row, PENDING, in the caller's transaction.
pub fn insert_pending(conn: &mut DbConnection, r: &NewRefund, now: i64) -> Result<(), DbError> {
    diesel::insert_into(pay_refunds::table)
        .values((
            pay_refunds::out_refund_no.eq(r.out_refund_no),
            pay_refunds::out_trade_no.eq(r.out_trade_no),
            pay_refunds::amount_fen.eq(r.amount_fen),
            pay_refunds::reason.eq(r.reason),
            pay_refunds::status.eq(RefundStatus::Pending),
            pay_refunds::request_id.eq(r.request_id),
            pay_refunds::operator.eq(r.operator),
            pay_refunds::created_at.eq(now),
            pay_refunds::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// PENDING → PROCESSING once WeChat accepted; a refund already settled (its
/// notification can beat the reply) is left as it is.
pub async fn mark_accepted(
    db: &Database,
    out_refund_no: &str,
    refund_id: &str,
) -> Result<(), DbError> {
    let (no, id) = (out_refund_no.to_owned(), refund_id.to_owned());
    db.run(move |conn| {
        diesel::update(
            pay_refunds::table
                .filter(pay_refunds::out_refund_no.eq(&no))
                .filter(pay_refunds::status.eq(RefundStatus::Pending)),
        )
        .set((
            pay_refunds::status.eq(RefundStatus::Processing),
            pay_refunds::refund_id.eq(&id),
            pay_refunds::error.eq(None::<String>),
            pay_refunds::updated_at.eq(now_unix()),
        ))
        .execute(conn)?;
        Ok(())
    })
    .await
}

/// A refund in one of `from` → FAILED with `why`; false when it was in
/// none of them. The statuses are the caller's proof: a refusal of a request
/// only ever proves that a still-PENDING refund will not happen (a racing
/// re-send may have had it accepted meanwhile), a REFUNDCLOSE proves it of
/// any open one.
pub fn mark_failed(
    conn: &mut DbConnection,
    out_refund_no: &str,
    why: &str,
    from: &[RefundStatus],
) -> Result<bool, DbError> {
    move_status(conn, out_refund_no, why, from, RefundStatus::Failed)
}

/// A refund in one of `from` → CHANGE with `why`; the caller sees to its
/// amount being reserved. False when it was in none of them.
pub fn mark_change(
    conn: &mut DbConnection,
    out_refund_no: &str,
    why: &str,
    from: &[RefundStatus],
) -> Result<bool, DbError> {
    move_status(conn, out_refund_no, why, from, RefundStatus::Change)
}

/// The conditional UPDATE behind both: only from one of `from`, so a
/// concurrent change of the row wins and this one reports false.
fn move_status(
    conn: &mut DbConnection,
    out_refund_no: &str,
    why: &str,
    from: &[RefundStatus],
    to: RefundStatus,
) -> Result<bool, DbError> {
    let changed = diesel::update(
        pay_refunds::table
            .filter(pay_refunds::out_refund_no.eq(out_refund_no))
            .filter(pay_refunds::status.eq_any(from)),
    )
    .set((
        pay_refunds::status.eq(to),
        pay_refunds::error.eq(why),
        pay_refunds::updated_at.eq(now_unix()),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// A PENDING refund whose request got no definite answer: `why` is kept and
/// `updated_at` moved, so that the next re-send waits `RECONCILE_AFTER_SECONDS`.
pub async fn note_unknown(db: &Database, out_refund_no: &str, why: &str) -> Result<(), DbError> {
    let (no, why) = (out_refund_no.to_owned(), why.to_owned());
    db.run(move |conn| {
        diesel::update(
            pay_refunds::table
                .filter(pay_refunds::out_refund_no.eq(&no))
                .filter(pay_refunds::status.eq(RefundStatus::Pending)),
        )
        .set((
            pay_refunds::error.eq(&why),
            pay_refunds::updated_at.eq(now_unix()),
        ))
        .execute(conn)?;
        Ok(())
    })
    .await
}

/// → SUCCESS with WeChat's refund id.
pub fn mark_success(
    conn: &mut DbConnection,
    out_refund_no: &str,
    refund_id: &str,
    succeeded_at: i64,
    now: i64,
) -> Result<(), DbError> {
    diesel::update(pay_refunds::table.filter(pay_refunds::out_refund_no.eq(out_refund_no)))
        .set((
            pay_refunds::status.eq(RefundStatus::Success),
            pay_refunds::refund_id.eq(refund_id),
            pay_refunds::error.eq(None::<String>),
            pay_refunds::succeeded_at.eq(succeeded_at),
            pay_refunds::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

pub async fn get(db: &Database, out_refund_no: &str) -> Result<Option<Refund>, DbError> {
    let no = out_refund_no.to_owned();
    db.run(move |conn| load(conn, &no)).await
}

/// An order's refunds, oldest first.
pub async fn of_order(db: &Database, out_trade_no: &str) -> Result<Vec<Refund>, DbError> {
    let no = out_trade_no.to_owned();
    db.run(move |conn| {
        Ok(pay_refunds::table
            .filter(pay_refunds::out_trade_no.eq(no))
            .order(pay_refunds::id.asc())
            .select(Refund::as_select())
            .load(conn)
            .map_err(with_reason)?)
    })
    .await
}

/// Claims up to `limit` open refunds untouched since `before` (Unix
/// seconds), oldest first, and moves their `updated_at` to `now`, in one
/// transaction: on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so that passes
/// on several replicas never pick the same refund (two concurrent re-sends of
/// one refund are what let a refusal race an acceptance), on SQLite under its
/// write lock. Moving `updated_at` also sends each visited refund to the back
/// of the queue: PROCESSING and CHANGE refunds, which nothing else touches,
/// would otherwise fill every batch and starve newer PENDING ones.
pub async fn claim_open(
    db: &Database,
    before: i64,
    limit: i64,
    now: i64,
) -> Result<Vec<Refund>, DbError> {
    db.transaction(move |conn| {
        let due = pay_refunds::table
            .filter(pay_refunds::status.eq_any(OPEN))
            .filter(pay_refunds::updated_at.le(before))
            .order((pay_refunds::updated_at.asc(), pay_refunds::id.asc()))
            .limit(limit)
            .select(pay_refunds::id);
        let ids: Vec<i64> = match conn {
            DbConnection::Pg(c) => due.for_update().skip_locked().load(c)?,
            DbConnection::Sqlite(c) => {
                // Take the write lock before reading: a concurrent claimer
                // then waits for this claim instead of failing to upgrade.
                diesel::sql_query("UPDATE pay_refunds SET updated_at = updated_at WHERE id = -1")
                    .execute(c)?;
                due.load(c)?
            }
        };
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        diesel::update(pay_refunds::table.filter(pay_refunds::id.eq_any(&ids)))
            .set(pay_refunds::updated_at.eq(now))
            .execute(conn)?;
        Ok(pay_refunds::table
            .filter(pay_refunds::id.eq_any(&ids))
            .order(pay_refunds::id.asc())
            .select(Refund::as_select())
            .load(conn)
            .map_err(with_reason)?)
    })
    .await
}
