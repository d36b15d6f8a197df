//! Refunds in the database. The paid amount is never over-refunded: a refund
//! first reserves its amount on the order with one conditional UPDATE
//! (`refund_reserved_fen + X <= amount_fen`) in a transaction that has locked
//! the order's row, before WeChat is asked; a refusal releases it. A refund
//! WeChat confirms goes through [`settle_refunded`], the one way an order
//! becomes REFUND (transition row and merchant event in the same transaction).

use diesel::prelude::*;
use serde::Serialize;
use shared::db::{Database, DbConnection, DbError, now_unix};

use crate::audit::Cause;
use crate::events::RefundFacts;
use crate::schema::{pay_orders, pay_refunds};
use crate::store::{self, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RefundStatus {
    /// Amount reserved; WeChat's answer not known yet.
    Pending,
    /// WeChat accepted; the money is on its way.
    Processing,
    Success,
    /// WeChat refused or closed it; the reservation was released.
    Failed,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "PENDING",
            RefundStatus::Processing => "PROCESSING",
            RefundStatus::Success => "SUCCESS",
            RefundStatus::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PENDING" => RefundStatus::Pending,
            "PROCESSING" => RefundStatus::Processing,
            "SUCCESS" => RefundStatus::Success,
            "FAILED" => RefundStatus::Failed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = pay_refunds)]
pub struct Refund {
    pub id: i64,
    pub out_refund_no: String,
    pub out_trade_no: String,
    pub amount_fen: i64,
    pub reason: String,
    pub status: String,
    pub refund_id: Option<String>,
    pub error: Option<String>,
    pub request_id: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub succeeded_at: Option<i64>,
}

impl Refund {
    pub fn status(&self) -> RefundStatus {
        RefundStatus::parse(&self.status).unwrap_or(RefundStatus::Pending)
    }

    pub fn is_open(&self) -> bool {
        matches!(
            self.status(),
            RefundStatus::Pending | RefundStatus::Processing
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    /// The refund row exists, PENDING.
    Reserved,
    UnknownOrder,
    /// Only PAID and REFUND orders can be refunded.
    NotRefundable(Status),
    /// The amount exceeds what is left; `refundable` is what is.
    Exceeds {
        refundable: i64,
    },
}

/// Locks the refund's row (PostgreSQL), or takes SQLite's write lock, before
/// anything is read: a deferred SQLite transaction that reads first and
/// writes later fails instead of waiting when another writer got in between.
/// Lock order everywhere: refund row, then order row.
pub(crate) fn lock_refund(
    conn: &mut DbConnection,
    out_refund_no: &str,
) -> Result<Option<Refund>, DbError> {
    diesel::update(pay_refunds::table.filter(pay_refunds::out_refund_no.eq(out_refund_no)))
        .set(pay_refunds::updated_at.eq(pay_refunds::updated_at))
        .execute(conn)?;
    load_refund(conn, out_refund_no)
}

pub(crate) fn load_refund(
    conn: &mut DbConnection,
    out_refund_no: &str,
) -> Result<Option<Refund>, DbError> {
    Ok(pay_refunds::table
        .filter(pay_refunds::out_refund_no.eq(out_refund_no))
        .select(Refund::as_select())
        .first(conn)
        .optional()?)
}

/// Reserves `amount` of the order for a new refund `out_refund_no`, in the
/// caller's transaction.
pub fn reserve(
    conn: &mut DbConnection,
    out_trade_no: &str,
    amount: i64,
    reason: &str,
    out_refund_no: &str,
    request_id: &str,
) -> Result<Reserved, DbError> {
    let Some(order) = store::lock_order(conn, out_trade_no)? else {
        return Ok(Reserved::UnknownOrder);
    };
    let status = order.status();
    if !matches!(status, Status::Paid | Status::Refund) {
        return Ok(Reserved::NotRefundable(status));
    }
    let now = now_unix();
    // The guard itself: holds even if the row lock above were not there.
    let changed = diesel::update(
        pay_orders::table
            .filter(pay_orders::out_trade_no.eq(out_trade_no))
            .filter(pay_orders::status.eq_any([Status::Paid.as_str(), Status::Refund.as_str()]))
            .filter((pay_orders::refund_reserved_fen + amount).le(pay_orders::amount_fen)),
    )
    .set((
        pay_orders::refund_reserved_fen.eq(pay_orders::refund_reserved_fen + amount),
        pay_orders::updated_at.eq(now),
    ))
    .execute(conn)?;
    if changed != 1 {
        return Ok(Reserved::Exceeds {
            refundable: order.amount_fen - order.refund_reserved_fen,
        });
    }
    diesel::insert_into(pay_refunds::table)
        .values((
            pay_refunds::out_refund_no.eq(out_refund_no),
            pay_refunds::out_trade_no.eq(out_trade_no),
            pay_refunds::amount_fen.eq(amount),
            pay_refunds::reason.eq(reason),
            pay_refunds::status.eq(RefundStatus::Pending.as_str()),
            pay_refunds::request_id.eq(request_id),
            pay_refunds::created_at.eq(now),
            pay_refunds::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(Reserved::Reserved)
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
                .filter(pay_refunds::status.eq(RefundStatus::Pending.as_str())),
        )
        .set((
            pay_refunds::status.eq(RefundStatus::Processing.as_str()),
            pay_refunds::refund_id.eq(&id),
            pay_refunds::updated_at.eq(now_unix()),
        ))
        .execute(conn)?;
        Ok(())
    })
    .await
}

/// An open refund (PENDING or PROCESSING) → FAILED, its amount given back to
/// the order. False when it was not open.
pub fn release(conn: &mut DbConnection, out_refund_no: &str, why: &str) -> Result<bool, DbError> {
    let Some(refund) = lock_refund(conn, out_refund_no)? else {
        return Ok(false);
    };
    store::lock_order(conn, &refund.out_trade_no)?;
    let changed = diesel::update(
        pay_refunds::table
            .filter(pay_refunds::out_refund_no.eq(out_refund_no))
            .filter(pay_refunds::status.eq_any([
                RefundStatus::Pending.as_str(),
                RefundStatus::Processing.as_str(),
            ])),
    )
    .set((
        pay_refunds::status.eq(RefundStatus::Failed.as_str()),
        pay_refunds::error.eq(why),
        pay_refunds::updated_at.eq(now_unix()),
    ))
    .execute(conn)?;
    if changed == 1 {
        diesel::update(pay_orders::table.filter(pay_orders::out_trade_no.eq(&refund.out_trade_no)))
            .set((
                pay_orders::refund_reserved_fen
                    .eq(pay_orders::refund_reserved_fen - refund.amount_fen),
                pay_orders::updated_at.eq(now_unix()),
            ))
            .execute(conn)?;
    }
    Ok(changed == 1)
}

/// What WeChat reports about a successful refund (notification or refundquery).
#[derive(Debug, Clone)]
pub struct RefundReport {
    /// Checked against the refund when present.
    pub out_trade_no: Option<String>,
    pub refund_id: String,
    pub refund_fee: i64,
    pub succeeded_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundSettled {
    /// The refund is SUCCESS now, and the order REFUND (it was `from`).
    Applied {
        from: Status,
        out_trade_no: String,
    },
    /// Already SUCCESS: nothing changed.
    Duplicate,
    UnknownRefund,
    /// The report disagrees with the refund (order, amount).
    Mismatch(String),
}

impl RefundSettled {
    pub fn outcome(&self) -> &'static str {
        match self {
            RefundSettled::Applied { .. } => "applied",
            RefundSettled::Duplicate => "duplicate",
            RefundSettled::UnknownRefund => "unknown_refund",
            RefundSettled::Mismatch(_) => "mismatch",
        }
    }
}

/// The one way a refund becomes SUCCESS and its order REFUND. Runs inside the
/// caller's transaction.
pub fn settle_refunded(
    conn: &mut DbConnection,
    out_refund_no: &str,
    report: &RefundReport,
    cause: &Cause,
) -> Result<RefundSettled, DbError> {
    let Some(refund) = lock_refund(conn, out_refund_no)? else {
        return Ok(RefundSettled::UnknownRefund);
    };
    if let Some(no) = &report.out_trade_no
        && *no != refund.out_trade_no
    {
        return Ok(RefundSettled::Mismatch(format!(
            "out_trade_no {no} is not the refund's order"
        )));
    }
    if report.refund_fee != refund.amount_fen {
        return Ok(RefundSettled::Mismatch(format!(
            "refund_fee {} differs from the refund's {}",
            report.refund_fee, refund.amount_fen
        )));
    }
    let no = refund.out_trade_no.clone();
    let Some(order) = store::lock_order(conn, &no)? else {
        return Ok(RefundSettled::UnknownRefund);
    };
    match refund.status() {
        RefundStatus::Success => return Ok(RefundSettled::Duplicate),
        RefundStatus::Failed => {
            // Released on an earlier answer, yet WeChat paid it out: the money
            // is gone, so the order must hold it again.
            tracing::error!(out_trade_no = %no, out_refund_no, "WeChat reports a refund we had released as succeeded; reserving it again");
            diesel::update(pay_orders::table.filter(pay_orders::out_trade_no.eq(&no)))
                .set(
                    pay_orders::refund_reserved_fen
                        .eq(pay_orders::refund_reserved_fen + refund.amount_fen),
                )
                .execute(conn)?;
        }
        RefundStatus::Pending | RefundStatus::Processing => {}
    }
    let now = now_unix();
    diesel::update(pay_refunds::table.filter(pay_refunds::out_refund_no.eq(out_refund_no)))
        .set((
            pay_refunds::status.eq(RefundStatus::Success.as_str()),
            pay_refunds::refund_id.eq(&report.refund_id),
            pay_refunds::error.eq(None::<String>),
            pay_refunds::succeeded_at.eq(report.succeeded_at.unwrap_or(now)),
            pay_refunds::updated_at.eq(now),
        ))
        .execute(conn)?;
    diesel::update(pay_orders::table.filter(pay_orders::out_trade_no.eq(&no)))
        .set((
            pay_orders::refunded_fen.eq(pay_orders::refunded_fen + refund.amount_fen),
            pay_orders::status.eq(Status::Refund.as_str()),
            pay_orders::updated_at.eq(now),
        ))
        .execute(conn)?;
    let facts = RefundFacts {
        out_refund_no: out_refund_no.to_owned(),
        refund_id: Some(report.refund_id.clone()),
        amount_fen: refund.amount_fen,
    };
    store::record_transition(conn, &no, order.status(), cause, Some(&facts))?;
    Ok(RefundSettled::Applied {
        from: order.status(),
        out_trade_no: no,
    })
}

pub async fn get(db: &Database, out_refund_no: &str) -> Result<Option<Refund>, DbError> {
    let no = out_refund_no.to_owned();
    db.run(move |conn| load_refund(conn, &no)).await
}

/// An order's refunds, oldest first.
pub async fn of_order(db: &Database, out_trade_no: &str) -> Result<Vec<Refund>, DbError> {
    let no = out_trade_no.to_owned();
    db.run(move |conn| {
        Ok(pay_refunds::table
            .filter(pay_refunds::out_trade_no.eq(no))
            .order(pay_refunds::id.asc())
            .select(Refund::as_select())
            .load(conn)?)
    })
    .await
}

/// Open refunds untouched since `before` (Unix seconds), oldest first.
pub async fn open_since(db: &Database, before: i64, limit: i64) -> Result<Vec<Refund>, DbError> {
    db.run(move |conn| {
        Ok(pay_refunds::table
            .filter(pay_refunds::status.eq_any([
                RefundStatus::Pending.as_str(),
                RefundStatus::Processing.as_str(),
            ]))
            .filter(pay_refunds::updated_at.le(before))
            .order(pay_refunds::updated_at.asc())
            .limit(limit)
            .select(Refund::as_select())
            .load(conn)?)
    })
    .await
}
