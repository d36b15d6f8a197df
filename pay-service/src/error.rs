//! The one error type of pay-service's domain, and how each case reaches the
//! client (API.md §3).

use shared::cache::CacheError;
use shared::db::DbError;
use shared::error::ApiError;
use shared::wechat::WechatError;

#[derive(Debug, thiserror::Error)]
pub enum PayError {
    /// A missing or malformed parameter; the message names it.
    #[error("{0}")]
    InvalidParam(String),
    #[error("{0}")]
    Forbidden(String),
    /// No such order, or not the caller's: the two look the same so that
    /// order numbers cannot be probed.
    #[error("no such order")]
    OrderNotFound,
    /// Something else the request names does not exist (a merchant event);
    /// the message says what.
    #[error("{0}")]
    NotFound(String),
    /// The order's state forbids the request (closing a paid order, an
    /// Idempotency-Key reused with another body, …).
    #[error("{0}")]
    Conflict(String),
    /// WeChat Pay refused at the business level (`result_code` FAIL).
    #[error("WeChat Pay refused: {code} ({description})")]
    PayRefused { code: String, description: String },
    /// WeChat Pay's reply could not be trusted (bad sign, garbage): treated
    /// as no reply; whether WeChat acted is unknown.
    #[error("{0}")]
    PayUnusable(String),
    /// WeChat Pay refused at the gateway level (`return_code` FAIL): it did
    /// nothing.
    #[error("{0}")]
    PayGatewayRefused(String),
    #[error(transparent)]
    Wechat(#[from] WechatError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("{0}")]
    Internal(String),
}

impl PayError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        PayError::InvalidParam(msg.into())
    }
}

/// Business errors that are about the order's state rather than WeChat failing.
/// v2 spells closed `ORDERCLOSED`, v3 `ORDER_CLOSED`.
const CONFLICT_CODES: &[&str] = &[
    "ORDERPAID",
    "ORDERCLOSED",
    "ORDER_CLOSED",
    "OUT_TRADE_NO_USED",
];

impl From<PayError> for ApiError {
    fn from(e: PayError) -> Self {
        match e {
            PayError::InvalidParam(m) => ApiError::BadRequest(m),
            PayError::Forbidden(m) => ApiError::Forbidden(m),
            e @ PayError::OrderNotFound => ApiError::NotFound(e.to_string()),
            PayError::NotFound(m) => ApiError::NotFound(m),
            PayError::Conflict(m) => ApiError::Conflict(m),
            PayError::PayRefused { code, description } => {
                let what = format!("Pay refused: {code} ({description})");
                if CONFLICT_CODES.contains(&code.as_str()) {
                    ApiError::Conflict(format!("WeChat {what}"))
                } else {
                    ApiError::Upstream {
                        timed_out: false,
                        what,
                    }
                }
            }
            PayError::PayUnusable(m) | PayError::PayGatewayRefused(m) => ApiError::Upstream {
                timed_out: false,
                what: m,
            },
            PayError::Wechat(w) => w.into(),
            PayError::Db(d) => d.into(),
            PayError::Cache(c) => c.into(),
            PayError::Internal(m) => ApiError::Internal(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: &str) -> ApiError {
        PayError::PayRefused {
            code: code.into(),
            description: "x".into(),
        }
        .into()
    }

    #[test]
    fn business_errors_map_to_conflict_or_upstream() {
        let e = refused("ORDERPAID");
        assert_eq!(e.code(), 1005);
        assert_eq!(e.public_message(), "WeChat Pay refused: ORDERPAID (x)");
        assert_eq!(refused("OUT_TRADE_NO_USED").code(), 1005);
        let e = refused("NOAUTH");
        assert_eq!(e.code(), 10009);
        assert_eq!(e.public_message(), "WeChat Pay refused: NOAUTH (x)");
        let e: ApiError = PayError::PayUnusable("Pay reply sign does not verify".into()).into();
        assert_eq!(e.code(), 10009);
    }
}
