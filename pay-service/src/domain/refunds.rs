//! Refunds: the domain behind the admin refund routes, refundquery and the
//! reconciliation of open refunds.
//!
//! Order of events for one refund: reserve the amount (DB) → ask WeChat
//! (`/secapi/pay/refund`) → PROCESSING, or FAILED with the reservation
//! released if WeChat refused → SUCCESS by notification or refundquery
//! (`refund_rules::settle_refunded`). A refund whose request got no usable
//! answer stays PENDING, holding its amount, until refundquery tells.

use serde::Serialize;
use shared::db::{DbError, now_unix};

use super::audit::{self, Cause};
use super::idempotency::IdempotencyKey;
use super::orders::new_out_trade_no;
use super::refund_rules::{self, RefundReport, RefundSettled, Reserved};
use super::state::PayState;
use crate::db::orders::{self, Order};
use crate::db::refunds::{self, NewRefund, Refund};
use crate::db::{RefundStatus, Status};
use crate::error::PayError;
use crate::wechat::{RefundQueryRequest, RefundRequest, RefundState};

/// WeChat's limit on `refund_desc`, in characters.
pub const MAX_REASON_CHARS: usize = 80;

/// What the admin routes show of a refund.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundView {
    pub out_refund_no: String,
    pub out_trade_no: String,
    pub amount_fen: i64,
    pub reason: String,
    /// PENDING, PROCESSING, SUCCESS or FAILED.
    pub status: RefundStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub succeeded_at: Option<i64>,
}

impl From<&Refund> for RefundView {
    fn from(r: &Refund) -> Self {
        RefundView {
            out_refund_no: r.out_refund_no.clone(),
            out_trade_no: r.out_trade_no.clone(),
            amount_fen: r.amount_fen,
            reason: r.reason.clone(),
            status: r.status,
            refund_id: r.refund_id.clone(),
            error: r.error.clone(),
            created_at: r.created_at,
            succeeded_at: r.succeeded_at,
        }
    }
}

/// What the admin asks for.
#[derive(Debug, Clone)]
pub struct RefundAsk {
    pub amount_fen: i64,
    pub reason: Option<String>,
    /// `Idempotency-Key` as the header carried it: the same key on the same
    /// order is the same refund, so a retried request (after a timeout) never
    /// refunds twice.
    pub idempotency_key: Option<String>,
}

/// An ask that passed every check.
struct Checked {
    amount_fen: i64,
    reason: String,
    key: Option<IdempotencyKey>,
}

fn check_reason(reason: Option<String>) -> Result<String, PayError> {
    let reason = reason.unwrap_or_default().trim().to_owned();
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(PayError::invalid(format!(
            "reason must be at most {MAX_REASON_CHARS} characters"
        )));
    }
    if reason.chars().any(char::is_control) {
        return Err(PayError::invalid("reason must not hold control characters"));
    }
    Ok(reason)
}

/// In this order: refunds configured, the amount, the reason, the key.
fn check(state: &PayState, ask: RefundAsk) -> Result<Checked, PayError> {
    if state.refund_client.is_none() {
        return Err(PayError::Internal("refunds are not configured".into()));
    }
    if ask.amount_fen < 1 {
        return Err(PayError::invalid("amountFen must be a positive integer"));
    }
    let reason = check_reason(ask.reason)?;
    let key = IdempotencyKey::check(ask.idempotency_key)?;
    Ok(Checked {
        amount_fen: ask.amount_fen,
        reason,
        key,
    })
}

/// How long a PENDING refund may still be on its way to WeChat: until then a
/// refundquery that finds nothing does not release it.
fn pending_grace(state: &PayState) -> i64 {
    let http = &state.config.common.http;
    let worst = http.timeout.as_secs() * (u64::from(http.retries) + 1);
    worst as i64 + 60
}

/// Refunds `ask.amount_fen` of a PAID (or partly refunded) order.
pub async fn request(
    state: &PayState,
    out_trade_no: &str,
    ask: RefundAsk,
    cause: &Cause,
) -> Result<Refund, PayError> {
    let ask = check(state, ask)?;
    let order = orders::get(&state.db, out_trade_no)
        .await?
        .ok_or(PayError::OrderNotFound)?;
    let out_refund_no = match &ask.key {
        Some(key) => key.refund_no(out_trade_no),
        None => new_out_trade_no(now_unix()),
    };
    if ask.key.is_some()
        && let Some(existing) = refunds::get(&state.db, &out_refund_no).await?
    {
        return replay(state, &order, existing, &ask, cause).await;
    }
    let reserved = match reserve(state, out_trade_no, &out_refund_no, &ask, cause).await {
        // The same key, concurrently: the other request's refund is the one.
        Err(e) if e.is_unique_violation() && ask.key.is_some() => {
            let existing = refunds::get(&state.db, &out_refund_no)
                .await?
                .ok_or_else(|| PayError::Internal("idempotent refund vanished".into()))?;
            return replay(state, &order, existing, &ask, cause).await;
        }
        other => other?,
    };
    refuse_unreserved(reserved, ask.amount_fen)?;
    let amount_fen = ask.amount_fen;
    tracing::info!(target: "audit", out_trade_no, %out_refund_no, amount_fen, source = cause.source, request_id = %cause.request_id, "refund reserved");
    ask_wechat(state, &order, &out_refund_no, amount_fen, ask.reason, cause).await
}

async fn reserve(
    state: &PayState,
    out_trade_no: &str,
    out_refund_no: &str,
    ask: &Checked,
    cause: &Cause,
) -> Result<Reserved, DbError> {
    let (no, refund_no, reason, request_id) = (
        out_trade_no.to_owned(),
        out_refund_no.to_owned(),
        ask.reason.clone(),
        cause.request_id.clone(),
    );
    let amount_fen = ask.amount_fen;
    state
        .db
        .transaction(move |conn| {
            let refund = NewRefund {
                out_refund_no: &refund_no,
                out_trade_no: &no,
                amount_fen,
                reason: &reason,
                request_id: &request_id,
            };
            refund_rules::reserve(conn, &refund)
        })
        .await
}

/// The error of a reservation that did not happen.
fn refuse_unreserved(reserved: Reserved, amount_fen: i64) -> Result<(), PayError> {
    match reserved {
        Reserved::Held => Ok(()),
        Reserved::UnknownOrder => Err(PayError::OrderNotFound),
        Reserved::NotRefundable(s) => Err(PayError::Conflict(format!(
            "order is {}; only PAID or REFUND orders can be refunded",
            s.as_str()
        ))),
        Reserved::Exceeds { refundable } => Err(PayError::Conflict(format!(
            "amountFen {amount_fen} exceeds the {refundable} fen left to refund"
        ))),
    }
}

/// A refund its Idempotency-Key already made: the same request gets it back
/// (a PENDING one is sent to WeChat again, under the same out_refund_no, which
/// WeChat answers with the same refund); another request is a conflict.
async fn replay(
    state: &PayState,
    order: &Order,
    existing: Refund,
    ask: &Checked,
    cause: &Cause,
) -> Result<Refund, PayError> {
    if existing.amount_fen != ask.amount_fen
        || existing.reason != ask.reason
        || existing.out_trade_no != order.out_trade_no
    {
        return Err(PayError::Conflict(
            "Idempotency-Key was already used with a different request".into(),
        ));
    }
    if existing.status != RefundStatus::Pending {
        return Ok(existing);
    }
    ask_wechat(
        state,
        order,
        &existing.out_refund_no,
        ask.amount_fen,
        ask.reason.clone(),
        cause,
    )
    .await
}

/// Sends the reserved refund to WeChat and records its answer.
async fn ask_wechat(
    state: &PayState,
    order: &Order,
    out_refund_no: &str,
    amount_fen: i64,
    reason: String,
    cause: &Cause,
) -> Result<Refund, PayError> {
    let client = state
        .refund_client
        .clone()
        .ok_or_else(|| PayError::Internal("refunds are not configured".into()))?;
    let out_trade_no = order.out_trade_no.as_str();
    let req = RefundRequest {
        appid: order.appid.clone(),
        out_trade_no: out_trade_no.to_owned(),
        out_refund_no: out_refund_no.to_owned(),
        total_fee: order.amount_fen,
        refund_fee: amount_fen,
        reason,
        notify_url: state.config.refund_notify_url(),
    };
    match state.pay.refund(&client, &req).await {
        Ok(reply) => refunds::mark_accepted(&state.db, out_refund_no, &reply.refund_id).await?,
        Err(e @ (PayError::PayRefused { .. } | PayError::PayGatewayRefused(_))) => {
            release(state, out_refund_no, &e.to_string()).await?;
            audit::refund_released(out_refund_no, &e.to_string(), cause);
            return Err(e);
        }
        Err(e) => {
            tracing::warn!(out_trade_no, out_refund_no, error = %e, "refund outcome unknown; it stays PENDING until refundquery tells");
            return Err(e);
        }
    }
    refunds::get(&state.db, out_refund_no)
        .await?
        .ok_or_else(|| PayError::Internal("refund vanished".into()))
}

/// Releases an open refund's amount (WeChat refused or closed it). False
/// when the refund was not open.
async fn release(state: &PayState, out_refund_no: &str, why: &str) -> Result<bool, PayError> {
    let (no, why) = (out_refund_no.to_owned(), why.to_owned());
    Ok(state
        .db
        .transaction(move |conn| refund_rules::release(conn, &no, &why))
        .await?)
}

/// An order's refunds, the open ones first asked about at WeChat.
pub async fn list(
    state: &PayState,
    out_trade_no: &str,
    cause: &Cause,
) -> Result<Vec<Refund>, PayError> {
    let order = orders::get(&state.db, out_trade_no)
        .await?
        .ok_or(PayError::OrderNotFound)?;
    let refunds = refunds::of_order(&state.db, out_trade_no).await?;
    let mut asked = false;
    for refund in refunds.iter().filter(|r| r.is_open()) {
        asked = true;
        if let Err(e) = settle_by_query(state, &order.appid, refund, cause).await {
            // The list still answers; the refund stays open for the next look.
            tracing::warn!(out_refund_no = %refund.out_refund_no, error = %e, "refundquery failed");
        }
    }
    if !asked {
        return Ok(refunds);
    }
    Ok(refunds::of_order(&state.db, out_trade_no).await?)
}

/// What refundquery made of an open refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queried {
    Succeeded,
    Released,
    Unchanged,
}

/// Asks WeChat about one open refund and applies the answer.
pub async fn settle_by_query(
    state: &PayState,
    appid: &str,
    refund: &Refund,
    cause: &Cause,
) -> Result<Queried, PayError> {
    let no = refund.out_refund_no.as_str();
    let query = RefundQueryRequest {
        appid: appid.to_owned(),
        out_refund_no: no.to_owned(),
    };
    let released = match state.pay.refund_query(&query).await? {
        None => {
            // Not (yet) at WeChat: released only once it cannot still be on its way.
            let old = refund.created_at <= now_unix() - pending_grace(state);
            let why = "WeChat has no such refund";
            (refund.status == RefundStatus::Pending && old && release(state, no, why).await?)
                .then_some(why.to_owned())
        }
        Some(RefundState::Processing { refund_id }) => {
            refunds::mark_accepted(&state.db, no, &refund_id).await?;
            None
        }
        Some(RefundState::Failed { status }) => {
            let why = format!("WeChat refund status {status}");
            release(state, no, &why).await?.then_some(why)
        }
        Some(RefundState::Success {
            refund_id,
            refund_fee,
            succeeded_at,
        }) => {
            let report = RefundReport {
                out_trade_no: Some(refund.out_trade_no.clone()),
                refund_id,
                refund_fee,
                succeeded_at,
            };
            return succeeded_by_query(state, refund, report, cause).await;
        }
    };
    Ok(match released {
        Some(why) => {
            audit::refund_released(no, &why, cause);
            Queried::Released
        }
        None => Queried::Unchanged,
    })
}

async fn succeeded_by_query(
    state: &PayState,
    refund: &Refund,
    report: RefundReport,
    cause: &Cause,
) -> Result<Queried, PayError> {
    match apply_success(state, &refund.out_refund_no, report, cause).await? {
        RefundSettled::Applied { .. } => Ok(Queried::Succeeded),
        RefundSettled::Duplicate => Ok(Queried::Unchanged),
        other => {
            tracing::error!(out_refund_no = %refund.out_refund_no, outcome = ?other, "refundquery reports a refund that does not match ours; needs an operator");
            Ok(Queried::Unchanged)
        }
    }
}

/// Settles a refund WeChat reports as succeeded, once; logs the change.
pub async fn apply_success(
    state: &PayState,
    out_refund_no: &str,
    report: RefundReport,
    cause: &Cause,
) -> Result<RefundSettled, PayError> {
    let (no, tx_cause) = (out_refund_no.to_owned(), cause.clone());
    let settled = state
        .db
        .transaction(move |conn| refund_rules::settle_refunded(conn, &no, &report, &tx_cause))
        .await?;
    if let RefundSettled::Applied { from, out_trade_no } = &settled {
        audit::changed(out_trade_no, *from, Status::Refund, cause);
    }
    Ok(settled)
}

/// Reconciliation's share: open refunds untouched for `reconcile_after` are
/// asked about. Returns how many changed.
pub async fn reconcile(state: &PayState, cause: &Cause) -> Result<usize, PayError> {
    let cfg = &state.config;
    let before = now_unix() - cfg.reconcile_after.as_secs() as i64;
    let open = refunds::open_since(&state.db, before, cfg.reconcile_batch).await?;
    let mut changed = 0;
    for refund in open {
        let Some(order) = orders::get(&state.db, &refund.out_trade_no).await? else {
            continue;
        };
        match settle_by_query(state, &order.appid, &refund, cause).await {
            Ok(Queried::Unchanged) => {}
            Ok(_) => changed += 1,
            Err(e) => {
                tracing::warn!(out_refund_no = %refund.out_refund_no, error = %e, "refund reconciliation failed; retried later")
            }
        }
    }
    Ok(changed)
}
