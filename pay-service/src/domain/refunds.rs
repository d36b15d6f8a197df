//! Refunds: the domain behind the admin refund routes, refundquery and the
//! reconciliation of open refunds.
//!
//! Order of events for one refund: reserve the amount (DB) → ask WeChat
//! (`/secapi/pay/refund`) → PROCESSING, or FAILED with the reservation
//! released if WeChat definitely refused → SUCCESS by notification or
//! refundquery (`refund_rules::settle_refunded`), or CHANGE (the money could
//! not reach the payer: an operator's case, the amount stays held).
//!
//! A refund whose request got no definite answer (timeout, 5xx, garbage, a
//! reply whose sign does not verify, `SYSTEMERROR`, `BIZERR_NEED_RETRY`)
//! stays PENDING, holding its amount, and reconciliation sends it again under
//! the same `out_refund_no` until WeChat answers for certain: WeChat answers a
//! repeated number with the refund it already has, so the payer is never paid
//! twice, and a released amount is always one WeChat will not pay out.

use serde::Serialize;
use shared::db::{DbError, now_unix};
use shared::wechat::WechatError;

use super::audit::{self, Cause};
use super::gateway;
use super::idempotency::IdempotencyKey;
use super::orders::new_out_trade_no;
use super::refund_rules::{self, RefundReport, RefundSettled, Reserved};
use super::state::PayState;
use crate::db::orders::{self, Order};
use crate::db::refunds::{self, NewRefund, Refund};
use crate::db::{RefundStatus, Status};
use crate::error::PayError;
use crate::wechat::RefundState;

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
    /// PENDING, PROCESSING, SUCCESS, FAILED or CHANGE.
    pub status: RefundStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub succeeded_at: Option<i64>,
    /// The operator who asked for it (absent on refunds made before
    /// operators were recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
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
            operator: r.operator.clone(),
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
    /// The operator (`ADMIN_TOKENS` name) asking: kept on the refund and in
    /// its audit lines.
    pub operator: String,
}

/// An ask that passed every check.
struct Checked {
    amount_fen: i64,
    reason: String,
    key: Option<IdempotencyKey>,
    operator: String,
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
        operator: ask.operator,
    })
}

/// WeChat's `err_code`s that mean "send the same out_refund_no again": the
/// refund may still happen (WeChat's refund API documentation says not to
/// change the number and to call again with the same parameters).
/// `SYSTEM_ERROR` is APIv3's spelling of the same answer; `FREQUENCY_LIMITED`
/// (v3) and `INVALID_REQ_TOO_MUCH` (v2) are rate limits: the request was not
/// looked at, so they say nothing about the refund.
const RETRY_CODES: &[&str] = &[
    "SYSTEMERROR",
    "SYSTEM_ERROR",
    "BIZERR_NEED_RETRY",
    "FREQUENCY_LIMITED",
    "INVALID_REQ_TOO_MUCH",
];

/// Whether an error from `/secapi/pay/refund` is WeChat definitely refusing
/// the refund (it will not happen, the amount may be released). Anything
/// else (transport errors, unusable or unverifiable replies, the retry
/// codes, a FAIL without err_code) leaves the outcome unknown. A refusal of a
/// number sent before is only believed once refundquery confirms it
/// ([`confirm_refusal`]).
pub fn is_definite_refusal(e: &PayError) -> bool {
    match e {
        PayError::PayRefused { code, .. } => {
            !code.is_empty() && !RETRY_CODES.contains(&code.as_str())
        }
        // v2 return_code FAIL carries no sign: anyone on the path could have
        // written it, so it proves nothing about the refund.
        _ => false,
    }
}

/// WeChat refund statuses after which an operator must act (v2 `CHANGE`,
/// v3 `ABNORMAL`).
pub fn needs_operator(wechat_status: &str) -> bool {
    matches!(wechat_status, "CHANGE" | "ABNORMAL")
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
        Ok(Reserved::Exists) if ask.key.is_some() => {
            let existing = refunds::get(&state.db, &out_refund_no)
                .await?
                .ok_or_else(|| PayError::Internal("idempotent refund vanished".into()))?;
            return replay(state, &order, existing, &ask, cause).await;
        }
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
    tracing::info!(target: "audit", out_trade_no, %out_refund_no, amount_fen, operator = %ask.operator, source = cause.source, request_id = %cause.request_id, "refund reserved");
    ask_wechat(
        state,
        &order,
        &out_refund_no,
        amount_fen,
        ask.reason,
        Sent::First,
        cause,
    )
    .await
}

async fn reserve(
    state: &PayState,
    out_trade_no: &str,
    out_refund_no: &str,
    ask: &Checked,
    cause: &Cause,
) -> Result<Reserved, DbError> {
    let (no, refund_no, reason, request_id, operator) = (
        out_trade_no.to_owned(),
        out_refund_no.to_owned(),
        ask.reason.clone(),
        cause.request_id.clone(),
        ask.operator.clone(),
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
                operator: &operator,
            };
            refund_rules::reserve(conn, &refund)
        })
        .await
}

/// The error of a reservation that did not happen.
fn refuse_unreserved(reserved: Reserved, amount_fen: i64) -> Result<(), PayError> {
    match reserved {
        Reserved::Held => Ok(()),
        // Only a refund number derived from an Idempotency-Key can collide;
        // `request` replays those.
        Reserved::Exists => Err(PayError::Internal("refund number already used".into())),
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
        Sent::Before,
        cause,
    )
    .await
}

/// Whether a refund's number went to WeChat before this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// The first request under this number: a refusal answers for all of it.
    First,
    /// A re-send (reconciliation, an Idempotency-Key replay): WeChat may hold
    /// the refund from an earlier request, and a refusal of this one does not
    /// prove otherwise (a rate limit, a validation of the repeat).
    Before,
}

/// Sends the reserved refund to WeChat and records its answer.
async fn ask_wechat(
    state: &PayState,
    order: &Order,
    out_refund_no: &str,
    amount_fen: i64,
    reason: String,
    sent: Sent,
    cause: &Cause,
) -> Result<Refund, PayError> {
    let out_trade_no = order.out_trade_no.as_str();
    // On the order's API: v2 over TLS with the certificate, v3 signed.
    match gateway::refund(state, order, out_refund_no, amount_fen, reason).await {
        Ok(refund_id) => refunds::mark_accepted(&state.db, out_refund_no, &refund_id).await?,
        Err(e) if is_definite_refusal(&e) && sent == Sent::Before => {
            return confirm_refusal(state, order, out_refund_no, e, cause).await;
        }
        Err(e) if is_definite_refusal(&e) => {
            if release_unsent(state, out_refund_no, &e.to_string()).await? {
                audit::refund_released(out_refund_no, &e.to_string(), cause);
            }
            return Err(e);
        }
        Err(e) => {
            let why = format!("outcome unknown, sent again under the same number: {e}");
            refunds::note_unknown(&state.db, out_refund_no, &why).await?;
            tracing::warn!(target: "audit", out_trade_no, out_refund_no, error = %e, source = cause.source, request_id = %cause.request_id, "refund outcome unknown; it stays PENDING and is sent again");
            return Err(unknown_outcome(e, out_refund_no));
        }
    }
    refunds::get(&state.db, out_refund_no)
        .await?
        .ok_or_else(|| PayError::Internal("refund vanished".into()))
}

/// The error an admin sees when WeChat's answer is unknown: still a WeChat
/// failure (502, or 504 for a timeout), worded so that nobody refunds the
/// same money again under a new number.
fn unknown_outcome(e: PayError, out_refund_no: &str) -> PayError {
    let what = format!(
        "refund {out_refund_no}: WeChat's answer is unknown ({e}); it stays PENDING with its \
         amount held and is sent again under the same number until WeChat answers; do not \
         refund it again"
    );
    match e {
        PayError::Wechat(WechatError::Timeout(_)) => PayError::Wechat(WechatError::Timeout(what)),
        _ => PayError::PayUnusable(what),
    }
}

/// A re-sent refund WeChat refused: released only if refundquery says
/// WeChat has no such refund (REFUNDNOTEXIST, RESOURCE_NOT_EXISTS) or has
/// closed it; any other answer is applied as a query's would be, and a
/// failed query leaves it PENDING. Returns `refused` when the refund is
/// released (or was settled otherwise meanwhile and is not open).
async fn confirm_refusal(
    state: &PayState,
    order: &Order,
    out_refund_no: &str,
    refused: PayError,
    cause: &Cause,
) -> Result<Refund, PayError> {
    let answer = match gateway::refund_query(state, order, out_refund_no).await {
        Ok(answer) => answer,
        Err(q) => {
            let why = format!(
                "outcome unknown: a re-send was refused ({refused}) and refundquery failed ({q}); \
                 sent again under the same number"
            );
            refunds::note_unknown(&state.db, out_refund_no, &why).await?;
            tracing::warn!(target: "audit", out_trade_no = %order.out_trade_no, out_refund_no, error = %refused, query_error = %q, source = cause.source, request_id = %cause.request_id, "re-sent refund refused but not confirmed; it stays PENDING");
            return Err(unknown_outcome(refused, out_refund_no));
        }
    };
    let refund = refunds::get(&state.db, out_refund_no)
        .await?
        .ok_or_else(|| PayError::Internal("refund vanished".into()))?;
    match answer {
        None => {
            let why = format!("{refused}; refundquery: WeChat has no such refund");
            if release_unsent(state, out_refund_no, &why).await? {
                audit::refund_released(out_refund_no, &why, cause);
            }
        }
        Some(answer) => {
            apply_answer(state, &refund, answer, cause).await?;
        }
    }
    let now = refunds::get(&state.db, out_refund_no)
        .await?
        .ok_or_else(|| PayError::Internal("refund vanished".into()))?;
    match now.status {
        RefundStatus::Failed => Err(refused),
        // Still PENDING (another request got in between): its outcome is
        // not known here.
        RefundStatus::Pending => Err(unknown_outcome(refused, out_refund_no)),
        _ => Ok(now),
    }
}

/// Releases a PENDING refund's amount (WeChat refused the request). False
/// when the refund was no longer PENDING.
async fn release_unsent(
    state: &PayState,
    out_refund_no: &str,
    why: &str,
) -> Result<bool, PayError> {
    let (no, why) = (out_refund_no.to_owned(), why.to_owned());
    Ok(state
        .db
        .transaction(move |conn| refund_rules::release_unsent(conn, &no, &why))
        .await?)
}

/// Releases an open refund's amount (WeChat closed it). False when the
/// refund was not open.
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
        if let Err(e) = settle_by_query(state, &order, refund, cause).await {
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
    /// A PENDING refund WeChat now has (PROCESSING).
    Accepted,
    /// CHANGE: waiting for an operator.
    NeedsOperator,
    Unchanged,
}

/// Asks WeChat about one open refund and applies the answer.
pub async fn settle_by_query(
    state: &PayState,
    order: &Order,
    refund: &Refund,
    cause: &Cause,
) -> Result<Queried, PayError> {
    // refundquery (v2) or the v3 refund query, by the order's API.
    let answer = gateway::refund_query(state, order, &refund.out_refund_no).await?;
    match answer {
        Some(answer) => apply_answer(state, refund, answer, cause).await,
        // Not (yet) at WeChat. Never a reason to release: the request may
        // still be on its way, or WeChat asked for it again (SYSTEMERROR);
        // reconciliation sends a PENDING refund again until WeChat answers.
        None => Ok(Queried::Unchanged),
    }
}

/// Applies what refundquery reported of a refund.
async fn apply_answer(
    state: &PayState,
    refund: &Refund,
    answer: RefundState,
    cause: &Cause,
) -> Result<Queried, PayError> {
    let no = refund.out_refund_no.as_str();
    let released = match answer {
        RefundState::Processing { refund_id } => {
            let was_pending = refund.status == RefundStatus::Pending;
            refunds::mark_accepted(&state.db, no, &refund_id).await?;
            return Ok(if was_pending {
                Queried::Accepted
            } else {
                Queried::Unchanged
            });
        }
        RefundState::Failed { status } if needs_operator(&status) => {
            let why = format!(
                "WeChat refund status {status}: needs an operator at the merchant platform"
            );
            return hold_for_operator(state, no, &why, cause).await;
        }
        RefundState::Failed { status } => {
            let why = format!("WeChat refund status {status}");
            release(state, no, &why).await?.then_some(why)
        }
        RefundState::Success {
            refund_id,
            refund_fee,
            succeeded_at,
        } => {
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

/// A CHANGE report: the refund waits for an operator, its amount held.
async fn hold_for_operator(
    state: &PayState,
    out_refund_no: &str,
    why: &str,
    cause: &Cause,
) -> Result<Queried, PayError> {
    let (no, tx_why) = (out_refund_no.to_owned(), why.to_owned());
    let held = state
        .db
        .transaction(move |conn| refund_rules::hold_for_operator(conn, &no, &tx_why))
        .await?;
    if !held {
        return Ok(Queried::Unchanged);
    }
    audit::refund_needs_operator(out_refund_no, why, cause);
    Ok(Queried::NeedsOperator)
}

/// A PENDING refund sent to WeChat again, under its own out_refund_no, with
/// its own amount and reason: WeChat answers with the refund if it has it.
async fn send_again(
    state: &PayState,
    order: &Order,
    refund: &Refund,
    cause: &Cause,
) -> Result<Queried, PayError> {
    let sent = ask_wechat(
        state,
        order,
        &refund.out_refund_no,
        refund.amount_fen,
        refund.reason.clone(),
        Sent::Before,
        cause,
    )
    .await;
    match sent {
        Ok(r) if r.status == RefundStatus::Pending => Ok(Queried::Unchanged),
        Ok(_) => Ok(Queried::Accepted),
        Err(e) if is_definite_refusal(&e) => Ok(Queried::Released),
        Err(e) => Err(e),
    }
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
    let now = now_unix();
    let before = now - cfg.reconcile_after.as_secs() as i64;
    // Claimed: no other replica's pass visits these now, and each goes to
    // the back of the queue. CHANGE refunds stay in it (an operator's fix at
    // the merchant platform shows up in refundquery), at the same pace as
    // the others: the claim keeps them from crowding out anything.
    let open = refunds::claim_open(&state.db, before, cfg.reconcile_batch, now).await?;
    let mut changed = 0;
    for refund in open {
        let Some(order) = orders::get(&state.db, &refund.out_trade_no).await? else {
            continue;
        };
        let settled = if refund.status == RefundStatus::Pending {
            send_again(state, &order, &refund, cause).await
        } else {
            settle_by_query(state, &order, &refund, cause).await
        };
        match settled {
            Ok(Queried::Unchanged) => {}
            Ok(_) => changed += 1,
            Err(e) => {
                tracing::warn!(out_refund_no = %refund.out_refund_no, error = %e, "refund reconciliation failed; retried later")
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: &str) -> PayError {
        PayError::PayRefused {
            code: code.into(),
            description: "x".into(),
        }
    }

    #[test]
    fn only_definite_refusals_release_a_refund() {
        for code in ["NOTENOUGH", "ERROR", "PARAM_ERROR", "USER_ACCOUNT_ABNORMAL"] {
            assert!(is_definite_refusal(&refused(code)), "{code}");
        }
        for unknown in [
            refused("SYSTEMERROR"),
            refused("SYSTEM_ERROR"),
            refused("BIZERR_NEED_RETRY"),
            refused("FREQUENCY_LIMITED"),
            refused("INVALID_REQ_TOO_MUCH"),
            refused(""),
            // Unsigned: anyone could have written it.
            PayError::PayGatewayRefused("签名错误".into()),
            PayError::PayUnusable("reply sign does not verify".into()),
            PayError::Wechat(WechatError::Timeout("t".into())),
            PayError::Wechat(WechatError::BadResponse("HTTP 500".into())),
            PayError::Wechat(WechatError::Unreachable("refused".into())),
        ] {
            assert!(!is_definite_refusal(&unknown), "{unknown:?}");
        }
        assert!(needs_operator("CHANGE") && needs_operator("ABNORMAL"));
        assert!(!needs_operator("REFUNDCLOSE") && !needs_operator("CLOSED"));
    }

    #[test]
    fn an_unknown_outcome_says_so_and_keeps_its_kind() {
        let e = unknown_outcome(refused("SYSTEMERROR"), "R1");
        let text = e.to_string();
        assert!(text.contains("R1") && text.contains("SYSTEMERROR") && text.contains("PENDING"));
        let api: shared::error::ApiError = e.into();
        assert_eq!(api.code(), 10009);
        let timeout = unknown_outcome(PayError::Wechat(WechatError::Timeout("t".into())), "R2");
        assert!(matches!(timeout, PayError::Wechat(WechatError::Timeout(_))));
    }
}
