//! WeChat's refund notifications (`POST /api/pay/refund-notify`). They carry
//! no sign: what authenticates them is `req_info`, encrypted with a key only
//! WeChat and we derive from MCH_KEY. The same rules as payment
//! notifications: size limit, no DOCTYPE, appid and mch_id checked, every one
//! read is kept in `pay_notifications` (kind `refund`), and SUCCESS is
//! answered only once the refund's outcome is committed.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use prometheus::IntCounterVec;

use crate::audit::{self, Cause};
use crate::metrics;
use crate::notify::{NotificationOutcome, answer, record, row};
use crate::refund_store::{self, RefundReport, RefundSettled};
use crate::req_info;
use crate::state::PayState;
use crate::store::{self, Status};
use crate::wxrefund::RefundState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    TooLarge,
    Malformed(String),
    /// appid or mch_id is not ours.
    NotOurs(String),
    /// `req_info` missing, not base64, or not decryptable with our key.
    Undecryptable(String),
    Settled(RefundSettled),
    /// WeChat reports the refund failed (REFUNDCLOSE, CHANGE): released.
    Released,
    /// The same report again.
    AlreadyReleased,
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

/// The handler; `body` is an error beyond `max_xml_bytes`.
pub async fn receive(
    state: web::Data<PayState>,
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> HttpResponse {
    answer(body, async |body| {
        process(&state, body, &Cause::request("refund_notify", &req)).await
    })
    .await
}

/// Reads, checks and applies one refund notification.
pub async fn process(state: &PayState, body: &[u8], cause: &Cause) -> Outcome {
    let raw = String::from_utf8_lossy(body).into_owned();
    let max = state.config.common.max_xml_bytes;
    let outer = match shared::xml::parse(body, max) {
        Ok(f) => f,
        Err(e) => {
            let outcome = Outcome::Malformed(e.to_string());
            record(state, None, raw, false, &outcome).await;
            return outcome;
        }
    };
    let field = |k: &str| outer.get(k).map(String::as_str).unwrap_or("");
    let outcome = if field("return_code") != "SUCCESS" {
        Some(Outcome::Malformed(format!(
            "return_code {:?}",
            field("return_code")
        )))
    } else if field("mch_id") != state.config.mch_id {
        Some(Outcome::NotOurs(format!(
            "mch_id {:?} is not ours",
            field("mch_id")
        )))
    } else if !state.config.is_configured_app(field("appid")) {
        Some(Outcome::NotOurs(format!(
            "appid {:?} is not ours",
            field("appid")
        )))
    } else {
        None
    };
    if let Some(outcome) = outcome {
        record(state, None, raw, false, &outcome).await;
        return outcome;
    }
    let inner = match req_info::decrypt(state.config.mch_key.expose(), field("req_info"), max) {
        Ok(f) => f,
        Err(e) => {
            let outcome = Outcome::Undecryptable(e.to_string());
            record(state, None, raw, false, &outcome).await;
            return outcome;
        }
    };
    let get = |k: &str| inner.get(k).map(String::as_str).unwrap_or("");
    let out_trade_no = Some(get("out_trade_no").to_owned()).filter(|n| !n.is_empty());
    match store::get(&state.db, get("out_trade_no")).await {
        Err(e) => {
            tracing::error!(error = %e, "refund notification not checked");
            return Outcome::DbError;
        }
        Ok(Some(order)) if order.appid != field("appid") => {
            let outcome = Outcome::NotOurs("appid differs from the order's".into());
            record(state, out_trade_no, raw, true, &outcome).await;
            return outcome;
        }
        Ok(_) => {}
    }
    let state_reported = match parse_state(&inner) {
        Ok(s) => s,
        Err(why) => {
            let outcome = Outcome::Malformed(why);
            record(state, out_trade_no, raw, true, &outcome).await;
            return outcome;
        }
    };
    let out_refund_no = get("out_refund_no").to_owned();
    match state_reported {
        RefundState::Success {
            refund_id,
            refund_fee,
            succeeded_at,
        } => {
            let report = RefundReport {
                out_trade_no: out_trade_no.clone(),
                refund_id,
                refund_fee,
                succeeded_at,
            };
            let tx_cause = cause.clone();
            let result = state
                .db
                .transaction(move |conn| {
                    let settled =
                        refund_store::settle_refunded(conn, &out_refund_no, &report, &tx_cause)?;
                    let outcome = Outcome::Settled(settled.clone());
                    store::insert_notification(conn, &row(out_trade_no, raw, true, &outcome))?;
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
        RefundState::Failed { status } => {
            let why = format!("WeChat refund status {status}");
            let (tx_why, tx_no) = (why.clone(), out_refund_no.clone());
            let result = state
                .db
                .transaction(move |conn| {
                    let outcome = match refund_store::lock_refund(conn, &tx_no)? {
                        None => Outcome::Settled(RefundSettled::UnknownRefund),
                        Some(r) if r.status() == refund_store::RefundStatus::Success => {
                            Outcome::Settled(RefundSettled::Mismatch(
                                "the refund already succeeded".into(),
                            ))
                        }
                        Some(_) => {
                            if refund_store::release(conn, &tx_no, &tx_why)? {
                                Outcome::Released
                            } else {
                                // Already released: a replay.
                                Outcome::AlreadyReleased
                            }
                        }
                    };
                    store::insert_notification(conn, &row(out_trade_no, raw, true, &outcome))?;
                    Ok(outcome)
                })
                .await;
            match result {
                Ok(outcome) => {
                    if outcome == Outcome::Released {
                        audit::refund_released(&out_refund_no, &why, cause);
                    }
                    outcome
                }
                Err(e) => {
                    tracing::error!(error = %e, "refund notification not recorded");
                    Outcome::DbError
                }
            }
        }
        RefundState::Processing { .. } => {
            let outcome = Outcome::StillProcessing;
            record(state, out_trade_no, raw, true, &outcome).await;
            outcome
        }
    }
}

fn parse_state(inner: &BTreeMap<String, String>) -> Result<RefundState, String> {
    let get = |k: &str| inner.get(k).map(String::as_str).unwrap_or("");
    if get("out_refund_no").is_empty() {
        return Err("out_refund_no is missing".into());
    }
    RefundState::from_fields(
        get("refund_status"),
        get("refund_id"),
        get("refund_fee").parse().ok(),
        inner.get("success_time").map(String::as_str),
    )
}
