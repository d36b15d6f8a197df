//! The rules of refunds in the database. The paid amount is never
//! over-refunded: a refund first reserves its amount on the order with one
//! conditional UPDATE (`refund_reserved_fen + X <= amount_fen`) in a
//! transaction that has locked the order's row, before WeChat is asked; a
//! refusal releases it. A refund WeChat confirms goes through
//! [`settle_refunded`], the one way an order becomes REFUND (transition row
//! and merchant event in the same transaction). Each function runs inside the
//! caller's transaction. Lock order everywhere: refund row, then order row.

use shared::db::{DbConnection, DbError, now_unix};

use super::audit::Cause;
use super::events::RefundFacts;
use super::settle::record_change;
use crate::db::orders;
use crate::db::refunds::{self, NewRefund, Refund};
use crate::db::{RefundStatus, Status};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    /// The amount is held; the refund row exists, PENDING.
    Held,
    /// A refund with this out_refund_no exists already (the same
    /// Idempotency-Key, concurrently): nothing was reserved.
    Exists,
    UnknownOrder,
    /// Only PAID and REFUND orders can be refunded.
    NotRefundable(Status),
    /// The amount exceeds what is left; `refundable` is what is.
    Exceeds {
        refundable: i64,
    },
}

/// Reserves `refund.amount_fen` of its order for the new refund.
pub fn reserve(conn: &mut DbConnection, refund: &NewRefund) -> Result<Reserved, DbError> {
    let Some(order) = orders::lock(conn, refund.out_trade_no)? else {
        return Ok(Reserved::UnknownOrder);
    };
    // The same number made by a concurrent request (the same
    // Idempotency-Key): refunds are only inserted under the order's lock,
    // so it is committed and visible now. Checked with a plain read: were
    // the INSERT below to collide with it, PostgreSQL would make it wait for
    // whoever holds that refund's row (a notification settling it, which
    // then wants the order's row we hold): a deadlock.
    if refunds::load(conn, refund.out_refund_no)?.is_some() {
        return Ok(Reserved::Exists);
    }
    if !matches!(order.status, Status::Paid | Status::Refund) {
        return Ok(Reserved::NotRefundable(order.status));
    }
    let now = now_unix();
    if !orders::reserve_refund(conn, refund.out_trade_no, refund.amount_fen, now)? {
        return Ok(Reserved::Exceeds {
            refundable: order.amount_fen - order.refund_reserved_fen,
        });
    }
    refunds::insert_pending(conn, refund, now)?;
    Ok(Reserved::Held)
}

/// An open refund (PENDING, PROCESSING or CHANGE) → FAILED, its amount given
/// back to the order. Only for WeChat reporting the refund closed
/// (REFUNDCLOSE, CLOSED) by refundquery or notification: never for an
/// unknown outcome, nor for a refused request (see [`release_unsent`]).
/// False when it was not open.
pub fn release(conn: &mut DbConnection, out_refund_no: &str, why: &str) -> Result<bool, DbError> {
    release_from(conn, out_refund_no, why, &refunds::OPEN)
}

/// A refund WeChat refused to make → FAILED, its amount given back, only if
/// it is still PENDING: a refusal answers one request, and a concurrent
/// re-send of the same number (another replica's pass, an Idempotency-Key
/// replay) may have had it accepted meanwhile. False when it was not PENDING.
pub fn release_unsent(
    conn: &mut DbConnection,
    out_refund_no: &str,
    why: &str,
) -> Result<bool, DbError> {
    release_from(conn, out_refund_no, why, &[RefundStatus::Pending])
}

fn release_from(
    conn: &mut DbConnection,
    out_refund_no: &str,
    why: &str,
    from: &[RefundStatus],
) -> Result<bool, DbError> {
    let Some(refund) = refunds::lock(conn, out_refund_no)? else {
        return Ok(false);
    };
    orders::lock(conn, &refund.out_trade_no)?;
    let released = refunds::mark_failed(conn, out_refund_no, why, from)?;
    if released {
        orders::release_refund(conn, &refund.out_trade_no, refund.amount_fen)?;
    }
    Ok(released)
}

/// A refund WeChat reports as CHANGE (money could not reach the payer)
/// → CHANGE: an operator finishes it at the merchant platform, so the amount
/// stays reserved (WeChat may still pay it out). A refund released earlier
/// (FAILED) has its amount reserved again, as [`settle_refunded`] does for a
/// released refund that succeeded: WeChat has it after all. False when it
/// was not PENDING, PROCESSING or FAILED.
pub fn hold_for_operator(
    conn: &mut DbConnection,
    out_refund_no: &str,
    why: &str,
) -> Result<bool, DbError> {
    let Some(refund) = refunds::lock(conn, out_refund_no)? else {
        return Ok(false);
    };
    if refund.status != RefundStatus::Failed {
        return refunds::mark_change(
            conn,
            out_refund_no,
            why,
            &[RefundStatus::Pending, RefundStatus::Processing],
        );
    }
    orders::lock(conn, &refund.out_trade_no)?;
    if !refunds::mark_change(conn, out_refund_no, why, &[RefundStatus::Failed])? {
        return Ok(false);
    }
    tracing::error!(target: "audit", out_trade_no = %refund.out_trade_no, out_refund_no, amount_fen = refund.amount_fen, "WeChat reports a refund we had released as CHANGE; reserving it again");
    orders::reserve_refund_again(conn, &refund.out_trade_no, refund.amount_fen)?;
    Ok(true)
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

/// Where `report` disagrees with `refund`.
fn mismatch(refund: &Refund, report: &RefundReport) -> Option<String> {
    if let Some(no) = &report.out_trade_no
        && *no != refund.out_trade_no
    {
        return Some(format!("out_trade_no {no} is not the refund's order"));
    }
    if report.refund_fee != refund.amount_fen {
        return Some(format!(
            "refund_fee {} differs from the refund's {}",
            report.refund_fee, refund.amount_fen
        ));
    }
    None
}

/// The one way a refund becomes SUCCESS and its order REFUND.
pub fn settle_refunded(
    conn: &mut DbConnection,
    out_refund_no: &str,
    report: &RefundReport,
    cause: &Cause,
) -> Result<RefundSettled, DbError> {
    let Some(refund) = refunds::lock(conn, out_refund_no)? else {
        return Ok(RefundSettled::UnknownRefund);
    };
    if let Some(why) = mismatch(&refund, report) {
        return Ok(RefundSettled::Mismatch(why));
    }
    let no = refund.out_trade_no.clone();
    let Some(order) = orders::lock(conn, &no)? else {
        return Ok(RefundSettled::UnknownRefund);
    };
    match refund.status {
        RefundStatus::Success => return Ok(RefundSettled::Duplicate),
        RefundStatus::Failed => {
            // Released on an earlier answer, yet WeChat paid it out: the money
            // is gone, so the order must hold it again.
            tracing::error!(out_trade_no = %no, out_refund_no, "WeChat reports a refund we had released as succeeded; reserving it again");
            orders::reserve_refund_again(conn, &no, refund.amount_fen)?;
        }
        RefundStatus::Pending | RefundStatus::Processing | RefundStatus::Change => {}
    }
    let now = now_unix();
    let succeeded_at = report.succeeded_at.unwrap_or(now);
    refunds::mark_success(conn, out_refund_no, &report.refund_id, succeeded_at, now)?;
    orders::mark_refunded(conn, &no, refund.amount_fen, now)?;
    let facts = RefundFacts {
        out_refund_no: out_refund_no.to_owned(),
        refund_id: Some(report.refund_id.clone()),
        amount_fen: refund.amount_fen,
    };
    record_change(conn, &no, order.status, cause, Some(&facts))?;
    Ok(RefundSettled::Applied {
        from: order.status,
        out_trade_no: no,
    })
}
