//! WeChat Pay's daily trade bill (交易账单): the text both APIv2
//! `/pay/downloadbill` and APIv3 `/v3/bill/tradebill`'s `download_url` serve.
//!
//! The format, as WeChat documents it (APIv2 "下载交易账单",
//! <https://pay.weixin.qq.com/wiki/doc/api/jsapi.php?chapter=9_6>; APIv3 "申请交易账单",
//! <https://pay.weixin.qq.com/docs/merchant/apis/jsapi-payment/get-trade-bill.html>) and
//! as WeChat's own SDKs read it (`wechatpay-apiv3/wechatpay-php`,
//! `tests/fixtures/bill.ALL.csv` and `DownloadbillTest.php`: first byte `` ` ``,
//! separator `` ,` ``):
//!
//! ```text
//! 交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注
//! `2019-02-19 18:19:32,`wxab8acd895ab1638a,`1921000401,`0,`harryma007,`4200000263201902167700134203,`autotest_20190219181930_76386,`oHkLxt…,`JSAPI,`SUCCESS,`OTHERS,`CNY,`0.01,`0.00,`0,`0,`0.00,`0.00,`,`,`…,`,`0.00000,`39.00%,`0.01,`0.00,`
//! 总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额
//! `45.0,`0.47,`0.14,`0.0,`0.08,`0.47,`0.14
//! ```
//!
//! - the header names the columns; WeChat says to locate them by name ("列名的顺序
//!   非一直固定"), so this reader does; `bill_type=SUCCESS` bills lack the refund
//!   columns, which then read as empty / zero;
//! - every field of a data row begins with a backquote (so that spreadsheets keep
//!   long numbers as text), and rows are split on `` ,` ``, as WeChat's SDK does,
//!   so a comma inside a product name does not shift the columns;
//! - amounts are yuan: two decimals, except the fee (手续费), written with five
//!   (`0.01000`) but always whole fen (WeChat rounds each fee to the fen); refund
//!   rows carry the refund in 退款金额 / 申请退款金额 and zero order amounts, and
//!   may carry a negative fee (the fee given back);
//! - the last two lines are the totals header and the totals (count, then sums of
//!   应结订单金额, 退款金额, 充值券退款金额, 手续费, 订单金额, 申请退款金额), written
//!   as WeChat writes them (`45.0`, `0.0`).
//!
//! [`BillReader`] reads it row by row from any `BufRead` (memory does not grow
//! with the bill), converts every amount to integer fen through
//! [`crate::money`], and when it reaches the end checks the totals against the
//! rows it gave out: a bill whose totals disagree, or that stops before its
//! totals (a truncated download), is an error. [`BillWriter`] writes the same
//! format (the sandbox serves bills with it; tests generate them).

mod read;
mod write;

pub use read::BillReader;
pub use write::BillWriter;

/// The columns of a `bill_type=ALL` bill, in WeChat's order (the order the
/// writer uses; the reader finds columns by name).
pub const ALL_COLUMNS: [&str; 27] = [
    "交易时间",
    "公众账号ID",
    "商户号",
    "特约商户号",
    "设备号",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "应结订单金额",
    "代金券金额",
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "充值券退款金额",
    "退款类型",
    "退款状态",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "订单金额",
    "申请退款金额",
    "费率备注",
];

/// The totals header, in WeChat's order.
pub const TOTAL_COLUMNS: [&str; 7] = [
    "总交易单数",
    "应结订单总金额",
    "退款总金额",
    "充值券退款总金额",
    "手续费总金额",
    "订单总金额",
    "申请退款总金额",
];

/// Longest line accepted; a real row is a few hundred bytes. Bounds the
/// memory one line can take whatever the input.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// 交易状态 of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeState {
    /// A payment.
    Success,
    /// A refund (the row's refund columns are filled in).
    Refund,
    /// A payment revoked (micropay `reverse`); listed like a payment.
    Revoked,
}

impl TradeState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "SUCCESS",
            Self::Refund => "REFUND",
            Self::Revoked => "REVOKED",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "SUCCESS" => Some(Self::Success),
            "REFUND" => Some(Self::Refund),
            "REVOKED" => Some(Self::Revoked),
            _ => None,
        }
    }
}

/// One data row, amounts in fen. Text fields are as written, without the
/// backquote; `refund_id` and `out_refund_no` are `"0"` on payment rows, as
/// WeChat writes them (see [`BillRow::refund`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillRow {
    /// 交易时间, Beijing time: the payment's, or the refund's on a refund row.
    pub trade_time: chrono::NaiveDateTime,
    pub appid: String,
    pub mch_id: String,
    /// 特约商户号 (`0` for an ordinary merchant).
    pub sub_mch_id: String,
    pub device_info: String,
    pub transaction_id: String,
    pub out_trade_no: String,
    pub openid: String,
    pub trade_type: String,
    pub trade_state: TradeState,
    pub bank_type: String,
    pub fee_type: String,
    /// 应结订单金额: the order amount less non-recharge coupons; 0 on refund rows.
    pub settlement_fen: i64,
    /// 代金券金额.
    pub coupon_fen: i64,
    pub refund_id: String,
    pub out_refund_no: String,
    /// 退款金额 (less non-recharge coupon refunds).
    pub refund_fen: i64,
    /// 充值券退款金额.
    pub coupon_refund_fen: i64,
    pub refund_type: String,
    pub refund_status: String,
    pub body: String,
    pub attach: String,
    /// 手续费, whole fen; negative when a refund gives the fee back.
    pub fee_fen: i64,
    /// 费率, as written (`0.60%`).
    pub rate: String,
    /// 订单金额; 0 on refund rows.
    pub total_fen: i64,
    /// 申请退款金额: what the merchant asked to refund.
    pub applied_refund_fen: i64,
    pub rate_note: String,
}

impl BillRow {
    /// The refund's numbers on a refund row: `(refund_id, out_refund_no)`;
    /// `None` on payment rows (where WeChat writes `0` or nothing).
    pub fn refund(&self) -> Option<(&str, &str)> {
        let absent = |s: &str| s.is_empty() || s == "0";
        if self.trade_state != TradeState::Refund
            || (absent(&self.refund_id) && absent(&self.out_refund_no))
        {
            return None;
        }
        Some((&self.refund_id, &self.out_refund_no))
    }
}

/// The totals line, amounts in fen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BillTotals {
    /// 总交易单数: data rows, payments and refunds.
    pub rows: u64,
    /// 应结订单总金额.
    pub settlement_fen: i64,
    /// 退款总金额.
    pub refund_fen: i64,
    /// 充值券退款总金额.
    pub coupon_refund_fen: i64,
    /// 手续费总金额.
    pub fee_fen: i64,
    /// 订单总金额.
    pub total_fen: i64,
    /// 申请退款总金额.
    pub applied_refund_fen: i64,
}

impl BillTotals {
    /// Adds one row (checked: a bill cannot overflow the sums unnoticed).
    fn add(&mut self, row: &BillRow) -> Option<()> {
        self.rows = self.rows.checked_add(1)?;
        self.settlement_fen = self.settlement_fen.checked_add(row.settlement_fen)?;
        self.refund_fen = self.refund_fen.checked_add(row.refund_fen)?;
        self.coupon_refund_fen = self.coupon_refund_fen.checked_add(row.coupon_refund_fen)?;
        self.fee_fen = self.fee_fen.checked_add(row.fee_fen)?;
        self.total_fen = self.total_fen.checked_add(row.total_fen)?;
        self.applied_refund_fen = self
            .applied_refund_fen
            .checked_add(row.applied_refund_fen)?;
        Some(())
    }

    /// The first total that differs from `other`: `(name, self, other)`.
    fn first_difference(&self, other: &BillTotals) -> Option<(&'static str, i64, i64)> {
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        [
            (TOTAL_COLUMNS[0], as_i64(self.rows), as_i64(other.rows)),
            (TOTAL_COLUMNS[1], self.settlement_fen, other.settlement_fen),
            (TOTAL_COLUMNS[2], self.refund_fen, other.refund_fen),
            (
                TOTAL_COLUMNS[3],
                self.coupon_refund_fen,
                other.coupon_refund_fen,
            ),
            (TOTAL_COLUMNS[4], self.fee_fen, other.fee_fen),
            (TOTAL_COLUMNS[5], self.total_fen, other.total_fen),
            (
                TOTAL_COLUMNS[6],
                self.applied_refund_fen,
                other.applied_refund_fen,
            ),
        ]
        .into_iter()
        .find(|(_, a, b)| a != b)
    }
}

/// Why a bill was refused; `line` is 1-based.
#[derive(Debug, thiserror::Error)]
pub enum BillError {
    #[error("reading the bill failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the bill is empty")]
    Empty,
    #[error("this is not a bill but an XML answer (WeChat's error reply?)")]
    XmlAnswer,
    #[error("line {line}: not UTF-8")]
    NotUtf8 { line: u64 },
    #[error("line {line}: longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong { line: u64 },
    #[error("the header has no column {0}")]
    MissingColumn(&'static str),
    #[error("the header names column {0} twice")]
    DuplicateColumn(String),
    #[error("line {line}: {got} fields, the header has {expected}")]
    FieldCount {
        line: u64,
        expected: usize,
        got: usize,
    },
    #[error("line {line}: a data field does not begin with a backquote")]
    NoBackquote { line: u64 },
    #[error("line {line}: column {column}: {value:?} is not an amount in yuan")]
    Amount {
        line: u64,
        column: &'static str,
        value: String,
    },
    #[error("line {line}: column 交易时间: {value:?} is not YYYY-MM-DD HH:MM:SS")]
    Time { line: u64, value: String },
    #[error("line {line}: unknown 交易状态 {value:?}")]
    TradeState { line: u64, value: String },
    #[error("line {line}: column {column} is empty")]
    EmptyField { line: u64, column: &'static str },
    #[error("the bill ends before its totals (truncated?)")]
    NoTotals,
    #[error("line {line}: the totals header is not {expected}", expected = TOTAL_COLUMNS.join(","))]
    TotalsHeader { line: u64 },
    #[error("line {line}: the totals line is malformed: {reason}")]
    TotalsLine { line: u64, reason: String },
    #[error("the sums of the rows overflow")]
    Overflow,
    #[error(
        "the totals disagree with the rows: {column} is {stated} in the totals, {counted} in the rows"
    )]
    TotalsMismatch {
        column: &'static str,
        stated: i64,
        counted: i64,
    },
    #[error("line {line}: text after the totals")]
    AfterTotals { line: u64 },
}

/// A bill amount in yuan to fen, through [`crate::money::yuan_to_fen`]:
/// zero is allowed (`0.00`, `0.0`, `0`), a leading `-` when `signed`, and up to
/// five decimals when the ones past the fen are zeros (WeChat's `0.01000`
/// fees). Anything else — fractions of a fen, signs, spaces, exponents — is
/// refused.
pub fn bill_yuan_to_fen(s: &str, signed: bool) -> Option<i64> {
    let (negative, unsigned) = match s.strip_prefix('-') {
        Some(rest) if signed => (true, rest),
        Some(_) => return None,
        None => (false, s),
    };
    let (int_part, frac) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    let frac = match frac {
        None => "",
        Some(f) if f.is_empty() || f.len() > 5 || !f.bytes().all(|b| b.is_ascii_digit()) => {
            return None;
        }
        Some(f) if f.len() > 2 => {
            // Past the fen only zeros: WeChat rounds fees to the fen.
            if !f[2..].bytes().all(|b| b == b'0') {
                return None;
            }
            &f[..2]
        }
        Some(f) => f,
    };
    let is_zero = int_part == "0" && frac.bytes().all(|b| b == b'0');
    let fen = if is_zero {
        0
    } else {
        let normalised = if frac.is_empty() {
            int_part.to_owned()
        } else {
            format!("{int_part}.{frac}")
        };
        crate::money::yuan_to_fen(&normalised).ok()?
    };
    Some(if negative { -fen } else { fen })
}

#[cfg(test)]
mod tests {
    use super::bill_yuan_to_fen;

    #[test]
    fn bill_amounts() {
        for (s, fen) in [
            ("0.00", 0),
            ("0.0", 0),
            ("0", 0),
            ("0.01", 1),
            ("0.47", 47),
            ("12.3", 1230),
            ("0.01000", 1),
            ("0.00000", 0),
            ("100", 10000),
        ] {
            assert_eq!(bill_yuan_to_fen(s, false), Some(fen), "{s}");
        }
        assert_eq!(bill_yuan_to_fen("-0.01000", true), Some(-1));
        assert_eq!(bill_yuan_to_fen("-0.00", true), Some(0));
        for bad in [
            "", "-", "-0.01", ".5", "1.", "01", "00", "0.001", "0.00600", "0.000000", "1e2", " 1",
            "1,0", "+1", "0x1", "--1", "1.2.3", "１",
        ] {
            assert_eq!(bill_yuan_to_fen(bad, false), None, "{bad:?}");
        }
        assert_eq!(bill_yuan_to_fen("--1", true), None);
    }
}
