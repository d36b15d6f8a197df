//! The daily bill job: from `BILL_HOUR` (Beijing time) on, the previous day's
//! WeChat bill is downloaded and reconciled (`domain::bills`), once across
//! replicas; a day WeChat has no bill for yet is tried again at the next
//! pass (every `BILL_INTERVAL_SECONDS`). The operator's
//! `pay-service reconcile --date …` runs a day at once ([`reconcile_day`]).
//!
//! Once: the pass runs under `domain::bills`' lock (the cache lock the other
//! jobs use on SQLite, also taken by manual runs), on both backends —
//! a download is not a row PostgreSQL's `SKIP LOCKED` could share out — and
//! a day already stored is not run again by the job.

use std::time::Duration;

use chrono::{NaiveDate, Timelike};
use serde::Serialize;

use crate::domain::bills::{self, ReconciliationView};
use crate::domain::{Cause, PayState};
use crate::error::PayError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BillPassOutcome {
    /// Before `BILL_HOUR`: nothing to do yet.
    NotDue,
    /// The day is already reconciled.
    AlreadyDone,
    /// Another replica holds the lock.
    Skipped,
    /// WeChat has no bill for the day yet: tried again next pass.
    NoBill,
    Reconciled {
        discrepancies: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BillPassReport {
    /// The day the pass was about (`YYYY-MM-DD`), when one was due.
    pub date: Option<String>,
    pub outcome: BillPassOutcome,
}

/// The day due at `now` (Unix seconds): yesterday in Beijing, once the
/// Beijing hour is `bill_hour` or later.
pub fn due_day(now: i64, bill_hour: u32) -> Option<NaiveDate> {
    let beijing = chrono::DateTime::from_timestamp(now + 8 * 3600, 0)?.naive_utc();
    (beijing.hour() >= bill_hour)
        .then(|| beijing.date().pred_opt())
        .flatten()
}

/// One pass of the daily job at `now` (Unix seconds). Errors other than
/// "no bill yet" are returned (and the day is tried again next pass).
pub async fn bills_once(state: &PayState, now: i64) -> Result<BillPassReport, PayError> {
    let Some(day) = due_day(now, state.config().bill_hour) else {
        return Ok(BillPassReport {
            date: None,
            outcome: BillPassOutcome::NotDue,
        });
    };
    let report = |outcome| BillPassReport {
        date: Some(day.to_string()),
        outcome,
    };
    if bills::is_reconciled(state, day).await? {
        return Ok(report(BillPassOutcome::AlreadyDone));
    }
    let outcome = bills::under_lock(state, locked_pass(state, day)).await?;
    Ok(report(outcome.unwrap_or(BillPassOutcome::Skipped)))
}

async fn locked_pass(state: &PayState, day: NaiveDate) -> Result<BillPassOutcome, PayError> {
    // Another replica may have finished the day between the check and the lock.
    if bills::is_reconciled(state, day).await? {
        return Ok(BillPassOutcome::AlreadyDone);
    }
    match bills::reconcile(state, day, &Cause::pass("bill")).await {
        Ok(view) => Ok(BillPassOutcome::Reconciled {
            discrepancies: view.discrepancies.len(),
        }),
        Err(PayError::Conflict(why)) => {
            tracing::info!(date = %day, why, "no bill yet; tried again later");
            Ok(BillPassOutcome::NoBill)
        }
        Err(e) => Err(e),
    }
}

/// Reconciles `date` now (the operator's command), replacing a stored
/// result; refused while another reconciliation runs.
pub async fn reconcile_day(
    state: &PayState,
    date: NaiveDate,
) -> Result<ReconciliationView, PayError> {
    bills::reconcile_now(state, date, &Cause::pass("bill")).await
}

/// A readable table of a day's result, for the operator's terminal.
pub fn table(view: &ReconciliationView) -> String {
    let mut out = format!(
        "bill {} ({}): {} rows, {} matched, {} discrepancies",
        view.date,
        view.api,
        view.bill_rows,
        view.matched,
        view.discrepancies.len()
    );
    if !view.applied.is_empty() {
        out.push_str(&format!(
            ", applied after orderquery: {}",
            view.applied.join(", ")
        ));
    }
    out.push('\n');
    if view.discrepancies.is_empty() {
        return out;
    }
    let rows: Vec<[String; 6]> = view
        .discrepancies
        .iter()
        .map(|d| {
            let fen = |f: Option<i64>| {
                f.map(shared::money::fen_to_yuan)
                    .unwrap_or_else(|| "-".into())
            };
            [
                d.kind.as_str().to_owned(),
                d.out_trade_no.clone(),
                d.out_refund_no.clone().unwrap_or_else(|| "-".into()),
                format!("{} / {}", fen(d.local_fen), fen(d.wechat_fen)),
                format!(
                    "{} / {}",
                    d.local_status.as_deref().unwrap_or("-"),
                    d.wechat_status.as_deref().unwrap_or("-")
                ),
                d.transaction_id.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let header = [
        "KIND",
        "OUT_TRADE_NO",
        "OUT_REFUND_NO",
        "YUAN here / WeChat",
        "STATUS here / WeChat",
        "TRANSACTION_ID",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    out.push_str(&line(header.to_vec()));
    for r in &rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// Runs passes every `interval` until the task is aborted.
pub(super) async fn run(state: PayState, interval: Duration) {
    let trace = super::worker::PassTrace::EachPass;
    super::worker::every(
        state,
        interval,
        "bill reconciliation",
        trace,
        |state| async move { bills_once(&state, shared::db::now_unix()).await },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_beijing_day_is_due_from_bill_hour() {
        // 2026-11-30T01:59:59Z is 09:59:59 in Beijing on the 30th.
        let before = 1_796_003_999;
        assert_eq!(due_day(before, 10), None);
        assert_eq!(
            due_day(before + 1, 10),
            NaiveDate::from_ymd_opt(2026, 11, 29)
        );
        // 2026-11-29T16:30Z is already the 30th in Beijing.
        assert_eq!(
            due_day(1_795_969_800, 0),
            NaiveDate::from_ymd_opt(2026, 11, 29)
        );
    }
}
