//! WeChat's payment notifications (`POST /api/pay/notify`, and the seed's
//! `/api/mp/payCallback`). SUCCESS is answered only once the order is PAID in
//! the database, committed; anything else is answered FAIL and WeChat retries.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use prometheus::IntCounterVec;
use shared::db::now_unix;
use shared::xml::notify_reply;

use crate::audit::{self, Cause};
use crate::beijing;
use crate::metrics;
use crate::state::PayState;
use crate::store::{self, NewNotification, PaidReport, Settled, Status};

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

/// What the payment and refund notification endpoints share: an outcome
/// decides the metric, the reply, the log line and the `pay_notifications` row.
pub(crate) trait NotificationOutcome: Sized {
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

/// Counts the outcome and answers WeChat: SUCCESS when acknowledged, else
/// FAIL with the outcome's label (WeChat retries).
fn reply<O: NotificationOutcome>(outcome: &O) -> HttpResponse {
    O::counter().with_label_values(&[outcome.label()]).inc();
    let body = if outcome.acknowledged() {
        notify_reply(true, "OK")
    } else {
        notify_reply(false, outcome.label())
    };
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(body)
}

/// A notification handler's frame: `body` is an error when it exceeded
/// `max_xml_bytes` (or could not be read), answered FAIL with nothing
/// recorded or changed; otherwise `process` decides, and its outcome is
/// logged, counted and answered.
pub(crate) async fn answer<O: NotificationOutcome>(
    body: Result<web::Bytes, actix_web::Error>,
    process: impl AsyncFnOnce(&[u8]) -> O,
) -> HttpResponse {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "{} notification refused unread", O::KIND);
            return reply(&O::TOO_LARGE);
        }
    };
    let outcome = process(&body).await;
    if outcome.acknowledged() {
        tracing::info!(outcome = outcome.label(), "{} notification", O::KIND);
    } else {
        tracing::warn!(outcome = outcome.label(), detail = %outcome.log_detail(), "{} notification refused", O::KIND);
    }
    reply(&outcome)
}

/// The handler. `body` is an error when it exceeded `max_xml_bytes` (or could
/// not be read): answered FAIL, nothing recorded or changed.
pub async fn receive(
    state: web::Data<PayState>,
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> HttpResponse {
    answer(body, async |body| {
        process(&state, body, &Cause::request("notify", &req)).await
    })
    .await
}

/// Parses, verifies and applies one notification.
pub async fn process(state: &PayState, body: &[u8], cause: &Cause) -> Outcome {
    let raw = String::from_utf8_lossy(body).into_owned();
    let fields = match shared::xml::parse(body, state.config.common.max_xml_bytes) {
        Ok(f) => f,
        Err(e) => {
            let outcome = Outcome::Malformed(e.to_string());
            record(state, None, raw, false, &outcome).await;
            return outcome;
        }
    };
    let no = fields
        .get("out_trade_no")
        .filter(|n| !n.is_empty())
        .cloned();
    if !state.pay.verify(&fields) {
        record(state, no, raw, false, &Outcome::BadSign).await;
        return Outcome::BadSign;
    }
    let field = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
    if field("return_code") != "SUCCESS" || field("result_code") != "SUCCESS" {
        // A failed payment changes nothing, but only a known order's report
        // is acknowledged.
        let outcome = match &no {
            None => Outcome::Settled(Settled::UnknownOrder),
            Some(n) => match store::get(&state.db, n).await {
                Err(e) => {
                    tracing::error!(error = %e, "payment notification not checked");
                    return Outcome::DbError;
                }
                Ok(None) => Outcome::Settled(Settled::UnknownOrder),
                Ok(Some(order)) if order.appid != field("appid") => {
                    Outcome::Settled(Settled::Mismatch("appid differs from the order's".into()))
                }
                Ok(Some(_)) => Outcome::PaymentFailed,
            },
        };
        record(state, no, raw, true, &outcome).await;
        return outcome;
    }
    let report = match paid_report(&fields) {
        Ok(r) => r,
        Err(why) => {
            let outcome = Outcome::Malformed(why);
            record(state, no, raw, true, &outcome).await;
            return outcome;
        }
    };
    let Some(no) = no else {
        let outcome = Outcome::Malformed("out_trade_no is missing".into());
        record(state, None, raw, true, &outcome).await;
        return outcome;
    };
    let mch_id = state.config.mch_id.clone();
    let tx_cause = cause.clone();
    let result = state
        .db
        .transaction(move |conn| {
            let settled = store::settle_paid(conn, &no, &report, &mch_id, &tx_cause)?;
            let outcome = Outcome::Settled(settled.clone());
            store::insert_notification(conn, &row(Some(no.clone()), raw, true, &outcome))?;
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

fn paid_report(fields: &BTreeMap<String, String>) -> Result<PaidReport, String> {
    let field = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
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

/// The `pay_notifications` row of a notification read now.
pub(crate) fn row<O: NotificationOutcome>(
    out_trade_no: Option<String>,
    raw: String,
    sign_verified: bool,
    outcome: &O,
) -> NewNotification {
    NewNotification {
        out_trade_no,
        raw_body: raw,
        sign_verified,
        outcome: outcome.label().to_owned(),
        detail: outcome.detail(),
        received_at: now_unix(),
        kind: O::KIND.to_owned(),
    }
}

/// Keeps a refused (or unapplied) notification for an operator. Best effort:
/// the reply is FAIL whether or not this lands.
pub(crate) async fn record<O: NotificationOutcome>(
    state: &PayState,
    out_trade_no: Option<String>,
    raw: String,
    sign_verified: bool,
    outcome: &O,
) {
    let row = row(out_trade_no, raw, sign_verified, outcome);
    if let Err(e) = state
        .db
        .run(move |conn| store::insert_notification(conn, &row))
        .await
    {
        tracing::error!(error = %e, "{}", O::NOT_RECORDED);
    }
}
