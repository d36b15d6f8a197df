//! Trade bills (交易账单) from the sandbox's own ledger, in WeChat's format
//! (`shared::bill`): APIv2 `POST /pay/downloadbill` here, APIv3
//! `GET /v3/bill/tradebill` and its download in `v3::bill`, both from
//! [`SandboxState::trade_bill`]; and the `/sandbox/bills/…` controls that
//! plant a discrepancy in a day's bill.
//!
//! A Beijing-time day's bill exists once the day is closed — from 09:00 the
//! next day (WeChat: "微信在次日9点启动生成前一天的对账单"), on the sandbox
//! clock — and only when it has rows; otherwise WeChat's "No Bill Exist".
//! Payments are listed on the day of their `time_end`, refunds (SUCCESS
//! only) on the day of their `success_time`; the fee is 0.60% of the amount,
//! rounded to the fen, given back (negative) on refunds.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use sha1::{Digest, Sha1};
use shared::bill::{BillRow, BillWriter, TradeState as BillState};
use shared::xml::map_to_xml;

use crate::clock::lock;
use crate::ids;
use crate::state::SandboxState;
use crate::store::{Download, Plant, PlantKind, RefundStatus};

/// The hour (Beijing) from which the previous day's bill exists.
pub const BILL_READY_HOUR: u32 = 9;
/// 0.60%, WeChat's usual rate, in parts per 10,000.
const RATE_PER_10K: i64 = 60;
const RATE_TEXT: &str = "0.60%";
/// How long a v3 `download_url` works (WeChat: 30 seconds), in real time.
pub(crate) const DOWNLOAD_TTL: Duration = Duration::from_secs(30);

/// Which rows a bill lists (`bill_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillType {
    All,
    Success,
    Refund,
}

impl BillType {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "ALL" => Some(Self::All),
            "SUCCESS" => Some(Self::Success),
            "REFUND" => Some(Self::Refund),
            _ => None,
        }
    }
}

/// A bill as served: `text` is the bill, `served` what goes on the wire
/// (the bill, or a planted truncation of it), `sha1` the `hash_value`.
#[derive(Debug, Clone)]
pub struct BillFile {
    pub text: Vec<u8>,
    pub served: Vec<u8>,
    pub sha1: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoBill {
    /// The day is not over, or its bill is not made yet.
    NotReady,
    /// No trades that day.
    Empty,
}

fn fee_of(fen: i64) -> i64 {
    // Round half up to the fen, in integers.
    (fen * RATE_PER_10K + 5_000) / 10_000
}

/// A transaction id for a planted unknown trade: WeChat's shape (28
/// digits), the same on every download of the day.
fn unknown_transaction_id(date: NaiveDate, out_trade_no: &str) -> String {
    let digest = Sha1::digest(out_trade_no.as_bytes());
    let digits: String = digest
        .iter()
        .take(16)
        .map(|b| char::from(b'0' + b % 10))
        .collect();
    format!("4200{}{digits}", date.format("%Y%m%d"))
}

fn beijing_day_start(date: NaiveDate) -> NaiveDateTime {
    date.and_time(NaiveTime::MIN)
}

impl SandboxState {
    /// Plants `plant` in `date`'s bill (until cleared). An unknown trade's
    /// number is chosen here, so every download of the day shows the same.
    pub fn plant_bill_discrepancy(&self, date: NaiveDate, mut plant: Plant) -> Result<(), String> {
        match plant.kind {
            PlantKind::DropRow | PlantKind::ChangeAmount if plant.out_trade_no.is_none() => {
                return Err("outTradeNo is required".into());
            }
            PlantKind::ChangeAmount if plant.amount_fen.is_none_or(|a| a <= 0) => {
                return Err("amountFen (> 0) is required".into());
            }
            PlantKind::UnknownTrade if plant.amount_fen.is_some_and(|a| a <= 0) => {
                return Err("amountFen must be > 0".into());
            }
            _ => {}
        }
        if plant.kind == PlantKind::UnknownTrade && plant.out_trade_no.is_none() {
            plant.out_trade_no = Some(format!("UNKNOWN{}", ids::digits(12)));
        }
        lock(&self.bills)
            .plants
            .entry(date)
            .or_default()
            .push(plant);
        Ok(())
    }

    /// Drops what was planted in `date`'s bill.
    pub fn clear_bill_discrepancies(&self, date: NaiveDate) {
        lock(&self.bills).plants.remove(&date);
    }

    /// The merchant's bill for the Beijing day `date`, as it is served now.
    pub fn trade_bill(
        &self,
        mch_id: &str,
        date: NaiveDate,
        bill_type: BillType,
    ) -> Result<BillFile, NoBill> {
        let now_beijing = self.now().with_timezone(&ids::beijing()).naive_local();
        let ready_at = beijing_day_start(date)
            + chrono::Duration::days(1)
            + chrono::Duration::hours(i64::from(BILL_READY_HOUR));
        if now_beijing < ready_at {
            return Err(NoBill::NotReady);
        }
        let plants = lock(&self.bills)
            .plants
            .get(&date)
            .cloned()
            .unwrap_or_default();
        let mut rows = self.ledger_rows(mch_id, date);
        for plant in &plants {
            let target = plant.out_trade_no.as_deref();
            let is_target = |r: &BillRow| {
                Some(r.out_trade_no.as_str()) == target && r.trade_state == BillState::Success
            };
            match plant.kind {
                PlantKind::DropRow => rows.retain(|r| !is_target(r)),
                PlantKind::ChangeAmount => {
                    let amount = plant.amount_fen.unwrap_or(1);
                    for r in rows.iter_mut().filter(|r| is_target(r)) {
                        r.settlement_fen = amount;
                        r.total_fen = amount;
                        r.fee_fen = fee_of(amount);
                    }
                }
                PlantKind::UnknownTrade => {
                    let at = beijing_day_start(date) + chrono::Duration::hours(12);
                    let amount = plant.amount_fen.unwrap_or(1);
                    let no = plant.out_trade_no.clone().unwrap_or_default();
                    let app = self
                        .merchant(mch_id)
                        .and_then(|m| m.appids.first().cloned());
                    rows.push(payment_row(PaymentRow {
                        at,
                        appid: app.unwrap_or_default(),
                        mch_id: mch_id.to_owned(),
                        transaction_id: unknown_transaction_id(date, &no),
                        out_trade_no: no,
                        openid: String::new(),
                        trade_type: "NATIVE".into(),
                        device_info: String::new(),
                        body: "未知交易".into(),
                        attach: String::new(),
                        total_fen: amount,
                    }));
                }
                PlantKind::WrongTotals | PlantKind::Truncate | PlantKind::WrongHash => {}
            }
        }
        rows.retain(|r| match bill_type {
            BillType::All => true,
            BillType::Success => r.trade_state != BillState::Refund,
            BillType::Refund => r.trade_state == BillState::Refund,
        });
        if rows.is_empty() {
            return Err(NoBill::Empty);
        }
        rows.sort_by_key(|r| r.trade_time);
        let text = write_bill(
            &rows,
            plants.iter().any(|p| p.kind == PlantKind::WrongTotals),
        );
        let mut sha1 = hex::encode(Sha1::digest(&text));
        if plants.iter().any(|p| p.kind == PlantKind::WrongHash) {
            sha1 = hex::encode(Sha1::digest(b"not the bill"));
        }
        let served = if plants.iter().any(|p| p.kind == PlantKind::Truncate) {
            text[..text.len() * 2 / 3].to_vec()
        } else {
            text.clone()
        };
        Ok(BillFile { text, served, sha1 })
    }

    /// Payments and refunds of `mch_id` on the Beijing day `date`.
    fn ledger_rows(&self, mch_id: &str, date: NaiveDate) -> Vec<BillRow> {
        let on_day = |t: &NaiveDateTime| t.date() == date;
        let mut payments = Vec::new();
        {
            let store = lock(&self.orders);
            for o in store
                .orders
                .values()
                .filter(|o| o.mch_id == mch_id && o.state.is_paid())
            {
                let (Some(time_end), Some(transaction_id)) = (&o.time_end, &o.transaction_id)
                else {
                    continue;
                };
                let Ok(at) = NaiveDateTime::parse_from_str(time_end, "%Y%m%d%H%M%S") else {
                    continue;
                };
                payments.push((
                    at,
                    PaymentRow {
                        at,
                        appid: o.appid.clone(),
                        mch_id: o.mch_id.clone(),
                        transaction_id: transaction_id.clone(),
                        out_trade_no: o.out_trade_no.clone(),
                        openid: o
                            .payer_openid
                            .clone()
                            .or_else(|| o.openid.clone())
                            .unwrap_or_default(),
                        trade_type: o.trade_type.clone(),
                        device_info: o.device_info.clone().unwrap_or_default(),
                        body: o.body.clone(),
                        attach: o.attach.clone().unwrap_or_default(),
                        total_fen: i64::try_from(o.total_fee).unwrap_or(i64::MAX),
                    },
                ));
            }
        }
        let mut rows = Vec::new();
        for (at, p) in payments {
            // Refunds are looked up after the orders lock is released.
            for r in self.refunds_of(&p.out_trade_no) {
                let Some(done) = r
                    .success_time
                    .as_deref()
                    .and_then(|t| NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").ok())
                else {
                    continue;
                };
                if r.status != RefundStatus::Success || !on_day(&done) {
                    continue;
                }
                let refund_fen = i64::try_from(r.refund_fee).unwrap_or(i64::MAX);
                let mut row = payment_row(PaymentRow {
                    at: done,
                    ..p.clone()
                });
                row.trade_state = BillState::Refund;
                row.settlement_fen = 0;
                row.total_fen = 0;
                row.refund_id = r.refund_id.clone();
                row.out_refund_no = r.out_refund_no.clone();
                row.refund_fen = refund_fen;
                row.applied_refund_fen = refund_fen;
                row.refund_type = "ORIGINAL".into();
                row.refund_status = "SUCCESS".into();
                row.fee_fen = -fee_of(refund_fen);
                rows.push(row);
            }
            if on_day(&at) {
                rows.push(payment_row(p));
            }
        }
        rows
    }

    /// Keeps a bill for a v3 `download_url`; returns its token.
    pub(crate) fn keep_download(&self, mch_id: &str, bytes: Vec<u8>) -> String {
        let token = ids::token(32);
        let mut store = lock(&self.bills);
        let now = Instant::now();
        store.downloads.retain(|_, d| d.expires > now);
        store.downloads.insert(
            token.clone(),
            Download {
                mch_id: mch_id.to_owned(),
                bytes,
                expires: now + DOWNLOAD_TTL,
            },
        );
        token
    }

    /// A kept download of this merchant, while its URL works.
    pub(crate) fn kept_download(&self, mch_id: &str, token: &str) -> Option<Vec<u8>> {
        let store = lock(&self.bills);
        store
            .downloads
            .get(token)
            .filter(|d| d.mch_id == mch_id && d.expires > Instant::now())
            .map(|d| d.bytes.clone())
    }
}

#[derive(Clone)]
struct PaymentRow {
    at: NaiveDateTime,
    appid: String,
    mch_id: String,
    transaction_id: String,
    out_trade_no: String,
    openid: String,
    trade_type: String,
    device_info: String,
    body: String,
    attach: String,
    total_fen: i64,
}

fn payment_row(p: PaymentRow) -> BillRow {
    BillRow {
        trade_time: p.at,
        appid: p.appid,
        mch_id: p.mch_id,
        sub_mch_id: "0".into(),
        device_info: p.device_info,
        transaction_id: p.transaction_id,
        out_trade_no: p.out_trade_no,
        openid: p.openid,
        trade_type: p.trade_type,
        trade_state: BillState::Success,
        bank_type: "OTHERS".into(),
        fee_type: "CNY".into(),
        settlement_fen: p.total_fen,
        coupon_fen: 0,
        refund_id: "0".into(),
        out_refund_no: "0".into(),
        refund_fen: 0,
        coupon_refund_fen: 0,
        refund_type: String::new(),
        refund_status: String::new(),
        // The format cannot carry WeChat's separator or line breaks.
        body: clean(&p.body),
        attach: clean(&p.attach),
        fee_fen: fee_of(p.total_fen),
        rate: RATE_TEXT.into(),
        total_fen: p.total_fen,
        applied_refund_fen: 0,
        rate_note: String::new(),
    }
}

fn clean(s: &str) -> String {
    s.replace(",`", ", ").replace(['\r', '\n'], " ")
}

fn write_bill(rows: &[BillRow], wrong_totals: bool) -> Vec<u8> {
    let written = (|| -> std::io::Result<Vec<u8>> {
        // WeChat's files begin with a UTF-8 BOM.
        let mut out = Vec::with_capacity(rows.len() * 300 + 512);
        out.extend_from_slice("\u{feff}".as_bytes());
        let mut writer = BillWriter::new(out)?;
        for row in rows {
            writer.write_row(row)?;
        }
        let mut totals = *writer.totals();
        if wrong_totals {
            totals.settlement_fen += 1;
        }
        writer.finish_with(&totals)
    })();
    // Rows come from the ledger, cleaned above: writing to memory cannot fail.
    written.unwrap_or_default()
}

/// Gzip, as `tar_type=GZIP` asks.
pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    if enc.write_all(bytes).is_err() {
        return Vec::new();
    }
    enc.finish().unwrap_or_default()
}

/// `yyyyMMdd` (v2) or `yyyy-MM-dd` (v3).
pub(crate) fn parse_bill_date(s: &str, v3: bool) -> Option<NaiveDate> {
    let (fmt, len) = if v3 { ("%Y-%m-%d", 10) } else { ("%Y%m%d", 8) };
    (s.len() == len)
        .then(|| NaiveDate::parse_from_str(s, fmt).ok())
        .flatten()
}

fn xml_fail(msg: &str, error_code: Option<&str>) -> HttpResponse {
    let mut fields = BTreeMap::from([
        ("return_code".to_owned(), "FAIL".to_owned()),
        ("return_msg".to_owned(), msg.to_owned()),
    ]);
    if let Some(code) = error_code {
        fields.insert("error_code".into(), code.to_owned());
    }
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(map_to_xml(&fields))
}

/// `POST /pay/downloadbill`: the signed XML request; the bill as text (or
/// gzip), or WeChat's XML error.
pub(crate) async fn downloadbill(
    sandbox: web::Data<SandboxState>,
    body: web::Bytes,
) -> HttpResponse {
    let req = match sandbox.authenticate_pay(&body) {
        Ok(req) => req,
        Err(msg) => return xml_fail(&msg, None),
    };
    let Some(date) = req.get("bill_date").and_then(|d| parse_bill_date(d, false)) else {
        return xml_fail("invalid bill_date", Some("20001"));
    };
    let Some(bill_type) = BillType::parse(req.get("bill_type").unwrap_or_default()) else {
        return xml_fail("invalid bill_type", Some("20001"));
    };
    let gz = match req.get("tar_type") {
        None => false,
        Some("GZIP") => true,
        Some(_) => return xml_fail("invalid tar_type", Some("20001")),
    };
    match sandbox.trade_bill(&req.merchant.mch_id, date, bill_type) {
        Ok(file) if gz => HttpResponse::Ok()
            .content_type("application/x-gzip")
            .body(gzip(&file.served)),
        Ok(file) => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(file.served),
        Err(_) => xml_fail("No Bill Exist", Some("20002")),
    }
}

/// `POST /sandbox/bills/{date}/discrepancies` `{kind, outTradeNo?, amountFen?}`.
pub(crate) async fn plant(
    sandbox: web::Data<SandboxState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let bad = |e: String| HttpResponse::BadRequest().json(serde_json::json!({ "error": e }));
    let Some(date) = parse_bill_date(&path, true) else {
        return bad("date must be YYYY-MM-DD".into());
    };
    let plant: Plant = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return bad(format!("body: {e}")),
    };
    match sandbox.plant_bill_discrepancy(date, plant) {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({ "date": date.to_string() })),
        Err(e) => bad(e),
    }
}

/// `DELETE /sandbox/bills/{date}/discrepancies`.
pub(crate) async fn clear(
    sandbox: web::Data<SandboxState>,
    path: web::Path<String>,
) -> HttpResponse {
    let Some(date) = parse_bill_date(&path, true) else {
        return HttpResponse::BadRequest()
            .json(serde_json::json!({"error": "date must be YYYY-MM-DD"}));
    };
    sandbox.clear_bill_discrepancies(date);
    HttpResponse::NoContent().finish()
}

/// `GET /sandbox/bills/{date}` (`?mchId=`): the bill as served, or 404.
pub(crate) async fn show(
    sandbox: web::Data<SandboxState>,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let Some(date) = parse_bill_date(&path, true) else {
        return HttpResponse::BadRequest()
            .json(serde_json::json!({"error": "date must be YYYY-MM-DD"}));
    };
    let mch_id = match query.get("mchId") {
        Some(m) => m.clone(),
        None => sandbox
            .merchants()
            .first()
            .map(|m| m.mch_id.clone())
            .unwrap_or_default(),
    };
    match sandbox.trade_bill(&mch_id, date, BillType::All) {
        Ok(file) => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(file.served),
        Err(NoBill::NotReady) => HttpResponse::NotFound()
            .json(serde_json::json!({"error": "the day's bill is not made yet"})),
        Err(NoBill::Empty) => {
            HttpResponse::NotFound().json(serde_json::json!({"error": "No Bill Exist"}))
        }
    }
}

/// The bill routes on the plain listener (v3's are in `v3::routes`).
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/pay/downloadbill", web::post().to(downloadbill))
        .route("/sandbox/bills/{date}", web::get().to(show))
        .route("/sandbox/bills/{date}/discrepancies", web::post().to(plant))
        .route(
            "/sandbox/bills/{date}/discrepancies",
            web::delete().to(clear),
        );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fees_round_half_up_to_the_fen() {
        assert_eq!(fee_of(1), 0);
        assert_eq!(fee_of(83), 0); // 0.498
        assert_eq!(fee_of(84), 1); // 0.504
        assert_eq!(fee_of(10_000), 60);
    }

    #[test]
    fn bill_dates() {
        assert_eq!(
            parse_bill_date("20261129", false),
            NaiveDate::from_ymd_opt(2026, 11, 29)
        );
        assert_eq!(
            parse_bill_date("2026-11-29", true),
            NaiveDate::from_ymd_opt(2026, 11, 29)
        );
        for bad in ["2026-11-29", "2026113", "20261131", "+0261129"] {
            assert_eq!(parse_bill_date(bad, false), None, "{bad}");
        }
        assert_eq!(parse_bill_date("2026-1-29", true), None);
    }
}
