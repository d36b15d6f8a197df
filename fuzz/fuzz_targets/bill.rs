//! `shared::bill::BillReader` on any bytes: never panics, never loops; a bill
//! it accepts to the end has totals equal to the sums of the rows it gave
//! out, and written back with `BillWriter` it reads to the same rows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::bill::{BillReader, BillWriter};

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = BillReader::new(data) else {
        return;
    };
    let mut rows = Vec::new();
    for row in reader.by_ref() {
        match row {
            Ok(row) => rows.push(row),
            Err(_) => return,
        }
    }
    let Some(totals) = reader.totals().copied() else {
        panic!("ended without an error and without totals");
    };
    assert_eq!(totals.rows, rows.len() as u64);
    assert_eq!(
        totals.settlement_fen,
        rows.iter().map(|r| r.settlement_fen).sum::<i64>()
    );
    assert_eq!(totals.fee_fen, rows.iter().map(|r| r.fee_fen).sum::<i64>());
    assert_eq!(
        totals.refund_fen,
        rows.iter().map(|r| r.refund_fen).sum::<i64>()
    );
    // Round trip: what was accepted can be written, unless a field holds
    // what the format cannot carry (then the writer says so).
    let Ok(mut writer) = BillWriter::new(Vec::new()) else {
        return;
    };
    for row in &rows {
        if writer.write_row(row).is_err() {
            return;
        }
    }
    let Ok(bytes) = writer.finish() else {
        return;
    };
    let again: Vec<_> = BillReader::new(bytes.as_slice())
        .expect("own header")
        .collect::<Result<_, _>>()
        .expect("own bill");
    assert_eq!(again, rows);
});
