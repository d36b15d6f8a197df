//! The admin routes (`Authorization: Bearer ADMIN_TOKEN`): refunds and the
//! merchant-event outbox. With `ADMIN_TOKEN` unset they answer 404 like an
//! unknown route, so their existence is not advertised.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde::Deserialize;
use shared::error::{ApiError, ok};
use shared::sign::constant_time_eq;

use super::{cause, idempotency_key};
use crate::domain::refunds::{self, RefundAsk, RefundView};
use crate::domain::{EventFilter, PayState, events};
use crate::error::PayError;

/// Proof that the request carries the admin token.
pub(super) struct Admin;

fn check(req: &HttpRequest) -> Result<Admin, ApiError> {
    let state = req
        .app_data::<web::Data<PayState>>()
        .ok_or_else(|| ApiError::Internal("PayState is not registered".into()))?;
    let Some(expected) = &state.config.admin_token else {
        return Err(ApiError::NotFound("no such route".into()));
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    if !given.is_empty() && constant_time_eq(given.as_bytes(), expected.expose().as_bytes()) {
        Ok(Admin)
    } else {
        Err(ApiError::Unauthorized(
            "admin token missing or wrong".into(),
        ))
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(check(req))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RefundBody {
    amount_fen: i64,
    reason: Option<String>,
}

/// `POST /api/pay/admin/orders/{outTradeNo}/refunds` `{amountFen, reason?}`,
/// optionally with `Idempotency-Key`.
pub(super) async fn create_refund(
    _: Admin,
    state: web::Data<PayState>,
    path: web::Path<String>,
    body: web::Json<RefundBody>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let cause = cause("refund", &req);
    let ask = RefundAsk {
        amount_fen: body.amount_fen,
        reason: body.reason,
        idempotency_key: idempotency_key(&req)?,
    };
    let refund = refunds::request(&state, &path, ask, &cause).await?;
    Ok(ok(RefundView::from(&refund)))
}

/// `GET /api/pay/admin/orders/{outTradeNo}/refunds`: open refunds are first
/// asked about at WeChat (refundquery).
pub(super) async fn list_refunds(
    _: Admin,
    state: web::Data<PayState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let cause = cause("query", &req);
    let list = refunds::list(&state, &path, &cause).await?;
    Ok(ok(list.iter().map(RefundView::from).collect::<Vec<_>>()))
}

#[derive(Debug, Deserialize)]
pub(super) struct EventsQuery {
    status: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/pay/admin/events?status=failed|pending|delivered[&limit=N]`
/// (default `failed`, limit 100, at most 1000).
pub(super) async fn list_events(
    _: Admin,
    state: web::Data<PayState>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let filter = match q.status.as_deref() {
        None | Some("") => EventFilter::Failed,
        Some(s) => EventFilter::parse(s)
            .ok_or_else(|| PayError::invalid("status must be failed, pending or delivered"))?,
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(PayError::invalid("limit must be between 1 and 1000").into());
    }
    let list = events::list(&state, filter, limit)
        .await
        .map_err(PayError::from)?;
    Ok(ok(list))
}
