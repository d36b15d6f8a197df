//! WeChat's refund notifications. They carry no sign: what authenticates
//! them is `req_info`, encrypted with a key only WeChat and we derive from
//! MCH_KEY. The same rules as payment notifications: appid and mch_id
//! checked, every one read is kept in `pay_notifications` (kind `refund`),
//! and SUCCESS is answered only once the refund's outcome is committed.

use prometheus::IntCounterVec;
use shared::db::{DbConnection, DbError};

use super::audit::{self, Cause};
use super::notifications::{NotificationOutcome, Received};
use super::refund_rules::{self, RefundReport, RefundSettled};
use super::refunds as refunds_domain;
use super::state::PayState;
use crate::db::notifications;
use crate::db::orders;
use crate::db::refunds;
use crate::db::{RefundStatus, Status};
use crate::metrics;
use crate::wechat::{RefundState, ReqInfo};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    TooLarge,
    Malformed(String),
    /// appid or mch_id is not ours.
    NotOurs(String),
    /// `req_info` missing, not base64, or not decryptable with our key.
    Undecryptable(String),
    Settled(RefundSettled),
    /// WeChat reports the refund closed (REFUNDCLOSE): released.
    Released,
    /// The same report again.
    AlreadyReleased,
    /// WeChat reports CHANGE (the money could not reach the payer): the
    /// refund waits for an operator, its amount held.
    NeedsOperator,
    /// CHANGE again, or for a refund that is no longer open.
    AlreadyNeedsOperator,
    /// Reports PROCESSING (never sent by WeChat, but harmless).
    StillProcessing,
    DbError,
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::TooLarge => "too_large",
            Outcome::Malformed(_) => "malformed",
            Outcome::NotOurs(_) => "not_ours",
            Outcome::Undecryptable(_) => "undecryptable",
            Outcome::Settled(s) => s.outcome(),
            Outcome::Released => "released",
            Outcome::AlreadyReleased => "duplicate",
            Outcome::NeedsOperator => "needs_operator",
            Outcome::AlreadyNeedsOperator => "duplicate",
            Outcome::StillProcessing => "processing",
            Outcome::DbError => "db_error",
        }
    }
}

impl NotificationOutcome for Outcome {
    const KIND: &str = "refund";
    const TOO_LARGE: Self = Outcome::TooLarge;
    const NOT_RECORDED: &str = "refund notification not recorded";

    fn counter() -> &'static IntCounterVec {
        &metrics::REFUND_NOTIFICATIONS
    }

    fn label(&self) -> &'static str {
        Outcome::label(self)
    }

    fn acknowledged(&self) -> bool {
        matches!(
            self,
            Outcome::Settled(RefundSettled::Applied { .. } | RefundSettled::Duplicate)
                | Outcome::Released
                | Outcome::AlreadyReleased
                | Outcome::NeedsOperator
                | Outcome::AlreadyNeedsOperator
        )
    }

    fn detail(&self) -> String {
        match self {
            Outcome::Malformed(why)
            | Outcome::NotOurs(why)
            | Outcome::Undecryptable(why)
            | Outcome::Settled(RefundSettled::Mismatch(why)) => why.clone(),
            _ => String::new(),
        }
    }

    fn log_detail(&self) -> String {
        self.detail()
    }
}

/// A notification known to come from WeChat, for us: the app it names and
/// its decrypted `req_info`.
struct Authentic {
    appid: String,
    info: ReqInfo,
}

/// Reads, checks and applies one refund notification.
pub async fn process(state: &PayState, body: &[u8], cause: &Cause) -> Outcome {
    let mut received = Received::new(body);
    // Everything before this needs no database: a forged body is refused
    // without taking a connection.
    let Authentic { appid, info } = match authenticate(state, body) {
        Ok(a) => a,
        Err(outcome) => return received.refuse(state, outcome).await,
    };
    received.out_trade_no = Some(info.out_trade_no.clone()).filter(|n| !n.is_empty());
    received.sign_verified = true;
    match orders::get(&state.db, &info.out_trade_no).await {
        Err(e) => {
            tracing::error!(error = %e, "refund notification not checked");
            return Outcome::DbError;
        }
        Ok(Some(order)) if order.appid != appid => {
            let outcome = Outcome::NotOurs("appid differs from the order's".into());
            return received.record(state, outcome).await;
        }
        Ok(_) => {}
    }
    let reported = match info.state() {
        Ok(s) => s,
        Err(why) => return received.record(state, Outcome::Malformed(why)).await,
    };
    apply(state, received, info.out_refund_no, reported, cause).await
}

/// What an authentic refund report (v2's `req_info`, v3's decrypted
/// resource) does to the refund, recorded with the notification's row.
pub(super) async fn apply(
    state: &PayState,
    received: Received,
    out_refund_no: String,
    reported: RefundState,
    cause: &Cause,
) -> Outcome {
    match reported {
        RefundState::Success {
            refund_id,
            refund_fee,
            succeeded_at,
        } => {
            let report = RefundReport {
                out_trade_no: received.out_trade_no.clone(),
                refund_id,
                refund_fee,
                succeeded_at,
            };
            succeeded(state, received, out_refund_no, report, cause).await
        }
        RefundState::Failed { status } if refunds_domain::needs_operator(&status) => {
            let why = format!(
                "WeChat refund status {status}: needs an operator at the merchant platform"
            );
            close_refund(state, received, out_refund_no, why, cause, NEEDS_OPERATOR).await
        }
        RefundState::Failed { status } => {
            let why = format!("WeChat refund status {status}");
            close_refund(state, received, out_refund_no, why, cause, CLOSED).await
        }
        RefundState::Processing { .. } => received.record(state, Outcome::StillProcessing).await,
    }
}

/// The outer XML, its return_code, merchant and app, then `req_info`
/// decrypted with our key: a refusal is the outcome to record.
fn authenticate(state: &PayState, body: &[u8]) -> Result<Authentic, Outcome> {
    let max = state.config.common.max_xml_bytes;
    let outer = shared::xml::parse(body, max).map_err(|e| Outcome::Malformed(e.to_string()))?;
    let field = |k: &str| outer.get(k).map(String::as_str).unwrap_or("");
    if field("return_code") != "SUCCESS" {
        return Err(Outcome::Malformed(format!(
            "return_code {:?}",
            field("return_code")
        )));
    }
    if field("mch_id") != state.config.mch_id {
        return Err(Outcome::NotOurs(format!(
            "mch_id {:?} is not ours",
            field("mch_id")
        )));
    }
    if !state.config.is_configured_app(field("appid")) {
        return Err(Outcome::NotOurs(format!(
            "appid {:?} is not ours",
            field("appid")
        )));
    }
    let info = ReqInfo::decrypt(state.config.mch_key.expose(), field("req_info"), max)
        .map_err(|e| Outcome::Undecryptable(e.to_string()))?;
    Ok(Authentic {
        appid: field("appid").to_owned(),
        info,
    })
}

/// SUCCESS: the refund settles (once) and the notification is kept, in one
/// transaction.
async fn succeeded(
    state: &PayState,
    received: Received,
    out_refund_no: String,
    report: RefundReport,
    cause: &Cause,
) -> Outcome {
    let tx_cause = cause.clone();
    let result = state
        .db
        .transaction(move |conn| {
            let settled = refund_rules::settle_refunded(conn, &out_refund_no, &report, &tx_cause)?;
            let outcome = Outcome::Settled(settled.clone());
            notifications::insert(conn, &received.row(&outcome))?;
            Ok(settled)
        })
        .await;
    match result {
        Ok(settled) => {
            if let RefundSettled::Applied { from, out_trade_no } = &settled {
                audit::changed(out_trade_no, *from, Status::Refund, cause);
            }
            Outcome::Settled(settled)
        }
        Err(e) => {
            tracing::error!(error = %e, "refund notification not recorded");
            Outcome::DbError
        }
    }
}

/// What a closing WeChat status does to a refund that has not succeeded.
struct Closing {
    /// Applies it under the refund's lock; false when it was applied before
    /// (a replayed notification).
    apply: fn(&mut DbConnection, &str, &str) -> Result<bool, DbError>,
    applied: Outcome,
    replayed: Outcome,
    audit: fn(&str, &str, &Cause),
}

/// CHANGE / ABNORMAL: the refund waits for an operator with its amount held
/// (reserved again if it had been released).
const NEEDS_OPERATOR: Closing = Closing {
    apply: refund_rules::hold_for_operator,
    applied: Outcome::NeedsOperator,
    replayed: Outcome::AlreadyNeedsOperator,
    audit: audit::refund_needs_operator,
};

/// REFUNDCLOSE: the refund's amount is released (once).
const CLOSED: Closing = Closing {
    apply: refund_rules::release,
    applied: Outcome::Released,
    replayed: Outcome::AlreadyReleased,
    audit: audit::refund_released,
};

/// Applies `closing` to the refund and keeps the notification, in one
/// transaction. A refund that already succeeded is left as it is.
async fn close_refund(
    state: &PayState,
    received: Received,
    out_refund_no: String,
    why: String,
    cause: &Cause,
    closing: Closing,
) -> Outcome {
    let (tx_why, tx_no) = (why.clone(), out_refund_no.clone());
    let Closing {
        apply,
        applied,
        replayed,
        audit,
    } = closing;
    let tx_applied = applied.clone();
    let result = state
        .db
        .transaction(move |conn| {
            let outcome = match refunds::lock(conn, &tx_no)? {
                None => Outcome::Settled(RefundSettled::UnknownRefund),
                Some(r) if r.status == RefundStatus::Success => Outcome::Settled(
                    RefundSettled::Mismatch("the refund already succeeded".into()),
                ),
                Some(_) if apply(conn, &tx_no, &tx_why)? => tx_applied,
                Some(_) => replayed,
            };
            notifications::insert(conn, &received.row(&outcome))?;
            Ok(outcome)
        })
        .await;
    match result {
        Ok(outcome) => {
            if outcome == applied {
                audit(&out_refund_no, &why, cause);
            }
            outcome
        }
        Err(e) => {
            tracing::error!(error = %e, "refund notification not recorded");
            Outcome::DbError
        }
    }
}
