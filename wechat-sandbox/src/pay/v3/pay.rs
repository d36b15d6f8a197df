//! `/v3/pay/transactions/{jsapi,h5,native}`, query and close by
//! out_trade_no, and `/v3/certificates`.

use std::net::IpAddr;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use shared::sign::SignType;
use shared::wechatpay_v3::{ApiV3Key, CertificateEntry, CertificatesResponse, EncryptedResource};

use super::wire::{
    V3Failure, V3Reply, failure, from_pay_time, order_not_exist, param_error, rfc3339_beijing,
};
use crate::clock::lock;
use crate::config::SandboxMerchant;
use crate::ids;
use crate::pay::orders::{
    NewOrder, OrderIdentity, PayFailure, is_notify_url, is_out_trade_no, repeated_order,
};
use crate::state::SandboxState;
use crate::store::{Order, PayApi, TradeState};

/// WeChat refuses a `time_expire` sooner than this.
const MIN_EXPIRY: chrono::Duration = chrono::Duration::minutes(5);

#[derive(Deserialize)]
struct Amount {
    total: i64,
    currency: Option<String>,
}

#[derive(Deserialize)]
struct Payer {
    openid: String,
}

#[derive(Deserialize)]
struct SceneInfo {
    payer_client_ip: String,
    h5_info: Option<serde_json::Value>,
}

/// The body of the three order APIs.
#[derive(Deserialize)]
struct TransactionRequest {
    appid: String,
    mchid: String,
    description: String,
    out_trade_no: String,
    time_expire: Option<String>,
    attach: Option<String>,
    notify_url: String,
    amount: Amount,
    payer: Option<Payer>,
    scene_info: Option<SceneInfo>,
}

/// The trade types v3 serves, by path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Jsapi,
    H5,
    Native,
}

impl Kind {
    /// v3 reports H5 orders as `MWEB`, like v2.
    fn trade_type(self) -> &'static str {
        match self {
            Kind::Jsapi => "JSAPI",
            Kind::H5 => "MWEB",
            Kind::Native => "NATIVE",
        }
    }
}

pub(crate) async fn jsapi(
    s: web::Data<SandboxState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    s.v3_reply(s.v3_place_order(&req, &body, Kind::Jsapi))
}

pub(crate) async fn h5(
    s: web::Data<SandboxState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    s.v3_reply(s.v3_place_order(&req, &body, Kind::H5))
}

pub(crate) async fn native(
    s: web::Data<SandboxState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    s.v3_reply(s.v3_place_order(&req, &body, Kind::Native))
}

pub(crate) async fn query(
    s: web::Data<SandboxState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    s.v3_reply(s.v3_query_order(&req, &path))
}

pub(crate) async fn close(
    s: web::Data<SandboxState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    s.v3_reply(s.v3_close_order(&req, &path, &body))
}

pub(crate) async fn certificates(s: web::Data<SandboxState>, req: HttpRequest) -> HttpResponse {
    s.v3_reply(s.v3_certificates(&req))
}

/// A JSON body into `T`, or WeChat's PARAM_ERROR naming what is wrong.
pub(crate) fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, V3Failure> {
    serde_json::from_slice(body).map_err(|e| param_error(format!("请求参数格式错误: {e}")))
}

impl TransactionRequest {
    /// The checks WeChat makes before looking at its ledger.
    fn validate(
        self,
        kind: Kind,
        merchant: &SandboxMerchant,
        now: DateTime<Utc>,
    ) -> Result<NewOrder, V3Failure> {
        if self.mchid != merchant.mch_id {
            return Err(param_error("mchid与请求头中的商户号不一致"));
        }
        if !merchant.appids.contains(&self.appid) {
            return Err(failure(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配"));
        }
        if self.description.is_empty() || self.description.len() > 127 {
            return Err(param_error("description长度有误"));
        }
        if !is_out_trade_no(&self.out_trade_no) {
            return Err(param_error("out_trade_no格式错误"));
        }
        if self.attach.as_ref().is_some_and(|a| a.len() > 128) {
            return Err(param_error("attach长度有误"));
        }
        if !is_notify_url(&self.notify_url) {
            return Err(param_error("notify_url格式错误"));
        }
        let total = u64::try_from(self.amount.total)
            .ok()
            .filter(|t| *t > 0)
            .ok_or_else(|| param_error("amount.total必须大于0"))?;
        if self.amount.currency.as_deref().is_some_and(|c| c != "CNY") {
            return Err(param_error("amount.currency只支持CNY"));
        }
        let ip = self.client_ip(kind)?;
        let openid = match (kind, self.payer) {
            (Kind::Jsapi, Some(p)) if !p.openid.is_empty() => Some(p.openid),
            (Kind::Jsapi, _) => return Err(param_error("payer.openid为必填参数")),
            _ => None,
        };
        let time_expire = match self.time_expire {
            None => None,
            Some(raw) => Some(time_expire(raw, now)?),
        };
        Ok(NewOrder {
            out_trade_no: self.out_trade_no,
            appid: self.appid,
            mch_id: self.mchid,
            body: self.description,
            attach: self.attach,
            device_info: None,
            total_fee: total,
            trade_type: kind.trade_type().to_owned(),
            openid,
            product_id: None,
            notify_url: self.notify_url,
            api: PayApi::V3,
            sign_type: SignType::Md5,
            spbill_create_ip: ip,
            time_expire,
        })
    }

    /// H5 needs `scene_info` with `h5_info`; an IP, when given, must be one.
    fn client_ip(&self, kind: Kind) -> Result<String, V3Failure> {
        let ip = match &self.scene_info {
            Some(s) if s.payer_client_ip.parse::<IpAddr>().is_err() => {
                return Err(param_error("scene_info.payer_client_ip格式错误"));
            }
            Some(s) => s.payer_client_ip.clone(),
            None => String::new(),
        };
        if kind == Kind::H5
            && self
                .scene_info
                .as_ref()
                .and_then(|s| s.h5_info.as_ref())
                .is_none()
        {
            return Err(param_error("scene_info.h5_info为必填参数"));
        }
        Ok(ip)
    }
}

/// RFC 3339, at least five minutes ahead.
fn time_expire(raw: String, now: DateTime<Utc>) -> Result<(String, DateTime<Utc>), V3Failure> {
    let at = DateTime::parse_from_rfc3339(&raw)
        .map_err(|_| param_error("time_expire格式错误，应为RFC3339格式"))?
        .with_timezone(&Utc);
    if at < now + MIN_EXPIRY {
        return Err(param_error("time_expire时间过短，至少5分钟"));
    }
    Ok((raw, at))
}

/// v2's business refusals in v3's words and statuses.
fn from_v2(f: PayFailure) -> V3Failure {
    match f {
        PayFailure::Business {
            code: "ORDERPAID", ..
        } => failure(403, "ORDERPAID", "该订单已支付"),
        PayFailure::Business {
            code: "ORDERCLOSED",
            ..
        } => failure(400, "ORDER_CLOSED", "订单已关闭"),
        PayFailure::Business {
            code: "OUT_TRADE_NO_USED",
            ..
        } => failure(403, "OUT_TRADE_NO_USED", "商户订单号重复"),
        PayFailure::Business { des, .. } => param_error(des),
        PayFailure::Return(msg) => param_error(msg),
    }
}

impl SandboxState {
    fn v3_place_order(&self, req: &HttpRequest, body: &[u8], kind: Kind) -> V3Reply {
        let merchant = self.v3_authenticate(req, body)?;
        let now = self.now();
        let order = json::<TransactionRequest>(body)?.validate(kind, &merchant, now)?;
        if let Some(openid) = &order.openid {
            self.check_openid(&order.appid, openid).map_err(from_v2)?;
        }
        let mut store = lock(&self.orders);
        let placed = match store.orders.get(&order.out_trade_no) {
            Some(existing) => repeated_order(existing, &identity(&order), now).map_err(from_v2)?,
            None => {
                let new = self.new_order(order, now);
                let no = new.out_trade_no.clone();
                store.orders.entry(no).or_insert(new)
            }
        };
        Ok(self.v3_ok(&prepay_answer(placed, kind)))
    }

    fn v3_query_order(&self, req: &HttpRequest, out_trade_no: &str) -> V3Reply {
        let merchant = self.v3_authenticate(req, b"")?;
        let mchid = crate::params::Params::from_query(req);
        match mchid.get("mchid") {
            None => return Err(param_error("mchid为必填参数")),
            Some(m) if m != merchant.mch_id => {
                return Err(param_error("mchid与请求头中的商户号不一致"));
            }
            Some(_) => {}
        }
        let now = self.now();
        let store = lock(&self.orders);
        let order = store
            .orders
            .get(out_trade_no)
            .filter(|o| o.mch_id == merchant.mch_id)
            .ok_or_else(order_not_exist)?;
        Ok(self.v3_ok(&transaction_json(order, now)))
    }

    /// 204 on success; closing twice succeeds; a paid order refuses.
    fn v3_close_order(&self, req: &HttpRequest, out_trade_no: &str, body: &[u8]) -> V3Reply {
        #[derive(Deserialize)]
        struct CloseRequest {
            mchid: String,
        }
        let merchant = self.v3_authenticate(req, body)?;
        if json::<CloseRequest>(body)?.mchid != merchant.mch_id {
            return Err(param_error("mchid与请求头中的商户号不一致"));
        }
        let now = self.now();
        let mut store = lock(&self.orders);
        let order = store
            .orders
            .get_mut(out_trade_no)
            .filter(|o| o.mch_id == merchant.mch_id)
            .ok_or_else(order_not_exist)?;
        if order.state_at(now).is_paid() {
            return Err(failure(403, "ORDERPAID", "订单已支付，不能发起关单"));
        }
        order.state = TradeState::Closed;
        drop(store);
        Ok(self.v3_answer(StatusCode::NO_CONTENT, None))
    }

    /// The platform certificate, encrypted with the merchant's APIv3 key
    /// (associated data `certificate`), as WeChat hands it out.
    fn v3_certificates(&self, req: &HttpRequest) -> V3Reply {
        let merchant = self.v3_authenticate(req, b"")?;
        let key = ApiV3Key::new(&merchant.api_v3_key)
            .map_err(|_| failure(500, "SYSTEM_ERROR", "商户APIv3密钥未设置"))?;
        let cert = &self.v3.keys.platform_cert;
        let sealed = EncryptedResource::seal(
            &key,
            &ids::alnum(12),
            "certificate",
            None,
            cert.pem().as_bytes(),
        )
        .map_err(|_| failure(500, "SYSTEM_ERROR", "系统错误"))?;
        let answer = CertificatesResponse {
            data: vec![CertificateEntry {
                serial_no: cert.serial_no().to_owned(),
                effective_time: rfc3339_beijing(cert.not_before()),
                expire_time: rfc3339_beijing(cert.not_after()),
                encrypt_certificate: sealed,
            }],
        };
        Ok(self.v3_ok(&serde_json::to_value(answer).unwrap_or_default()))
    }
}

fn identity(o: &NewOrder) -> OrderIdentity<'_> {
    OrderIdentity {
        mch_id: &o.mch_id,
        appid: &o.appid,
        body: &o.body,
        total_fee: o.total_fee,
        trade_type: &o.trade_type,
        openid: o.openid.as_deref(),
    }
}

fn prepay_answer(order: &Order, kind: Kind) -> serde_json::Value {
    match kind {
        Kind::Jsapi => json!({ "prepay_id": order.prepay_id }),
        Kind::H5 => json!({ "h5_url": order.mweb_url }),
        Kind::Native => json!({ "code_url": order.code_url }),
    }
}

/// WeChat's v3 transaction object: the query answer, and the payment
/// notification's decrypted resource.
pub(crate) fn transaction_json(order: &Order, now: DateTime<Utc>) -> serde_json::Value {
    let state = order.state_at(now);
    let mut t = json!({
        "appid": order.appid,
        "mchid": order.mch_id,
        "out_trade_no": order.out_trade_no,
        "trade_state": state.as_str(),
        "trade_state_desc": state.desc(),
        "amount": { "total": order.total_fee, "currency": "CNY" },
    });
    if let Some(attach) = &order.attach {
        t["attach"] = json!(attach);
    }
    if state.is_paid() {
        t["transaction_id"] = json!(order.transaction_id);
        t["trade_type"] = json!(order.trade_type);
        t["bank_type"] = json!("OTHERS");
        t["success_time"] = json!(order.time_end.as_deref().and_then(from_pay_time));
        t["payer"] = json!({ "openid": order.payer_openid });
        t["amount"] = json!({
            "total": order.total_fee,
            "payer_total": order.total_fee,
            "currency": "CNY",
            "payer_currency": "CNY",
        });
    }
    t
}
