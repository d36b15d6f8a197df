//! The sandbox's own routes under `/sandbox/`: JSON (camelCase) controls for
//! tests and developers, the H5 cashier, and avatars. They call the same
//! `SandboxState` methods tests call directly.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::clock::lock;
use crate::config::AppKind;
use crate::oauth::{USER_COOKIE, is_web_url};
use crate::pages::{self, CashierOrder};
use crate::params::Params;
use crate::pay::notify::{PayOptions, PayRefusal};
use crate::state::SandboxState;
use crate::store::{FaultKind, Scope, TradeState};

/// `{"error": "…"}` with a 4xx status.
#[derive(Debug)]
pub(crate) struct ControlError {
    status: StatusCode,
    message: String,
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for ControlError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(json!({ "error": self.message }))
    }
}

fn error(status: StatusCode, message: &str) -> ControlError {
    ControlError {
        status,
        message: message.to_owned(),
    }
}

fn bad_request(message: &str) -> ControlError {
    error(StatusCode::BAD_REQUEST, message)
}

type Reply = Result<HttpResponse, ControlError>;

/// An empty body reads as `{}`, so every field may be left out.
fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ControlError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| bad_request(&format!("invalid JSON body: {e}")))
}

pub(crate) async fn users(sandbox: web::Data<SandboxState>) -> HttpResponse {
    let users: Vec<_> = sandbox
        .users()
        .iter()
        .map(|u| {
            let openids: BTreeMap<&str, String> = sandbox
                .apps()
                .iter()
                .map(|a| (a.appid.as_str(), sandbox.openid(&a.appid, &u.key)))
                .collect();
            json!({
                "key": u.key,
                "nickname": u.nickname,
                "sex": u.sex,
                "province": u.province,
                "city": u.city,
                "country": u.country,
                "unionid": u.unionid,
                "headimgurl": sandbox.avatar_url(&u.key),
                "openids": openids,
            })
        })
        .collect();
    HttpResponse::Ok().json(users)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PayBody {
    #[serde(default = "yes")]
    notify: bool,
    #[serde(default)]
    fail_first_deliveries: u32,
    /// The paying test user for NATIVE/MWEB/APP orders.
    user: Option<String>,
}

fn yes() -> bool {
    true
}

fn refusal_status(r: PayRefusal) -> StatusCode {
    match r {
        PayRefusal::NotFound => StatusCode::NOT_FOUND,
        PayRefusal::UnknownUser => StatusCode::BAD_REQUEST,
        PayRefusal::AlreadyPaid | PayRefusal::Closed | PayRefusal::Expired => StatusCode::CONFLICT,
    }
}

pub(crate) async fn pay(
    sandbox: web::Data<SandboxState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Reply {
    let req: PayBody = json_body(&body)?;
    let opts = PayOptions {
        notify: req.notify,
        fail_first_deliveries: req.fail_first_deliveries,
    };
    let transaction_id = sandbox
        .pay_order_as(&path, opts, req.user.as_deref())
        .map_err(|r| error(refusal_status(r), r.message()))?;
    Ok(HttpResponse::Ok().json(json!({
        "outTradeNo": path.as_str(),
        "transactionId": transaction_id,
    })))
}

pub(crate) async fn order(sandbox: web::Data<SandboxState>, path: web::Path<String>) -> Reply {
    let order = sandbox
        .order(&path)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "order not found"))?;
    Ok(HttpResponse::Ok().json(order))
}

pub(crate) async fn deliveries(sandbox: web::Data<SandboxState>, path: web::Path<String>) -> Reply {
    if sandbox.order(&path).is_none() {
        return Err(error(StatusCode::NOT_FOUND, "order not found"));
    }
    Ok(HttpResponse::Ok().json(sandbox.deliveries(&path)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FaultBody {
    path: String,
    kind: String,
    errcode: Option<i64>,
    errmsg: Option<String>,
    delay_ms: Option<u64>,
    err_code: Option<String>,
    err_code_des: Option<String>,
    #[serde(default)]
    applied: bool,
    #[serde(default = "one")]
    count: u32,
}

fn one() -> u32 {
    1
}

pub(crate) async fn inject_fault(sandbox: web::Data<SandboxState>, body: web::Bytes) -> Reply {
    let req: FaultBody = json_body(&body)?;
    if !req.path.starts_with('/') {
        return Err(bad_request("path must start with /"));
    }
    let kind = match req.kind.as_str() {
        "errcode" => FaultKind::Errcode {
            errcode: req
                .errcode
                .ok_or_else(|| bad_request("kind errcode needs errcode"))?,
            // WeChat's wording for errcode -1.
            errmsg: req.errmsg.unwrap_or_else(|| "system error".into()),
        },
        "http500" => FaultKind::Http500,
        "garbage" => FaultKind::Garbage,
        "delay" => FaultKind::Delay(Duration::from_millis(
            req.delay_ms
                .ok_or_else(|| bad_request("kind delay needs delayMs"))?,
        )),
        "payError" => FaultKind::PayError {
            err_code: req
                .err_code
                .ok_or_else(|| bad_request("kind payError needs errCode"))?,
            err_code_des: req.err_code_des.unwrap_or_else(|| "系统错误".into()),
            applied: req.applied,
        },
        _ => {
            return Err(bad_request(
                "kind must be errcode, http500, delay, garbage or payError",
            ));
        }
    };
    sandbox.inject_fault(&req.path, kind, req.count);
    Ok(HttpResponse::Ok().json(json!({ "path": req.path, "count": req.count })))
}

pub(crate) async fn calls(sandbox: web::Data<SandboxState>) -> HttpResponse {
    HttpResponse::Ok().json(sandbox.call_counts())
}

pub(crate) async fn reset(sandbox: web::Data<SandboxState>) -> HttpResponse {
    sandbox.reset();
    HttpResponse::Ok().json(json!({ "reset": true }))
}

#[derive(Deserialize)]
struct AdvanceBody {
    seconds: f64,
}

pub(crate) async fn advance(sandbox: web::Data<SandboxState>, body: web::Bytes) -> Reply {
    let req: AdvanceBody = json_body(&body)?;
    let by = Duration::try_from_secs_f64(req.seconds)
        .map_err(|_| bad_request("seconds must be a non-negative number"))?;
    sandbox.advance(by);
    Ok(HttpResponse::Ok().json(json!({ "now": sandbox.now().to_rfc3339() })))
}

#[derive(Deserialize)]
struct CodeBody {
    appid: Option<String>,
    user: String,
    scope: Option<String>,
}

/// The app to act for: the one named, which must be of `kind`, or the first
/// of that kind; and the user, who must exist.
fn pick_app_and_user(
    sandbox: &SandboxState,
    appid: Option<&str>,
    kind: AppKind,
    user: &str,
) -> Result<String, ControlError> {
    let app = match appid {
        Some(appid) => sandbox.app_of_kind(appid, kind),
        None => sandbox.first_app_of_kind(kind),
    };
    let Some(app) = app else {
        let what = match kind {
            AppKind::Oa => "an official account",
            AppKind::Mp => "a mini program",
        };
        return Err(bad_request(&format!("appid is not {what} of this sandbox")));
    };
    if sandbox.user(user).is_none() {
        return Err(bad_request("unknown sandbox user"));
    }
    Ok(app.appid.clone())
}

/// A web OAuth code without the browser round trip.
pub(crate) async fn oauth_code(sandbox: web::Data<SandboxState>, body: web::Bytes) -> Reply {
    let req: CodeBody = json_body(&body)?;
    let appid = pick_app_and_user(&sandbox, req.appid.as_deref(), AppKind::Oa, &req.user)?;
    let scope = req.scope.as_deref().unwrap_or("snsapi_base");
    if Scope::parse(scope).is_none() {
        return Err(bad_request("scope must be snsapi_base or snsapi_userinfo"));
    }
    let code = sandbox.issue_oauth_code(&appid, &req.user, scope);
    Ok(HttpResponse::Ok().json(json!({ "code": code })))
}

/// What `wx.login()` would give the mini program.
pub(crate) async fn mp_code(sandbox: web::Data<SandboxState>, body: web::Bytes) -> Reply {
    let req: CodeBody = json_body(&body)?;
    let appid = pick_app_and_user(&sandbox, req.appid.as_deref(), AppKind::Mp, &req.user)?;
    let code = sandbox.issue_js_code(&appid, &req.user);
    Ok(HttpResponse::Ok().json(json!({ "code": code })))
}

#[derive(Deserialize)]
struct EncryptBody {
    appid: Option<String>,
    user: String,
    data: serde_json::Value,
}

pub(crate) async fn mp_encrypt(sandbox: web::Data<SandboxState>, body: web::Bytes) -> Reply {
    let req: EncryptBody = json_body(&body)?;
    let appid = pick_app_and_user(&sandbox, req.appid.as_deref(), AppKind::Mp, &req.user)?;
    if !req.data.is_object() {
        return Err(bad_request("data must be a JSON object"));
    }
    // Data encrypted under a key the backend never saw could not be decrypted.
    if sandbox.session_key(&appid, &req.user).is_none() {
        return Err(error(
            StatusCode::CONFLICT,
            "the user has no session_key yet: exchange a code at /sns/jscode2session first",
        ));
    }
    let (encrypted_data, iv) = sandbox.encrypt_open_data(&appid, &req.user, req.data);
    Ok(HttpResponse::Ok().json(json!({ "encryptedData": encrypted_data, "iv": iv })))
}

/// The order behind a cashier link, if the link is genuine.
fn cashier_order(sandbox: &SandboxState, q: &Params) -> Option<String> {
    let store = lock(&sandbox.orders);
    let order = store.by_prepay_id(q.get("prepay_id")?)?;
    (order.mweb_package.as_deref() == q.get("package")).then(|| order.out_trade_no.clone())
}

/// WeChat's H5 cashier: what a phone browser sees after following mweb_url.
pub(crate) async fn mweb(sandbox: web::Data<SandboxState>, req: HttpRequest) -> HttpResponse {
    let q = Params::from_query(&req);
    let Some(no) = cashier_order(&sandbox, &q) else {
        return pages::cashier_message("无法支付", "订单不存在或链接已失效");
    };
    let Some(order) = sandbox.order(&no) else {
        return pages::cashier_message("无法支付", "订单不存在或链接已失效");
    };
    match order.state {
        TradeState::NotPay | TradeState::PayError => pages::cashier_page(&CashierOrder {
            body: &order.body,
            out_trade_no: &order.out_trade_no,
            total_fee: order.total_fee,
            prepay_id: &order.prepay_id,
            package: q.str("package"),
            redirect_url: q.get("redirect_url"),
        }),
        TradeState::Success | TradeState::Refund => {
            pages::cashier_message("无法支付", "该订单已支付")
        }
        TradeState::Closed => pages::cashier_message("无法支付", "订单已关闭"),
    }
}

/// The cashier's 确认支付: pays as the browser's sandbox user and notifies.
pub(crate) async fn mweb_pay(
    sandbox: web::Data<SandboxState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let form = Params::parse(&body);
    let Some(no) = cashier_order(&sandbox, &form) else {
        return pages::cashier_message("无法支付", "订单不存在或链接已失效");
    };
    let cookie = req.cookie(USER_COOKIE);
    let payer = cookie
        .as_ref()
        .map(|c| c.value())
        .filter(|k| sandbox.user(k).is_some());
    match sandbox.pay_order_as(&no, PayOptions::default(), payer) {
        Ok(_) => match form.get("redirect_url").filter(|u| is_web_url(u)) {
            Some(back) => HttpResponse::SeeOther()
                .insert_header((header::LOCATION, back))
                .finish(),
            None => pages::cashier_message("支付成功", "商户将收到支付结果通知。"),
        },
        Err(r) => pages::cashier_message("无法支付", r.message()),
    }
}

pub(crate) async fn avatar(
    sandbox: web::Data<SandboxState>,
    path: web::Path<String>,
) -> HttpResponse {
    let user = path.strip_suffix(".svg").and_then(|key| sandbox.user(key));
    match user {
        Some(u) => HttpResponse::Ok()
            .content_type("image/svg+xml")
            .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
            .body(pages::avatar_svg(u)),
        None => HttpResponse::NotFound().finish(),
    }
}

/// A JSON overview at `/sandbox/`, for humans poking at a running sandbox.
pub(crate) async fn index(sandbox: web::Data<SandboxState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "sandbox": "wechat-sandbox",
        "now": sandbox.now().to_rfc3339(),
        "apps": sandbox.apps().iter().map(|a| json!({ "appid": a.appid, "kind": a.kind })).collect::<Vec<_>>(),
        "merchants": sandbox.merchants().iter().map(|m| json!({ "mchId": m.mch_id, "appids": m.appids })).collect::<Vec<_>>(),
        "users": sandbox.users().iter().map(|u| json!({ "key": u.key, "nickname": u.nickname })).collect::<Vec<_>>(),
    }))
}
