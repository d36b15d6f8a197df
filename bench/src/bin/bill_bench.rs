//! `cargo run --release -p bench --bin bill_bench -- [--rows N]` (default
//! 100,000): the daily bill reconciliation's CPU and memory figures.
//!
//! Writes a WeChat trade bill of N rows (nine payments to one refund, in
//! WeChat's format, `shared::bill::BillWriter`) to a temporary file, then
//! measures, each phase from the file through a 64 KiB buffer as
//! pay-service reads a download:
//!
//! - parse: `shared::bill::BillReader` over every row, totals checked;
//! - parse + compare: `pay_service::compare_bill` against the day's records
//!   (one per row, all matching: the work a clean day does);
//! - parse at N/10 rows, to show that the parser's memory does not grow with
//!   the bill.
//!
//! Rows/s is rows over wall time. Memory is the process's peak RSS during
//! the phase (`VmHWM` after resetting it through `/proc/self/clear_refs`)
//! less its RSS before: what the phase added. The day's records are built
//! before the clock starts; their size is reported apart (it grows with the
//! orders here, not with the bill).

use std::collections::HashMap;
use std::io::{BufReader, BufWriter};
use std::time::Instant;

use anyhow::{Context, bail};
use pay_service::{LocalDay, LocalPayment, LocalRefund, Status, compare_bill};
use shared::bill::{BillReader, BillRow, BillWriter, TradeState};

fn status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Resets the peak RSS to the current RSS (Linux ≥ 4.0).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Runs `f`, returning its result, seconds, and KiB of RSS it added at its peak.
fn measure<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, f64, Option<u64>)> {
    let reset = reset_peak();
    let before = status_kib("VmRSS:");
    let t = Instant::now();
    let out = f()?;
    let secs = t.elapsed().as_secs_f64();
    let peak = status_kib("VmHWM:");
    let added = match (reset, before, peak) {
        (true, Some(b), Some(p)) => Some(p.saturating_sub(b)),
        _ => None,
    };
    Ok((out, secs, added))
}

fn row(i: u64) -> BillRow {
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 29)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default();
    let refund = i % 10 == 9;
    let fen = 100 + (i as i64 % 5000);
    BillRow {
        trade_time: day + chrono::Duration::seconds((i % 86_400) as i64),
        appid: "wxd678efh567hg6787".into(),
        mch_id: "1900000109".into(),
        sub_mch_id: "0".into(),
        device_info: String::new(),
        transaction_id: format!("4200002026112{i:015}"),
        out_trade_no: format!("T{i:020}"),
        openid: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into(),
        trade_type: "JSAPI".into(),
        trade_state: if refund {
            TradeState::Refund
        } else {
            TradeState::Success
        },
        bank_type: "OTHERS".into(),
        fee_type: "CNY".into(),
        settlement_fen: if refund { 0 } else { fen },
        coupon_fen: 0,
        refund_id: if refund {
            format!("5030{i:024}")
        } else {
            "0".into()
        },
        out_refund_no: if refund {
            format!("R{i:020}")
        } else {
            "0".into()
        },
        refund_fen: if refund { fen } else { 0 },
        coupon_refund_fen: 0,
        refund_type: if refund {
            "ORIGINAL".into()
        } else {
            String::new()
        },
        refund_status: if refund {
            "SUCCESS".into()
        } else {
            String::new()
        },
        body: "会员月卡".into(),
        attach: String::new(),
        fee_fen: if refund {
            -(fen * 6 / 1000)
        } else {
            fen * 6 / 1000
        },
        rate: "0.60%".into(),
        total_fen: if refund { 0 } else { fen },
        applied_refund_fen: if refund { fen } else { 0 },
        rate_note: String::new(),
    }
}

fn write_bill(path: &std::path::Path, rows: u64) -> anyhow::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut w = BillWriter::new(BufWriter::new(file))?;
    for i in 0..rows {
        w.write_row(&row(i))?;
    }
    w.finish()?;
    Ok(())
}

fn local_day(rows: u64) -> LocalDay {
    let mut payments = HashMap::new();
    let mut refunds = HashMap::new();
    for i in 0..rows {
        let r = row(i);
        if r.trade_state == TradeState::Refund {
            refunds.insert(
                r.out_refund_no,
                LocalRefund {
                    out_trade_no: r.out_trade_no,
                    amount_fen: r.applied_refund_fen,
                },
            );
        } else {
            payments.insert(
                r.out_trade_no,
                LocalPayment {
                    amount_fen: r.total_fen,
                    status: Status::Paid,
                    transaction_id: Some(r.transaction_id),
                },
            );
        }
    }
    LocalDay { payments, refunds }
}

fn parse_only(path: &std::path::Path) -> anyhow::Result<u64> {
    let file = std::fs::File::open(path)?;
    let mut reader = BillReader::new(BufReader::with_capacity(64 * 1024, file))?;
    let mut n = 0u64;
    for r in reader.by_ref() {
        r?;
        n += 1;
    }
    reader.totals().context("no totals")?;
    Ok(n)
}

fn kib(v: Option<u64>) -> String {
    v.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
        .unwrap_or_else(|| "n/a".into())
}

fn main() -> anyhow::Result<()> {
    let mut rows: u64 = 100_000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rows" => rows = args.next().context("--rows needs a value")?.parse()?,
            other => bail!("usage: bill_bench [--rows N] (unknown {other})"),
        }
    }
    let dir = std::env::temp_dir();
    let big = dir.join(format!("wxpay-bill-bench-{}.csv", std::process::id()));
    let small = dir.join(format!("wxpay-bill-bench-{}-small.csv", std::process::id()));
    write_bill(&big, rows)?;
    write_bill(&small, rows / 10)?;
    let size = std::fs::metadata(&big)?.len();

    let (n_small, secs_small, mem_small) = measure(|| parse_only(&small))?;
    let (n, secs_parse, mem_parse) = measure(|| parse_only(&big))?;
    let before_local = status_kib("VmRSS:");
    let local = local_day(rows);
    let local_kib = match (before_local, status_kib("VmRSS:")) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let (cmp, secs_cmp, mem_cmp) = measure(|| {
        let file = std::fs::File::open(&big)?;
        Ok(compare_bill(
            BufReader::with_capacity(64 * 1024, file),
            local,
        )?)
    })?;
    if n != rows || cmp.bill_rows != rows || cmp.matched != rows || !cmp.discrepancies.is_empty() {
        bail!("the benchmark's bill did not reconcile cleanly");
    }
    let _ = std::fs::remove_file(&big);
    let _ = std::fs::remove_file(&small);

    println!("bill: {rows} rows, {:.1} MiB", size as f64 / 1_048_576.0);
    println!(
        "{:<28} {:>12} {:>10} {:>14}",
        "phase", "rows/s", "seconds", "RSS added"
    );
    let line = |name: &str, n: u64, secs: f64, mem: Option<u64>| {
        println!(
            "{name:<28} {:>12.0} {secs:>10.3} {:>14}",
            n as f64 / secs,
            kib(mem)
        );
    };
    line(
        &format!("parse ({} rows)", n_small),
        n_small,
        secs_small,
        mem_small,
    );
    line(&format!("parse ({n} rows)"), n, secs_parse, mem_parse);
    line(
        &format!("parse + compare ({rows})"),
        rows,
        secs_cmp,
        mem_cmp,
    );
    println!(
        "the day's records here ({rows} orders and refunds): {}",
        kib(local_kib)
    );
    println!(
        "{}",
        serde_json::json!({
            "rows": rows, "bytes": size,
            "parse_rows_per_s": n as f64 / secs_parse,
            "parse_compare_rows_per_s": rows as f64 / secs_cmp,
            "parse_rss_added_kib": mem_parse, "parse_small_rss_added_kib": mem_small,
            "compare_rss_added_kib": mem_cmp, "local_day_kib": local_kib,
        })
    );
    Ok(())
}
