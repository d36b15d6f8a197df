//! The streaming reader: one line in memory at a time, totals checked at the end.

use std::io::BufRead;

use super::{
    ALL_COLUMNS, BillError, BillRow, BillTotals, MAX_LINE_BYTES, TOTAL_COLUMNS, TradeState,
    bill_yuan_to_fen,
};

/// Columns a bill must have for its rows to be reconciled and its totals checked.
const REQUIRED: [&str; 10] = [
    "交易时间",
    "公众账号ID",
    "商户号",
    "微信订单号",
    "商户订单号",
    "交易类型",
    "交易状态",
    "应结订单金额",
    "手续费",
    "订单金额",
];

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Where the reader is in the bill.
#[derive(Debug, PartialEq, Eq)]
enum Stage {
    Rows,
    Done,
}

/// Reads a bill row by row; see the module documentation for the format.
///
/// Iterating gives each row (`Ok`), or the first error and then nothing. The
/// iteration ends (`None`) only after the totals were read and agree with
/// every row given out: a caller must not act on rows as final before that.
/// Reading again after an error gives `None`.
#[derive(Debug)]
pub struct BillReader<R> {
    input: R,
    line: Vec<u8>,
    line_no: u64,
    /// For each of [`ALL_COLUMNS`], its position in this bill's header.
    positions: [Option<usize>; ALL_COLUMNS.len()],
    field_count: usize,
    counted: BillTotals,
    totals: Option<BillTotals>,
    stage: Stage,
}

impl<R: BufRead> BillReader<R> {
    /// Reads the header. An empty input, an XML answer (WeChat's error reply
    /// instead of a bill), or a header without the columns reconciliation
    /// needs is refused here.
    pub fn new(input: R) -> Result<Self, BillError> {
        let mut reader = Self {
            input,
            line: Vec::with_capacity(512),
            line_no: 0,
            positions: [None; ALL_COLUMNS.len()],
            field_count: 0,
            counted: BillTotals::default(),
            totals: None,
            stage: Stage::Rows,
        };
        if !reader.read_line()? {
            return Err(BillError::Empty);
        }
        let line = reader.text()?;
        let line = line.strip_prefix('\u{feff}').unwrap_or(line);
        if line.trim_start().starts_with('<') {
            return Err(BillError::XmlAnswer);
        }
        if line.trim().is_empty() {
            return Err(BillError::Empty);
        }
        let mut positions = [None; ALL_COLUMNS.len()];
        let mut field_count = 0;
        for (i, name) in line.split(',').enumerate() {
            field_count = i + 1;
            let name = name.trim().trim_start_matches('`');
            if let Some(k) = ALL_COLUMNS.iter().position(|c| *c == name) {
                if positions[k].is_some() {
                    return Err(BillError::DuplicateColumn(name.to_owned()));
                }
                positions[k] = Some(i);
            }
        }
        for required in REQUIRED {
            let k = column_index(required);
            if positions[k].is_none() {
                return Err(BillError::MissingColumn(required));
            }
        }
        reader.positions = positions;
        reader.field_count = field_count;
        Ok(reader)
    }

    /// The totals, once the whole bill was read and they agreed with the rows.
    pub fn totals(&self) -> Option<&BillTotals> {
        self.totals.as_ref()
    }

    /// Lines read so far (the header included).
    pub fn lines_read(&self) -> u64 {
        self.line_no
    }

    /// The next row, `Ok(None)` at the (checked) end.
    pub fn next_row(&mut self) -> Result<Option<BillRow>, BillError> {
        if self.stage == Stage::Done {
            return Ok(None);
        }
        let result = self.step();
        if !matches!(result, Ok(Some(_))) {
            self.stage = Stage::Done;
        }
        result
    }

    fn step(&mut self) -> Result<Option<BillRow>, BillError> {
        loop {
            if !self.read_line()? {
                return Err(BillError::NoTotals);
            }
            let line_no = self.line_no;
            let text = self.text()?;
            if text.trim().is_empty() {
                continue;
            }
            let bare = text.trim_start_matches('`');
            if bare.starts_with(TOTAL_COLUMNS[0]) {
                let header_ok = text
                    .split(',')
                    .map(|f| f.trim().trim_start_matches('`'))
                    .eq(TOTAL_COLUMNS.iter().copied());
                if !header_ok {
                    return Err(BillError::TotalsHeader { line: line_no });
                }
                self.read_totals()?;
                return Ok(None);
            }
            let row = self.parse_row(line_no)?;
            self.counted.add(&row).ok_or(BillError::Overflow)?;
            return Ok(Some(row));
        }
    }

    fn parse_row(&self, line: u64) -> Result<BillRow, BillError> {
        let text = self.text()?;
        let Some(body) = text.strip_prefix('`') else {
            return Err(BillError::NoBackquote { line });
        };
        let fields: Vec<&str> = body.split(",`").collect();
        if fields.len() != self.field_count {
            return Err(BillError::FieldCount {
                line,
                expected: self.field_count,
                got: fields.len(),
            });
        }
        let field = |k: usize| -> &str {
            self.positions[k]
                .and_then(|i| fields.get(i).copied())
                .unwrap_or("")
        };
        let text = |k: usize| field(k).to_owned();
        let nonempty = |k: usize| -> Result<String, BillError> {
            let v = field(k);
            if v.is_empty() {
                return Err(BillError::EmptyField {
                    line,
                    column: ALL_COLUMNS[k],
                });
            }
            Ok(v.to_owned())
        };
        let amount = |k: usize, signed: bool| -> Result<i64, BillError> {
            // A bill without the column (SUCCESS bills have no refund columns).
            if self.positions[k].is_none() {
                return Ok(0);
            }
            let v = field(k);
            bill_yuan_to_fen(v, signed).ok_or_else(|| BillError::Amount {
                line,
                column: ALL_COLUMNS[k],
                value: v.chars().take(40).collect(),
            })
        };
        let time = field(0);
        let trade_time =
            chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M:%S").map_err(|_| {
                BillError::Time {
                    line,
                    value: time.chars().take(40).collect(),
                }
            })?;
        let state = field(9);
        let trade_state = TradeState::parse(state).ok_or_else(|| BillError::TradeState {
            line,
            value: state.chars().take(40).collect(),
        })?;
        // Indices into ALL_COLUMNS.
        Ok(BillRow {
            trade_time,
            appid: nonempty(1)?,
            mch_id: nonempty(2)?,
            sub_mch_id: text(3),
            device_info: text(4),
            transaction_id: nonempty(5)?,
            out_trade_no: nonempty(6)?,
            openid: text(7),
            trade_type: nonempty(8)?,
            trade_state,
            bank_type: text(10),
            fee_type: text(11),
            settlement_fen: amount(12, false)?,
            coupon_fen: amount(13, false)?,
            refund_id: text(14),
            out_refund_no: text(15),
            refund_fen: amount(16, false)?,
            coupon_refund_fen: amount(17, false)?,
            refund_type: text(18),
            refund_status: text(19),
            body: text(20),
            attach: text(21),
            fee_fen: amount(22, true)?,
            rate: text(23),
            total_fen: amount(24, false)?,
            applied_refund_fen: amount(25, false)?,
            rate_note: text(26),
        })
    }

    /// The totals line after its header, then nothing but blank lines.
    fn read_totals(&mut self) -> Result<(), BillError> {
        if !self.read_line()? {
            return Err(BillError::NoTotals);
        }
        let line = self.line_no;
        let malformed = |reason: &str| BillError::TotalsLine {
            line,
            reason: reason.to_owned(),
        };
        let text = self.text()?;
        let values: Vec<&str> = text
            .split(',')
            .map(|f| f.strip_prefix('`').unwrap_or(f))
            .collect();
        if values.len() != TOTAL_COLUMNS.len() {
            return Err(malformed(&format!(
                "{} values, expected {}",
                values.len(),
                TOTAL_COLUMNS.len()
            )));
        }
        let rows = parse_count(values[0]).ok_or_else(|| malformed("总交易单数 is not a count"))?;
        let amount = |i: usize, signed: bool| {
            bill_yuan_to_fen(values[i], signed)
                .ok_or_else(|| malformed(&format!("{} is not an amount", TOTAL_COLUMNS[i])))
        };
        let stated = BillTotals {
            rows,
            settlement_fen: amount(1, false)?,
            refund_fen: amount(2, false)?,
            coupon_refund_fen: amount(3, false)?,
            fee_fen: amount(4, true)?,
            total_fen: amount(5, false)?,
            applied_refund_fen: amount(6, false)?,
        };
        if let Some((column, stated, counted)) = stated.first_difference(&self.counted) {
            return Err(BillError::TotalsMismatch {
                column,
                stated,
                counted,
            });
        }
        while self.read_line()? {
            if !self.text()?.trim().is_empty() {
                return Err(BillError::AfterTotals { line: self.line_no });
            }
        }
        self.totals = Some(stated);
        Ok(())
    }

    /// The current line as text, without its line ending.
    fn text(&self) -> Result<&str, BillError> {
        let mut bytes = self.line.as_slice();
        if self.line_no == 1 {
            bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
        }
        std::str::from_utf8(bytes).map_err(|_| BillError::NotUtf8 { line: self.line_no })
    }

    /// Reads the next line into `self.line` (ending stripped); `false` at the
    /// end of input. A line longer than [`MAX_LINE_BYTES`] is an error before
    /// it is buffered whole.
    fn read_line(&mut self) -> Result<bool, BillError> {
        self.line.clear();
        let mut any = false;
        loop {
            let available = match self.input.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if available.is_empty() {
                break;
            }
            any = true;
            let (chunk, used, ended) = match available.iter().position(|b| *b == b'\n') {
                Some(i) => (&available[..i], i + 1, true),
                None => (available, available.len(), false),
            };
            if self.line.len() + chunk.len() > MAX_LINE_BYTES {
                return Err(BillError::LineTooLong {
                    line: self.line_no + 1,
                });
            }
            self.line.extend_from_slice(chunk);
            self.input.consume(used);
            if ended {
                break;
            }
        }
        if !any {
            return Ok(false);
        }
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        self.line_no += 1;
        Ok(true)
    }
}

impl<R: BufRead> Iterator for BillReader<R> {
    type Item = Result<BillRow, BillError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_row().transpose()
    }
}

fn column_index(name: &str) -> usize {
    // Every name passed here is one of ALL_COLUMNS (constants in this module).
    ALL_COLUMNS.iter().position(|c| *c == name).unwrap_or(0)
}

/// `45` or WeChat's `45.0`.
fn parse_count(s: &str) -> Option<u64> {
    let digits = match s.split_once('.') {
        Some((d, zeros)) if !zeros.is_empty() && zeros.bytes().all(|b| b == b'0') => d,
        Some(_) => return None,
        None => s,
    };
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}
