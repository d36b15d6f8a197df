//! The admin routes (`Authorization: Bearer <token>`, one token per operator
//! from `ADMIN_TOKENS`, or `ADMIN_TOKEN` as operator `admin`): refunds and
//! the merchant-event outbox. With no token configured they answer 404 like
//! an unknown route, so their existence is not advertised. A request whose
//! token is missing or wrong is an audited failed login, counted against its
//! client address; an address with `ADMIN_FAILED_LOGINS_PER_MINUTE` failures
//! in the minute gets 429, whatever token it sends, until the minute ends.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde::Deserialize;
use shared::error::{ApiError, ok};
use shared::http::{client_ip, rate_limit_key};
use shared::sign::constant_time_eq;

use super::{cause, idempotency_key, request_id};
use crate::domain::audit;
use crate::domain::limits::{self, Budget};
use crate::domain::refunds::{self, RefundAsk, RefundView};
use crate::domain::{EventFilter, PayState, events};
use crate::error::PayError;

/// Proof that the request carries an operator's token: the operator's name.
pub(super) struct Admin {
    pub name: String,
}

/// The operator whose token `given` is. Every token is compared (in
/// constant time), so the time taken does not tell which one was close.
fn operator_of(state: &PayState, given: &str) -> Option<String> {
    let mut found = None;
    for op in &state.config().admins {
        let same =
            !given.is_empty() && constant_time_eq(given.as_bytes(), op.token.expose().as_bytes());
        if same && found.is_none() {
            found = Some(op.name.clone());
        }
    }
    found
}

async fn check(req: HttpRequest) -> Result<Admin, ApiError> {
    let state = req
        .app_data::<web::Data<PayState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal("PayState is not registered".into()))?;
    if state.config().admins.is_empty() {
        return Err(ApiError::NotFound("no such route".into()));
    }
    let client = client_ip(&req).map_or_else(|| "unknown".to_owned(), rate_limit_key);
    let (path, rid) = (req.path().to_owned(), request_id(&req));
    // A failure is taken from the budget before the token is compared, so
    // concurrent guesses cannot all be tried; a right token gives it back.
    if !limits::take(&state, Budget::AdminFailures, &client).await? {
        audit::admin_login_failed(&client, "rate_limited", &path, &rid);
        return Err(ApiError::RateLimited);
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    if let Some(name) = operator_of(&state, given) {
        limits::give_back(&state, Budget::AdminFailures, &client).await?;
        return Ok(Admin { name });
    }
    let why = if given.is_empty() {
        "missing"
    } else {
        "wrong_token"
    };
    audit::admin_login_failed(&client, why, &path, &rid);
    Err(ApiError::Unauthorized(
        "admin token missing or wrong".into(),
    ))
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(check(req.clone()))
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
    admin: Admin,
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
        operator: admin.name,
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
