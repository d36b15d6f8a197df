//! `pay_reconciliations` (one row per Beijing day whose bill was compared;
//! a new run replaces it), and the reads reconciliation compares a bill
//! with: the day's payments and refunds here, and the notifications stored
//! for an order.

use diesel::prelude::*;
use shared::db::{Database, DbError};

use super::orders::Order;
use super::outbox::{self, NewEvent};
use super::refunds::Refund;
use super::schema::{pay_notifications, pay_orders, pay_refunds};
use super::types::{RefundStatus, Status};
use super::with_reason;

diesel::table! {
    pay_reconciliations (bill_date) {
        bill_date -> Text,
        api -> Text,
        bill_rows -> BigInt,
        matched -> BigInt,
        discrepancies -> BigInt,
        result -> Text,
        reconciled_at -> BigInt,
    }
}

/// A day's stored result; `result` is the JSON the admin route answers.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = pay_reconciliations)]
pub struct Reconciliation {
    /// `YYYY-MM-DD`, Beijing time.
    pub bill_date: String,
    /// `v2` or `v3`: the API the bill came from.
    pub api: String,
    pub bill_rows: i64,
    pub matched: i64,
    pub discrepancies: i64,
    pub result: String,
    pub reconciled_at: i64,
}

/// Stores `r`, replacing the day's previous result, with the merchant
/// events of its new discrepancies, in one transaction.
pub async fn replace(
    db: &Database,
    r: Reconciliation,
    events: Vec<NewEvent>,
) -> Result<(), DbError> {
    db.transaction(move |conn| {
        diesel::delete(
            pay_reconciliations::table.filter(pay_reconciliations::bill_date.eq(&r.bill_date)),
        )
        .execute(conn)?;
        diesel::insert_into(pay_reconciliations::table)
            .values(&r)
            .execute(conn)?;
        for e in &events {
            outbox::insert(conn, e)?;
        }
        Ok(())
    })
    .await
}

pub async fn get(db: &Database, bill_date: &str) -> Result<Option<Reconciliation>, DbError> {
    let date = bill_date.to_owned();
    db.run(move |conn| {
        Ok(pay_reconciliations::table
            .filter(pay_reconciliations::bill_date.eq(&date))
            .select(Reconciliation::as_select())
            .first(conn)
            .optional()?)
    })
    .await
}

/// Orders paid (PAID, or REFUND since) with `paid_at` in `[from, to)`.
pub async fn paid_between(db: &Database, from: i64, to: i64) -> Result<Vec<Order>, DbError> {
    db.run(move |conn| {
        pay_orders::table
            .filter(pay_orders::paid_at.ge(from))
            .filter(pay_orders::paid_at.lt(to))
            .filter(pay_orders::status.eq_any([Status::Paid, Status::Refund]))
            .select(Order::as_select())
            .load(conn)
            .map_err(with_reason)
            .map_err(Into::into)
    })
    .await
}

/// Refunds that succeeded with `succeeded_at` in `[from, to)`.
pub async fn refunds_succeeded_between(
    db: &Database,
    from: i64,
    to: i64,
) -> Result<Vec<Refund>, DbError> {
    db.run(move |conn| {
        pay_refunds::table
            .filter(pay_refunds::status.eq(RefundStatus::Success))
            .filter(pay_refunds::succeeded_at.ge(from))
            .filter(pay_refunds::succeeded_at.lt(to))
            .select(Refund::as_select())
            .load(conn)
            .map_err(with_reason)
            .map_err(Into::into)
    })
    .await
}

/// The outcome of the latest notification stored for the order, if any
/// (`applied`, `duplicate`, `mismatch`, …).
pub async fn last_notification(
    db: &Database,
    out_trade_no: &str,
) -> Result<Option<String>, DbError> {
    let no = out_trade_no.to_owned();
    db.run(move |conn| {
        Ok(pay_notifications::table
            .filter(pay_notifications::out_trade_no.eq(&no))
            .order(pay_notifications::id.desc())
            .select(pay_notifications::outcome)
            .first(conn)
            .optional()?)
    })
    .await
}
