//! WeChat's payment notifications: parsed, verified and applied here; the
//! HTTP frame around them (size limit, reply) is `http::notify`. What each
//! one became is its [`Outcome`], which decides the reply (SUCCESS only once
//! the order is PAID in the database, committed), the metric, the log line
//! and the `pay_notifications` row. A notification that does not verify is
//! refused before any database work and kept only as a bounded record
//! ([`record_refused`]: hash, size, reason, a short prefix); verified ones are
//! kept whole.

use std::collections::BTreeMap;

use prometheus::IntCounterVec;
use sha2::{Digest, Sha256};
use shared::db::now_unix;

use super::audit::{self, Cause};
use super::settle::{self, PaidReport, Settled};
use super::state::PayState;
use crate::db::Status;
use crate::db::notifications::{self, NewNotification};
use crate::db::orders;
use crate::metrics;
use crate::wechat::beijing;

/// What became of one notification; also its `outcome` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    TooLarge,
    Malformed(String),
    BadSign,
    /// Verified, but WeChat reports a failed payment: acknowledged, no change.
    PaymentFailed,
    Settled(Settled),
    DbError,
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::TooLarge => "too_large",
            Outcome::Malformed(_) => "malformed",
            Outcome::BadSign => "bad_sign",
            Outcome::PaymentFailed => "payment_failed",
            Outcome::Settled(s) => s.outcome(),
            Outcome::DbError => "db_error",
        }
    }
}

impl NotificationOutcome for Outcome {
    const KIND: &str = "payment";
    const TOO_LARGE: Self = Outcome::TooLarge;
    const NOT_RECORDED: &str = "refused notification not recorded";

    fn counter() -> &'static IntCounterVec {
        &metrics::NOTIFICATIONS
    }

    fn label(&self) -> &'static str {
        Outcome::label(self)
    }

    fn acknowledged(&self) -> bool {
        matches!(
            self,
            Outcome::PaymentFailed | Outcome::Settled(Settled::Applied | Settled::AlreadyPaid)
        )
    }

    fn detail(&self) -> String {
        match self {
            Outcome::Malformed(why) | Outcome::Settled(Settled::Mismatch(why)) => why.clone(),
            Outcome::Settled(Settled::NotPayable(s)) => format!("order is {}", s.as_str()),
            _ => String::new(),
        }
    }

    fn log_detail(&self) -> String {
        format!("{self:?}")
    }
}

/// What the payment and refund notifications share: an outcome decides the
/// metric, the reply, the log line and the `pay_notifications` row.
pub trait NotificationOutcome: Sized {
    /// The row's `kind`, and the first word of the log lines.
    const KIND: &str;
    /// A body beyond `max_xml_bytes`, or one that could not be read.
    const TOO_LARGE: Self;
    /// Logged when a refused notification's row could not be written.
    const NOT_RECORDED: &str;
    /// Counts notifications by `label`.
    fn counter() -> &'static IntCounterVec;
    fn label(&self) -> &'static str;
    /// Answered SUCCESS, so WeChat stops retrying.
    fn acknowledged(&self) -> bool;
    /// The row's `detail`.
    fn detail(&self) -> String;
    /// What the warning about a refused notification says of it.
    fn log_detail(&self) -> String;
}

/// One notification as read: its body (kept as text for the row) and the
/// order it names, once known.
pub(super) struct Received {
    pub raw: String,
    pub out_trade_no: Option<String>,
    pub sign_verified: bool,
}

impl Received {
    pub fn new(body: &[u8]) -> Self {
        Received {
            raw: String::from_utf8_lossy(body).into_owned(),
            out_trade_no: None,
            sign_verified: false,
        }
    }

    /// The `pay_notifications` row of this notification, read now.
    pub fn row<O: NotificationOutcome>(self, outcome: &O) -> NewNotification {
        NewNotification {
            out_trade_no: self.out_trade_no,
            raw_body: self.raw,
            sign_verified: self.sign_verified,
            outcome: outcome.label().to_owned(),
            detail: outcome.detail(),
            received_at: now_unix(),
            kind: O::KIND.to_owned(),
            body_sha256: None,
            body_size: None,
        }
    }

    /// Refuses a notification that did not verify: recorded the bounded way
    /// ([`record_refused`]), never whole.
    pub async fn refuse<O: NotificationOutcome>(self, state: &PayState, outcome: O) -> O {
        let detail = outcome.detail();
        let reason = if detail.is_empty() {
            outcome.label().to_owned()
        } else {
            format!("{}: {detail}", outcome.label())
        };
        record_refused(state, O::KIND, self.raw.as_bytes(), &reason).await;
        outcome
    }

    /// Keeps a refused (or unapplied) notification for an operator, and
    /// returns its outcome. Best effort: the reply is FAIL whether or not
    /// this lands.
    pub async fn record<O: NotificationOutcome>(self, state: &PayState, outcome: O) -> O {
        let row = self.row(&outcome);
        if let Err(e) = state
            .db
            .run(move |conn| notifications::insert(conn, &row))
            .await
        {
            tracing::error!(error = %e, "{}", O::NOT_RECORDED);
        }
        outcome
    }
}

/// How much of a refused body is kept: enough to see what it was.
pub const REFUSED_PREFIX_BYTES: usize = 256;
/// How much of a refusal's reason is kept.
const REFUSED_DETAIL_CHARS: usize = 200;
/// The shared-cache counter of refusals recorded this minute (all replicas).
const REFUSED_BUDGET_KEY: &str = "pay:refused_notify:budget";

/// Records a notification refused before it verified (bad sign or
/// signature, not XML, not decryptable, not our merchant): its kind (the
/// row's `kind`, e.g. `payment`, `refund`, `v3_payment`), the SHA-256 and
/// size of the whole body, at most [`REFUSED_PREFIX_BYTES`] of it, and
/// `reason` (`label` or `label: detail`; the label becomes the row's
/// `outcome`). Call it only after the checks that need no database.
///
/// Bounded so that a flood of forged bodies cannot fill the database or
/// hold its connections: at most `REFUSED_NOTIFY_PER_MINUTE` rows a minute
/// are written (counted in the shared cache; the rest are only logged and
/// counted by the caller's metric), and each write trims the refused rows
/// to `REFUSED_NOTIFY_KEEP_ROWS` and `REFUSED_NOTIFY_KEEP_DAYS`. Best
/// effort: a refused notification is answered FAIL whether or not this lands.
pub async fn record_refused(state: &PayState, kind: &str, body: &[u8], reason: &str) {
    let limits = &state.config.limits;
    let within_budget = match state
        .cache
        .incr(REFUSED_BUDGET_KEY, std::time::Duration::from_secs(60))
        .await
    {
        Ok(n) => n <= i64::from(limits.refused_records_per_minute),
        Err(e) => {
            tracing::warn!(error = %e, "refused notification not recorded: the cache is unavailable");
            false
        }
    };
    let sha256 = hex::encode(Sha256::digest(body));
    if !within_budget {
        tracing::debug!(kind, %sha256, size = body.len(), "refused notification over the record budget; not recorded");
        return;
    }
    let (label, detail) = match reason.split_once(": ") {
        Some((l, d)) => (l.trim(), d.trim()),
        None => (reason.trim(), ""),
    };
    let row = NewNotification {
        out_trade_no: None,
        raw_body: prefix_of(body),
        sign_verified: false,
        outcome: label.chars().take(40).collect(),
        detail: detail.chars().take(REFUSED_DETAIL_CHARS).collect(),
        received_at: now_unix(),
        kind: kind.chars().take(40).collect(),
        body_sha256: Some(sha256),
        body_size: Some(body.len() as i64),
    };
    let keep_rows = limits.refused_keep_rows;
    let keep_since = row.received_at - limits.refused_keep_days * 86_400;
    if let Err(e) = state
        .db
        .transaction(move |conn| notifications::insert_refused(conn, &row, keep_rows, keep_since))
        .await
    {
        tracing::error!(error = %e, kind, "refused notification not recorded");
    }
}

/// At most [`REFUSED_PREFIX_BYTES`] bytes of text from the start of `body`
/// (invalid UTF-8 shown as U+FFFD, cut on a character boundary).
fn prefix_of(body: &[u8]) -> String {
    let head = &body[..body.len().min(REFUSED_PREFIX_BYTES)];
    let mut text = String::with_capacity(REFUSED_PREFIX_BYTES);
    for c in String::from_utf8_lossy(head).chars() {
        if text.len() + c.len_utf8() > REFUSED_PREFIX_BYTES {
            break;
        }
        text.push(c);
    }
    text
}

type Fields = BTreeMap<String, String>;

fn field<'a>(fields: &'a Fields, key: &str) -> &'a str {
    fields.get(key).map(String::as_str).unwrap_or("")
}

/// Parses, verifies and applies one notification.
pub async fn process(state: &PayState, body: &[u8], cause: &Cause) -> Outcome {
    let mut received = Received::new(body);
    let fields = match shared::xml::parse(body, state.config.common.max_xml_bytes) {
        Ok(f) => f,
        Err(e) => {
            return received
                .refuse(state, Outcome::Malformed(e.to_string()))
                .await;
        }
    };
    received.out_trade_no = fields
        .get("out_trade_no")
        .filter(|n| !n.is_empty())
        .cloned();
    if !state.pay.verify(&fields) {
        return received.refuse(state, Outcome::BadSign).await;
    }
    received.sign_verified = true;
    if field(&fields, "return_code") != "SUCCESS" || field(&fields, "result_code") != "SUCCESS" {
        return payment_failed(state, received, &fields).await;
    }
    let report = match paid_report(&fields) {
        Ok(r) => r,
        Err(why) => return received.record(state, Outcome::Malformed(why)).await,
    };
    if received.out_trade_no.is_none() {
        let outcome = Outcome::Malformed("out_trade_no is missing".into());
        return received.record(state, outcome).await;
    }
    settle(state, received, report, cause).await
}

/// A failed payment changes nothing, but only a known order's report is
/// acknowledged.
async fn payment_failed(state: &PayState, received: Received, fields: &Fields) -> Outcome {
    let outcome = match &received.out_trade_no {
        None => Outcome::Settled(Settled::UnknownOrder),
        Some(n) => match orders::get(&state.db, n).await {
            Err(e) => {
                tracing::error!(error = %e, "payment notification not checked");
                return Outcome::DbError;
            }
            Ok(None) => Outcome::Settled(Settled::UnknownOrder),
            Ok(Some(order)) if order.appid != field(fields, "appid") => {
                Outcome::Settled(Settled::Mismatch("appid differs from the order's".into()))
            }
            Ok(Some(_)) => Outcome::PaymentFailed,
        },
    };
    received.record(state, outcome).await
}

/// Applies the payment and keeps the notification, in one transaction
/// (`settle::settle_paid_recorded`: on PostgreSQL, when it applies, BEGIN,
/// two statements, COMMIT). SUCCESS is answered only after the commit.
async fn settle(
    state: &PayState,
    received: Received,
    report: PaidReport,
    cause: &Cause,
) -> Outcome {
    let no = received.out_trade_no.clone().unwrap_or_default();
    let mch_id = state.config.mch_id.clone();
    let tx_cause = cause.clone();
    let result = state
        .db
        .transaction(move |conn| {
            let row = |s: &Settled| received.row(&Outcome::Settled(s.clone()));
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
            Outcome::Settled(settled)
        }
        Err(e) => {
            tracing::error!(error = %e, "payment notification not recorded");
            Outcome::DbError
        }
    }
}

fn paid_report(fields: &Fields) -> Result<PaidReport, String> {
    let field = |k: &str| field(fields, k);
    let total_fee = field("total_fee")
        .parse::<i64>()
        .map_err(|_| "total_fee is missing or not an integer".to_owned())?;
    if !matches!(field("fee_type"), "" | "CNY") {
        return Err(format!("fee_type {} is not CNY", field("fee_type")));
    }
    let transaction_id = field("transaction_id");
    if transaction_id.is_empty() {
        return Err("transaction_id is missing".into());
    }
    Ok(PaidReport {
        transaction_id: transaction_id.to_owned(),
        total_fee: Some(total_fee),
        appid: Some(field("appid").to_owned()),
        mch_id: Some(field("mch_id").to_owned()),
        paid_at: beijing::parse(field("time_end")).unwrap_or_else(now_unix),
    })
}
