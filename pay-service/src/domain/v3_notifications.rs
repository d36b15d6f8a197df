//! WeChat's v3 notifications (`/api/pay/v3/notify`, `/api/pay/v3/refund-notify`):
//! opened by the v3 client (headers, 5-minute window, SIGNTEST probes,
//! signature, AES-256-GCM) and then applied by the same rules as v2's: a
//! payment through `settle::settle_paid` (appid, mchid and amount matched
//! against the order under its row lock), a refund through
//! `refund_notifications::apply`. Same transitions, merchant events, audit
//! lines and `pay_notifications` rows as v2 (the row holds the decrypted
//! resource, not the ciphertext).
//!
//! A notification that fails to open is refused before the order is looked
//! at and is not stored whole: only its hash, size, a short prefix and the
//! reason (`notifications::record_refused`, kinds `v3_payment`, `v3_refund`). The reply is the HTTP layer's: 204 only when [`V3Notified`] is
//! acknowledged, which a payment is only once the order is PAID, committed.

use shared::db::now_unix;

use super::audit::{self, Cause};
use super::notifications::{self as v2_payments, NotificationOutcome, Received};
use super::refund_notifications::{self, Outcome as RefundOutcome};
use super::settle::{self, PaidReport, Settled};
use super::state::PayState;
use crate::db::Status;
use crate::db::orders;
use crate::wechat::v3::notification::NotifyError;
use crate::wechat::v3::refunds::refund_state;
use crate::wechat::v3::{RefundResource, TransactionResource, parse_rfc3339};

pub use crate::wechat::v3::NotifyHeaders;

/// What became of one v3 notification, around the v2 outcome of its kind
/// (`notifications::Outcome` for payments, `refund_notifications::Outcome`
/// for refunds) once it was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V3Notified<O> {
    /// Beyond the body limit, or unreadable.
    TooLarge,
    /// No APIv3 credentials here: nothing can be verified.
    NotConfigured,
    /// Failed to open (headers, window, probe, signature, decryption);
    /// nothing stored.
    Refused(NotifyError),
    /// Opened; what the v2 rules made of it.
    Opened(O),
}

impl<O: NotificationOutcome> V3Notified<O> {
    pub fn label(&self) -> &'static str {
        match self {
            V3Notified::TooLarge => "too_large",
            V3Notified::NotConfigured => "not_configured",
            V3Notified::Refused(e) => e.label(),
            V3Notified::Opened(o) => o.label(),
        }
    }

    /// Answered 204, so WeChat stops retrying.
    pub fn acknowledged(&self) -> bool {
        matches!(self, V3Notified::Opened(o) if o.acknowledged())
    }

    /// What the FAIL reply and the log line say.
    pub fn detail(&self) -> String {
        match self {
            V3Notified::Refused(e) => e.to_string(),
            V3Notified::Opened(o) => o.log_detail(),
            _ => String::new(),
        }
    }

    /// Whether the refusal is WeChat's doing to retry (our database) rather
    /// than the notification's fault: answered 5xx instead of 4xx.
    pub fn is_ours(&self) -> bool {
        matches!(self, V3Notified::NotConfigured)
            || matches!(self, V3Notified::Opened(o) if o.label() == "db_error")
    }

    /// Refused as unreadable (not JSON, not a v3 notification) rather than
    /// as unauthentic: answered 400 instead of 401.
    pub fn is_malformed(&self) -> bool {
        matches!(self, V3Notified::Refused(NotifyError::Malformed(_)))
    }

    /// The metric counter of its kind.
    pub fn count(&self) {
        O::counter().with_label_values(&[self.label()]).inc();
    }
}

pub type PaymentNotified = V3Notified<v2_payments::Outcome>;
pub type RefundNotified = V3Notified<RefundOutcome>;

/// A verified notification's row: the decrypted resource stands for the body.
fn received(resource: &impl serde::Serialize, out_trade_no: &str) -> Received {
    let text = serde_json::to_string(resource).unwrap_or_default();
    let mut r = Received::new(text.as_bytes());
    r.out_trade_no = Some(out_trade_no.to_owned()).filter(|n| !n.is_empty());
    r.sign_verified = true;
    r
}

/// A notification that did not open: kept as its hash, size, a short
/// prefix and the reason (`notifications::record_refused`, bounded per
/// minute), never whole, since it could be anything.
async fn refused<O>(state: &PayState, kind: &str, body: &[u8], e: NotifyError) -> V3Notified<O> {
    let reason = format!("{}: {e}", e.label());
    v2_payments::record_refused(state, kind, body, &reason).await;
    V3Notified::Refused(e)
}

/// Opens, checks and applies one payment notification.
pub async fn process_payment(
    state: &PayState,
    headers: &NotifyHeaders,
    body: &[u8],
    cause: &Cause,
) -> PaymentNotified {
    let Some(api) = state.v3.as_ref() else {
        return V3Notified::NotConfigured;
    };
    let opened = match api
        .open_notification::<TransactionResource>(headers, body, now_unix())
        .await
    {
        Ok(o) => o,
        Err(e) => return refused(state, "v3_payment", body, e).await,
    };
    tracing::debug!(notification_id = %opened.id, event_type = %opened.event_type, "v3 payment notification opened");
    let t = opened.resource;
    let received = received(&t_serializable(&t), &t.out_trade_no);
    if opened.event_type != "TRANSACTION.SUCCESS" || t.trade_state != "SUCCESS" {
        let why = format!("{} with trade_state {}", opened.event_type, t.trade_state);
        let outcome = v2_payments::Outcome::Malformed(why);
        return V3Notified::Opened(received.record(state, outcome).await);
    }
    if t.out_trade_no.is_empty() || t.transaction_id.is_empty() {
        let outcome =
            v2_payments::Outcome::Malformed("out_trade_no or transaction_id is missing".into());
        return V3Notified::Opened(received.record(state, outcome).await);
    }
    if t.amount.currency.as_deref().is_some_and(|c| c != "CNY") {
        let outcome = v2_payments::Outcome::Malformed("amount.currency is not CNY".into());
        return V3Notified::Opened(received.record(state, outcome).await);
    }
    let report = PaidReport {
        transaction_id: t.transaction_id.clone(),
        total_fee: Some(t.amount.total),
        appid: Some(t.appid.clone()),
        mch_id: Some(t.mchid.clone()),
        paid_at: t
            .success_time
            .as_deref()
            .and_then(parse_rfc3339)
            .unwrap_or_else(now_unix),
    };
    V3Notified::Opened(settle_payment(state, received, t.out_trade_no, report, cause).await)
}

/// The resource as stored: what was matched, never more than WeChat sent.
fn t_serializable(t: &TransactionResource) -> serde_json::Value {
    serde_json::json!({
        "appid": t.appid,
        "mchid": t.mchid,
        "out_trade_no": t.out_trade_no,
        "transaction_id": t.transaction_id,
        "trade_state": t.trade_state,
        "success_time": t.success_time,
        "amount": {"total": t.amount.total, "currency": t.amount.currency},
    })
}

/// settle_paid and the notification's row, in one transaction (as v2).
async fn settle_payment(
    state: &PayState,
    received: Received,
    no: String,
    report: PaidReport,
    cause: &Cause,
) -> v2_payments::Outcome {
    let mch_id = state.config.mch_id.clone();
    let tx_cause = cause.clone();
    let result = state
        .db
        .transaction(move |conn| {
            let row = |s: &Settled| received.row(&v2_payments::Outcome::Settled(s.clone()));
            let settled =
                settle::settle_paid_recorded(conn, &no, &report, &mch_id, &tx_cause, Some(row))?;
            Ok((no, settled))
        })
        .await;
    match result {
        Ok((no, settled)) => {
            if settled == Settled::Applied {
                audit::changed(&no, Status::NotPay, Status::Paid, cause);
            }
            v2_payments::Outcome::Settled(settled)
        }
        Err(e) => {
            tracing::error!(error = %e, "v3 payment notification not recorded");
            v2_payments::Outcome::DbError
        }
    }
}

/// Opens, checks and applies one refund notification.
pub async fn process_refund(
    state: &PayState,
    headers: &NotifyHeaders,
    body: &[u8],
    cause: &Cause,
) -> RefundNotified {
    let Some(api) = state.v3.as_ref() else {
        return V3Notified::NotConfigured;
    };
    let opened = match api
        .open_notification::<RefundResource>(headers, body, now_unix())
        .await
    {
        Ok(o) => o,
        Err(e) => return refused(state, "v3_refund", body, e).await,
    };
    tracing::debug!(notification_id = %opened.id, event_type = %opened.event_type, "v3 refund notification opened");
    let r = opened.resource;
    let stored = serde_json::json!({
        "mchid": r.mchid,
        "out_trade_no": r.out_trade_no,
        "out_refund_no": r.out_refund_no,
        "refund_id": r.refund_id,
        "refund_status": r.refund_status,
        "success_time": r.success_time,
        "amount": {"refund": r.amount.refund, "total": r.amount.total},
    });
    let received = received(&stored, &r.out_trade_no);
    if r.mchid != state.config.mch_id {
        let outcome = RefundOutcome::NotOurs(format!("mchid {:?} is not ours", r.mchid));
        return V3Notified::Opened(received.record(state, outcome).await);
    }
    if !opened.event_type.starts_with("REFUND.") {
        let outcome = RefundOutcome::Malformed(format!("event_type {}", opened.event_type));
        return V3Notified::Opened(received.record(state, outcome).await);
    }
    // The order it names must be ours, for that amount, and a v3 one's
    // refunds are reported here (a v2 refund would not be).
    match orders::get(&state.db, &r.out_trade_no).await {
        Err(e) => {
            tracing::error!(error = %e, "v3 refund notification not checked");
            return V3Notified::Opened(RefundOutcome::DbError);
        }
        Ok(Some(order)) if order.amount_fen != r.amount.total => {
            let why = format!(
                "amount.total {} differs from the order's {}",
                r.amount.total, order.amount_fen
            );
            return V3Notified::Opened(received.record(state, RefundOutcome::NotOurs(why)).await);
        }
        Ok(_) => {}
    }
    let reported = match refund_state(
        &r.refund_status,
        &r.refund_id,
        r.amount.refund,
        r.success_time.as_deref(),
    ) {
        Ok(s) => s,
        Err(why) => {
            return V3Notified::Opened(received.record(state, RefundOutcome::Malformed(why)).await);
        }
    };
    V3Notified::Opened(
        refund_notifications::apply(state, received, r.out_refund_no, reported, cause).await,
    )
}
