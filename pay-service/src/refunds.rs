//! Refunds: the domain behind the admin refund routes, refund notifications
//! and the reconciliation of open refunds.
//!
//! Order of events for one refund: reserve the amount (DB) → ask WeChat
//! (`/secapi/pay/refund`) → PROCESSING, or FAILED with the reservation
//! released if WeChat refused → SUCCESS by notification or refundquery
//! (`refund_store::settle_refunded`). A refund whose request got no usable
//! answer stays PENDING, holding its amount, until refundquery tells.

use serde::Serialize;
use sha2::{Digest, Sha256};
use shared::db::now_unix;

use crate::audit::{self, Cause};
use crate::error::PayError;
use crate::orders;
use crate::refund_store::{self, Refund, RefundReport, RefundSettled, Reserved};
use crate::state::PayState;
use crate::store::{self, Order, Status};
use crate::wxrefund::{RefundRequest, RefundState};

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
    pub status: String,
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
            status: r.status.clone(),
            refund_id: r.refund_id.clone(),
            error: r.error.clone(),
            created_at: r.created_at,
            succeeded_at: r.succeeded_at,
        }
    }
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

/// How long a PENDING refund may still be on its way to WeChat: until then a
/// refundquery that finds nothing does not release it.
fn pending_grace(state: &PayState) -> i64 {
    let http = &state.config.common.http;
    let worst = http.timeout.as_secs() * (u64::from(http.retries) + 1);
    worst as i64 + 60
}

/// What the admin asks for.
#[derive(Debug, Clone)]
pub struct RefundAsk {
    pub amount_fen: i64,
    pub reason: Option<String>,
    /// `Idempotency-Key`: the same key on the same order is the same refund,
    /// so a retried request (after a timeout) never refunds twice.
    pub idempotency_key: Option<String>,
}

const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// The refund number a key stands for: per order, 32 characters.
fn keyed_refund_no(out_trade_no: &str, key: &str) -> String {
    let digest = hex::encode(Sha256::digest(format!("{out_trade_no}\n{key}").as_bytes()));
    format!("K{}", &digest[..31])
}

/// Refunds `ask.amount_fen` of a PAID (or partly refunded) order.
pub async fn request(
    state: &PayState,
    out_trade_no: &str,
    ask: RefundAsk,
    cause: &Cause,
) -> Result<Refund, PayError> {
    if state.refund_client.is_none() {
        return Err(PayError::Internal("refunds are not configured".into()));
    }
    let amount_fen = ask.amount_fen;
    if amount_fen < 1 {
        return Err(PayError::invalid("amountFen must be a positive integer"));
    }
    let reason = check_reason(ask.reason)?;
    if let Some(key) = &ask.idempotency_key
        && (key.is_empty()
            || key.len() > MAX_IDEMPOTENCY_KEY_LEN
            || !key.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(PayError::invalid(
            "Idempotency-Key must be 1 to 128 printable ASCII characters",
        ));
    }
    let order = store::get(&state.db, out_trade_no)
        .await?
        .ok_or(PayError::OrderNotFound)?;
    let out_refund_no = match &ask.idempotency_key {
        Some(key) => keyed_refund_no(out_trade_no, key),
        None => orders::new_out_trade_no(now_unix()),
    };
    if ask.idempotency_key.is_some()
        && let Some(existing) = refund_store::get(&state.db, &out_refund_no).await?
    {
        return replay(state, &order, existing, amount_fen, &reason, cause).await;
    }
    let reserved = {
        let (no, refund_no, reason, request_id) = (
            out_trade_no.to_owned(),
            out_refund_no.clone(),
            reason.clone(),
            cause.request_id.clone(),
        );
        state
            .db
            .transaction(move |conn| {
                refund_store::reserve(conn, &no, amount_fen, &reason, &refund_no, &request_id)
            })
            .await
    };
    let reserved = match reserved {
        // The same key, concurrently: the other request's refund is the one.
        Err(e) if e.is_unique_violation() && ask.idempotency_key.is_some() => {
            let existing = refund_store::get(&state.db, &out_refund_no)
                .await?
                .ok_or_else(|| PayError::Internal("idempotent refund vanished".into()))?;
            return replay(state, &order, existing, amount_fen, &reason, cause).await;
        }
        other => other?,
    };
    match reserved {
        Reserved::Reserved => {}
        Reserved::UnknownOrder => return Err(PayError::OrderNotFound),
        Reserved::NotRefundable(s) => {
            return Err(PayError::Conflict(format!(
                "order is {}; only PAID or REFUND orders can be refunded",
                s.as_str()
            )));
        }
        Reserved::Exceeds { refundable } => {
            return Err(PayError::Conflict(format!(
                "amountFen {amount_fen} exceeds the {refundable} fen left to refund"
            )));
        }
    }
    tracing::info!(target: "audit", out_trade_no, %out_refund_no, amount_fen, source = cause.source, request_id = %cause.request_id, "refund reserved");
    ask_wechat(state, &order, &out_refund_no, amount_fen, reason, cause).await
}

/// A refund its Idempotency-Key already made: the same request gets it back
/// (a PENDING one is sent to WeChat again, under the same out_refund_no, which
/// WeChat answers with the same refund); another request is a conflict.
async fn replay(
    state: &PayState,
    order: &Order,
    existing: Refund,
    amount_fen: i64,
    reason: &str,
    cause: &Cause,
) -> Result<Refund, PayError> {
    if existing.amount_fen != amount_fen
        || existing.reason != reason
        || existing.out_trade_no != order.out_trade_no
    {
        return Err(PayError::Conflict(
            "Idempotency-Key was already used with a different request".into(),
        ));
    }
    if existing.status() != refund_store::RefundStatus::Pending {
        return Ok(existing);
    }
    ask_wechat(
        state,
        order,
        &existing.out_refund_no,
        amount_fen,
        reason.to_owned(),
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
        Ok(refund_id) => refund_store::mark_accepted(&state.db, out_refund_no, &refund_id).await?,
        Err(e @ (PayError::PayRefused { .. } | PayError::PayGatewayRefused(_))) => {
            let (no, why) = (out_refund_no.to_owned(), e.to_string());
            state
                .db
                .transaction(move |conn| refund_store::release(conn, &no, &why))
                .await?;
            audit::refund_released(out_refund_no, &e.to_string(), cause);
            return Err(e);
        }
        Err(e) => {
            tracing::warn!(out_trade_no, out_refund_no, error = %e, "refund outcome unknown; it stays PENDING until refundquery tells");
            return Err(e);
        }
    }
    refund_store::get(&state.db, out_refund_no)
        .await?
        .ok_or_else(|| PayError::Internal("refund vanished".into()))
}

/// An order's refunds, the open ones first asked about at WeChat.
pub async fn list(
    state: &PayState,
    out_trade_no: &str,
    cause: &Cause,
) -> Result<Vec<Refund>, PayError> {
    let order = store::get(&state.db, out_trade_no)
        .await?
        .ok_or(PayError::OrderNotFound)?;
    let refunds = refund_store::of_order(&state.db, out_trade_no).await?;
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
    Ok(refund_store::of_order(&state.db, out_trade_no).await?)
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
    let no = refund.out_refund_no.clone();
    match state.pay.refund_query(appid, &no).await? {
        None => {
            let old = refund.created_at <= now_unix() - pending_grace(state);
            if refund.status() == refund_store::RefundStatus::Pending && old {
                let released = state
                    .db
                    .transaction(move |conn| {
                        refund_store::release(conn, &no, "WeChat has no such refund")
                    })
                    .await?;
                if released {
                    audit::refund_released(
                        &refund.out_refund_no,
                        "WeChat has no such refund",
                        cause,
                    );
                    return Ok(Queried::Released);
                }
            }
            Ok(Queried::Unchanged)
        }
        Some(RefundState::Processing { refund_id }) => {
            refund_store::mark_accepted(&state.db, &no, &refund_id).await?;
            Ok(Queried::Unchanged)
        }
        Some(RefundState::Failed { status }) => {
            let why = format!("WeChat refund status {status}");
            let tx_why = why.clone();
            let released = state
                .db
                .transaction(move |conn| refund_store::release(conn, &no, &tx_why))
                .await?;
            Ok(if released {
                audit::refund_released(&refund.out_refund_no, &why, cause);
                Queried::Released
            } else {
                Queried::Unchanged
            })
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
            match apply_success(state, &refund.out_refund_no, report, cause).await? {
                RefundSettled::Applied { .. } => Ok(Queried::Succeeded),
                RefundSettled::Duplicate => Ok(Queried::Unchanged),
                other => {
                    tracing::error!(out_refund_no = %refund.out_refund_no, outcome = ?other, "refundquery reports a refund that does not match ours; needs an operator");
                    Ok(Queried::Unchanged)
                }
            }
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
        .transaction(move |conn| refund_store::settle_refunded(conn, &no, &report, &tx_cause))
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
    let open = refund_store::open_since(&state.db, before, cfg.reconcile_batch).await?;
    let mut changed = 0;
    for refund in open {
        let Some(order) = store::get(&state.db, &refund.out_trade_no).await? else {
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
