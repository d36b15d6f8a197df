//! Placing, reading and closing orders: the domain behind the order routes.
//! Placing checks the request, finds the order its Idempotency-Key already
//! made or creates one, and makes sure WeChat has it ([`super::prepay`]).

use std::net::IpAddr;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use sha2::{Digest, Sha256};
use shared::db::now_unix;
use shared::session::Claims;

use super::audit::Cause;
use super::gateway;
use super::idempotency::IdempotencyKey;
use super::prepay;
use super::state::PayState;
use super::trade::{self, close_at_wechat, close_locally};
use crate::db::orders::{self, NewOrder, Order};
use crate::db::{ApiVersion, Status, TradeType};
use crate::error::PayError;
use crate::metrics;
use crate::wechat::{PayApi, beijing};

/// WeChat's limit on unifiedorder's `body`, in bytes.
const MAX_DESCRIPTION_BYTES: usize = 128;

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
    /// As the header carried it; checked here.
    pub idempotency_key: Option<String>,
    pub client_ip: Option<IpAddr>,
}

/// A request that passed every check: what the order will hold.
struct Checked {
    req: OrderRequest,
    description: String,
    key: Option<IdempotencyKey>,
    /// Identifies the request behind an Idempotency-Key.
    hash: String,
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
    pub trade_type: TradeType,
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
            status: o.status,
            amount_fen: o.amount_fen,
            trade_type: o.trade_type,
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

fn check_amount(state: &PayState, req: &OrderRequest) -> Result<(), PayError> {
    let cfg = &state.config;
    if req.amount_fen < cfg.min_order_fen || req.amount_fen > cfg.max_order_fen {
        return Err(PayError::invalid(format!(
            "{} must be between {} and {} fen",
            req.amount_param, cfg.min_order_fen, cfg.max_order_fen
        )));
    }
    Ok(())
}

fn check_description(state: &PayState, description: Option<&str>) -> Result<String, PayError> {
    match description.map(str::trim) {
        None | Some("") => Ok(state.config.default_description.clone()),
        Some(d) if d.len() > MAX_DESCRIPTION_BYTES => Err(PayError::invalid(format!(
            "description must be at most {MAX_DESCRIPTION_BYTES} bytes"
        ))),
        Some(d) if d.chars().any(char::is_control) => Err(PayError::invalid(
            "description must not hold control characters",
        )),
        Some(d) => Ok(d.to_owned()),
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

/// Every check a request passes before anything is stored, in this order:
/// the app, the amount, the description, the redirect (MWEB only), the key.
fn check(state: &PayState, claims: &Claims, mut req: OrderRequest) -> Result<Checked, PayError> {
    check_app(state, claims)?;
    check_amount(state, &req)?;
    let description = check_description(state, req.description.as_deref())?;
    req.redirect_url = match req.trade_type {
        TradeType::Mweb => Some(check_redirect(state, req.redirect_url.as_deref())?),
        _ => None,
    };
    let key = IdempotencyKey::check(req.idempotency_key.take())?;
    let hash = request_hash(claims, &req, &description);
    Ok(Checked {
        req,
        description,
        key,
        hash,
    })
}

/// Creates the order (or finds the one its Idempotency-Key already made) and
/// makes sure WeChat has it: the returned order has a prepay_id.
pub async fn place(
    state: &PayState,
    claims: &Claims,
    req: OrderRequest,
    request_id: &str,
) -> Result<Order, PayError> {
    let checked = check(state, claims, req)?;
    if let Some(key) = &checked.key
        && let Some(existing) =
            orders::by_idempotency_key(&state.db, claims.uid, key.as_str()).await?
    {
        return replay(state, existing, &checked.hash, request_id).await;
    }
    let order = match orders::insert(&state.db, new_order(state, claims, &checked)).await {
        Ok(order) => order,
        // The same key, concurrently: the other request's order is the one.
        Err(e) if e.is_unique_violation() && checked.key.is_some() => {
            let key = checked
                .key
                .as_ref()
                .map(IdempotencyKey::as_str)
                .unwrap_or_default();
            let existing = orders::by_idempotency_key(&state.db, claims.uid, key)
                .await?
                .ok_or_else(|| PayError::Internal("idempotent order vanished".into()))?;
            return replay(state, existing, &checked.hash, request_id).await;
        }
        Err(e) => return Err(e.into()),
    };
    metrics::ORDERS_CREATED
        .with_label_values(&[order.trade_type.as_str()])
        .inc();
    tracing::info!(out_trade_no = %order.out_trade_no, amount_fen = order.amount_fen, trade_type = %order.trade_type.as_str(), "order created");
    prepay::ensure(state, order, request_id).await
}

fn new_order(state: &PayState, claims: &Claims, checked: &Checked) -> NewOrder {
    let (cfg, req, now) = (&state.config, &checked.req, now_unix());
    NewOrder {
        out_trade_no: new_out_trade_no(now),
        user_id: claims.uid,
        appid: claims.appid.clone(),
        openid: claims.openid.clone(),
        trade_type: req.trade_type,
        amount_fen: req.amount_fen,
        description: checked.description.clone(),
        status: Status::NotPay,
        redirect_url: req.redirect_url.clone(),
        client_ip: req
            .client_ip
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "127.0.0.1".to_owned()),
        idempotency_key: checked.key.as_ref().map(|k| k.as_str().to_owned()),
        request_hash: Some(checked.hash.clone()),
        expires_at: now + cfg.order_expire.as_secs() as i64,
        next_check_at: now + cfg.reconcile_after.as_secs() as i64,
        created_at: now,
        updated_at: now,
        api: cfg.api_version,
    }
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
    prepay::ensure(state, existing, request_id).await
}

/// Fresh `wx.requestPayment` parameters for a JSAPI order, signed for the
/// order's API: v2 with the merchant key (MD5 / HMAC-SHA256), v3 with the
/// merchant's private key (`signType: "RSA"`).
pub fn pay_params(state: &PayState, order: &Order) -> Result<PayParams, PayError> {
    let prepay_id = order
        .prepay_id
        .as_deref()
        .ok_or_else(|| PayError::Internal("order without prepay_id".into()))?;
    let (time_stamp, nonce_str) = (now_unix().to_string(), shared::random::nonce());
    match order.api {
        ApiVersion::V2 => Ok(sign_pay_params(
            &state.pay,
            &order.appid,
            prepay_id,
            &time_stamp,
            &nonce_str,
        )),
        ApiVersion::V3 => Ok(sign_pay_params_v3(
            gateway::v3_api(state)?.signer(),
            &order.appid,
            prepay_id,
            &time_stamp,
            &nonce_str,
        )),
    }
}

/// v3's JSAPI pay parameters: `paySign` is Base64 SHA256withRSA over
/// `appId\ntimeStamp\nnonceStr\npackage\n`.
pub fn sign_pay_params_v3(
    signer: &shared::wechatpay_v3::MerchantSigner,
    app_id: &str,
    prepay_id: &str,
    time_stamp: &str,
    nonce_str: &str,
) -> PayParams {
    let package = format!("prepay_id={prepay_id}");
    PayParams {
        app_id: app_id.to_owned(),
        time_stamp: time_stamp.to_owned(),
        nonce_str: nonce_str.to_owned(),
        pay_sign: signer.jsapi_pay_sign(app_id, time_stamp, nonce_str, &package),
        package,
        sign_type: shared::wechatpay_v3::JSAPI_SIGN_TYPE.to_owned(),
    }
}

pub fn sign_pay_params(
    pay: &PayApi,
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

/// A NATIVE order's code_url, the content of its QR code; None for any other
/// order (or one WeChat gave no URL).
pub fn code_url(order: &Order) -> Option<&str> {
    match order.trade_type {
        TradeType::Native => order.pay_url.as_deref(),
        TradeType::Jsapi | TradeType::Mweb => None,
    }
}

/// The caller's order. Another user's order is reported missing, so that
/// order numbers reveal nothing.
pub async fn owned(state: &PayState, claims: &Claims, no: &str) -> Result<Order, PayError> {
    match orders::get(&state.db, no).await? {
        Some(order) if order.user_id == claims.uid && order.appid == claims.appid => Ok(order),
        _ => Err(PayError::OrderNotFound),
    }
}

fn paid_conflict() -> PayError {
    PayError::Conflict("order is paid and cannot be closed".into())
}

/// Closes the caller's order at WeChat and here. A paid order cannot close.
pub async fn close(
    state: &PayState,
    claims: &Claims,
    no: &str,
    request_id: &str,
) -> Result<Order, PayError> {
    let order = owned(state, claims, no).await?;
    match order.status {
        Status::Paid | Status::Refund => return Err(paid_conflict()),
        Status::Closed => return Ok(order),
        Status::NotPay | Status::PayError => {}
    }
    match close_at_wechat(state, &order).await {
        Ok(()) => {}
        Err(PayError::PayRefused { code, .. }) if code == "ORDERPAID" => {
            trade::sync(state, order, &Cause::request("query", request_id)).await?;
            return Err(paid_conflict());
        }
        Err(e) => return Err(e),
    }
    close_locally(state, no, &Cause::request("close", request_id)).await?;
    let order = orders::get(&state.db, no)
        .await?
        .ok_or(PayError::OrderNotFound)?;
    if matches!(order.status, Status::Paid | Status::Refund) {
        return Err(paid_conflict());
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
        let api = crate::wechat::offline_api(
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
