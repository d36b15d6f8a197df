//! Orders, notifications and transitions in the database. Every status change
//! goes through [`settle_paid`], [`settle_closed`] or
//! `refund_store::settle_refunded`: one conditional UPDATE inside a
//! transaction that first locks the order's row, so replicas racing on the
//! same order change it once; each writes its transition row and its merchant
//! event (outbox) in that same transaction ([`record_transition`]).

use diesel::prelude::*;
use serde::Serialize;
use shared::db::{Database, DbConnection, DbError, now_unix};

use crate::audit::Cause;
use crate::events::{self, RefundFacts};
use crate::schema::{pay_notifications, pay_order_transitions, pay_orders};

/// An order's status, as API.md names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    NotPay,
    Paid,
    Closed,
    Refund,
    PayError,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::NotPay => "NOTPAY",
            Status::Paid => "PAID",
            Status::Closed => "CLOSED",
            Status::Refund => "REFUND",
            Status::PayError => "PAYERROR",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "NOTPAY" => Status::NotPay,
            "PAID" => Status::Paid,
            "CLOSED" => Status::Closed,
            "REFUND" => Status::Refund,
            "PAYERROR" => Status::PayError,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = pay_orders)]
pub struct Order {
    pub id: i64,
    pub out_trade_no: String,
    pub user_id: i64,
    pub appid: String,
    pub openid: String,
    pub trade_type: String,
    pub amount_fen: i64,
    pub description: String,
    pub status: String,
    pub prepay_id: Option<String>,
    pub pay_url: Option<String>,
    pub redirect_url: Option<String>,
    pub transaction_id: Option<String>,
    pub client_ip: String,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub expires_at: i64,
    pub paid_at: Option<i64>,
    pub next_check_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// Held by refunds in flight or done; never above `amount_fen`.
    pub refund_reserved_fen: i64,
    /// Refunds WeChat confirmed.
    pub refunded_fen: i64,
}

impl Order {
    pub fn status(&self) -> Status {
        Status::parse(&self.status).unwrap_or(Status::PayError)
    }
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = pay_orders)]
pub struct NewOrder {
    pub out_trade_no: String,
    pub user_id: i64,
    pub appid: String,
    pub openid: String,
    pub trade_type: String,
    pub amount_fen: i64,
    pub description: String,
    pub status: String,
    pub redirect_url: Option<String>,
    pub client_ip: String,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub expires_at: i64,
    pub next_check_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = pay_notifications)]
pub struct Notification {
    pub id: i64,
    pub out_trade_no: Option<String>,
    pub raw_body: String,
    pub sign_verified: bool,
    pub outcome: String,
    pub detail: String,
    pub received_at: i64,
    /// `payment` or `refund`.
    pub kind: String,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = pay_notifications)]
pub struct NewNotification {
    pub out_trade_no: Option<String>,
    pub raw_body: String,
    pub sign_verified: bool,
    pub outcome: String,
    pub detail: String,
    pub received_at: i64,
    /// `payment` or `refund`.
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = pay_order_transitions)]
pub struct Transition {
    pub id: i64,
    pub out_trade_no: String,
    pub from_status: String,
    pub to_status: String,
    /// `notify`, `query` (GET ?sync=true), `reconcile`, `close`,
    /// `unifiedorder`, `refund`, `refund_notify`.
    pub source: String,
    pub at: i64,
    /// The request (or background pass, `reconcile-<n>`) that made the change.
    pub request_id: Option<String>,
}

pub async fn insert_order(db: &Database, order: NewOrder) -> Result<Order, DbError> {
    db.run(move |conn| {
        diesel::insert_into(pay_orders::table)
            .values(&order)
            .execute(conn)?;
        load(conn, &order.out_trade_no)?.ok_or(DbError::NotFound)
    })
    .await
}

pub(crate) fn load(conn: &mut DbConnection, no: &str) -> Result<Option<Order>, DbError> {
    Ok(pay_orders::table
        .filter(pay_orders::out_trade_no.eq(no))
        .select(Order::as_select())
        .first(conn)
        .optional()?)
}

pub async fn get(db: &Database, out_trade_no: &str) -> Result<Option<Order>, DbError> {
    let no = out_trade_no.to_owned();
    db.run(move |conn| load(conn, &no)).await
}

pub async fn by_idempotency_key(
    db: &Database,
    user_id: i64,
    key: &str,
) -> Result<Option<Order>, DbError> {
    let key = key.to_owned();
    db.run(move |conn| {
        Ok(pay_orders::table
            .filter(pay_orders::user_id.eq(user_id))
            .filter(pay_orders::idempotency_key.eq(key))
            .select(Order::as_select())
            .first(conn)
            .optional()?)
    })
    .await
}

/// Records what unifiedorder answered; the first answer stays.
pub async fn set_prepay(
    db: &Database,
    out_trade_no: &str,
    prepay_id: &str,
    pay_url: Option<String>,
) -> Result<Order, DbError> {
    let (no, prepay_id) = (out_trade_no.to_owned(), prepay_id.to_owned());
    db.run(move |conn| {
        diesel::update(
            pay_orders::table
                .filter(pay_orders::out_trade_no.eq(&no))
                .filter(pay_orders::prepay_id.is_null()),
        )
        .set((
            pay_orders::prepay_id.eq(&prepay_id),
            pay_orders::pay_url.eq(&pay_url),
            pay_orders::updated_at.eq(now_unix()),
        ))
        .execute(conn)?;
        load(conn, &no)?.ok_or(DbError::NotFound)
    })
    .await
}

/// Locks the order's row until the transaction ends, with a no-op UPDATE: a
/// row lock on PostgreSQL (a concurrent settler waits, then sees the outcome),
/// the database's write lock on SQLite (taken before any read, so a deferred
/// transaction never has to upgrade). Returns the order as it now stands.
pub(crate) fn lock_order(conn: &mut DbConnection, no: &str) -> Result<Option<Order>, DbError> {
    diesel::update(pay_orders::table.filter(pay_orders::out_trade_no.eq(no)))
        .set(pay_orders::updated_at.eq(pay_orders::updated_at))
        .execute(conn)?;
    load(conn, no)
}

/// Records that `no` went from `from` to its current status (re-read here, so
/// the event carries the order as committed): the transition row and the
/// merchant event, inside the caller's transaction.
pub(crate) fn record_transition(
    conn: &mut DbConnection,
    no: &str,
    from: Status,
    cause: &Cause,
    refund: Option<&RefundFacts>,
) -> Result<(), DbError> {
    let order = load(conn, no)?.ok_or(DbError::NotFound)?;
    diesel::insert_into(pay_order_transitions::table)
        .values((
            pay_order_transitions::out_trade_no.eq(no),
            pay_order_transitions::from_status.eq(from.as_str()),
            pay_order_transitions::to_status.eq(order.status().as_str()),
            pay_order_transitions::source.eq(cause.source),
            pay_order_transitions::at.eq(now_unix()),
            pay_order_transitions::request_id.eq(&cause.request_id),
        ))
        .execute(conn)?;
    events::enqueue(conn, &order, from, cause, refund)
}

/// What WeChat reports about a payment (notification or orderquery).
#[derive(Debug, Clone)]
pub struct PaidReport {
    pub transaction_id: String,
    /// Checked against the order when present; notifications always carry it.
    pub total_fee: Option<i64>,
    pub appid: Option<String>,
    pub mch_id: Option<String>,
    pub paid_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// NOTPAY → PAID happened now.
    Applied,
    /// Already PAID: nothing changed.
    AlreadyPaid,
    UnknownOrder,
    /// The report disagrees with the order (appid, mch_id, amount).
    Mismatch(String),
    /// The order is in a state that cannot become PAID (e.g. CLOSED).
    NotPayable(Status),
}

impl Settled {
    pub fn outcome(&self) -> &'static str {
        match self {
            Settled::Applied => "applied",
            Settled::AlreadyPaid => "duplicate",
            Settled::UnknownOrder => "unknown_order",
            Settled::Mismatch(_) => "mismatch",
            Settled::NotPayable(_) => "not_payable",
        }
    }
}

/// The one way an order becomes PAID. Runs inside the caller's transaction.
pub fn settle_paid(
    conn: &mut DbConnection,
    no: &str,
    report: &PaidReport,
    mch_id: &str,
    cause: &Cause,
) -> Result<Settled, DbError> {
    let Some(order) = lock_order(conn, no)? else {
        return Ok(Settled::UnknownOrder);
    };
    if let Some(appid) = &report.appid
        && *appid != order.appid
    {
        return Ok(Settled::Mismatch(format!(
            "appid {appid} differs from the order's {}",
            order.appid
        )));
    }
    if let Some(m) = &report.mch_id
        && m != mch_id
    {
        return Ok(Settled::Mismatch(format!("mch_id {m} is not ours")));
    }
    if let Some(fee) = report.total_fee
        && fee != order.amount_fen
    {
        return Ok(Settled::Mismatch(format!(
            "total_fee {fee} differs from the order's {}",
            order.amount_fen
        )));
    }
    match order.status() {
        Status::Paid | Status::Refund => {
            if order.transaction_id.as_deref() != Some(report.transaction_id.as_str()) {
                tracing::warn!(
                    out_trade_no = no,
                    "paid order reported with another transaction_id"
                );
            }
            return Ok(Settled::AlreadyPaid);
        }
        Status::NotPay => {}
        other => return Ok(Settled::NotPayable(other)),
    }
    let now = now_unix();
    let changed = diesel::update(
        pay_orders::table
            .filter(pay_orders::out_trade_no.eq(no))
            .filter(pay_orders::status.eq(Status::NotPay.as_str())),
    )
    .set((
        pay_orders::status.eq(Status::Paid.as_str()),
        pay_orders::transaction_id.eq(&report.transaction_id),
        pay_orders::paid_at.eq(report.paid_at),
        pay_orders::updated_at.eq(now),
    ))
    .execute(conn)?;
    if changed == 1 {
        record_transition(conn, no, Status::NotPay, cause, None)?;
        Ok(Settled::Applied)
    } else {
        // Someone else settled it between our lock and here (cannot happen
        // while the row lock holds; kept as the guard the UPDATE is).
        match load(conn, no)?.map(|o| o.status()) {
            Some(Status::Paid) => Ok(Settled::AlreadyPaid),
            Some(s) => Ok(Settled::NotPayable(s)),
            None => Ok(Settled::UnknownOrder),
        }
    }
}

/// NOTPAY → CLOSED; false when the order was not NOTPAY.
pub fn settle_closed(conn: &mut DbConnection, no: &str, cause: &Cause) -> Result<bool, DbError> {
    lock_order(conn, no)?;
    let changed = diesel::update(
        pay_orders::table
            .filter(pay_orders::out_trade_no.eq(no))
            .filter(pay_orders::status.eq(Status::NotPay.as_str())),
    )
    .set((
        pay_orders::status.eq(Status::Closed.as_str()),
        pay_orders::updated_at.eq(now_unix()),
    ))
    .execute(conn)?;
    if changed == 1 {
        record_transition(conn, no, Status::NotPay, cause, None)?;
    }
    Ok(changed == 1)
}

pub fn insert_notification(conn: &mut DbConnection, n: &NewNotification) -> Result<(), DbError> {
    diesel::insert_into(pay_notifications::table)
        .values(n)
        .execute(conn)?;
    Ok(())
}

/// Claims up to `batch` NOTPAY orders whose check is due and pushes their next
/// check `retry_after` seconds on, in one transaction: on PostgreSQL with
/// `FOR UPDATE SKIP LOCKED`, so replicas claim disjoint sets. (SQLite has no
/// row locks; the caller holds a cache lock around the pass instead.)
pub async fn claim_due(
    db: &Database,
    now: i64,
    batch: i64,
    retry_after: i64,
) -> Result<Vec<Order>, DbError> {
    db.transaction(move |conn| {
        let due = pay_orders::table
            .filter(pay_orders::status.eq(Status::NotPay.as_str()))
            .filter(pay_orders::next_check_at.le(now))
            .order(pay_orders::next_check_at.asc())
            .limit(batch)
            .select(pay_orders::out_trade_no);
        let nos: Vec<String> = match conn {
            DbConnection::Pg(c) => due.for_update().skip_locked().load(c)?,
            DbConnection::Sqlite(c) => {
                // Take the write lock before reading: a concurrent claimer
                // then waits for this claim instead of failing to upgrade.
                diesel::sql_query(
                    "UPDATE pay_orders SET next_check_at = next_check_at WHERE id = -1",
                )
                .execute(c)?;
                due.load(c)?
            }
        };
        if nos.is_empty() {
            return Ok(Vec::new());
        }
        diesel::update(pay_orders::table.filter(pay_orders::out_trade_no.eq_any(&nos)))
            .set(pay_orders::next_check_at.eq(now + retry_after))
            .execute(conn)?;
        Ok(pay_orders::table
            .filter(pay_orders::out_trade_no.eq_any(&nos))
            .select(Order::as_select())
            .load(conn)?)
    })
    .await
}

/// Every transition of an order, oldest first (operators and tests).
pub async fn transitions(db: &Database, out_trade_no: &str) -> Result<Vec<Transition>, DbError> {
    let no = out_trade_no.to_owned();
    db.run(move |conn| {
        Ok(pay_order_transitions::table
            .filter(pay_order_transitions::out_trade_no.eq(no))
            .order(pay_order_transitions::id.asc())
            .select(Transition::as_select())
            .load(conn)?)
    })
    .await
}

/// Every notification received (payment and refund), oldest first;
/// `out_trade_no` None lists all.
pub async fn notifications(
    db: &Database,
    out_trade_no: Option<&str>,
) -> Result<Vec<Notification>, DbError> {
    let no = out_trade_no.map(str::to_owned);
    db.run(move |conn| {
        let mut q = pay_notifications::table
            .order(pay_notifications::id.asc())
            .select(Notification::as_select())
            .into_boxed();
        if let Some(no) = no {
            q = q.filter(pay_notifications::out_trade_no.eq(no));
        }
        Ok(q.load(conn)?)
    })
    .await
}

/// How many orders are in each status.
pub async fn count_by_status(db: &Database) -> Result<Vec<(String, i64)>, DbError> {
    db.run(|conn| {
        Ok(pay_orders::table
            .group_by(pay_orders::status)
            .select((pay_orders::status, diesel::dsl::count_star()))
            .load(conn)?)
    })
    .await
}
