//! Planted bill discrepancies and v3 bill downloads.

use std::collections::HashMap;
use std::time::Instant;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// A discrepancy planted in a day's bill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PlantKind {
    /// The payment row of `outTradeNo` is left out.
    DropRow,
    /// The payment row of `outTradeNo` says `amountFen`.
    ChangeAmount,
    /// A payment the merchant never made (`outTradeNo`, default generated;
    /// `amountFen`, default 1).
    UnknownTrade,
    /// The totals line disagrees with the rows (settlement + 1 fen).
    WrongTotals,
    /// The download stops two thirds of the way (the hash is the whole bill's).
    Truncate,
    /// v3: `hash_value` is not the bill's.
    WrongHash,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plant {
    pub kind: PlantKind,
    #[serde(default)]
    pub out_trade_no: Option<String>,
    #[serde(default)]
    pub amount_fen: Option<i64>,
}

pub(crate) struct Download {
    pub(crate) mch_id: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) expires: Instant,
}

#[derive(Default)]
pub(crate) struct BillStore {
    pub(crate) plants: HashMap<NaiveDate, Vec<Plant>>,
    pub(crate) downloads: HashMap<String, Download>,
}
