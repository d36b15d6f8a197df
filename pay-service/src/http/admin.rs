//! The admin routes (`Authorization: Bearer <token>`, one token per operator
//! from `ADMIN_TOKENS`, or `ADMIN_TOKEN` as operator `admin`): refunds and
//! the merchant-event outbox. With no token configured they answer 404 like
//! an unknown route, so their existence is not advertised. A request whose
//! token is missing or wrong is an audited failed login, counted against its
//! client address; an address with `ADMIN_FAILED_LOGINS_PER_MINUTE` failures
//! in the minute gets 429, whatever token it sends, until the minute ends.
//! The operator console signs in with the same token for a session cookie
//! instead (`http/console.rs`); the guard takes either.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::{Method, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde::Deserialize;
use shared::error::{ApiError, ok};
use shared::http::{client_ip, rate_limit_key};

use super::{cause, console, idempotency_key, request_id};
use crate::domain::limits::{self, Budget};
use crate::domain::refunds::{self, RefundAsk, RefundView};
use crate::domain::{EventFilter, PayState, events};
use crate::domain::{admin_sessions, audit};
use crate::error::PayError;

/// Proof that the request carries an operator's token, or the console
/// session cookie of one (with its CSRF token on anything but GET/HEAD):
/// the operator's name.
pub(super) struct Admin {
    pub name: String,
}

/// Who asks, for the failed-login budget and the audit lines.
pub(super) struct Caller {
    pub client: String,
    pub path: String,
    pub request_id: String,
}

impl Caller {
    pub fn of(req: &HttpRequest) -> Self {
        Caller {
            client: client_ip(req).map_or_else(|| "unknown".to_owned(), rate_limit_key),
            path: req.path().to_owned(),
            request_id: request_id(req),
        }
    }

    /// A failed login, audited; the budget taken for it is kept.
    pub fn failed(&self, why: &'static str) {
        audit::admin_login_failed(&self.client, why, &self.path, &self.request_id);
    }
}

/// The service's state; 404 (as for an unknown route) when no operator is
/// configured, so the admin routes are not advertised.
pub(super) fn admin_state(req: &HttpRequest) -> Result<web::Data<PayState>, ApiError> {
    let state = req
        .app_data::<web::Data<PayState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal("PayState is not registered".into()))?;
    if state.config().admins.is_empty() {
        return Err(ApiError::NotFound("no such route".into()));
    }
    Ok(state)
}

/// Takes one failure from the caller's budget before any credential is
/// compared, so concurrent guesses cannot all be tried (a right one gives it
/// back); 429 once the minute's budget is spent.
pub(super) async fn take_attempt(state: &PayState, caller: &Caller) -> Result<(), ApiError> {
    if !limits::take(state, Budget::AdminFailures, &caller.client).await? {
        caller.failed("rate_limited");
        return Err(ApiError::RateLimited);
    }
    Ok(())
}

pub(super) async fn give_back(state: &PayState, caller: &Caller) -> Result<(), ApiError> {
    Ok(limits::give_back(state, Budget::AdminFailures, &caller.client).await?)
}

async fn check(req: HttpRequest) -> Result<Admin, ApiError> {
    let state = admin_state(&req)?;
    let caller = Caller::of(&req);
    take_attempt(&state, &caller).await?;
    // A Bearer token wins: a browser never adds one on its own, so such a
    // request needs no CSRF token. Without one, the console's cookie.
    let authorization = req.headers().get(header::AUTHORIZATION);
    if authorization.is_none()
        && let Some(id) = console::session_id(&req)
    {
        return by_cookie(&state, &req, &caller, &id).await;
    }
    let given = authorization
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    if let Some(name) = admin_sessions::operator_of(&state, given) {
        give_back(&state, &caller).await?;
        return Ok(Admin { name });
    }
    caller.failed(if given.is_empty() {
        "missing"
    } else {
        "wrong_token"
    });
    Err(ApiError::Unauthorized(
        "admin token missing or wrong".into(),
    ))
}

/// The console's session: an unknown or ended one is a failed login like a
/// wrong token; a live one needs a same-site Origin when one is sent, and
/// its CSRF token on anything but GET/HEAD; either refusal is 403 without
/// counting as a failed login.
async fn by_cookie(
    state: &PayState,
    req: &HttpRequest,
    caller: &Caller,
    id: &str,
) -> Result<Admin, ApiError> {
    let Some(session) = admin_sessions::find(state, id).await? else {
        caller.failed("unknown_session");
        return Err(ApiError::Unauthorized(
            "admin session expired or signed out: sign in again".into(),
        ));
    };
    give_back(state, caller).await?;
    let checked = if matches!(*req.method(), Method::GET | Method::HEAD) {
        console::origin_check(req)
    } else {
        console::csrf_check(req, &session)
    };
    if let Err(why) = checked {
        audit::admin_csrf_refused(&session.operator, why, &caller.path, &caller.request_id);
        return Err(ApiError::Forbidden(console::csrf_message(why).into()));
    }
    Ok(Admin {
        name: session.operator,
    })
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
