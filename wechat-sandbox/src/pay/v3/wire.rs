//! How v3 answers look on the wire: signed JSON, WeChat's `{code, message}`
//! errors with their HTTP statuses, and WeChat's RFC 3339 Beijing times.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder};
use chrono::{DateTime, NaiveDateTime, Utc};
use shared::wechatpay_v3::ErrorBody;

use super::notify::SignedHeaders;
use crate::ids;
use crate::state::SandboxState;

/// A v3 error: status, WeChat's code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct V3Failure {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

pub(crate) fn failure(status: u16, code: &'static str, message: impl Into<String>) -> V3Failure {
    V3Failure {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        code,
        message: message.into(),
    }
}

pub(crate) fn param_error(message: impl Into<String>) -> V3Failure {
    failure(400, "PARAM_ERROR", message)
}

pub(crate) fn sign_error(message: impl Into<String>) -> V3Failure {
    failure(401, "SIGN_ERROR", message)
}

pub(crate) fn order_not_exist() -> V3Failure {
    failure(404, "ORDER_NOT_EXIST", "订单不存在")
}

pub(crate) type V3Reply = Result<HttpResponse, V3Failure>;

impl SandboxState {
    /// A signed answer: `Wechatpay-*` headers over the exact body sent.
    pub(crate) fn v3_answer(
        &self,
        status: StatusCode,
        body: Option<&serde_json::Value>,
    ) -> HttpResponse {
        let text = body.map(|b| b.to_string()).unwrap_or_default();
        let mut res = HttpResponseBuilder::new(status);
        res.insert_header(("Request-ID", ids::lower_hex(32)));
        for (name, value) in self.v3_signed_headers(text.as_bytes()).pairs() {
            res.insert_header((name, value));
        }
        match body {
            Some(_) => res.content_type("application/json").body(text),
            None => res.finish(),
        }
    }

    pub(crate) fn v3_ok(&self, body: &serde_json::Value) -> HttpResponse {
        self.v3_answer(StatusCode::OK, Some(body))
    }

    pub(crate) fn v3_error(&self, f: &V3Failure) -> HttpResponse {
        let body = ErrorBody {
            code: f.code.to_owned(),
            message: f.message.clone(),
            detail: None,
        };
        let json = serde_json::to_value(body).unwrap_or_default();
        self.v3_answer(f.status, Some(&json))
    }

    pub(crate) fn v3_signed_headers(&self, body: &[u8]) -> SignedHeaders {
        let (serial, key) = self.v3.signer();
        SignedHeaders::sign(serial, key, body)
    }

    /// Answers `reply`, or its failure as WeChat's error body.
    pub(crate) fn v3_reply(&self, reply: V3Reply) -> HttpResponse {
        reply.unwrap_or_else(|f| self.v3_error(&f))
    }
}

/// `2018-06-08T10:34:56+08:00`: how v3 writes times.
pub(crate) fn rfc3339_beijing(at: DateTime<Utc>) -> String {
    at.with_timezone(&ids::beijing())
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// A v2 `yyyyMMddHHmmss` (Beijing) time in v3's format.
pub(crate) fn from_pay_time(raw: &str) -> Option<String> {
    NaiveDateTime::parse_from_str(raw, "%Y%m%d%H%M%S")
        .ok()?
        .and_local_timezone(ids::beijing())
        .single()
        .map(|t| rfc3339_beijing(t.with_timezone(&Utc)))
}

/// A v2 refund's `yyyy-MM-dd HH:mm:ss` (Beijing) time in v3's format.
pub(crate) fn from_refund_time(raw: &str) -> Option<String> {
    NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S")
        .ok()?
        .and_local_timezone(ids::beijing())
        .single()
        .map(|t| rfc3339_beijing(t.with_timezone(&Utc)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_beijing_rfc3339() {
        assert_eq!(
            from_pay_time("20240302003005").as_deref(),
            Some("2024-03-02T00:30:05+08:00")
        );
        assert_eq!(
            from_refund_time("2024-03-02 00:30:05").as_deref(),
            Some("2024-03-02T00:30:05+08:00")
        );
        assert_eq!(from_pay_time("nope"), None);
    }
}
