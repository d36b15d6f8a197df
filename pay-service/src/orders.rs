//! Placing, reading, syncing and closing orders: the domain behind the order
//! routes, and the one place WeChat's answers about an order are applied.

use std::collections::BTreeMap;
use std::net::IpAddr;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::db::now_unix;
use shared::session::Claims;

use crate::audit::{self, Cause};
use crate::beijing;
use crate::error::PayError;
use crate::metrics;
use crate::state::PayState;
use crate::store::{self, NewOrder, Order, PaidReport, Settled, Status};
use crate::wxpay::TradeState;

/// WeChat's limit on unifiedorder's `body`, in bytes.
const MAX_DESCRIPTION_BYTES: usize = 128;
const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TradeType {
    #[serde(rename = "JSAPI")]
    Jsapi,
    #[serde(rename = "MWEB")]
    Mweb,
    #[serde(rename = "NATIVE")]
    Native,
}

impl TradeType {
    pub fn as_str(self) -> &'static str {
        match self {
            TradeType::Jsapi => "JSAPI",
            TradeType::Mweb => "MWEB",
            TradeType::Native => "NATIVE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "JSAPI" => Some(TradeType::Jsapi),
            "MWEB" => Some(TradeType::Mweb),
            "NATIVE" => Some(TradeType::Native),
            _ => None,
        }
    }
}

/// What a client asks for, already parsed from its route's shape.
#[derive(Debug, Clone)]
pub struct OrderRequest {
    /// Which route asked (`v2Pay`, `orders`): part of the idempotency hash, so
    /// one key cannot mean two different requests.
    pub endpoint: &'static str,
    /// The parameter that carried the amount, for error messages.
    pub amount_param: &'static str,
    pub trade_type: TradeType,
    pub amount_fen: i64,
    pub description: Option<String>,
    pub redirect_url: Option<String>,
    pub idempotency_key: Option<String>,
    pub client_ip: Option<IpAddr>,
}

/// `wx.requestPayment`'s parameters. `timeStamp` and `nonceStr` are strings, as
/// WeChat requires.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PayParams {
    pub app_id: String,
    pub time_stamp: String,
    pub nonce_str: String,
    pub package: String,
    pub sign_type: String,
    pub pay_sign: String,
}

/// What `GET /api/pay/orders/{outTradeNo}` shows of an order.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    pub out_trade_no: String,
    pub status: Status,
    pub amount_fen: i64,
    pub trade_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<i64>,
    /// Refunds WeChat confirmed, in fen (0 until one succeeds).
    pub refunded_fen: i64,
}

impl From<&Order> for OrderView {
    fn from(o: &Order) -> Self {
        OrderView {
            out_trade_no: o.out_trade_no.clone(),
            status: o.status(),
            amount_fen: o.amount_fen,
            trade_type: o.trade_type.clone(),
            transaction_id: o.transaction_id.clone(),
            paid_at: o.paid_at,
            refunded_fen: o.refunded_fen,
        }
    }
}

/// A date prefix for operators, then 18 random alphanumerics (~107 bits) so
/// that order numbers cannot be guessed; 32 characters, WeChat's maximum.
pub fn new_out_trade_no(now: i64) -> String {
    format!(
        "{}{}",
        beijing::format(now),
        shared::random::alphanumeric(18)
    )
}

fn request_hash(claims: &Claims, req: &OrderRequest, description: &str) -> String {
    let canonical = serde_json::json!([
        req.endpoint,
        claims.appid,
        req.trade_type.as_str(),
        req.amount_fen,
        description,
        req.redirect_url,
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// The session's app must be one this service pays for.
fn check_app(state: &PayState, claims: &Claims) -> Result<(), PayError> {
    if state.config.is_configured_app(&claims.appid) {
        Ok(())
    } else {
        Err(PayError::Forbidden(
            "this session's app is not configured for payment".into(),
        ))
    }
}

fn check_redirect(state: &PayState, url: Option<&str>) -> Result<String, PayError> {
    let Some(url) = url else {
        return Ok(state.config.common.public_base_url.to_string());
    };
    let origin = shared::config::origin_of(url)
        .ok_or_else(|| PayError::invalid("redirectUrl must be an absolute http(s) URL"))?;
    if !state.config.common.allowed_origins.contains(&origin) {
        return Err(PayError::invalid("redirectUrl is not on an allowed origin"));
    }
    Ok(url.to_owned())
}

/// Creates the order (or finds the one its Idempotency-Key already made) and
/// makes sure WeChat has it: the returned order has a prepay_id.
pub async fn place(
    state: &PayState,
    claims: &Claims,
    mut req: OrderRequest,
    request_id: &str,
) -> Result<Order, PayError> {
    check_app(state, claims)?;
    let cfg = &state.config;
    if req.amount_fen < cfg.min_order_fen || req.amount_fen > cfg.max_order_fen {
        return Err(PayError::invalid(format!(
            "{} must be between {} and {} fen",
            req.amount_param, cfg.min_order_fen, cfg.max_order_fen
        )));
    }
    let description = match req.description.as_deref().map(str::trim) {
        None | Some("") => cfg.default_description.clone(),
        Some(d) if d.len() > MAX_DESCRIPTION_BYTES => {
            return Err(PayError::invalid(format!(
                "description must be at most {MAX_DESCRIPTION_BYTES} bytes"
            )));
        }
        Some(d) if d.chars().any(char::is_control) => {
            return Err(PayError::invalid(
                "description must not hold control characters",
            ));
        }
        Some(d) => d.to_owned(),
    };
    req.redirect_url = match req.trade_type {
        TradeType::Mweb => Some(check_redirect(state, req.redirect_url.as_deref())?),
        _ => None,
    };
    if let Some(key) = &req.idempotency_key
        && (key.is_empty()
            || key.len() > MAX_IDEMPOTENCY_KEY_LEN
            || !key.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(PayError::invalid(
            "Idempotency-Key must be 1 to 128 printable ASCII characters",
        ));
    }
    let hash = request_hash(claims, &req, &description);

    if let Some(key) = &req.idempotency_key
        && let Some(existing) = store::by_idempotency_key(&state.db, claims.uid, key).await?
    {
        return replay(state, existing, &hash, request_id).await;
    }

    let now = now_unix();
    let new = NewOrder {
        out_trade_no: new_out_trade_no(now),
        user_id: claims.uid,
        appid: claims.appid.clone(),
        openid: claims.openid.clone(),
        trade_type: req.trade_type.as_str().to_owned(),
        amount_fen: req.amount_fen,
        description,
        status: Status::NotPay.as_str().to_owned(),
        redirect_url: req.redirect_url.clone(),
        client_ip: req
            .client_ip
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "127.0.0.1".to_owned()),
        idempotency_key: req.idempotency_key.clone(),
        request_hash: Some(hash.clone()),
        expires_at: now + cfg.order_expire.as_secs() as i64,
        next_check_at: now + cfg.reconcile_after.as_secs() as i64,
        created_at: now,
        updated_at: now,
    };
    let order = match store::insert_order(&state.db, new).await {
        Ok(order) => order,
        // The same key, concurrently: the other request's order is the one.
        Err(e) if e.is_unique_violation() && req.idempotency_key.is_some() => {
            let key = req.idempotency_key.as_deref().unwrap_or_default();
            let existing = store::by_idempotency_key(&state.db, claims.uid, key)
                .await?
                .ok_or_else(|| PayError::Internal("idempotent order vanished".into()))?;
            return replay(state, existing, &hash, request_id).await;
        }
        Err(e) => return Err(e.into()),
    };
    metrics::ORDERS_CREATED
        .with_label_values(&[order.trade_type.as_str()])
        .inc();
    tracing::info!(out_trade_no = %order.out_trade_no, amount_fen = order.amount_fen, trade_type = %order.trade_type, "order created");
    ensure_prepay(state, order, request_id).await
}

async fn replay(
    state: &PayState,
    existing: Order,
    hash: &str,
    request_id: &str,
) -> Result<Order, PayError> {
    if existing.request_hash.as_deref() != Some(hash) {
        return Err(PayError::Conflict(
            "Idempotency-Key was already used with a different request".into(),
        ));
    }
    ensure_prepay(state, existing, request_id).await
}

/// Calls unifiedorder unless WeChat already answered for this order. A retry
/// sends the same parameters (time_expire included), which WeChat accepts for
/// the same out_trade_no.
async fn ensure_prepay(
    state: &PayState,
    order: Order,
    request_id: &str,
) -> Result<Order, PayError> {
    if order.prepay_id.is_some() {
        return Ok(order);
    }
    if order.status() != Status::NotPay {
        return Err(PayError::Conflict(format!(
            "order {} is {}",
            order.out_trade_no,
            order.status().as_str()
        )));
    }
    // WeChat refuses a time_expire less than 5 minutes away; a replay that
    // late gets a clear answer instead of WeChat's refusal.
    if order.expires_at < now_unix() + 300 {
        return Err(PayError::Conflict(format!(
            "order {} has expired; place a new one",
            order.out_trade_no
        )));
    }
    let trade_type = TradeType::parse(&order.trade_type)
        .ok_or_else(|| PayError::Internal(format!("stored trade_type {}", order.trade_type)))?;
    let mut f = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        f.insert(k.to_owned(), v);
    };
    put("appid", order.appid.clone());
    put("body", order.description.clone());
    put("out_trade_no", order.out_trade_no.clone());
    put("total_fee", order.amount_fen.to_string());
    put("fee_type", "CNY".into());
    put("spbill_create_ip", order.client_ip.clone());
    put("notify_url", state.config.notify_url());
    put("trade_type", trade_type.as_str().into());
    put("time_expire", beijing::format(order.expires_at));
    match trade_type {
        TradeType::Jsapi => put("openid", order.openid.clone()),
        TradeType::Native => put("product_id", order.out_trade_no.clone()),
        TradeType::Mweb => put(
            "scene_info",
            serde_json::json!({"h5_info": {
                "type": "Wap",
                "wap_url": state.config.common.public_base_url.as_str(),
                "wap_name": "wxpay",
            }})
            .to_string(),
        ),
    }
    let reply = match state.pay.unified_order(f).await {
        Ok(reply) => reply,
        Err(PayError::PayRefused { code, description }) => {
            match code.as_str() {
                // WeChat asks for a retry with the same parameters.
                "SYSTEMERROR" => {}
                "ORDERPAID" => {
                    let cause = Cause {
                        source: "query",
                        request_id: request_id.to_owned(),
                    };
                    sync(state, order.clone(), &cause).await?;
                }
                // Refused for good: the order can never be paid.
                _ => {
                    let cause = Cause {
                        source: "unifiedorder",
                        request_id: request_id.to_owned(),
                    };
                    close_locally(state, &order.out_trade_no, &cause).await?;
                }
            }
            return Err(PayError::PayRefused { code, description });
        }
        Err(e) => return Err(e),
    };
    let prepay_id = reply
        .get("prepay_id")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| PayError::PayUnusable("Pay unifiedorder reply has no prepay_id".into()))?;
    let pay_url = match trade_type {
        TradeType::Jsapi => None,
        TradeType::Native => Some(reply.get("code_url").cloned().ok_or_else(|| {
            PayError::PayUnusable("Pay unifiedorder reply has no code_url".into())
        })?),
        TradeType::Mweb => Some(reply.get("mweb_url").cloned().ok_or_else(|| {
            PayError::PayUnusable("Pay unifiedorder reply has no mweb_url".into())
        })?),
    };
    Ok(store::set_prepay(&state.db, &order.out_trade_no, prepay_id, pay_url).await?)
}

/// Fresh `wx.requestPayment` parameters for a JSAPI order.
pub fn pay_params(state: &PayState, order: &Order) -> Result<PayParams, PayError> {
    let prepay_id = order
        .prepay_id
        .as_deref()
        .ok_or_else(|| PayError::Internal("order without prepay_id".into()))?;
    Ok(sign_pay_params(
        &state.pay,
        &order.appid,
        prepay_id,
        &now_unix().to_string(),
        &shared::random::nonce(),
    ))
}

pub fn sign_pay_params(
    pay: &crate::wxpay::PayApi,
    app_id: &str,
    prepay_id: &str,
    time_stamp: &str,
    nonce_str: &str,
) -> PayParams {
    let package = format!("prepay_id={prepay_id}");
    let sign_type = pay.sign_type().as_str();
    let pay_sign = pay.sign_pairs([
        ("appId", app_id),
        ("timeStamp", time_stamp),
        ("nonceStr", nonce_str),
        ("package", package.as_str()),
        ("signType", sign_type),
    ]);
    PayParams {
        app_id: app_id.to_owned(),
        time_stamp: time_stamp.to_owned(),
        nonce_str: nonce_str.to_owned(),
        package,
        sign_type: sign_type.to_owned(),
        pay_sign,
    }
}

/// WeChat's mweb_url with where to send the browser back after paying.
pub fn mweb_url(order: &Order) -> Result<String, PayError> {
    let url = order
        .pay_url
        .as_deref()
        .ok_or_else(|| PayError::Internal("MWEB order without mweb_url".into()))?;
    let redirect = order.redirect_url.as_deref().unwrap_or_default();
    Ok(format!(
        "{url}&redirect_url={}",
        utf8_percent_encode(redirect, NON_ALPHANUMERIC)
    ))
}

/// The caller's order. Another user's order is reported missing, so that
/// order numbers reveal nothing.
pub async fn owned(state: &PayState, claims: &Claims, no: &str) -> Result<Order, PayError> {
    match store::get(&state.db, no).await? {
        Some(order) if order.user_id == claims.uid && order.appid == claims.appid => Ok(order),
        _ => Err(PayError::OrderNotFound),
    }
}

/// Asks WeChat (orderquery) about a NOTPAY order and applies the answer.
pub async fn sync(state: &PayState, order: Order, cause: &Cause) -> Result<Order, PayError> {
    if order.status() != Status::NotPay {
        return Ok(order);
    }
    let trade_state = state
        .pay
        .order_query(&order.appid, &order.out_trade_no)
        .await?;
    apply_trade_state(state, &order, trade_state, cause).await?;
    store::get(&state.db, &order.out_trade_no)
        .await?
        .ok_or(PayError::OrderNotFound)
}

/// What applying orderquery's answer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Paid,
    Closed,
    Unchanged,
}

/// The same transitions a notification makes (PAID), plus CLOSED for orders
/// WeChat closed or that expired unpaid (closed at WeChat first).
pub async fn apply_trade_state(
    state: &PayState,
    order: &Order,
    trade_state: TradeState,
    cause: &Cause,
) -> Result<Applied, PayError> {
    let no = order.out_trade_no.clone();
    match trade_state {
        TradeState::Paid {
            transaction_id,
            total_fee,
            time_end,
        } => {
            let report = PaidReport {
                transaction_id,
                total_fee,
                appid: None,
                mch_id: None,
                paid_at: time_end
                    .as_deref()
                    .and_then(beijing::parse)
                    .unwrap_or_else(now_unix),
            };
            let mch_id = state.config.mch_id.clone();
            let tx_cause = cause.clone();
            let settled = state
                .db
                .transaction(move |conn| store::settle_paid(conn, &no, &report, &mch_id, &tx_cause))
                .await?;
            match settled {
                Settled::Applied => {
                    audit::changed(&order.out_trade_no, Status::NotPay, Status::Paid, cause);
                    Ok(Applied::Paid)
                }
                Settled::AlreadyPaid => Ok(Applied::Unchanged),
                other => {
                    tracing::error!(out_trade_no = %order.out_trade_no, source = cause.source, outcome = ?other, "WeChat reports a payment this order cannot take; needs an operator");
                    Ok(Applied::Unchanged)
                }
            }
        }
        TradeState::Closed => {
            close_locally(state, &no, cause).await?;
            Ok(Applied::Closed)
        }
        TradeState::NotPay
        | TradeState::PayError
        | TradeState::Pending(_)
        | TradeState::NotExist => {
            if now_unix() < order.expires_at {
                return Ok(Applied::Unchanged);
            }
            // Expired unpaid: close at WeChat first, so it cannot be paid later.
            state.pay.close_order(&order.appid, &no).await?;
            close_locally(state, &no, cause).await?;
            Ok(Applied::Closed)
        }
    }
}

async fn close_locally(state: &PayState, no: &str, cause: &Cause) -> Result<bool, PayError> {
    let (no_owned, tx_cause) = (no.to_owned(), cause.clone());
    let closed = state
        .db
        .transaction(move |conn| store::settle_closed(conn, &no_owned, &tx_cause))
        .await?;
    if closed {
        audit::changed(no, Status::NotPay, Status::Closed, cause);
    }
    Ok(closed)
}

/// Closes the caller's order at WeChat and here. A paid order cannot close.
pub async fn close(
    state: &PayState,
    claims: &Claims,
    no: &str,
    request_id: &str,
) -> Result<Order, PayError> {
    let order = owned(state, claims, no).await?;
    match order.status() {
        Status::Paid | Status::Refund => {
            return Err(PayError::Conflict(
                "order is paid and cannot be closed".into(),
            ));
        }
        Status::Closed => return Ok(order),
        Status::NotPay | Status::PayError => {}
    }
    match state.pay.close_order(&order.appid, no).await {
        Ok(()) => {}
        Err(PayError::PayRefused { code, .. }) if code == "ORDERPAID" => {
            let cause = Cause {
                source: "query",
                request_id: request_id.to_owned(),
            };
            sync(state, order, &cause).await?;
            return Err(PayError::Conflict(
                "order is paid and cannot be closed".into(),
            ));
        }
        Err(e) => return Err(e),
    }
    let cause = Cause {
        source: "close",
        request_id: request_id.to_owned(),
    };
    close_locally(state, no, &cause).await?;
    let order = store::get(&state.db, no)
        .await?
        .ok_or(PayError::OrderNotFound)?;
    if matches!(order.status(), Status::Paid | Status::Refund) {
        return Err(PayError::Conflict(
            "order is paid and cannot be closed".into(),
        ));
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_trade_nos_are_32_unguessable_characters() {
        let a = new_out_trade_no(1_709_310_605);
        let b = new_out_trade_no(1_709_310_605);
        assert_eq!(a.len(), 32);
        assert!(a.starts_with("20240302003005"));
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    /// WeChat's published wx.requestPayment example: the payParams signer
    /// gives WeChat's paySign.
    #[test]
    fn pay_sign_matches_wechat_published_example() {
        let api = crate::wxpay::offline_api(
            "qazwsxedcrfvtgbyhnujmikolp111111",
            shared::sign::SignType::Md5,
        );
        let params = sign_pay_params(
            &api,
            "wxd678efh567hg6787",
            "wx2017033010242291fcfe0db70013231072",
            "1490840662",
            "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        );
        assert_eq!(params.pay_sign, "22D9B4E54AB1950F51E0649E8810ACD6");
        assert_eq!(
            params.package,
            "prepay_id=wx2017033010242291fcfe0db70013231072"
        );
        assert_eq!(params.sign_type, "MD5");
        assert_eq!(
            serde_json::to_value(&params).unwrap(),
            serde_json::json!({
                "appId": "wxd678efh567hg6787",
                "timeStamp": "1490840662",
                "nonceStr": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
                "package": "prepay_id=wx2017033010242291fcfe0db70013231072",
                "signType": "MD5",
                "paySign": "22D9B4E54AB1950F51E0649E8810ACD6",
            })
        );
    }
}
