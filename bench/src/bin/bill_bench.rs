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
//! Each phase runs in a process of its own (this binary, `--phase`), so that
//! memory the allocator kept from writing the bill cannot hide what the
//! phase needs. Rows/s is rows over wall time; memory is the phase process's
//! peak RSS (`VmHWM`), and for the comparison also its RSS once the day's
//! records were built, before the clock started: the difference is what
//! reading and comparing the bill added. The day's records grow with the
//! orders here, not with the bill.

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

/// One phase, in this process: `parse` or `compare` of the bill at `file`
/// (of `rows` rows). Prints `{rows, secs, peak_kib, before_kib}`.
fn phase(name: &str, file: &std::path::Path, rows: u64) -> anyhow::Result<()> {
    let (n, before, secs) = match name {
        "parse" => {
            let before = status_kib("VmRSS:");
            let t = Instant::now();
            let n = parse_only(file)?;
            (n, before, t.elapsed().as_secs_f64())
        }
        "compare" => {
            let local = local_day(rows);
            let before = status_kib("VmRSS:");
            let t = Instant::now();
            let f = std::fs::File::open(file)?;
            let cmp = compare_bill(BufReader::with_capacity(64 * 1024, f), local)?;
            let secs = t.elapsed().as_secs_f64();
            if cmp.bill_rows != rows || cmp.matched != rows || !cmp.discrepancies.is_empty() {
                bail!("the benchmark's bill did not reconcile cleanly");
            }
            (cmp.bill_rows, before, secs)
        }
        other => bail!("unknown phase {other}"),
    };
    println!(
        "{}",
        serde_json::json!({"rows": n, "secs": secs, "peak_kib": status_kib("VmHWM:"), "before_kib": before})
    );
    Ok(())
}

/// Runs a phase in a child process and reads what it printed.
fn run_phase(name: &str, file: &std::path::Path, rows: u64) -> anyhow::Result<serde_json::Value> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["--phase", name, "--file"])
        .arg(file)
        .args(["--rows", &rows.to_string()])
        .output()?;
    if !out.status.success() {
        bail!("phase {name}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn main() -> anyhow::Result<()> {
    let mut rows: u64 = 100_000;
    let mut phase_name = None;
    let mut file = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rows" => rows = args.next().context("--rows needs a value")?.parse()?,
            "--phase" => phase_name = Some(args.next().context("--phase needs a value")?),
            "--file" => {
                file = Some(std::path::PathBuf::from(
                    args.next().context("--file needs a value")?,
                ))
            }
            other => bail!("usage: bill_bench [--rows N] (unknown {other})"),
        }
    }
    if let (Some(name), Some(file)) = (&phase_name, &file) {
        return phase(name, file, rows);
    }
    let dir = std::env::temp_dir();
    let big = dir.join(format!("wxpay-bill-bench-{}.csv", std::process::id()));
    let small = dir.join(format!("wxpay-bill-bench-{}-small.csv", std::process::id()));
    write_bill(&big, rows)?;
    write_bill(&small, rows / 10)?;
    let size = std::fs::metadata(&big)?.len();
    let results = [
        ("parse", run_phase("parse", &small, rows / 10)),
        ("parse", run_phase("parse", &big, rows)),
        ("parse + compare", run_phase("compare", &big, rows)),
    ];
    let _ = std::fs::remove_file(&big);
    let _ = std::fs::remove_file(&small);

    println!("bill: {rows} rows, {:.1} MiB", size as f64 / 1_048_576.0);
    println!(
        "{:<28} {:>12} {:>10} {:>12} {:>22}",
        "phase", "rows/s", "seconds", "peak RSS", "RSS before the bill"
    );
    let mut json = Vec::new();
    for (name, r) in results {
        let r = r?;
        let n = r["rows"].as_u64().unwrap_or(0);
        let secs = r["secs"].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:<28} {:>12.0} {secs:>10.3} {:>12} {:>22}",
            format!("{name} ({n} rows)"),
            n as f64 / secs,
            kib(r["peak_kib"].as_u64()),
            kib(r["before_kib"].as_u64()),
        );
        json.push(
            serde_json::json!({"phase": name, "rows": n, "rows_per_s": n as f64 / secs,
            "peak_rss_kib": r["peak_kib"], "rss_before_kib": r["before_kib"]}),
        );
    }
    println!(
        "{}",
        serde_json::json!({"rows": rows, "bytes": size, "phases": json})
    );
    Ok(())
}
