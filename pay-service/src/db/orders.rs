//! `pay_orders`: rows, reads, and the conditional UPDATEs the domain's
//! transitions are made of. Every status change is guarded in SQL by the
//! status it starts from, so a race changes an order once whatever the
//! caller checked before.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use shared::db::{Database, DbConnection, DbError, Prepared, now_unix};
use shared::db_run;

use super::schema::pay_orders;
use super::types::{ApiVersion, Status, TradeType};
use super::with_reason;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = pay_orders)]
pub struct Order {
    pub id: i64,
    pub out_trade_no: String,
    pub user_id: i64,
    pub appid: String,
    pub openid: String,
    pub trade_type: TradeType,
    pub amount_fen: i64,
    pub description: String,
    pub status: Status,
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
    /// The API the order was created with; every later call uses it.
    pub api: ApiVersion,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = pay_orders)]
pub struct NewOrder {
    pub out_trade_no: String,
    pub user_id: i64,
    pub appid: String,
    pub openid: String,
    pub trade_type: TradeType,
    pub amount_fen: i64,
    pub description: String,
    pub status: Status,
    pub redirect_url: Option<String>,
    pub client_ip: String,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub expires_at: i64,
    pub next_check_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub api: ApiVersion,
}

pub async fn insert(db: &Database, order: NewOrder) -> Result<Order, DbError> {
    db.run(move |conn| {
        diesel::insert_into(pay_orders::table)
            .values(&order)
            .execute(conn)?;
        load(conn, &order.out_trade_no)?.ok_or(DbError::NotFound)
    })
    .await
}

pub fn load(conn: &mut DbConnection, no: &str) -> Result<Option<Order>, DbError> {
    Ok(pay_orders::table
        .filter(pay_orders::out_trade_no.eq(no))
        .select(Order::as_select())
        .first(conn)
        .optional()
        .map_err(with_reason)?)
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
            .optional()
            .map_err(with_reason)?)
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

/// Locks the order's row until the transaction ends and returns the order as
/// it now stands. PostgreSQL: `SELECT … FOR UPDATE`, one statement (a
/// concurrent settler waits, then sees the outcome). SQLite has no row locks:
/// a no-op UPDATE first takes the database's write lock before any read, so a
/// deferred transaction never has to upgrade; then the read.
pub fn lock(conn: &mut DbConnection, no: &str) -> Result<Option<Order>, DbError> {
    if let DbConnection::Pg(c) = conn {
        return Ok(pay_orders::table
            .filter(pay_orders::out_trade_no.eq(no))
            .select(Order::as_select())
            .for_update()
            .first(c)
            .optional()
            .map_err(with_reason)?);
    }
    diesel::update(pay_orders::table.filter(pay_orders::out_trade_no.eq(no)))
        .set(pay_orders::updated_at.eq(pay_orders::updated_at))
        .execute(conn)?;
    load(conn, no)
}

/// A payment as reported, with what the order must match to take it.
#[derive(Debug, Clone, Copy)]
pub struct Payment<'a> {
    pub transaction_id: &'a str,
    pub paid_at: i64,
    pub amount_fen: i64,
    /// None: not reported, so not compared.
    pub appid: Option<&'a str>,
}

/// NOTPAY → PAID in one conditional `UPDATE … RETURNING`, when the order is
/// NOTPAY, for `amount_fen` and (when given) of `appid`: the order as
/// changed, or None when nothing matched (unknown order, another status, a
/// mismatch; the caller reads why). The UPDATE takes the row lock itself: a
/// concurrent payer waits for this transaction, then matches nothing.
///
/// Every applied notification runs it, so it is a [`Prepared`] statement:
/// planned once per connection (issue #16). The columns are named, not `*`,
/// so that a column a later migration adds cannot change a prepared
/// statement's result under a running replica.
pub fn pay(conn: &mut DbConnection, no: &str, p: &Payment) -> Result<Option<Order>, DbError> {
    let now = now_unix();
    let paid = db_run!(conn => {
        Prepared::new(PAY)
            .bind::<Text, _>(Status::Paid)
            .bind::<Text, _>(p.transaction_id)
            .bind::<BigInt, _>(p.paid_at)
            .bind::<BigInt, _>(now)
            .bind::<Text, _>(no)
            .bind::<Text, _>(Status::NotPay)
            .bind::<BigInt, _>(p.amount_fen)
            .bind::<Nullable<Text>, _>(p.appid)
            .get_result::<Order>(conn)
            .optional()
    });
    Ok(paid.map_err(with_reason)?)
}

const PAY: &str = "UPDATE pay_orders \
     SET status = $1, transaction_id = $2, paid_at = $3, updated_at = $4 \
     WHERE out_trade_no = $5 AND status = $6 AND amount_fen = $7 \
     AND ($8 IS NULL OR appid = $8) \
     RETURNING id, out_trade_no, user_id, appid, openid, trade_type, amount_fen, \
     description, status, prepay_id, pay_url, redirect_url, transaction_id, client_ip, \
     idempotency_key, request_hash, expires_at, paid_at, next_check_at, created_at, \
     updated_at, refund_reserved_fen, refunded_fen, api";

/// NOTPAY → PAID with WeChat's transaction; false when it was not NOTPAY.
pub fn mark_paid(
    conn: &mut DbConnection,
    no: &str,
    transaction_id: &str,
    paid_at: i64,
) -> Result<bool, DbError> {
    let changed = diesel::update(
        pay_orders::table
            .filter(pay_orders::out_trade_no.eq(no))
            .filter(pay_orders::status.eq(Status::NotPay)),
    )
    .set((
        pay_orders::status.eq(Status::Paid),
        pay_orders::transaction_id.eq(transaction_id),
        pay_orders::paid_at.eq(paid_at),
        pay_orders::updated_at.eq(now_unix()),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// NOTPAY → CLOSED; false when it was not NOTPAY.
pub fn mark_closed(conn: &mut DbConnection, no: &str) -> Result<bool, DbError> {
    let changed = diesel::update(
        pay_orders::table
            .filter(pay_orders::out_trade_no.eq(no))
            .filter(pay_orders::status.eq(Status::NotPay)),
    )
    .set((
        pay_orders::status.eq(Status::Closed),
        pay_orders::updated_at.eq(now_unix()),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Holds `amount` more of a PAID or REFUND order for a refund; false when
/// that would exceed the paid amount (or the order cannot be refunded). The
/// guard itself: holds even without the caller's row lock.
pub fn reserve_refund(
    conn: &mut DbConnection,
    no: &str,
    amount: i64,
    now: i64,
) -> Result<bool, DbError> {
    let changed = diesel::update(
        pay_orders::table
            .filter(pay_orders::out_trade_no.eq(no))
            .filter(pay_orders::status.eq_any([Status::Paid, Status::Refund]))
            .filter((pay_orders::refund_reserved_fen + amount).le(pay_orders::amount_fen)),
    )
    .set((
        pay_orders::refund_reserved_fen.eq(pay_orders::refund_reserved_fen + amount),
        pay_orders::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Gives a released refund's `amount` back to the order.
pub fn release_refund(conn: &mut DbConnection, no: &str, amount: i64) -> Result<(), DbError> {
    diesel::update(pay_orders::table.filter(pay_orders::out_trade_no.eq(no)))
        .set((
            pay_orders::refund_reserved_fen.eq(pay_orders::refund_reserved_fen - amount),
            pay_orders::updated_at.eq(now_unix()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Holds `amount` again for a refund that was released, then paid out anyway.
pub fn reserve_refund_again(conn: &mut DbConnection, no: &str, amount: i64) -> Result<(), DbError> {
    diesel::update(pay_orders::table.filter(pay_orders::out_trade_no.eq(no)))
        .set(pay_orders::refund_reserved_fen.eq(pay_orders::refund_reserved_fen + amount))
        .execute(conn)?;
    Ok(())
}

/// A refund of `amount` succeeded: counted, and the order is REFUND.
pub fn mark_refunded(
    conn: &mut DbConnection,
    no: &str,
    amount: i64,
    now: i64,
) -> Result<(), DbError> {
    diesel::update(pay_orders::table.filter(pay_orders::out_trade_no.eq(no)))
        .set((
            pay_orders::refunded_fen.eq(pay_orders::refunded_fen + amount),
            pay_orders::status.eq(Status::Refund),
            pay_orders::updated_at.eq(now),
        ))
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
            .filter(pay_orders::status.eq(Status::NotPay))
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
            .load(conn)
            .map_err(with_reason)?)
    })
    .await
}

/// How many orders are in each status.
pub async fn count_by_status(db: &Database) -> Result<Vec<(Status, i64)>, DbError> {
    db.run(|conn| {
        Ok(pay_orders::table
            .group_by(pay_orders::status)
            .select((pay_orders::status, diesel::dsl::count_star()))
            .load(conn)
            .map_err(with_reason)?)
    })
    .await
}
