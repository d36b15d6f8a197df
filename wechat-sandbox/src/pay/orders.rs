//! WeChat Pay APIv2: `/pay/unifiedorder`, `/pay/orderquery`, `/pay/closeorder`.
//!
//! Failures come in WeChat's two layers: a request the gateway cannot accept
//! (bad XML, unknown merchant, bad sign, missing field) gets an unsigned
//! `return_code` FAIL; a well-formed request the business refuses gets
//! `return_code` SUCCESS, `result_code` FAIL and an `err_code`, signed.

use std::collections::BTreeMap;
use std::net::IpAddr;

use actix_web::{HttpResponse, Resource, web};
use chrono::{DateTime, NaiveDateTime, Utc};
use shared::sign::{SignType, pay_sign, verify_pay_sign};
use shared::xml::{DEFAULT_MAX_XML_BYTES, map_to_xml, to_xml};

use crate::clock::lock;
use crate::config::SandboxMerchant;
use crate::ids;
use crate::oauth::encode_pairs;
use crate::state::SandboxState;
use crate::store::{Order, OrderSnapshot, PayApi, TradeState};

/// WeChat refuses a `time_expire` sooner than this after the order is placed.
const MIN_EXPIRY: chrono::Duration = chrono::Duration::minutes(5);

/// Why a Pay request failed, in WeChat's two layers.
pub(crate) enum PayFailure {
    /// `return_code` FAIL, unsigned.
    Return(String),
    /// `result_code` FAIL with `err_code`/`err_code_des`, signed.
    Business {
        code: &'static str,
        des: &'static str,
    },
}

fn missing(name: &str) -> PayFailure {
    PayFailure::Return(format!("缺少参数{name}"))
}

fn malformed(name: &str) -> PayFailure {
    PayFailure::Return(format!("{name}参数格式错误"))
}

const ORDER_NOT_EXIST: PayFailure = PayFailure::Business {
    code: "ORDERNOTEXIST",
    des: "此交易订单号不存在",
};

/// A request whose merchant, appid and sign have been checked.
pub(crate) struct PayRequest {
    fields: BTreeMap<String, String>,
    pub(crate) merchant: SandboxMerchant,
    sign_type: SignType,
}

impl PayRequest {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn require(&self, name: &str) -> Result<&str, PayFailure> {
        self.get(name).ok_or_else(|| missing(name))
    }

    pub(crate) fn appid(&self) -> &str {
        self.get("appid").unwrap_or_default()
    }

    /// Success and business failures are signed with the request's sign type
    /// and carry appid, mch_id and a fresh nonce_str.
    fn reply(&self, result: Result<BTreeMap<String, String>, PayFailure>) -> HttpResponse {
        let fields = match result {
            Ok(mut fields) => {
                fields
                    .entry("result_code".into())
                    .or_insert_with(|| "SUCCESS".into());
                fields
            }
            Err(PayFailure::Return(msg)) => return return_fail(&msg),
            Err(PayFailure::Business { code, des }) => BTreeMap::from([
                ("result_code".to_owned(), "FAIL".to_owned()),
                ("err_code".to_owned(), code.to_owned()),
                ("err_code_des".to_owned(), des.to_owned()),
            ]),
        };
        self.signed(fields)
    }

    /// `fields` with return_code SUCCESS, appid, mch_id, nonce_str and sign.
    fn signed(&self, mut fields: BTreeMap<String, String>) -> HttpResponse {
        fields.insert("return_code".into(), "SUCCESS".into());
        fields.insert("return_msg".into(), "OK".into());
        fields.insert("appid".into(), self.appid().to_owned());
        fields.insert("mch_id".into(), self.merchant.mch_id.clone());
        fields.insert("nonce_str".into(), ids::alnum(16));
        if let Some(device_info) = self.get("device_info") {
            fields.insert("device_info".into(), device_info.to_owned());
        }
        sign_fields(&mut fields, &self.merchant.key, self.sign_type);
        xml_response(map_to_xml(&fields))
    }
}

/// Adds `sign` (and `sign_type` for HMAC-SHA256, so that a reader honouring
/// the declared type verifies it) over every other field.
pub(crate) fn sign_fields(fields: &mut BTreeMap<String, String>, key: &str, sign_type: SignType) {
    fields.remove("sign");
    if sign_type == SignType::HmacSha256 {
        fields.insert("sign_type".into(), sign_type.as_str().into());
    } else {
        fields.remove("sign_type");
    }
    let sign = pay_sign(fields, key, sign_type);
    fields.insert("sign".into(), sign);
}

fn xml_response(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(body)
}

fn return_fail(msg: &str) -> HttpResponse {
    xml_response(to_xml([("return_code", "FAIL"), ("return_msg", msg)]))
}

pub(crate) fn is_out_trade_no(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*".contains(&b))
}

pub(crate) fn is_notify_url(s: &str) -> bool {
    url::Url::parse(s)
        .map(|u| {
            matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.query().is_none()
        })
        .unwrap_or(false)
}

fn parse_pay_time(s: &str) -> Option<DateTime<Utc>> {
    if s.len() != 14 {
        return None;
    }
    NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S")
        .ok()?
        .and_local_timezone(ids::beijing())
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// `/pay/unifiedorder`'s fields, checked in WeChat's order: every required
/// field present, then each one's format.
pub(crate) struct UnifiedOrderParams {
    body: String,
    out_trade_no: String,
    total_fee: u64,
    spbill_create_ip: String,
    notify_url: String,
    attach: Option<String>,
    device_info: Option<String>,
    trade_type: String,
    openid: Option<String>,
    product_id: Option<String>,
    time_expire: Option<(String, DateTime<Utc>)>,
}

const UNIFIED_ORDER_REQUIRED: [&str; 6] = [
    "body",
    "out_trade_no",
    "total_fee",
    "spbill_create_ip",
    "notify_url",
    "trade_type",
];

impl UnifiedOrderParams {
    fn from_request(req: &PayRequest, now: DateTime<Utc>) -> Result<Self, PayFailure> {
        for name in UNIFIED_ORDER_REQUIRED {
            req.require(name)?;
        }
        let body = limited(req, "body", 128)?.unwrap_or_default();
        let out_trade_no = req.require("out_trade_no")?;
        if !is_out_trade_no(out_trade_no) {
            return Err(malformed("out_trade_no"));
        }
        let total_fee = fee(req, "total_fee")?;
        if req.get("fee_type").is_some_and(|f| f != "CNY") {
            return Err(malformed("fee_type"));
        }
        let ip = req.require("spbill_create_ip")?;
        if ip.parse::<IpAddr>().is_err() {
            return Err(malformed("spbill_create_ip"));
        }
        let notify_url = req.require("notify_url")?;
        if !is_notify_url(notify_url) {
            return Err(malformed("notify_url"));
        }
        let attach = limited(req, "attach", 127)?;
        let trade_type = req.require("trade_type")?;
        let (openid, product_id) = trade_target(req, trade_type)?;
        Ok(UnifiedOrderParams {
            body,
            out_trade_no: out_trade_no.to_owned(),
            total_fee,
            spbill_create_ip: ip.to_owned(),
            notify_url: notify_url.to_owned(),
            attach,
            device_info: req.get("device_info").map(str::to_owned),
            trade_type: trade_type.to_owned(),
            openid,
            product_id,
            time_expire: time_expire(req, now)?,
        })
    }

    fn identity<'a>(&'a self, req: &'a PayRequest) -> OrderIdentity<'a> {
        OrderIdentity {
            mch_id: &req.merchant.mch_id,
            appid: req.appid(),
            body: &self.body,
            total_fee: self.total_fee,
            trade_type: &self.trade_type,
            openid: self.openid.as_deref(),
        }
    }
}

/// An optional field no longer than `max` bytes.
fn limited(req: &PayRequest, name: &str, max: usize) -> Result<Option<String>, PayFailure> {
    match req.get(name) {
        Some(v) if v.len() > max => Err(PayFailure::Return(format!("{name}参数长度有误"))),
        v => Ok(v.map(str::to_owned)),
    }
}

/// A required amount in fen: a positive integer.
pub(crate) fn fee(req: &PayRequest, name: &str) -> Result<u64, PayFailure> {
    req.require(name)?
        .parse::<u64>()
        .ok()
        .filter(|f| *f > 0 && *f <= i64::MAX as u64)
        .ok_or_else(|| malformed(name))
}

/// Who pays (JSAPI: `openid`) or what is sold (NATIVE: `product_id`), by trade type.
fn trade_target(
    req: &PayRequest,
    trade_type: &str,
) -> Result<(Option<String>, Option<String>), PayFailure> {
    match trade_type {
        "JSAPI" => Ok((Some(req.require("openid")?.to_owned()), None)),
        "NATIVE" => Ok((None, Some(req.require("product_id")?.to_owned()))),
        "MWEB" => req.require("scene_info").map(|_| (None, None)),
        "APP" => Ok((None, None)),
        _ => Err(malformed("trade_type")),
    }
}

/// `time_expire`, refused when unparsable or sooner than WeChat allows.
fn time_expire(
    req: &PayRequest,
    now: DateTime<Utc>,
) -> Result<Option<(String, DateTime<Utc>)>, PayFailure> {
    let Some(raw) = req.get("time_expire") else {
        return Ok(None);
    };
    let at =
        parse_pay_time(raw).ok_or_else(|| PayFailure::Return("time_expire时间格式错误".into()))?;
    if at < now + MIN_EXPIRY {
        return Err(PayFailure::Return(
            "time_expire时间过短，刷卡至少1分钟，其他5分钟".into(),
        ));
    }
    Ok(Some((raw.to_owned(), at)))
}

/// What makes a repeated order request "the same order".
pub(crate) struct OrderIdentity<'a> {
    pub mch_id: &'a str,
    pub appid: &'a str,
    pub body: &'a str,
    pub total_fee: u64,
    pub trade_type: &'a str,
    pub openid: Option<&'a str>,
}

/// An order asked for again: the same one answers with its prepay_id while
/// unpaid; anything else, or a paid or closed order, is refused.
pub(crate) fn repeated_order<'o>(
    existing: &'o Order,
    asked: &OrderIdentity<'_>,
    now: DateTime<Utc>,
) -> Result<&'o Order, PayFailure> {
    let same = existing.mch_id == asked.mch_id
        && existing.appid == asked.appid
        && existing.body == asked.body
        && existing.total_fee == asked.total_fee
        && existing.trade_type == asked.trade_type
        && existing.openid.as_deref() == asked.openid;
    match existing.state_at(now) {
        s if s.is_paid() => Err(PayFailure::Business {
            code: "ORDERPAID",
            des: "该订单已支付",
        }),
        TradeState::Closed => Err(PayFailure::Business {
            code: "ORDERCLOSED",
            des: "订单已关闭",
        }),
        _ if !same => Err(PayFailure::Business {
            code: "OUT_TRADE_NO_USED",
            des: "商户订单号重复",
        }),
        _ => Ok(existing),
    }
}

/// Everything a new order is made from, whichever API placed it.
pub(crate) struct NewOrder {
    pub out_trade_no: String,
    pub appid: String,
    pub mch_id: String,
    pub body: String,
    pub attach: Option<String>,
    pub device_info: Option<String>,
    pub total_fee: u64,
    pub trade_type: String,
    pub openid: Option<String>,
    pub product_id: Option<String>,
    pub notify_url: String,
    pub api: PayApi,
    pub sign_type: SignType,
    pub spbill_create_ip: String,
    pub time_expire: Option<(String, DateTime<Utc>)>,
}

impl NewOrder {
    fn v2(req: &PayRequest, p: UnifiedOrderParams) -> Self {
        NewOrder {
            out_trade_no: p.out_trade_no,
            appid: req.appid().to_owned(),
            mch_id: req.merchant.mch_id.clone(),
            body: p.body,
            attach: p.attach,
            device_info: p.device_info,
            total_fee: p.total_fee,
            trade_type: p.trade_type,
            openid: p.openid,
            product_id: p.product_id,
            notify_url: p.notify_url,
            api: PayApi::V2,
            sign_type: req.sign_type,
            spbill_create_ip: p.spbill_create_ip,
            time_expire: p.time_expire,
        }
    }
}

impl SandboxState {
    /// Gateway-level checks every Pay call shares; failures are the
    /// `return_msg` of an unsigned FAIL.
    pub(crate) fn authenticate_pay(&self, body: &[u8]) -> Result<PayRequest, String> {
        let fields = shared::xml::parse(body, DEFAULT_MAX_XML_BYTES)
            .map_err(|_| "XML格式错误".to_owned())?;
        let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();
        let mch_id = field("mch_id");
        if mch_id.is_empty() {
            return Err("缺少参数mch_id".into());
        }
        let merchant = self
            .merchant(mch_id)
            .ok_or_else(|| "mch_id参数格式错误".to_owned())?;
        let appid = field("appid");
        if appid.is_empty() {
            return Err("缺少参数appid".into());
        }
        if !merchant.appids.iter().any(|a| a == appid) {
            return Err("appid和mch_id不匹配".into());
        }
        let sign_type = SignType::parse(field("sign_type"))
            .ok_or_else(|| "sign_type参数格式错误".to_owned())?;
        if !verify_pay_sign(&fields, &merchant.key) {
            return Err("签名错误".into());
        }
        let nonce = field("nonce_str");
        if nonce.is_empty() {
            return Err("缺少参数nonce_str".into());
        }
        if nonce.len() > 32 {
            return Err("nonce_str参数长度有误".into());
        }
        Ok(PayRequest {
            merchant: merchant.clone(),
            sign_type,
            fields,
        })
    }

    /// `/pay/unifiedorder`: a new order, or the same one again for a repeated
    /// identical request.
    pub(crate) fn unified_order(
        &self,
        req: &PayRequest,
    ) -> Result<BTreeMap<String, String>, PayFailure> {
        let now = self.now();
        let params = UnifiedOrderParams::from_request(req, now)?;
        if let Some(openid) = &params.openid {
            self.check_openid(req.appid(), openid)?;
        }
        let mut store = lock(&self.orders);
        if let Some(existing) = store.orders.get(&params.out_trade_no) {
            return repeated_order(existing, &params.identity(req), now).map(prepay_reply);
        }
        let order = self.new_order(NewOrder::v2(req, params), now);
        let reply = prepay_reply(&order);
        store.orders.insert(order.out_trade_no.clone(), order);
        Ok(reply)
    }

    /// A JSAPI order's openid must belong to one of the sandbox's users in that app.
    pub(crate) fn check_openid(&self, appid: &str, openid: &str) -> Result<(), PayFailure> {
        match self.user_by_openid(appid, openid) {
            Some(_) => Ok(()),
            None => Err(PayFailure::Business {
                code: "PARAM_ERROR",
                des: "appid和openid不匹配",
            }),
        }
    }

    /// Builds an unpaid order with its prepay_id and, by trade type, its
    /// code_url (NATIVE) or cashier URL (MWEB).
    pub(crate) fn new_order(&self, o: NewOrder, now: DateTime<Utc>) -> Order {
        let prepay_id = ids::prepay_id(now);
        let code_url = (o.trade_type == "NATIVE")
            .then(|| format!("weixin://wxpay/bizpayurl?pr={}", ids::alnum(7)));
        let mweb_package = (o.trade_type == "MWEB").then(|| ids::digits(10));
        let mweb_url = mweb_package.as_ref().map(|package| {
            format!(
                "{}/sandbox/mweb?{}",
                self.base_url,
                encode_pairs(&[("prepay_id", &prepay_id), ("package", package)])
            )
        });
        Order {
            out_trade_no: o.out_trade_no,
            appid: o.appid,
            mch_id: o.mch_id,
            body: o.body,
            attach: o.attach,
            device_info: o.device_info,
            total_fee: o.total_fee,
            trade_type: o.trade_type,
            openid: o.openid,
            product_id: o.product_id,
            notify_url: o.notify_url,
            api: o.api,
            sign_type: o.sign_type,
            spbill_create_ip: o.spbill_create_ip,
            time_expire: o.time_expire,
            prepay_id,
            code_url,
            mweb_url,
            mweb_package,
            created_at: now,
            state: TradeState::NotPay,
            transaction_id: None,
            time_end: None,
            payer_openid: None,
            deliveries: Vec::new(),
            delivery_finished: false,
        }
    }

    pub(crate) fn order_query(
        &self,
        req: &PayRequest,
    ) -> Result<BTreeMap<String, String>, PayFailure> {
        let store = lock(&self.orders);
        let order = match (req.get("transaction_id"), req.get("out_trade_no")) {
            (Some(id), _) => store.by_transaction_id(id),
            (None, Some(no)) => store.orders.get(no),
            (None, None) => return Err(missing("out_trade_no")),
        }
        .filter(|o| o.mch_id == req.merchant.mch_id && o.appid == req.appid())
        .ok_or(ORDER_NOT_EXIST)?;
        let state = order.state_at(self.now());
        let mut f = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            f.insert(k.to_owned(), v.to_owned());
        };
        put("trade_state", state.as_str());
        put("trade_state_desc", state.desc());
        put("out_trade_no", &order.out_trade_no);
        if let Some(attach) = &order.attach {
            put("attach", attach);
        }
        if state.is_paid() {
            put("openid", order.payer_openid.as_deref().unwrap_or_default());
            put("is_subscribe", "N");
            put("trade_type", &order.trade_type);
            put("bank_type", "OTHERS");
            put("total_fee", &order.total_fee.to_string());
            put("cash_fee", &order.total_fee.to_string());
            put("fee_type", "CNY");
            put(
                "transaction_id",
                order.transaction_id.as_deref().unwrap_or_default(),
            );
            put("time_end", order.time_end.as_deref().unwrap_or_default());
        }
        Ok(f)
    }

    /// Closing twice succeeds both times; only a paid order refuses.
    pub(crate) fn close_order(
        &self,
        req: &PayRequest,
    ) -> Result<BTreeMap<String, String>, PayFailure> {
        let out_trade_no = req.require("out_trade_no")?;
        let now = self.now();
        let mut store = lock(&self.orders);
        let order = store
            .orders
            .get_mut(out_trade_no)
            .filter(|o| o.mch_id == req.merchant.mch_id && o.appid == req.appid())
            .ok_or(PayFailure::Business {
                code: "ORDERNOTEXIST",
                des: "订单不存在",
            })?;
        if order.state_at(now).is_paid() {
            return Err(PayFailure::Business {
                code: "ORDERPAID",
                des: "订单已支付，不能发起关单",
            });
        }
        order.state = TradeState::Closed;
        Ok(BTreeMap::from([("result_msg".to_owned(), "OK".to_owned())]))
    }

    /// The order as the sandbox sees it now.
    pub fn order(&self, out_trade_no: &str) -> Option<OrderSnapshot> {
        let now = self.now();
        lock(&self.orders)
            .orders
            .get(out_trade_no)
            .map(|o| o.snapshot(now))
    }
}

fn prepay_reply(order: &Order) -> BTreeMap<String, String> {
    let mut f = BTreeMap::from([
        ("trade_type".to_owned(), order.trade_type.clone()),
        ("prepay_id".to_owned(), order.prepay_id.clone()),
    ]);
    if let Some(code_url) = &order.code_url {
        f.insert("code_url".into(), code_url.clone());
    }
    if let Some(mweb_url) = &order.mweb_url {
        f.insert("mweb_url".into(), mweb_url.clone());
    }
    f
}

pub(crate) type PayOperation =
    fn(&SandboxState, &PayRequest) -> Result<BTreeMap<String, String>, PayFailure>;

/// A signed `result_code` FAIL with `code`, as an injected fault answers an
/// authenticated Pay request (unauthenticated ones get the usual FAIL).
pub(crate) fn business_failure(
    sandbox: &SandboxState,
    body: &[u8],
    code: &str,
    des: &str,
) -> HttpResponse {
    match sandbox.authenticate_pay(body) {
        Ok(req) => req.signed(BTreeMap::from([
            ("result_code".to_owned(), "FAIL".to_owned()),
            ("err_code".to_owned(), code.to_owned()),
            ("err_code_des".to_owned(), des.to_owned()),
        ])),
        Err(msg) => return_fail(&msg),
    }
}

fn serve(sandbox: &SandboxState, body: &[u8], op: PayOperation) -> HttpResponse {
    match sandbox.authenticate_pay(body) {
        Ok(req) => req.reply(op(sandbox, &req)),
        Err(msg) => return_fail(&msg),
    }
}

/// A WeChat Pay API at `path`: the signed XML body is authenticated, then
/// `op` answers. WeChat Pay only takes POST; any other method is answered FAIL.
pub(crate) fn api(path: &str, op: PayOperation) -> Resource {
    web::resource(path)
        .route(web::post().to(
            move |sandbox: web::Data<SandboxState>, body: web::Bytes| async move {
                serve(&sandbox, &body, op)
            },
        ))
        .default_service(web::to(|| async { return_fail("请使用post方法") }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pay_times_are_beijing() {
        let t = parse_pay_time("20240302003005").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-03-01T16:30:05+00:00");
        assert_eq!(parse_pay_time("2024030200300"), None);
        assert_eq!(parse_pay_time("20241302003005"), None);
        assert_eq!(parse_pay_time("+0240302003005"), None);
    }

    #[test]
    fn out_trade_no_rules() {
        assert!(is_out_trade_no("20240301_abc-1|*"));
        assert!(!is_out_trade_no(""));
        assert!(!is_out_trade_no(&"a".repeat(33)));
        assert!(!is_out_trade_no("订单"));
        assert!(!is_out_trade_no("a b"));
    }

    #[test]
    fn notify_urls_take_no_query() {
        assert!(is_notify_url("https://shop.test/api/pay/notify"));
        assert!(!is_notify_url("https://shop.test/api/pay/notify?x=1"));
        assert!(!is_notify_url("/api/pay/notify"));
    }

    #[test]
    fn hmac_replies_declare_their_sign_type() {
        let mut f = BTreeMap::from([("a".to_owned(), "1".to_owned())]);
        sign_fields(&mut f, "k", SignType::HmacSha256);
        assert_eq!(f["sign_type"], "HMAC-SHA256");
        assert!(verify_pay_sign(&f, "k"));
        let mut f = BTreeMap::from([("a".to_owned(), "1".to_owned())]);
        sign_fields(&mut f, "k", SignType::Md5);
        assert!(!f.contains_key("sign_type"));
        assert!(verify_pay_sign(&f, "k"));
    }
}
