//! The rules of an order's status changes. Every change goes through
//! [`settle_paid`] (or [`settle_paid_recorded`]), [`settle_closed`] or
//! `refund_rules::settle_refunded`, inside the caller's transaction: each
//! change is one conditional UPDATE, which holds the order's row lock (taken
//! by the UPDATE itself, or first by `orders::lock`) until the commit, so
//! replicas racing on the same order change it once; then [`record_change`]
//! writes the transition row and its merchant event (outbox), so all of it
//! commits together or not at all.

use shared::db::{DbConnection, DbError, now_unix};

use super::audit::Cause;
use super::events::{self, RefundFacts};
use crate::db::Status;
use crate::db::notifications::{self, NewNotification};
use crate::db::orders::{self, Order, Payment};
use crate::db::transitions::{self, NewTransition};

/// What WeChat reports about a payment (notification or orderquery).
#[derive(Debug, Clone)]
pub struct PaidReport {
    pub transaction_id: String,
    /// Checked against the order; a report without it is a mismatch (no
    /// payment settles unchecked; WeChat always reports the amount).
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

/// Where `report` disagrees with `order` (or is not for merchant `mch_id`).
fn mismatch(order: &Order, report: &PaidReport, mch_id: &str) -> Option<String> {
    if let Some(appid) = &report.appid
        && *appid != order.appid
    {
        return Some(format!(
            "appid {appid} differs from the order's {}",
            order.appid
        ));
    }
    if let Some(m) = &report.mch_id
        && m != mch_id
    {
        return Some(format!("mch_id {m} is not ours"));
    }
    match report.total_fee {
        None => Some("no amount reported".to_owned()),
        Some(fee) if fee != order.amount_fen => Some(format!(
            "total_fee {fee} differs from the order's {}",
            order.amount_fen
        )),
        Some(_) => None,
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
    settle_paid_recorded(
        conn,
        no,
        report,
        mch_id,
        cause,
        None::<fn(&Settled) -> NewNotification>,
    )
}

/// [`settle_paid`], and the row `notification` makes of its outcome (the
/// notification that reported the payment) written in the same transaction.
///
/// The common case, a matching report for a NOTPAY order, is two statements:
/// the conditional `UPDATE … RETURNING` ([`orders::pay`], which is also the
/// row lock) and the transition, merchant event and notification rows in one
/// more ([`transitions::record`]). Anything else (a replay, a mismatch,
/// an unknown or closed order) matched nothing and is decided by
/// [`settle_checked`], under the row lock, with nothing changed.
pub fn settle_paid_recorded<F>(
    conn: &mut DbConnection,
    no: &str,
    report: &PaidReport,
    mch_id: &str,
    cause: &Cause,
    notification: Option<F>,
) -> Result<Settled, DbError>
where
    F: FnOnce(&Settled) -> NewNotification,
{
    let row_of = |settled: &Settled| notification.map(|row| row(settled));
    if let Some(paid) = pay_if_matching(conn, no, report, mch_id)? {
        let row = row_of(&Settled::Applied);
        record_change_of(conn, &paid, Status::NotPay, cause, None, row.as_ref())?;
        return Ok(Settled::Applied);
    }
    let settled = settle_checked(conn, no, report, mch_id, cause)?;
    if let Some(row) = row_of(&settled) {
        notifications::insert(conn, &row)?;
    }
    Ok(settled)
}

/// NOTPAY → PAID when the report matches what [`mismatch`] compares: `mch_id`
/// here, amount and appid in the UPDATE's own WHERE. The order as paid, or
/// None when nothing changed.
fn pay_if_matching(
    conn: &mut DbConnection,
    no: &str,
    report: &PaidReport,
    mch_id: &str,
) -> Result<Option<Order>, DbError> {
    let Some(amount_fen) = report.total_fee else {
        return Ok(None);
    };
    if report.mch_id.as_deref().is_some_and(|m| m != mch_id) {
        return Ok(None);
    }
    let payment = Payment {
        transaction_id: &report.transaction_id,
        paid_at: report.paid_at,
        amount_fen,
        appid: report.appid.as_deref(),
    };
    orders::pay(conn, no, &payment)
}

/// Why a report that changed nothing changed nothing, read under the row
/// lock; it pays the order only if it became payable meanwhile (nothing
/// moves an order back to NOTPAY, so in practice never).
fn settle_checked(
    conn: &mut DbConnection,
    no: &str,
    report: &PaidReport,
    mch_id: &str,
    cause: &Cause,
) -> Result<Settled, DbError> {
    let Some(order) = orders::lock(conn, no)? else {
        return Ok(Settled::UnknownOrder);
    };
    if let Some(why) = mismatch(&order, report, mch_id) {
        return Ok(Settled::Mismatch(why));
    }
    match order.status {
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
    if orders::mark_paid(conn, no, &report.transaction_id, report.paid_at)? {
        record_change(conn, no, Status::NotPay, cause, None)?;
        Ok(Settled::Applied)
    } else {
        // Someone else settled it between our lock and here (cannot happen
        // while the row lock holds; kept as the guard the UPDATE is).
        match orders::load(conn, no)?.map(|o| o.status) {
            Some(Status::Paid) => Ok(Settled::AlreadyPaid),
            Some(s) => Ok(Settled::NotPayable(s)),
            None => Ok(Settled::UnknownOrder),
        }
    }
}

/// NOTPAY → CLOSED; false when the order was not NOTPAY.
pub fn settle_closed(conn: &mut DbConnection, no: &str, cause: &Cause) -> Result<bool, DbError> {
    orders::lock(conn, no)?;
    let closed = orders::mark_closed(conn, no)?;
    if closed {
        record_change(conn, no, Status::NotPay, cause, None)?;
    }
    Ok(closed)
}

/// Records that `no` went from `from` to its current status (re-read here, so
/// the event carries the order as committed): the transition row and the
/// merchant event, in one call, inside the caller's transaction.
pub(super) fn record_change(
    conn: &mut DbConnection,
    no: &str,
    from: Status,
    cause: &Cause,
    refund: Option<&RefundFacts>,
) -> Result<(), DbError> {
    let order = orders::load(conn, no)?.ok_or(DbError::NotFound)?;
    record_change_of(conn, &order, from, cause, refund, None)
}

/// [`record_change`] for `order` as the change left it (what the change's
/// `UPDATE … RETURNING` gave back), plus `notification`'s row.
fn record_change_of(
    conn: &mut DbConnection,
    order: &Order,
    from: Status,
    cause: &Cause,
    refund: Option<&RefundFacts>,
    notification: Option<&NewNotification>,
) -> Result<(), DbError> {
    let transition = NewTransition {
        out_trade_no: &order.out_trade_no,
        from,
        to: order.status,
        source: cause.source,
        at: now_unix(),
        request_id: &cause.request_id,
    };
    let event = events::new_event(order, from, cause, refund);
    transitions::record(conn, &transition, event.as_ref(), notification)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{ApiVersion, TradeType};

    fn order() -> Order {
        Order {
            id: 1,
            out_trade_no: "N1".into(),
            user_id: 7,
            appid: "wxA".into(),
            openid: "o".into(),
            trade_type: TradeType::Native,
            amount_fen: 100,
            description: "d".into(),
            status: Status::NotPay,
            prepay_id: None,
            pay_url: None,
            redirect_url: None,
            transaction_id: None,
            client_ip: "127.0.0.1".into(),
            idempotency_key: None,
            request_hash: None,
            expires_at: 0,
            paid_at: None,
            next_check_at: 0,
            created_at: 0,
            updated_at: 0,
            refund_reserved_fen: 0,
            refunded_fen: 0,
            api: ApiVersion::V3,
        }
    }

    fn report(total_fee: Option<i64>) -> PaidReport {
        PaidReport {
            transaction_id: "T".into(),
            total_fee,
            appid: None,
            mch_id: None,
            paid_at: 0,
        }
    }

    /// No payment settles without its amount compared to the order's.
    #[test]
    fn a_report_without_its_amount_is_a_mismatch() {
        let o = order();
        assert_eq!(mismatch(&o, &report(Some(100)), "M"), None);
        assert!(mismatch(&o, &report(Some(99)), "M").is_some());
        let why = mismatch(&o, &report(None), "M");
        assert_eq!(why.as_deref(), Some("no amount reported"));
    }
}
