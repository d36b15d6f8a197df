//! Daily reconciliation against WeChat's trade bill (API.md §4 "bills and
//! reconciliation"): the bill of a Beijing-time day is downloaded (v3
//! `tradebill` when APIv3 is configured, else v2 `downloadbill`; WeChat's bill
//! lists every trade of the merchant whichever API placed it, so one bill a
//! day covers both), read as a stream (`shared::bill`, totals checked, v3's
//! SHA1 checked over the bytes read) and compared with the payments and
//! refunds stored here:
//!
//! - `MISSING_LOCAL`: in the bill, unknown here;
//! - `MISSING_AT_WECHAT`: paid (or refunded) here that day, not in the bill;
//! - `AMOUNT_MISMATCH`: both know it, for different amounts;
//! - `STATUS_MISMATCH`: the bill has a payment (refund) that is not paid
//!   (succeeded) here.
//!
//! One case is settled rather than reported: a bill payment for an order
//! still NOTPAY here (its notification was lost) is confirmed by orderquery
//! and then applied through the usual settlement (`trade::reconcile_order`,
//! cause `bill`: transition, audit line, merchant event). Everything else is
//! only reported: stored (a run replaces the day's result), counted in
//! `pay_bill_discrepancies{kind}`, logged in the audit trail, and sent as a
//! `RECONCILIATION_DISCREPANCY` merchant event (once per discrepancy: a
//! rerun sends events only for discrepancies the stored result lacked).
//!
//! A bill that cannot be trusted — truncated, totals that disagree with its
//! rows, a wrong hash — is refused and nothing is stored.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read};

use chrono::{NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use shared::bill::{BillError, BillReader, TradeState as BillState};
use shared::db::now_unix;

use super::audit::Cause;
use super::state::PayState;
use super::trade::{self, Applied};
use crate::db::bills::{self as store, Reconciliation};
use crate::db::outbox::{NewEvent, now_ms};
use crate::db::{RefundStatus, Status, orders, refunds};
use crate::error::PayError;
use crate::metrics;
use crate::wechat::bills::BillDownload;

/// The merchant event each discrepancy sends.
pub const EVENT_TYPE: &str = "RECONCILIATION_DISCREPANCY";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiscrepancyKind {
    MissingLocal,
    MissingAtWechat,
    AmountMismatch,
    StatusMismatch,
}

impl DiscrepancyKind {
    pub const ALL: [DiscrepancyKind; 4] = [
        DiscrepancyKind::MissingLocal,
        DiscrepancyKind::MissingAtWechat,
        DiscrepancyKind::AmountMismatch,
        DiscrepancyKind::StatusMismatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DiscrepancyKind::MissingLocal => "MISSING_LOCAL",
            DiscrepancyKind::MissingAtWechat => "MISSING_AT_WECHAT",
            DiscrepancyKind::AmountMismatch => "AMOUNT_MISMATCH",
            DiscrepancyKind::StatusMismatch => "STATUS_MISMATCH",
        }
    }
}

/// One discrepancy, as API.md shows it (absent fields are left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Discrepancy {
    pub kind: DiscrepancyKind,
    pub out_trade_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_refund_no: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_fen: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wechat_fen: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wechat_status: Option<String>,
    /// The outcome of the latest payment notification stored for the order
    /// (`applied`, `mismatch`, …), when there is one: the third side of the
    /// comparison, for whoever investigates. In the audit line and the
    /// merchant event; not in the API's answer, whose shape API.md fixes.
    #[serde(skip)]
    pub notification: Option<String>,
}

impl Discrepancy {
    fn new(kind: DiscrepancyKind, out_trade_no: &str) -> Self {
        Discrepancy {
            kind,
            out_trade_no: out_trade_no.to_owned(),
            out_refund_no: None,
            transaction_id: None,
            local_fen: None,
            wechat_fen: None,
            local_status: None,
            wechat_status: None,
            notification: None,
        }
    }

    /// What identifies it across runs (for sending its event once).
    fn key(&self) -> (DiscrepancyKind, String, Option<String>) {
        (
            self.kind,
            self.out_trade_no.clone(),
            self.out_refund_no.clone(),
        )
    }
}

/// A day's result. Serialised, it is what the admin routes answer and the
/// table's `result` stores: API.md's `{date, billRows, matched,
/// discrepancies}`; the API and time are columns of their own, and what was
/// applied is in the orders' transitions and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconciliationView {
    /// `YYYY-MM-DD`, Beijing time.
    pub date: String,
    pub bill_rows: u64,
    pub matched: u64,
    pub discrepancies: Vec<Discrepancy>,
    /// The API the bill was downloaded with: `v2` or `v3`.
    #[serde(skip)]
    pub api: String,
    /// Orders NOTPAY here that the bill showed paid, confirmed by orderquery
    /// and settled by this run.
    #[serde(skip)]
    pub applied: Vec<String>,
    #[serde(skip)]
    pub reconciled_at: i64,
}

/// A payment stored here, as the comparison needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPayment {
    pub amount_fen: i64,
    pub status: Status,
    pub transaction_id: Option<String>,
}

/// A refund stored here, as the comparison needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRefund {
    pub out_trade_no: String,
    pub amount_fen: i64,
}

/// What was paid and refunded here during the day, by `out_trade_no` and
/// by `out_refund_no`.
#[derive(Debug, Clone, Default)]
pub struct LocalDay {
    pub payments: HashMap<String, LocalPayment>,
    pub refunds: HashMap<String, LocalRefund>,
}

/// A bill row the day's records here do not explain: looked up on its own
/// afterwards (paid on another day, NOTPAY here, unknown …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unexplained {
    pub out_trade_no: String,
    /// Set on refund rows.
    pub out_refund_no: Option<String>,
    pub transaction_id: String,
    pub fen: i64,
}

/// The streaming part of a comparison: what the bill and the day's records
/// say against each other, before anything is looked up one by one.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    pub bill_rows: u64,
    pub matched: u64,
    pub discrepancies: Vec<Discrepancy>,
    pub unexplained: Vec<Unexplained>,
}

/// Compares a bill, read row by row from `input`, with `local`. Memory
/// holds the day's records here and what does not match, never the bill.
/// An unusable bill (malformed, truncated, totals that disagree) is the
/// reader's error; the caller stores nothing then.
pub fn compare<R: BufRead>(input: R, mut local: LocalDay) -> Result<Comparison, BillError> {
    let mut out = Comparison::default();
    let mut reader = BillReader::new(input)?;
    for row in reader.by_ref() {
        let row = row?;
        out.bill_rows += 1;
        match row.trade_state {
            BillState::Success => match local.payments.remove(&row.out_trade_no) {
                Some(p) if p.amount_fen != row.total_fen => {
                    let mut d =
                        Discrepancy::new(DiscrepancyKind::AmountMismatch, &row.out_trade_no);
                    d.transaction_id = Some(row.transaction_id);
                    d.local_fen = Some(p.amount_fen);
                    d.wechat_fen = Some(row.total_fen);
                    out.discrepancies.push(d);
                }
                Some(_) => out.matched += 1,
                None => out.unexplained.push(Unexplained {
                    out_trade_no: row.out_trade_no,
                    out_refund_no: None,
                    transaction_id: row.transaction_id,
                    fen: row.total_fen,
                }),
            },
            BillState::Refund => {
                let out_refund_no = row.out_refund_no.clone();
                match local.refunds.remove(&out_refund_no) {
                    Some(r) if r.amount_fen != row.applied_refund_fen => {
                        let mut d =
                            Discrepancy::new(DiscrepancyKind::AmountMismatch, &row.out_trade_no);
                        d.out_refund_no = Some(out_refund_no);
                        d.transaction_id = Some(row.transaction_id);
                        d.local_fen = Some(r.amount_fen);
                        d.wechat_fen = Some(row.applied_refund_fen);
                        out.discrepancies.push(d);
                    }
                    Some(_) => out.matched += 1,
                    None => out.unexplained.push(Unexplained {
                        out_trade_no: row.out_trade_no,
                        out_refund_no: Some(out_refund_no),
                        transaction_id: row.transaction_id,
                        fen: row.applied_refund_fen,
                    }),
                }
            }
            // A payment WeChat revoked (micropay): paid here is a mismatch.
            BillState::Revoked => match local.payments.remove(&row.out_trade_no) {
                Some(p) => {
                    let mut d =
                        Discrepancy::new(DiscrepancyKind::StatusMismatch, &row.out_trade_no);
                    d.transaction_id = Some(row.transaction_id);
                    d.local_fen = Some(p.amount_fen);
                    d.wechat_fen = Some(row.total_fen);
                    d.local_status = Some(p.status.as_str().to_owned());
                    d.wechat_status = Some("REVOKED".into());
                    out.discrepancies.push(d);
                }
                None => out.matched += 1,
            },
        }
    }
    // Paid or refunded here that day, and not in the bill.
    let mut missing: Vec<Discrepancy> = local
        .payments
        .into_iter()
        .map(|(no, p)| {
            let mut d = Discrepancy::new(DiscrepancyKind::MissingAtWechat, &no);
            d.transaction_id = p.transaction_id;
            d.local_fen = Some(p.amount_fen);
            d.local_status = Some(p.status.as_str().to_owned());
            d
        })
        .chain(local.refunds.into_iter().map(|(no, r)| {
            let mut d = Discrepancy::new(DiscrepancyKind::MissingAtWechat, &r.out_trade_no);
            d.out_refund_no = Some(no);
            d.local_fen = Some(r.amount_fen);
            d.local_status = Some(RefundStatus::Success.as_str().to_owned());
            d
        }))
        .collect();
    missing.sort_by_key(Discrepancy::key);
    out.discrepancies.extend(missing);
    Ok(out)
}

/// Hashes what is read through it.
struct Sha1Reader<R> {
    inner: R,
    hash: Sha1,
}

impl<R: Read> Read for Sha1Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Reads a downloaded bill (gunzipped when it is gzip), compares it with
/// `local`, and checks v3's SHA1 over exactly the bytes read. Blocking:
/// run it off the async workers.
pub fn compare_download(file: &BillDownload, local: LocalDay) -> Result<Comparison, PayError> {
    let unusable = |e: String| PayError::PayUnusable(format!("the bill is unusable: {e}"));
    let raw = file
        .open()
        .map_err(|e| PayError::Internal(format!("bill file: {e}")))?;
    let decoded: Box<dyn Read> = if file.gzip {
        Box::new(flate2::read::GzDecoder::new(raw))
    } else {
        Box::new(raw)
    };
    let mut hashed = Sha1Reader {
        inner: decoded,
        hash: Sha1::new(),
    };
    let comparison = compare(BufReader::with_capacity(64 * 1024, &mut hashed), local)
        .map_err(|e| unusable(e.to_string()))?;
    // The reader stops at the end of input; anything left (it is not) would
    // still count toward the hash.
    std::io::copy(&mut hashed, &mut std::io::sink()).map_err(|e| unusable(e.to_string()))?;
    if let Some(expected) = &file.sha1 {
        let got = hex::encode(hashed.hash.finalize());
        if !got.eq_ignore_ascii_case(expected) {
            return Err(unusable(format!(
                "its SHA1 is {got}, WeChat's hash_value says {expected}"
            )));
        }
    }
    Ok(comparison)
}

/// `[start, end)` of the Beijing day `date`, in Unix seconds.
pub fn beijing_day(date: NaiveDate) -> (i64, i64) {
    let start = date.and_time(NaiveTime::MIN).and_utc().timestamp() - 8 * 3600;
    (start, start + 86_400)
}

/// `YYYY-MM-DD`, or 400/1001 naming `date`.
pub fn parse_date(s: &str) -> Result<NaiveDate, PayError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .filter(|_| s.len() == 10)
        .ok_or_else(|| PayError::invalid("date must be YYYY-MM-DD"))
}

/// The day's payments and refunds stored here.
async fn local_day(state: &PayState, date: NaiveDate) -> Result<LocalDay, PayError> {
    let (from, to) = beijing_day(date);
    let paid = store::paid_between(&state.db, from, to).await?;
    let refunded = store::refunds_succeeded_between(&state.db, from, to).await?;
    Ok(LocalDay {
        payments: paid
            .into_iter()
            .map(|o| {
                (
                    o.out_trade_no,
                    LocalPayment {
                        amount_fen: o.amount_fen,
                        status: o.status,
                        transaction_id: o.transaction_id,
                    },
                )
            })
            .collect(),
        refunds: refunded
            .into_iter()
            .map(|r| {
                (
                    r.out_refund_no,
                    LocalRefund {
                        out_trade_no: r.out_trade_no,
                        amount_fen: r.amount_fen,
                    },
                )
            })
            .collect(),
    })
}

/// Downloads the day's bill with the API this merchant has.
async fn download(
    state: &PayState,
    date: NaiveDate,
) -> Result<(BillDownload, &'static str), PayError> {
    match &state.v3 {
        Some(v3) => Ok((v3.download_trade_bill(date, true).await?, "v3")),
        None => {
            let appid = state
                .config
                .mp_app_id
                .as_deref()
                .or(state.config.wx_app_id.as_deref())
                .unwrap_or_default();
            Ok((state.pay.download_bill(appid, date, true).await?, "v2"))
        }
    }
}

/// Looks up, one by one, the bill rows the day's records did not explain.
async fn explain(
    state: &PayState,
    rows: Vec<Unexplained>,
    cause: &Cause,
    out: &mut ReconciliationView,
) -> Result<(), PayError> {
    for row in rows {
        match &row.out_refund_no {
            None => explain_payment(state, row, cause, out).await?,
            Some(no) => {
                let refund = refunds::get(&state.db, no).await?;
                let mut d = Discrepancy::new(DiscrepancyKind::MissingLocal, &row.out_trade_no);
                d.out_refund_no = Some(no.clone());
                d.transaction_id = Some(row.transaction_id.clone());
                d.wechat_fen = Some(row.fen);
                d.wechat_status = Some("SUCCESS".into());
                match refund {
                    None => out.discrepancies.push(d),
                    Some(r) if r.status == RefundStatus::Success && r.amount_fen == row.fen => {
                        // Succeeded here on another day (around midnight).
                        out.matched += 1;
                    }
                    Some(r) => {
                        d.kind = if r.status == RefundStatus::Success {
                            DiscrepancyKind::AmountMismatch
                        } else {
                            DiscrepancyKind::StatusMismatch
                        };
                        d.local_fen = Some(r.amount_fen);
                        d.local_status = Some(r.status.as_str().to_owned());
                        out.discrepancies.push(d);
                    }
                }
            }
        }
    }
    Ok(())
}

async fn explain_payment(
    state: &PayState,
    row: Unexplained,
    cause: &Cause,
    out: &mut ReconciliationView,
) -> Result<(), PayError> {
    let mut d = Discrepancy::new(DiscrepancyKind::MissingLocal, &row.out_trade_no);
    d.transaction_id = Some(row.transaction_id.clone());
    d.wechat_fen = Some(row.fen);
    d.wechat_status = Some("SUCCESS".into());
    let Some(order) = orders::get(&state.db, &row.out_trade_no).await? else {
        out.discrepancies.push(d);
        return Ok(());
    };
    d.local_fen = Some(order.amount_fen);
    d.local_status = Some(order.status.as_str().to_owned());
    if order.amount_fen != row.fen {
        d.kind = DiscrepancyKind::AmountMismatch;
        out.discrepancies.push(d);
        return Ok(());
    }
    match order.status {
        // Paid here on another day (around midnight): the same payment.
        Status::Paid | Status::Refund => out.matched += 1,
        Status::NotPay => {
            // The notification was lost: WeChat's orderquery confirms, and
            // the payment is settled like any other.
            match trade::reconcile_order(state, &order, cause).await? {
                Applied::Paid => {
                    out.matched += 1;
                    out.applied.push(order.out_trade_no.clone());
                }
                Applied::Closed | Applied::Unchanged => {
                    let now = orders::get(&state.db, &order.out_trade_no).await?;
                    d.kind = DiscrepancyKind::StatusMismatch;
                    d.local_status = now.map(|o| o.status.as_str().to_owned());
                    out.discrepancies.push(d);
                }
            }
        }
        Status::Closed | Status::PayError => {
            d.kind = DiscrepancyKind::StatusMismatch;
            out.discrepancies.push(d);
        }
    }
    Ok(())
}

/// Held while a reconciliation runs, by the daily job, an admin's run and
/// the operator's command alike: two at once would download the same bill
/// and replace each other's result (and report its discrepancies twice).
pub const LOCK_KEY: &str = "pay:bills:lock";
/// Longer than a download and comparison take; a replica that dies holding
/// it frees it by expiry.
pub const LOCK_TTL: std::time::Duration = std::time::Duration::from_secs(900);

/// Runs `work` holding [`LOCK_KEY`] (`set_nx` with a TTL, released by
/// compare-and-delete); None, with nothing run, while someone else holds it.
pub async fn under_lock<T>(
    state: &PayState,
    work: impl Future<Output = Result<T, PayError>>,
) -> Result<Option<T>, PayError> {
    let token = shared::random::nonce();
    if !state.cache.set_nx(LOCK_KEY, &token, LOCK_TTL).await? {
        return Ok(None);
    }
    let result = work.await;
    if let Err(e) = state.cache.compare_and_delete(LOCK_KEY, &token).await {
        tracing::warn!(error = %e, "bill lock not released; it expires by itself");
    }
    result.map(Some)
}

/// [`reconcile`] now, under the lock: 409/1005 while another reconciliation
/// (the daily job's or another run) is in progress.
pub async fn reconcile_now(
    state: &PayState,
    date: NaiveDate,
    cause: &Cause,
) -> Result<ReconciliationView, PayError> {
    under_lock(state, reconcile(state, date, cause))
        .await?
        .ok_or_else(|| {
            PayError::Conflict(
                "a reconciliation is running (the daily job or another run); try again when it has finished"
                    .into(),
            )
        })
}

/// Downloads, compares and stores the day's reconciliation (replacing a
/// previous run's), then reports each discrepancy (metric, audit line,
/// merchant event). "No bill (yet)" is 409/1005; an unusable bill is
/// 502/10009; either way nothing is stored.
pub async fn reconcile(
    state: &PayState,
    date: NaiveDate,
    cause: &Cause,
) -> Result<ReconciliationView, PayError> {
    let local = local_day(state, date).await?;
    let (file, api) = download(state, date).await?;
    let comparison = tokio::task::spawn_blocking(move || compare_download(&file, local))
        .await
        .map_err(|e| PayError::Internal(format!("bill comparison: {e}")))??;
    let mut view = ReconciliationView {
        date: date.to_string(),
        api: api.to_owned(),
        bill_rows: comparison.bill_rows,
        matched: comparison.matched,
        discrepancies: comparison.discrepancies,
        applied: Vec::new(),
        reconciled_at: now_unix(),
    };
    explain(state, comparison.unexplained, cause, &mut view).await?;
    for d in &mut view.discrepancies {
        d.notification = store::last_notification(&state.db, &d.out_trade_no).await?;
    }
    view.discrepancies.sort_by_key(Discrepancy::key);

    let previous: BTreeSet<_> = match store::get(&state.db, &view.date).await? {
        Some(r) => serde_json::from_str::<ReconciliationView>(&r.result)
            .map(|v| v.discrepancies.iter().map(Discrepancy::key).collect())
            .unwrap_or_default(),
        None => BTreeSet::new(),
    };
    let events: Vec<NewEvent> = view
        .discrepancies
        .iter()
        .filter(|d| !previous.contains(&d.key()))
        .map(|d| discrepancy_event(&view.date, d, cause))
        .collect();
    let result = serde_json::to_string(&view)
        .map_err(|e| PayError::Internal(format!("reconciliation result: {e}")))?;
    store::replace(
        &state.db,
        Reconciliation {
            bill_date: view.date.clone(),
            api: view.api.clone(),
            bill_rows: view.bill_rows as i64,
            matched: view.matched as i64,
            discrepancies: view.discrepancies.len() as i64,
            result,
            reconciled_at: view.reconciled_at,
        },
        events,
    )
    .await?;
    report(&view, cause);
    Ok(view)
}

fn discrepancy_event(date: &str, d: &Discrepancy, cause: &Cause) -> NewEvent {
    let now = now_unix();
    let mut payload = serde_json::to_value(d).unwrap_or_default();
    if let Some(map) = payload.as_object_mut() {
        map.insert("type".into(), EVENT_TYPE.into());
        map.insert("date".into(), date.into());
        map.insert("source".into(), cause.source.into());
        map.insert("requestId".into(), cause.request_id.clone().into());
        map.insert("occurredAt".into(), now.into());
        if let Some(n) = &d.notification {
            map.insert("notification".into(), n.clone().into());
        }
    }
    NewEvent {
        out_trade_no: d.out_trade_no.clone(),
        event_type: EVENT_TYPE,
        payload: payload.to_string(),
        next_attempt_ms: now_ms(),
        created_at: now,
    }
}

/// Metrics and one audit line per discrepancy, once the result is stored.
fn report(view: &ReconciliationView, cause: &Cause) {
    for kind in DiscrepancyKind::ALL {
        let n = view.discrepancies.iter().filter(|d| d.kind == kind).count();
        metrics::BILL_DISCREPANCIES
            .with_label_values(&[kind.as_str()])
            .set(n as i64);
    }
    metrics::BILL_LAST_RECONCILED.set(view.reconciled_at);
    for d in &view.discrepancies {
        tracing::warn!(
            target: "audit",
            date = %view.date,
            kind = d.kind.as_str(),
            out_trade_no = %d.out_trade_no,
            out_refund_no = d.out_refund_no.as_deref().unwrap_or(""),
            local_fen = d.local_fen,
            wechat_fen = d.wechat_fen,
            local_status = d.local_status.as_deref().unwrap_or(""),
            wechat_status = d.wechat_status.as_deref().unwrap_or(""),
            notification = d.notification.as_deref().unwrap_or(""),
            source = cause.source,
            request_id = %cause.request_id,
            "bill reconciliation discrepancy"
        );
    }
    tracing::info!(
        target: "audit",
        date = %view.date,
        api = %view.api,
        bill_rows = view.bill_rows,
        matched = view.matched,
        discrepancies = view.discrepancies.len(),
        applied = view.applied.len(),
        source = cause.source,
        request_id = %cause.request_id,
        "bill reconciled"
    );
}

/// The stored result of `date`; 409/1005 when the day has none (no bill yet).
pub async fn stored(state: &PayState, date: NaiveDate) -> Result<ReconciliationView, PayError> {
    let day = date.to_string();
    let Some(r) = store::get(&state.db, &day).await? else {
        return Err(PayError::Conflict(format!(
            "no reconciliation for {day} yet"
        )));
    };
    let mut view: ReconciliationView = serde_json::from_str(&r.result)
        .map_err(|e| PayError::Internal(format!("stored reconciliation of {day}: {e}")))?;
    view.api = r.api;
    view.reconciled_at = r.reconciled_at;
    Ok(view)
}

/// Whether `date` has a stored result (the daily job runs a day once).
pub async fn is_reconciled(state: &PayState, date: NaiveDate) -> Result<bool, PayError> {
    Ok(store::get(&state.db, &date.to_string()).await?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_days() {
        let (start, end) = beijing_day(NaiveDate::from_ymd_opt(2026, 11, 29).unwrap());
        // 2026-11-29T00:00:00+08:00
        assert_eq!(start, 1_795_881_600);
        assert_eq!(end - start, 86_400);
        assert!(parse_date("2026-11-29").is_ok());
        for bad in ["2026-11-31", "20261129", "2026-1-29", "", "2026-11-29x"] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }
}
