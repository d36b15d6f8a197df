//! The handlers: parse, ask the domain, answer in the envelope. Neither
//! signatures nor tokens may be cached by anyone on the way.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use shared::error::{ApiError, ok, ok_written};

use crate::JssdkState;

/// `GET /api/wechat/jssdkConfig?url=U`. The one parameter is read with
/// [`shared::query::param`] rather than `web::Query`, and the answer written
/// by [`crate::WxConfig::write_json`] rather than serde: the same meaning and
/// bytes at a fraction of the work on the hottest route (issue #16). The
/// state is borrowed from the request rather than extracted as
/// `web::Data`, whose extraction clones an `Arc` that every worker thread
/// shares: two atomic writes to one cache line per request, which the
/// workers then pass back and forth.
pub(super) async fn jssdk_config(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let state = req
        .app_data::<web::Data<JssdkState>>()
        .ok_or_else(|| ApiError::Internal("jssdk state missing".into()))?;
    let url = shared::query::param(req.query_string(), "url")
        .map_err(|e| ApiError::bad_request(format!("invalid query parameter: {e}")))?;
    let config = state.wx_config(url.as_deref()).await?;
    Ok(uncacheable(ok_written(|body| config.write_json(body))))
}

/// `GET /internal/access-token` with `Authorization: Bearer INTERNAL_TOKEN`.
pub(super) async fn internal_access_token(
    state: web::Data<JssdkState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let token = state.internal_access_token(bearer(&req)).await?;
    Ok(uncacheable(ok(token)))
}

/// The token of `Authorization: Bearer <token>`, when there is a non-empty one.
fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Signatures carry a fresh nonce and tokens are credentials: no cache may keep either.
fn uncacheable(mut res: HttpResponse) -> HttpResponse {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
