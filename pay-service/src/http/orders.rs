//! The order routes: parse, call the domain (`domain::orders`), map the result.
//!
//! Order creation and `?sync=true` (each calls WeChat) are rate-limited per
//! user (`ORDER_RATE_LIMIT`, `ORDER_SYNC_RATE_LIMIT` a minute): a request
//! refused for its parameters spends nothing; once the minute's budget is
//! spent the answer is 429/1006.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use shared::error::{ApiError, ok};
use shared::session::{Claims, Session, SessionKeys, SessionKind};

use super::{cause, idempotency_key, request_id};
use crate::domain::limits::{self, Budget};
use crate::domain::orders::{self, OrderRequest, OrderView, PayParams};
use crate::domain::{PayState, TradeType, trade};
use crate::error::PayError;

/// A mini-program session presented as `Authorization: Bearer` (API.md:
/// v2Pay takes "Bearer token of a mini-program user"). A session cookie is
/// not enough: a link on another site would carry it, and create orders and
/// call WeChat in the visitor's name.
pub(super) struct MpBearer(Claims);

async fn mp_bearer(req: HttpRequest) -> Result<MpBearer, ApiError> {
    let keys = req
        .app_data::<web::Data<SessionKeys>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal("SessionKeys not registered as app data".into()))?;
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "v2Pay needs Authorization: Bearer (a mini-program token)".into(),
            )
        })?;
    let claims = keys.authenticate(token).await?;
    if claims.kind != SessionKind::Mp {
        return Err(ApiError::Forbidden(
            "v2Pay takes a mini-program session".into(),
        ));
    }
    Ok(MpBearer(claims))
}

impl FromRequest for MpBearer {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(mp_bearer(req.clone()))
    }
}

/// Runs `work` within `who`'s budget: 429 when it is spent. The budget is
/// taken before the work (so concurrent requests cannot overspend it) and
/// given back when `work` was refused for the request itself (400, 403).
async fn within_budget<T>(
    state: &PayState,
    budget: Budget,
    uid: i64,
    work: impl Future<Output = Result<T, PayError>>,
) -> Result<T, ApiError> {
    let who = uid.to_string();
    if !limits::take(state, budget, &who).await? {
        tracing::info!(uid, ?budget, "rate limit reached");
        return Err(ApiError::RateLimited);
    }
    let result = work.await;
    let refused_for_itself = matches!(
        result,
        Err(PayError::InvalidParam(_) | PayError::Forbidden(_))
    );
    if refused_for_itself {
        limits::give_back(state, budget, &who).await?;
    }
    Ok(result?)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct V2PayQuery {
    money: Option<String>,
    user_openid: Option<String>,
    description: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct V2PayReply {
    out_trade_no: String,
    #[serde(flatten)]
    params: PayParams,
}

/// `GET /api/mp/v2Pay?money=M`: the seed's mini-program payment, a JSAPI order.
pub(super) async fn v2_pay(
    state: web::Data<PayState>,
    MpBearer(claims): MpBearer,
    query: web::Query<V2PayQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    if let Some(openid) = q.user_openid.as_deref()
        && !openid.is_empty()
        && openid != claims.openid
    {
        return Err(PayError::Forbidden("userOpenid is not the session's user".into()).into());
    }
    let money = q
        .money
        .as_deref()
        .ok_or_else(|| PayError::invalid("money is required"))?;
    let amount_fen =
        shared::money::yuan_to_fen(money).map_err(|e| PayError::invalid(format!("money: {e}")))?;
    let rid = request_id(&req);
    let place = orders::place(
        &state,
        &claims,
        OrderRequest {
            endpoint: "v2Pay",
            amount_param: "money",
            trade_type: TradeType::Jsapi,
            amount_fen,
            description: q.description,
            redirect_url: None,
            idempotency_key: idempotency_key(&req)?,
            client_ip: shared::http::client_ip(&req),
        },
        &rid,
    );
    let order = within_budget(&state, Budget::Orders, claims.uid, place).await?;
    let params = orders::pay_params(&state, &order)?;
    Ok(ok(V2PayReply {
        out_trade_no: order.out_trade_no,
        params,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateOrderBody {
    amount_fen: i64,
    description: Option<String>,
    trade_type: TradeType,
    redirect_url: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CreatedReply {
    out_trade_no: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pay_params: Option<PayParams>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mweb_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code_url: Option<String>,
}

/// `POST /api/pay/orders`.
pub(super) async fn create_order(
    state: web::Data<PayState>,
    Session(claims): Session,
    body: web::Json<CreateOrderBody>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let rid = request_id(&req);
    let place = orders::place(
        &state,
        &claims,
        OrderRequest {
            endpoint: "orders",
            amount_param: "amountFen",
            trade_type: body.trade_type,
            amount_fen: body.amount_fen,
            description: body.description,
            redirect_url: body.redirect_url,
            idempotency_key: idempotency_key(&req)?,
            client_ip: shared::http::client_ip(&req),
        },
        &rid,
    );
    let order = within_budget(&state, Budget::Orders, claims.uid, place).await?;
    let mut reply = CreatedReply {
        out_trade_no: order.out_trade_no.clone(),
        pay_params: None,
        mweb_url: None,
        code_url: None,
    };
    match body.trade_type {
        TradeType::Jsapi => reply.pay_params = Some(orders::pay_params(&state, &order)?),
        TradeType::Mweb => reply.mweb_url = Some(orders::mweb_url(&order)?),
        TradeType::Native => reply.code_url = order.pay_url.clone(),
    }
    Ok(ok(reply))
}

#[derive(Debug, Deserialize)]
pub(super) struct OrderQuery {
    #[serde(default)]
    sync: bool,
}

/// `GET /api/pay/orders/{outTradeNo}[?sync=true]`.
pub(super) async fn get_order(
    state: web::Data<PayState>,
    Session(claims): Session,
    path: web::Path<String>,
    query: web::Query<OrderQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let mut order = orders::owned(&state, &claims, &path).await?;
    if query.sync {
        let cause = cause("query", &req);
        let sync = trade::sync(&state, order, &cause);
        order = within_budget(&state, Budget::Syncs, claims.uid, sync).await?;
    }
    Ok(ok(OrderView::from(&order)))
}

/// `POST /api/pay/orders/{outTradeNo}/close`.
pub(super) async fn close_order(
    state: web::Data<PayState>,
    Session(claims): Session,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let order = orders::close(&state, &claims, &path, &request_id(&req)).await?;
    Ok(ok(OrderView::from(&order)))
}

/// `GET /api/pay/orders/{outTradeNo}/qrcode.svg`: a NATIVE order's code_url.
pub(super) async fn qrcode_svg(
    state: web::Data<PayState>,
    Session(claims): Session,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let order = orders::owned(&state, &claims, &path).await?;
    let code_url = orders::code_url(&order).ok_or(PayError::OrderNotFound)?;
    let code = qrcode::QrCode::new(code_url.as_bytes())
        .map_err(|e| PayError::Internal(format!("QR code: {e}")))?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(240, 240)
        .build();
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .body(svg))
}
