//! The text columns that hold one of a closed set of values, as enums: the
//! stored text is exactly what it always was (`NOTPAY`, `JSAPI`, `PENDING`,
//! …), and a value outside the set is a read error that names its column,
//! never a silent default. Defined here, with the columns they type; the
//! domain re-exports them as its vocabulary.
//!
//! Each enum is `ToSql`/`FromSql` for `Text` on SQLite and PostgreSQL, and on
//! shared's `MultiBackend` (the `DbConnection` enum), which hands the value to
//! whichever of the two is connected.

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Text;
use diesel::sqlite::{Sqlite, SqliteValue};
use serde::{Deserialize, Serialize};
use shared::db::{MultiBackend, MultiRawValue};

/// The `as_str`/`parse` pair and the diesel impls of a text-backed enum;
/// `$column` names where it is stored, for the error on an unknown value.
macro_rules! text_enum {
    ($ty:ident, $column:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text,)+
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($ty::$variant),)+
                    _ => None,
                }
            }

            fn from_column(s: &str) -> deserialize::Result<Self> {
                Self::parse(s).ok_or_else(|| unknown($column, s))
            }
        }

        impl ToSql<Text, Sqlite> for $ty {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
                out.set_value(self.as_str());
                Ok(IsNull::No)
            }
        }

        impl ToSql<Text, Pg> for $ty {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                std::io::Write::write_all(out, self.as_str().as_bytes())?;
                Ok(IsNull::No)
            }
        }

        impl ToSql<Text, MultiBackend> for $ty {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, MultiBackend>) -> serialize::Result {
                out.set_value((Text, self));
                Ok(IsNull::No)
            }
        }

        impl FromSql<Text, Sqlite> for $ty {
            fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
                Self::from_column(&<String as FromSql<Text, Sqlite>>::from_sql(value)?)
            }
        }

        impl FromSql<Text, Pg> for $ty {
            fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
                Self::from_column(&<String as FromSql<Text, Pg>>::from_sql(value)?)
            }
        }

        impl FromSql<Text, MultiBackend> for $ty {
            fn from_sql(value: MultiRawValue<'_>) -> deserialize::Result<Self> {
                value.from_sql::<Self, Text>()
            }
        }
    };
}

fn unknown(column: &str, value: &str) -> Box<dyn std::error::Error + Send + Sync> {
    format!("{column}: unknown value '{value}'").into()
}

/// An order's status, as API.md names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    NotPay,
    Paid,
    Closed,
    Refund,
    PayError,
}

text_enum!(Status, "pay_orders.status", {
    NotPay => "NOTPAY",
    Paid => "PAID",
    Closed => "CLOSED",
    Refund => "REFUND",
    PayError => "PAYERROR",
});

/// How the order is paid: in WeChat (JSAPI), in a phone browser (MWEB) or
/// by scanning a QR code (NATIVE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
pub enum TradeType {
    #[serde(rename = "JSAPI")]
    Jsapi,
    #[serde(rename = "MWEB")]
    Mweb,
    #[serde(rename = "NATIVE")]
    Native,
}

text_enum!(TradeType, "pay_orders.trade_type", {
    Jsapi => "JSAPI",
    Mweb => "MWEB",
    Native => "NATIVE",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
#[serde(rename_all = "UPPERCASE")]
pub enum RefundStatus {
    /// Amount reserved; WeChat's answer not known yet.
    Pending,
    /// WeChat accepted; the money is on its way.
    Processing,
    Success,
    /// WeChat refused or closed it; the reservation was released.
    Failed,
    /// WeChat's CHANGE (v3: ABNORMAL): the money could not reach the payer
    /// (card closed or frozen). Needs an operator at the merchant platform;
    /// the amount stays reserved, since WeChat may still pay it out.
    Change,
}

text_enum!(RefundStatus, "pay_refunds.status", {
    Pending => "PENDING",
    Processing => "PROCESSING",
    Success => "SUCCESS",
    Failed => "FAILED",
    Change => "CHANGE",
});

/// The WeChat Pay API an order was created with (`pay_orders.api`): v2
/// (XML, MD5/HMAC signs) or v3 (JSON, SHA256-RSA). `PAY_API_VERSION` picks
/// it for new orders; an order keeps it for life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
#[serde(rename_all = "lowercase")]
pub enum ApiVersion {
    V2,
    V3,
}

text_enum!(ApiVersion, "pay_orders.api", {
    V2 => "v2",
    V3 => "v3",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_is_unchanged_and_round_trips() {
        for s in [
            Status::NotPay,
            Status::Paid,
            Status::Closed,
            Status::Refund,
            Status::PayError,
        ] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(Status::NotPay.as_str(), "NOTPAY");
        assert_eq!(Status::PayError.as_str(), "PAYERROR");
        for t in [TradeType::Jsapi, TradeType::Mweb, TradeType::Native] {
            assert_eq!(TradeType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        for r in [
            RefundStatus::Pending,
            RefundStatus::Processing,
            RefundStatus::Success,
            RefundStatus::Failed,
            RefundStatus::Change,
        ] {
            assert_eq!(RefundStatus::parse(r.as_str()), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }

    #[test]
    fn an_unknown_value_names_its_column() {
        let e = Status::from_column("XYZ").unwrap_err();
        assert_eq!(e.to_string(), "pay_orders.status: unknown value 'XYZ'");
        let e = TradeType::from_column("APP").unwrap_err();
        assert_eq!(e.to_string(), "pay_orders.trade_type: unknown value 'APP'");
        for a in [ApiVersion::V2, ApiVersion::V3] {
            assert_eq!(ApiVersion::parse(a.as_str()), Some(a));
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        let e = ApiVersion::from_column("v1").unwrap_err();
        assert_eq!(e.to_string(), "pay_orders.api: unknown value 'v1'");
        let e = RefundStatus::from_column("paid").unwrap_err();
        assert_eq!(e.to_string(), "pay_refunds.status: unknown value 'paid'");
    }
}
