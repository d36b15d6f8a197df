//! Writing a bill in WeChat's format (the sandbox serves these; tests
//! generate them). Streams too: the totals are summed as rows go out.

use std::io::{self, Write};

use super::{ALL_COLUMNS, BillRow, BillTotals, TOTAL_COLUMNS};
use crate::money::fen_to_yuan;

/// Writes the `bill_type=ALL` header, then rows, then (on [`BillWriter::finish`])
/// the totals header and a totals line that agrees with the rows.
pub struct BillWriter<W: Write> {
    out: W,
    totals: BillTotals,
}

impl<W: Write> BillWriter<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(ALL_COLUMNS.join(",").as_bytes())?;
        out.write_all(b"\n")?;
        Ok(Self {
            out,
            totals: BillTotals::default(),
        })
    }

    /// Writes one row. A text field that contains a line break or WeChat's
    /// separator `` ,` `` cannot be written in this format and is refused.
    pub fn write_row(&mut self, row: &BillRow) -> io::Result<()> {
        let time = row.trade_time.format("%Y-%m-%d %H:%M:%S").to_string();
        let fee = format!("{}000", fen_to_yuan(row.fee_fen));
        let amounts = [
            fen_to_yuan(row.settlement_fen),
            fen_to_yuan(row.coupon_fen),
            fen_to_yuan(row.refund_fen),
            fen_to_yuan(row.coupon_refund_fen),
            fen_to_yuan(row.total_fen),
            fen_to_yuan(row.applied_refund_fen),
        ];
        let fields: [&str; ALL_COLUMNS.len()] = [
            &time,
            &row.appid,
            &row.mch_id,
            &row.sub_mch_id,
            &row.device_info,
            &row.transaction_id,
            &row.out_trade_no,
            &row.openid,
            &row.trade_type,
            row.trade_state.as_str(),
            &row.bank_type,
            &row.fee_type,
            &amounts[0],
            &amounts[1],
            &row.refund_id,
            &row.out_refund_no,
            &amounts[2],
            &amounts[3],
            &row.refund_type,
            &row.refund_status,
            &row.body,
            &row.attach,
            &fee,
            &row.rate,
            &amounts[4],
            &amounts[5],
            &row.rate_note,
        ];
        if let Some(bad) = fields
            .iter()
            .find(|f| f.contains(",`") || f.contains('\n') || f.contains('\r'))
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a bill field cannot contain a line break or \",`\": {bad:?}"),
            ));
        }
        self.totals
            .add(row)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bill sums overflow"))?;
        for (i, field) in fields.iter().enumerate() {
            self.out.write_all(if i == 0 { b"`" } else { b",`" })?;
            self.out.write_all(field.as_bytes())?;
        }
        self.out.write_all(b"\n")
    }

    /// The totals of the rows written so far.
    pub fn totals(&self) -> &BillTotals {
        &self.totals
    }

    /// Writes the totals and gives the output back.
    pub fn finish(self) -> io::Result<W> {
        let totals = self.totals;
        self.finish_with(&totals)
    }

    /// Writes `totals` (which may disagree with the rows: the sandbox plants
    /// a wrong bill this way) and gives the output back.
    pub fn finish_with(mut self, totals: &BillTotals) -> io::Result<W> {
        self.out.write_all(TOTAL_COLUMNS.join(",").as_bytes())?;
        self.out.write_all(b"\n")?;
        writeln!(
            self.out,
            "`{},`{},`{},`{},`{},`{},`{}",
            totals.rows,
            fen_to_yuan(totals.settlement_fen),
            fen_to_yuan(totals.refund_fen),
            fen_to_yuan(totals.coupon_refund_fen),
            fen_to_yuan(totals.fee_fen),
            fen_to_yuan(totals.total_fen),
            fen_to_yuan(totals.applied_refund_fen),
        )?;
        self.out.flush()?;
        Ok(self.out)
    }
}
