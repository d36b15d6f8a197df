//! What WeChat says about an order's payment (orderquery), applied here and
//! nowhere else: by `GET ?sync=true`, by placing (ORDERPAID), by closing, and
//! by reconciliation, through the same transitions a notification makes.

use shared::db::now_unix;

use super::audit::{self, Cause};
use super::gateway;
use super::settle::{self, PaidReport, Settled};
use super::state::PayState;
use crate::db::Status;
use crate::db::orders::{self, Order};
use crate::error::PayError;
use crate::wechat::{TradeState, beijing};

/// What applying orderquery's answer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Paid,
    Closed,
    Unchanged,
}

/// orderquery (v2) or the v3 query, by the order's API.
async fn query(state: &PayState, order: &Order) -> Result<TradeState, PayError> {
    gateway::query(state, order).await
}

/// Closes the order at WeChat (on its API), so that it can no longer be
/// paid there.
pub(super) async fn close_at_wechat(state: &PayState, order: &Order) -> Result<(), PayError> {
    gateway::close(state, order).await
}

/// Asks WeChat (orderquery) about a NOTPAY order and applies the answer.
pub async fn sync(state: &PayState, order: Order, cause: &Cause) -> Result<Order, PayError> {
    if order.status != Status::NotPay {
        return Ok(order);
    }
    let trade_state = query(state, &order).await?;
    apply_trade_state(state, &order, trade_state, cause).await?;
    orders::get(&state.db, &order.out_trade_no)
        .await?
        .ok_or(PayError::OrderNotFound)
}

/// Reconciliation's step for one claimed order: ask WeChat, apply the answer.
pub async fn reconcile_order(
    state: &PayState,
    order: &Order,
    cause: &Cause,
) -> Result<Applied, PayError> {
    let trade_state = query(state, order).await?;
    apply_trade_state(state, order, trade_state, cause).await
}

/// The same transitions a notification makes (PAID), plus CLOSED for orders
/// WeChat closed or that expired unpaid (closed at WeChat first).
pub async fn apply_trade_state(
    state: &PayState,
    order: &Order,
    trade_state: TradeState,
    cause: &Cause,
) -> Result<Applied, PayError> {
    let no = order.out_trade_no.as_str();
    match trade_state {
        TradeState::Paid {
            transaction_id,
            total_fee,
            time_end,
        } => {
            let report = PaidReport {
                transaction_id,
                total_fee,
                appid: None,
                mch_id: None,
                paid_at: time_end
                    .as_deref()
                    .and_then(beijing::parse)
                    .unwrap_or_else(now_unix),
            };
            apply_paid(state, order, report, cause).await
        }
        TradeState::Closed => {
            close_locally(state, no, cause).await?;
            Ok(Applied::Closed)
        }
        TradeState::NotPay
        | TradeState::PayError
        | TradeState::Pending(_)
        | TradeState::NotExist => {
            if now_unix() < order.expires_at {
                return Ok(Applied::Unchanged);
            }
            // Expired unpaid: close at WeChat first, so it cannot be paid later.
            close_at_wechat(state, order).await?;
            close_locally(state, no, cause).await?;
            Ok(Applied::Closed)
        }
    }
}

async fn apply_paid(
    state: &PayState,
    order: &Order,
    report: PaidReport,
    cause: &Cause,
) -> Result<Applied, PayError> {
    let no = order.out_trade_no.clone();
    let mch_id = state.config.mch_id.clone();
    let tx_cause = cause.clone();
    let settled = state
        .db
        .transaction(move |conn| settle::settle_paid(conn, &no, &report, &mch_id, &tx_cause))
        .await?;
    match settled {
        Settled::Applied => {
            audit::changed(&order.out_trade_no, Status::NotPay, Status::Paid, cause);
            Ok(Applied::Paid)
        }
        Settled::AlreadyPaid => Ok(Applied::Unchanged),
        other => {
            tracing::error!(out_trade_no = %order.out_trade_no, source = cause.source, outcome = ?other, "WeChat reports a payment this order cannot take; needs an operator");
            Ok(Applied::Unchanged)
        }
    }
}

/// NOTPAY → CLOSED here (WeChat already knows); logs the change.
pub(super) async fn close_locally(
    state: &PayState,
    no: &str,
    cause: &Cause,
) -> Result<bool, PayError> {
    let (no_owned, tx_cause) = (no.to_owned(), cause.clone());
    let closed = state
        .db
        .transaction(move |conn| settle::settle_closed(conn, &no_owned, &tx_cause))
        .await?;
    if closed {
        audit::changed(no, Status::NotPay, Status::Closed, cause);
    }
    Ok(closed)
}

/// Claims the NOTPAY orders whose check is due (see `db::orders::claim_due`)
/// and pushes their next check `RECONCILE_AFTER_SECONDS` on.
pub async fn claim_due(state: &PayState) -> Result<Vec<Order>, PayError> {
    let cfg = &state.config;
    let retry_after = cfg.reconcile_after.as_secs().max(1) as i64;
    Ok(orders::claim_due(&state.db, now_unix(), cfg.reconcile_batch, retry_after).await?)
}

/// How many orders are in each status.
pub async fn count_by_status(state: &PayState) -> Result<Vec<(Status, i64)>, PayError> {
    Ok(orders::count_by_status(&state.db).await?)
}
