//! WeChat's trade bill: WeChat's own sample (from its PHP SDK, see
//! `data/bill/SOURCE.md`), malformed bills refused, and generated bills
//! (proptest) read back to the same rows and totals.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

use std::io::{BufReader, Cursor, Read};

use proptest::prelude::*;
use shared::bill::{BillError, BillReader, BillRow, BillTotals, BillWriter, TradeState};

const SAMPLE: &[u8] = include_bytes!("data/bill/wechatpay-php-bill.ALL.csv");

fn read_all(bytes: &[u8]) -> Result<(Vec<BillRow>, BillTotals), BillError> {
    let mut reader = BillReader::new(bytes)?;
    let mut rows = Vec::new();
    for row in reader.by_ref() {
        rows.push(row?);
    }
    let totals = *reader.totals().expect("totals after a clean end");
    Ok((rows, totals))
}

/// What a refused bill's error must be.
type Expect = fn(&BillError) -> bool;

fn refused(bytes: &[u8]) -> BillError {
    match read_all(bytes) {
        Ok((rows, _)) => panic!("accepted a bad bill ({} rows)", rows.len()),
        Err(e) => e,
    }
}

/// The sample as plain text: WeChat's file has a UTF-8 BOM and CRLF line
/// endings, which the tests that edit it drop (and one puts back).
fn sample_text() -> String {
    let text = String::from_utf8(SAMPLE.to_vec()).unwrap();
    assert!(text.starts_with('\u{feff}') && text.contains("\r\n"));
    text.trim_start_matches('\u{feff}').replace("\r\n", "\n")
}

#[test]
fn wechats_sample_bill_reads_with_its_totals() {
    let (rows, totals) = read_all(SAMPLE).unwrap();
    assert_eq!(rows.len(), 45);
    let payments: Vec<_> = rows
        .iter()
        .filter(|r| r.trade_state == TradeState::Success)
        .collect();
    let refunds: Vec<_> = rows
        .iter()
        .filter(|r| r.trade_state == TradeState::Refund)
        .collect();
    assert_eq!((payments.len(), refunds.len()), (31, 14));
    // Exactly what the sample's totals line says, in fen.
    assert_eq!(
        totals,
        BillTotals {
            rows: 45,
            settlement_fen: 47,
            refund_fen: 14,
            coupon_refund_fen: 0,
            fee_fen: 8,
            total_fen: 47,
            applied_refund_fen: 14,
        }
    );
    // The third line of the file, field by field.
    let native = &rows[2];
    assert_eq!(native.trade_time.to_string(), "2019-02-19 01:52:32");
    assert_eq!(native.appid, "wxab8acd895ab1638a");
    assert_eq!(native.mch_id, "1921000401");
    assert_eq!(native.transaction_id, "4200000263201902167700134902");
    assert_eq!(native.out_trade_no, "autotest_20190219015232_89201");
    assert_eq!(native.trade_type, "NATIVE");
    assert_eq!(
        (native.settlement_fen, native.total_fen, native.fee_fen),
        (3, 3, 1)
    );
    assert_eq!(native.rate, "39.00%");
    assert_eq!(native.refund(), None);
    // The first line is a refund.
    let refund = &rows[0];
    assert_eq!(refund.trade_state, TradeState::Refund);
    assert_eq!(
        refund.refund(),
        Some((
            "50000709672019011908420787722",
            "REF4200000263201902167700963919"
        ))
    );
    assert_eq!(
        (
            refund.refund_fen,
            refund.applied_refund_fen,
            refund.settlement_fen
        ),
        (1, 1, 0)
    );
    assert_eq!(refund.refund_status, "SUCCESS");
}

#[test]
fn the_sample_reads_the_same_without_bom_and_crlf_and_one_byte_at_a_time() {
    let plain = sample_text();
    let expected = read_all(SAMPLE).unwrap();
    assert_eq!(read_all(plain.as_bytes()).unwrap(), expected);
    // A reader that hands out one byte per fill: lines split across reads.
    let slow = BufReader::with_capacity(1, SAMPLE);
    let mut reader = BillReader::new(slow).unwrap();
    let rows: Vec<_> = reader.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!((rows, *reader.totals().unwrap()), expected);
}

#[test]
fn totals_that_disagree_with_the_rows_are_refused() {
    let text = sample_text();
    for (good, bad, column) in [
        ("`45.0,", "`44.0,", "总交易单数"),
        (",`0.47,`0.14,", ",`0.48,`0.14,", "应结订单总金额"),
        (",`0.08,", ",`0.09,", "手续费总金额"),
        (",`0.47,`0.14\n", ",`0.47,`0.15\n", "申请退款总金额"),
    ] {
        let changed = text.replacen(good, bad, 1);
        assert!(changed != text, "{good} not in the sample");
        match refused(changed.as_bytes()) {
            BillError::TotalsMismatch { column: c, .. } => assert_eq!(c, column),
            other => panic!("{column}: {other}"),
        }
    }
    // A row's amount changed (the totals no longer add up).
    let changed = text.replacen(
        "`NATIVE,`SUCCESS,`OTHERS,`CNY,`0.03",
        "`NATIVE,`SUCCESS,`OTHERS,`CNY,`0.04",
        1,
    );
    assert!(matches!(
        refused(changed.as_bytes()),
        BillError::TotalsMismatch {
            column: "应结订单总金额",
            stated: 47,
            counted: 48
        }
    ));
    // A row dropped.
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(3);
    let dropped = lines.join("\n");
    assert!(matches!(
        refused(dropped.as_bytes()),
        BillError::TotalsMismatch {
            column: "总交易单数",
            ..
        }
    ));
}

#[test]
fn truncated_bills_are_refused_wherever_they_stop() {
    let expected = read_all(SAMPLE).unwrap();
    // Every cut that is not just "without trailing blank lines".
    let text = sample_text();
    let full = text.len();
    let trimmed = text.trim_end().len();
    // Byte by byte: a cut inside a character is refused too.
    for cut in 0..full {
        let result = read_all(&text.as_bytes()[..cut]);
        if cut >= trimmed {
            assert_eq!(result.unwrap(), expected);
        } else {
            assert!(
                result.is_err(),
                "a bill cut at byte {cut} of {full} was accepted"
            );
        }
    }
}

#[test]
fn malformed_bills_are_refused_with_a_clear_error() {
    let text = sample_text();
    let header_end = text.find('\n').unwrap() + 1;
    let header = &text[..header_end];
    let totals = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n`0,`0.00,`0.00,`0.00,`0.00,`0.00,`0.00\n";
    let row = text[header_end..].lines().nth(2).unwrap().to_owned();
    let one_row_totals = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n`1,`0.03,`0.00,`0.00,`0.01,`0.03,`0.00\n";
    let with_row = |r: &str| format!("{header}{r}\n{one_row_totals}");
    // The untouched row with these totals is a good bill: the cases below
    // fail for what they change.
    assert_eq!(read_all(with_row(&row).as_bytes()).unwrap().0.len(), 1);
    // An empty day is a good bill too.
    assert!(
        read_all(format!("{header}{totals}").as_bytes())
            .unwrap()
            .0
            .is_empty()
    );

    let cases: Vec<(String, Expect)> = vec![
        (String::new(), |e| matches!(e, BillError::Empty)),
        (
            "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[No Bill Exist]]></return_msg><error_code><![CDATA[20002]]></error_code></xml>".into(),
            |e| matches!(e, BillError::XmlAnswer),
        ),
        (
            header.replace("商户订单号", "订单号") + totals,
            |e| matches!(e, BillError::MissingColumn("商户订单号")),
        ),
        (
            header.replace("设备号", "商户号") + totals,
            |e| matches!(e, BillError::DuplicateColumn(_)),
        ),
        (with_row(&row.replacen(",`0.03,", ",`0.031,", 1)), |e| {
            matches!(e, BillError::Amount { column: "应结订单金额", line: 2, .. })
        }),
        (with_row(&row.replacen(",`0.03,", ",`-0.03,", 1)), |e| {
            matches!(e, BillError::Amount { .. })
        }),
        (with_row(&row.replacen(",`0.03,", ",`3e-2,", 1)), |e| {
            matches!(e, BillError::Amount { .. })
        }),
        (with_row(&row.replacen(",`0.01000,", ",`0.00600,", 1)), |e| {
            matches!(e, BillError::Amount { column: "手续费", .. })
        }),
        (with_row(&row.replacen("`SUCCESS", "`PAID", 1)), |e| {
            matches!(e, BillError::TradeState { .. })
        }),
        (with_row(&row.replacen("`2019-02-19 01:52:32", "`2019-02-30 01:52:32", 1)), |e| {
            matches!(e, BillError::Time { .. })
        }),
        (with_row(&row[1..]), |e| matches!(e, BillError::NoBackquote { line: 2 })),
        (with_row(&row.replacen(",`NATIVE", "", 1)), |e| {
            matches!(e, BillError::FieldCount { expected: 27, got: 26, .. })
        }),
        (with_row(&row.replacen(",`autotest_20190219015232_89201", ",`", 1)), |e| {
            matches!(e, BillError::EmptyField { column: "商户订单号", .. })
        }),
        (format!("{header}{row}\n"), |e| matches!(e, BillError::NoTotals)),
        (format!("{header}{row}\n总交易单数,应结订单总金额\n`1,`0.03\n"), |e| {
            matches!(e, BillError::TotalsHeader { .. })
        }),
        (
            format!("{header}{row}\n{}", one_row_totals.replace("`1,", "`one,")),
            |e| matches!(e, BillError::TotalsLine { .. }),
        ),
        (
            format!("{header}{row}\n{}", one_row_totals.replace("`1,", "`1.5,")),
            |e| matches!(e, BillError::TotalsLine { .. }),
        ),
        (
            format!("{header}{row}\n{}", one_row_totals.replace(",`0.00\n", "\n")),
            |e| matches!(e, BillError::TotalsLine { .. }),
        ),
        (format!("{}{row}\n", with_row(&row)), |e| {
            matches!(e, BillError::AfterTotals { .. })
        }),
        (
            format!("{header}`{}\n{totals}", "x".repeat(shared::bill::MAX_LINE_BYTES)),
            |e| matches!(e, BillError::LineTooLong { line: 2 }),
        ),
    ];
    for (i, (input, expected)) in cases.iter().enumerate() {
        let err = refused(input.as_bytes());
        assert!(expected(&err), "case {i}: wrong error {err:?}");
        assert!(!err.to_string().is_empty());
    }
    // Not UTF-8.
    let mut bytes = with_row(&row).into_bytes();
    let at = header_end + 40;
    bytes[at] = 0xff;
    assert!(matches!(refused(&bytes), BillError::NotUtf8 { line: 2 }));
}

#[test]
fn a_success_bill_without_refund_columns_reads() {
    // bill_type=SUCCESS: the columns of WeChat's SUCCESS bill.
    let bill = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,商品名称,商户数据包,手续费,费率,订单金额,费率备注\n\
        `2026-11-29 10:00:00,`wx1,`1900000109,`0,`,`4200000001,`o1,`openid,`JSAPI,`SUCCESS,`OTHERS,`CNY,`12.34,`0.00,`书,`,`0.07000,`0.60%,`12.34,`\n\
        总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n`1,`12.34,`0.00,`0.00,`0.07,`12.34,`0.00\n";
    let (rows, totals) = read_all(bill.as_bytes()).unwrap();
    assert_eq!(rows[0].total_fen, 1234);
    assert_eq!(rows[0].refund_fen, 0);
    assert_eq!(totals.fee_fen, 7);
}

/// A reader that fails with an I/O error after `ok` bytes (a dropped connection).
struct FailsAfter {
    data: Cursor<Vec<u8>>,
    ok: u64,
}

impl Read for FailsAfter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.data.position() >= self.ok {
            return Err(std::io::Error::other("connection reset"));
        }
        let room = (self.ok - self.data.position()) as usize;
        let n = room.min(buf.len());
        self.data.read(&mut buf[..n])
    }
}

#[test]
fn an_io_error_midway_is_an_error_not_an_end() {
    let input = BufReader::new(FailsAfter {
        data: Cursor::new(SAMPLE.to_vec()),
        ok: 3000,
    });
    let mut reader = BillReader::new(input).unwrap();
    let mut seen = 0;
    let err = loop {
        match reader.next() {
            Some(Ok(_)) => seen += 1,
            Some(Err(e)) => break e,
            None => panic!("ended cleanly after {seen} rows"),
        }
    };
    assert!(matches!(err, BillError::Io(_)), "{err}");
    assert!(reader.next().is_none(), "nothing after an error");
    assert!(reader.totals().is_none());
}

// ---- generated bills ----

fn text_field() -> impl Strategy<Value = String> {
    // Anything WeChat may write, commas, backquotes and CJK included, except
    // the separator ",`" and line breaks, which the format cannot carry.
    "[a-zA-Z0-9_ ,`\\-%.中文书]{0,20}"
        .prop_filter("separator", |s| !s.contains(",`") && !s.ends_with(','))
}

fn id_field() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_]{1,32}"
}

prop_compose! {
    fn bill_row()(
        secs in 0i64..86_400,
        appid in id_field(),
        transaction_id in id_field(),
        out_trade_no in id_field(),
        refund in any::<bool>(),
        amount in 1i64..100_000_000,
        coupon in 0i64..100,
        fee in -10_000i64..10_000,
        body in text_field(),
        attach in text_field(),
        refund_no in id_field(),
    ) -> BillRow {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 29).unwrap().and_hms_opt(0, 0, 0).unwrap();
        let (settlement, total, refund_fen, state, refund_id, out_refund_no) = if refund {
            (0, 0, amount, TradeState::Refund, format!("5{refund_no}"), refund_no)
        } else {
            (amount, amount + coupon, 0, TradeState::Success, "0".to_owned(), "0".to_owned())
        };
        BillRow {
            trade_time: day + chrono::Duration::seconds(secs),
            appid,
            mch_id: "1900000109".into(),
            sub_mch_id: "0".into(),
            device_info: String::new(),
            transaction_id,
            out_trade_no,
            openid: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into(),
            trade_type: "JSAPI".into(),
            trade_state: state,
            bank_type: "OTHERS".into(),
            fee_type: "CNY".into(),
            settlement_fen: settlement,
            coupon_fen: if refund { 0 } else { coupon },
            refund_id,
            out_refund_no,
            refund_fen,
            coupon_refund_fen: 0,
            refund_type: if refund { "ORIGINAL".into() } else { String::new() },
            refund_status: if refund { "SUCCESS".into() } else { String::new() },
            body,
            attach,
            fee_fen: fee,
            rate: "0.60%".into(),
            total_fen: total,
            applied_refund_fen: refund_fen,
            rate_note: String::new(),
        }
    }
}

fn write_bill(rows: &[BillRow]) -> (Vec<u8>, BillTotals) {
    let mut writer = BillWriter::new(Vec::new()).unwrap();
    for row in rows {
        writer.write_row(row).unwrap();
    }
    let totals = *writer.totals();
    (writer.finish().unwrap(), totals)
}

proptest! {
    /// A written bill reads back to the same rows, and the totals are their sums.
    #[test]
    fn written_bills_read_back(rows in prop::collection::vec(bill_row(), 0..40)) {
        let (bytes, totals) = write_bill(&rows);
        let (read, read_totals) = read_all(&bytes).unwrap();
        prop_assert_eq!(&read, &rows);
        prop_assert_eq!(read_totals, totals);
        prop_assert_eq!(totals.rows, rows.len() as u64);
        prop_assert_eq!(totals.settlement_fen, rows.iter().map(|r| r.settlement_fen).sum::<i64>());
        prop_assert_eq!(totals.refund_fen, rows.iter().map(|r| r.refund_fen).sum::<i64>());
        prop_assert_eq!(totals.fee_fen, rows.iter().map(|r| r.fee_fen).sum::<i64>());
    }

    /// Any stated totals other than the rows' sums are refused.
    #[test]
    fn wrong_totals_are_refused(
        rows in prop::collection::vec(bill_row(), 0..20),
        which in 0usize..7,
        delta in prop_oneof![-1000i64..0, 1i64..1000],
    ) {
        let mut writer = BillWriter::new(Vec::new()).unwrap();
        for row in &rows {
            writer.write_row(row).unwrap();
        }
        let mut totals = *writer.totals();
        match which {
            0 => totals.rows = totals.rows.saturating_add_signed(delta).max(if totals.rows == 0 { 1 } else { 0 }),
            1 => totals.settlement_fen += delta.abs(),
            2 => totals.refund_fen += delta.abs(),
            3 => totals.coupon_refund_fen += delta.abs(),
            4 => totals.fee_fen += delta,
            5 => totals.total_fen += delta.abs(),
            _ => totals.applied_refund_fen += delta.abs(),
        }
        prop_assume!(totals != *writer.totals());
        let bytes = writer.finish_with(&totals).unwrap();
        let err = read_all(&bytes).unwrap_err();
        prop_assert!(matches!(err, BillError::TotalsMismatch { .. }), "{}", err);
    }

    /// Arbitrary bytes after a valid header never panic, and whatever is
    /// accepted has totals that match what was read.
    #[test]
    fn arbitrary_input_never_panics(tail in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut bytes = shared::bill::ALL_COLUMNS.join(",").into_bytes();
        bytes.push(b'\n');
        bytes.extend_from_slice(&tail);
        if let Ok((rows, totals)) = read_all(&bytes) {
            prop_assert_eq!(totals.rows, rows.len() as u64);
        }
    }

    /// Memory: the reader holds one line, however many rows (checked through
    /// its input: it never reads ahead more than the BufRead's buffer).
    #[test]
    fn the_reader_streams(rows in prop::collection::vec(bill_row(), 1..30)) {
        let (bytes, _) = write_bill(&rows);
        let mut input = BufReader::with_capacity(64, bytes.as_slice());
        let mut reader = BillReader::new(&mut input).unwrap();
        let first = reader.next().unwrap().unwrap();
        prop_assert_eq!(&first, &rows[0]);
        drop(reader);
        // What is left unread is everything after the first row's line
        // (less what the 64-byte buffer holds).
        let mut rest = Vec::new();
        input.read_to_end(&mut rest).unwrap();
        let consumed = bytes.len() - rest.len();
        let two_lines: usize = bytes.split(|b| *b == b'\n').take(2).map(|l| l.len() + 1).sum();
        prop_assert!(consumed <= two_lines, "{} > {}", consumed, two_lines);
    }
}
