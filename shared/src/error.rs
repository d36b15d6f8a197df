//! The response envelope and the error type every service converts into (API.md §3).

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// `{"code":0,"data":…,"message":"ok"}`.
#[derive(Debug, Serialize)]
pub struct Envelope<T> {
    pub code: i64,
    pub data: T,
    /// Borrowed for the fixed "ok": an answer need not allocate to say it.
    pub message: Cow<'static, str>,
}

/// A successful reply in the envelope.
pub fn ok<T: Serialize>(data: T) -> HttpResponse {
    let envelope = Envelope {
        code: 0,
        data,
        message: Cow::Borrowed("ok"),
    };
    // Written into a buffer sized for most answers (a jssdkConfig answer is
    // ~460 bytes): actix's `json()` grows a String from empty, about six
    // reallocations each time, a visible part of the warm jssdkConfig path
    // (issue #16, goal 1).
    let mut body = Vec::with_capacity(OK_BODY_CAPACITY);
    let written = serde_json::to_writer(&mut body, &envelope);
    json_answer(body, written)
}

/// [`ok`] for data that writes its own JSON into the body (`write_data`
/// appends exactly what `serde_json` would write for it): the envelope
/// around it is fixed text. For the one answer where serde's escaping of
/// every key and value was a visible part of the work (jssdkConfig, issue
/// #16); that type's tests hold its writer to `serde_json`'s bytes.
pub fn ok_written(write_data: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<()>) -> HttpResponse {
    let mut body = Vec::with_capacity(OK_BODY_CAPACITY);
    body.extend_from_slice(br#"{"code":0,"data":"#);
    let written = write_data(&mut body);
    body.extend_from_slice(br#","message":"ok"}"#);
    json_answer(body, written)
}

/// `body` as a 200 JSON answer, or a 500 when writing it failed.
fn json_answer(body: Vec<u8>, written: serde_json::Result<()>) -> HttpResponse {
    match written {
        Ok(()) => HttpResponse::Ok()
            .content_type(actix_web::http::header::ContentType::json())
            .body(body),
        Err(e) => HttpResponse::from_error(actix_web::error::JsonPayloadError::Serialize(e)),
    }
}

/// What [`ok`] reserves for an answer's JSON before writing it.
const OK_BODY_CAPACITY: usize = 512;

pub mod codes {
    pub const OK: i64 = 0;
    pub const INVALID_PARAM: i64 = 1001;
    pub const UNAUTHORIZED: i64 = 1002;
    pub const FORBIDDEN: i64 = 1003;
    pub const NOT_FOUND: i64 = 1004;
    pub const CONFLICT: i64 = 1005;
    pub const RATE_LIMITED: i64 = 1006;
    pub const UPSTREAM: i64 = 10009;
    pub const INTERNAL: i64 = 5000;
    pub const UNAVAILABLE: i64 = 5003;
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400/1001; the message names the parameter.
    #[error("{0}")]
    BadRequest(String),
    /// 401/1002.
    #[error("{0}")]
    Unauthorized(String),
    /// 403/1003.
    #[error("{0}")]
    Forbidden(String),
    /// 404/1004.
    #[error("{0}")]
    NotFound(String),
    /// 409/1005.
    #[error("{0}")]
    Conflict(String),
    /// 429/1006.
    #[error("too many requests, try again later")]
    RateLimited,
    /// 502 with WeChat's own errcode and errmsg.
    #[error("{errmsg}")]
    Wechat { errcode: i64, errmsg: String },
    /// 502/504 with 10009: WeChat unreachable, timed out, or answered garbage.
    #[error("WeChat {what}")]
    Upstream { timed_out: bool, what: String },
    /// 500/5000. The detail goes to the log only.
    #[error("internal error")]
    Internal(String),
    /// 503/5003: the database or the cache does not answer.
    #[error("service unavailable: {0}")]
    Unavailable(String),
}

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        ApiError::BadRequest(msg.into())
    }
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        ApiError::Internal(detail.to_string())
    }

    pub fn code(&self) -> i64 {
        match self {
            ApiError::BadRequest(_) => codes::INVALID_PARAM,
            ApiError::Unauthorized(_) => codes::UNAUTHORIZED,
            ApiError::Forbidden(_) => codes::FORBIDDEN,
            ApiError::NotFound(_) => codes::NOT_FOUND,
            ApiError::Conflict(_) => codes::CONFLICT,
            ApiError::RateLimited => codes::RATE_LIMITED,
            ApiError::Wechat { errcode, .. } => *errcode,
            ApiError::Upstream { .. } => codes::UPSTREAM,
            ApiError::Internal(_) => codes::INTERNAL,
            ApiError::Unavailable(_) => codes::UNAVAILABLE,
        }
    }

    /// The message shown to the client: never internal detail.
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Unavailable(_) => "service unavailable, try again later".to_owned(),
            other => other.to_string(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Wechat { .. } => StatusCode::BAD_GATEWAY,
            ApiError::Upstream {
                timed_out: true, ..
            } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(detail) => tracing::error!(error = %detail, "internal error"),
            ApiError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "dependency unavailable")
            }
            ApiError::Upstream { what, .. } => tracing::warn!(error = %what, "WeChat call failed"),
            _ => {}
        }
        HttpResponse::build(self.status_code()).json(Envelope {
            code: self.code(),
            data: serde_json::Value::Null,
            message: self.public_message().into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;
    use serde_json::json;

    async fn body_of(e: ApiError) -> (u16, serde_json::Value) {
        let resp = e.error_response();
        let status = resp.status().as_u16();
        let bytes = to_bytes(resp.into_body()).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    /// `ok` writes what actix's `json()` wrote: the same bytes and type,
    /// for an answer within the reserved buffer and one far beyond it.
    #[actix_web::test]
    async fn ok_answers_the_envelope_as_json() {
        for data in [
            json!({"a": 1}),
            json!({"long": "x".repeat(5 * OK_BODY_CAPACITY)}),
        ] {
            let resp = ok(&data);
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(
                resp.headers().get("content-type").unwrap(),
                "application/json"
            );
            let bytes = to_bytes(resp.into_body()).await.unwrap();
            let expected = serde_json::to_vec(&json!({"code": 0, "data": data, "message": "ok"}));
            assert_eq!(bytes.as_ref(), expected.unwrap().as_slice());
        }
    }

    /// `ok_written` wraps the data's own JSON in the same envelope `ok`
    /// writes, and a failed writer is a 500, not half an answer.
    #[actix_web::test]
    async fn ok_written_answers_what_ok_answers() {
        let data = json!({"appId": "wx\"1", "n": [1, 2], "s": "é\n"});
        let by_hand = ok_written(|body| serde_json::to_writer(body, &data));
        let by_serde = ok(&data);
        assert_eq!(
            by_hand.headers().get("content-type"),
            by_serde.headers().get("content-type")
        );
        assert_eq!(
            to_bytes(by_hand.into_body()).await.unwrap(),
            to_bytes(by_serde.into_body()).await.unwrap()
        );
        let failed = ok_written(|_| Err(serde::ser::Error::custom("no")));
        assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[actix_web::test]
    async fn errors_map_to_the_contract_table() {
        let cases = [
            (ApiError::bad_request("url is required"), 400, 1001),
            (ApiError::Unauthorized("no session".into()), 401, 1002),
            (ApiError::Forbidden("x".into()), 403, 1003),
            (ApiError::NotFound("x".into()), 404, 1004),
            (ApiError::Conflict("x".into()), 409, 1005),
            (ApiError::RateLimited, 429, 1006),
            (
                ApiError::Wechat {
                    errcode: 40029,
                    errmsg: "invalid code".into(),
                },
                502,
                40029,
            ),
            (
                ApiError::Upstream {
                    timed_out: true,
                    what: "timed out".into(),
                },
                504,
                10009,
            ),
            (
                ApiError::Upstream {
                    timed_out: false,
                    what: "unreachable".into(),
                },
                502,
                10009,
            ),
            (ApiError::internal("disk on fire"), 500, 5000),
            (ApiError::Unavailable("pool timeout".into()), 503, 5003),
        ];
        for (err, status, code) in cases {
            let (s, body) = body_of(err).await;
            assert_eq!((s, body["code"].as_i64().unwrap()), (status, code));
            assert!(body["data"].is_null());
            let msg = body["message"].as_str().unwrap();
            assert!(
                !msg.contains("disk on fire") && !msg.contains("pool timeout"),
                "{msg}"
            );
        }
        let (_, body) = body_of(ApiError::Wechat {
            errcode: 40163,
            errmsg: "code been used".into(),
        })
        .await;
        assert_eq!(body["message"], "code been used");
    }
}
