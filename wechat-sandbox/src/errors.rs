//! WeChat's JSON errors: `{"errcode":40029,"errmsg":"invalid code"}`, HTTP 200.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WxError {
    pub errcode: i64,
    pub errmsg: &'static str,
}

const fn wx(errcode: i64, errmsg: &'static str) -> WxError {
    WxError { errcode, errmsg }
}

pub(crate) const INVALID_CREDENTIAL: WxError = wx(
    40001,
    "invalid credential, access_token is invalid or not latest",
);
pub(crate) const INVALID_GRANT_TYPE: WxError = wx(40002, "invalid grant_type");
pub(crate) const INVALID_OPENID: WxError = wx(40003, "invalid openid");
pub(crate) const INVALID_APPID: WxError = wx(40013, "invalid appid");
pub(crate) const INVALID_CODE: WxError = wx(40029, "invalid code");
pub(crate) const INVALID_REFRESH_TOKEN: WxError = wx(40030, "invalid refresh_token");
pub(crate) const INVALID_ARGS: WxError = wx(40097, "invalid args");
pub(crate) const INVALID_APPSECRET: WxError = wx(40125, "invalid appsecret");
pub(crate) const CODE_BEEN_USED: WxError = wx(40163, "code been used");
pub(crate) const APPID_MISSING: WxError = wx(41002, "appid missing");
pub(crate) const APPSECRET_MISSING: WxError = wx(41004, "appsecret missing");
pub(crate) const CODE_MISSING: WxError = wx(41008, "missing code");
pub(crate) const ACCESS_TOKEN_EXPIRED: WxError = wx(42001, "access_token expired");
pub(crate) const REFRESH_TOKEN_EXPIRED: WxError = wx(42002, "refresh_token expired");
pub(crate) const DATA_FORMAT_ERROR: WxError = wx(47001, "data format error");
pub(crate) const API_UNAUTHORIZED: WxError = wx(48001, "api unauthorized");

impl std::fmt::Display for WxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.errcode, self.errmsg)
    }
}

impl ResponseError for WxError {
    fn status_code(&self) -> StatusCode {
        StatusCode::OK
    }

    fn error_response(&self) -> HttpResponse {
        errcode_response(self.errcode, self.errmsg)
    }
}

pub(crate) fn errcode_response(errcode: i64, errmsg: &str) -> HttpResponse {
    json_response(&serde_json::json!({ "errcode": errcode, "errmsg": errmsg }))
}

/// WeChat's JSON APIs answer with this content type.
pub(crate) fn json_response(body: &serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json; encoding=utf-8")
        .body(body.to_string())
}
