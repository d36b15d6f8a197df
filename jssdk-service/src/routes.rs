//! HTTP handlers: parse, ask the token manager, answer in the envelope.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use shared::error::{ApiError, ok};
use shared::sign::constant_time_eq;

use crate::JssdkState;
use crate::metrics::SIGNATURES;
use crate::signature::{page_url, wx_config};

#[derive(Deserialize)]
pub struct ConfigQuery {
    url: Option<String>,
}

/// `GET /api/wechat/jssdkConfig?url=U`
pub async fn jssdk_config(
    state: web::Data<JssdkState>,
    query: web::Query<ConfigQuery>,
) -> Result<HttpResponse, ApiError> {
    let url = page_url(query.url.as_deref())?;
    let ticket = state.tokens.jsapi_ticket().await?;
    let config = wx_config(
        &state.config.app.app_id,
        &ticket.value,
        url,
        state.tokens.now_ms().div_euclid(1000),
        shared::random::nonce(),
    );
    SIGNATURES.inc();
    Ok(uncacheable(ok(config)))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccessTokenReply {
    access_token: String,
    /// Unix seconds.
    expires_at: i64,
}

/// `GET /internal/access-token` with `Authorization: Bearer INTERNAL_TOKEN`.
pub async fn internal_access_token(
    state: web::Data<JssdkState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // Unset: the route does not exist, as far as anyone can tell.
    let Some(expected) = &state.config.internal_token else {
        return Err(ApiError::NotFound("no such route".into()));
    };
    let given =
        bearer(&req).ok_or_else(|| ApiError::Unauthorized("missing internal token".into()))?;
    if !constant_time_eq(given.as_bytes(), expected.expose().as_bytes()) {
        return Err(ApiError::Unauthorized("invalid internal token".into()));
    }
    let token = state.tokens.access_token().await?;
    Ok(uncacheable(ok(AccessTokenReply {
        access_token: token.value,
        expires_at: token.expires_at_ms.div_euclid(1000),
    })))
}

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
