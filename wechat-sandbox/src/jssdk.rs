//! The JS-SDK stand-in for pages outside WeChat: `/sandbox/jweixin.js` (the
//! `wx` object of weixin-js-sdk), the checks WeChat makes behind `wx.config`
//! (signature over the current jsapi_ticket) and `wx.chooseWXPay` (paySign
//! with the merchant key for v2 orders, RSA with the merchant certificate for
//! v3 orders), and the JSAPI cashier a person confirms or cancels.
//!
//! The script calls `POST /sandbox/jssdk/verify` and `POST /sandbox/jssdk/pay`
//! from the merchant's page, so those two answer CORS from any origin (as
//! WeChat's JS-SDK works on any page whose signature is right); they carry no
//! secrets. The cashier runs in an iframe on the sandbox's origin and reports
//! back with `postMessage`, so the merchant page cannot press 确认支付 itself.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use shared::sign::{SignType, constant_time_eq, jssdk_signature, pay_sign_pairs, strip_fragment};

use crate::clock::lock;
use crate::config::AppKind;
use crate::ids;
use crate::oauth::{encode_pairs, is_web_url};
use crate::pages::{self, JsapiCashier};
use crate::params::Params;
use crate::pay::notify::{PayOptions, PayRefusal};
use crate::state::SandboxState;
use crate::store::{CashierTicket, PayApi, TradeState};
use shared::wechatpay_v3::{JSAPI_SIGN_TYPE, jsapi_pay_message};

/// The script, with `__SANDBOX_BASE__` standing for the sandbox's base URL.
const JWEIXIN_JS: &str = include_str!("jweixin.js");

/// A cashier link lives as long as a person might take to decide.
const CASHIER_TTL: Duration = Duration::from_secs(15 * 60);

/// What the cashier page posts to its parent: `chooseWXPay:ok` or `:cancel`,
/// as WeChat reports them to `success` and `cancel`.
const PAY_OK: &str = "chooseWXPay:ok";
const PAY_CANCEL: &str = "chooseWXPay:cancel";
const PAY_FAIL: &str = "chooseWXPay:fail";

const CONFIG_OK: &str = "config:ok";
const INVALID_SIGNATURE: &str = "config:invalid signature";
const INVALID_URL: &str = "config:invalid url domain";
const INVALID_APPID: &str = "config:fail,Error: 系统错误，错误码：40013,invalid appid";

/// `signType` of pay parameters: v2's MD5 / HMAC-SHA256, or v3's RSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PaySignType {
    V2(SignType),
    Rsa,
}

impl PaySignType {
    fn parse(s: &str) -> Option<Self> {
        if s == JSAPI_SIGN_TYPE {
            return Some(PaySignType::Rsa);
        }
        SignType::parse(s).map(PaySignType::V2)
    }
}

/// Why `chooseWXPay` refused, as the `fail` errMsg WeChat would give.
fn pay_fail(why: &str) -> String {
    format!("{PAY_FAIL}, {why}")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VerifyBody {
    #[serde(default)]
    app_id: String,
    /// WeChat takes a number or a string of digits.
    #[serde(default)]
    timestamp: serde_json::Value,
    #[serde(default)]
    nonce_str: String,
    #[serde(default)]
    signature: String,
    /// The page's own `location.href`, as the script sees it.
    #[serde(default)]
    url: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PayBody {
    #[serde(default)]
    app_id: String,
    #[serde(default)]
    time_stamp: String,
    #[serde(default)]
    nonce_str: String,
    #[serde(default)]
    package: String,
    #[serde(default)]
    sign_type: String,
    #[serde(default)]
    pay_sign: String,
}

fn timestamp_of(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    }
}

impl SandboxState {
    /// What `wx.config` gets: `config:ok` when `signature` is the SHA-1 of the
    /// app's current jsapi_ticket, the nonce, the timestamp and the page URL
    /// (without its fragment); WeChat's error message otherwise.
    pub fn verify_jssdk_config(
        &self,
        app_id: &str,
        timestamp: i64,
        nonce_str: &str,
        signature: &str,
        page_url: &str,
    ) -> &'static str {
        if self.app_of_kind(app_id, AppKind::Oa).is_none() {
            return INVALID_APPID;
        }
        let url = strip_fragment(page_url);
        if !is_web_url(url) {
            return INVALID_URL;
        }
        // No ticket was ever fetched, or it expired: nothing can match.
        let Some(ticket) = self.current_jsapi_ticket(app_id) else {
            return INVALID_SIGNATURE;
        };
        let expected = jssdk_signature(&ticket, nonce_str, timestamp, url);
        if constant_time_eq(
            expected.as_bytes(),
            signature.to_ascii_lowercase().as_bytes(),
        ) {
            CONFIG_OK
        } else {
            INVALID_SIGNATURE
        }
    }

    /// The checks behind `wx.chooseWXPay`: the JSAPI order named by `package`
    /// exists for this app, can still be paid, and `paySign` is the
    /// merchant's: for a v2 order the MD5/HMAC sign over appId, timeStamp,
    /// nonceStr, package and signType with the merchant key; for a v3 order
    /// (`signType: "RSA"`) SHA256withRSA over `appId\ntimeStamp\nnonceStr\npackage\n`,
    /// checked with the merchant certificate's key. Returns a single-use
    /// cashier ticket, or the `fail` errMsg.
    fn open_cashier(&self, p: &PayBody) -> Result<String, String> {
        let prepay_id = p
            .package
            .strip_prefix("prepay_id=")
            .filter(|id| !id.is_empty())
            .ok_or_else(|| pay_fail("package 参数格式错误"))?;
        let sign_type =
            PaySignType::parse(&p.sign_type).ok_or_else(|| pay_fail("signType 参数格式错误"))?;
        let (out_trade_no, api, key) = self.payable_jsapi_order(prepay_id, &p.app_id)?;
        let signed = !p.time_stamp.is_empty()
            && !p.nonce_str.is_empty()
            && match (sign_type, api) {
                (PaySignType::V2(t), PayApi::V2) => self.v2_pay_sign_holds(p, t, &key),
                (PaySignType::Rsa, PayApi::V3) => self.rsa_pay_sign_holds(p),
                _ => false,
            };
        if !signed {
            return Err(pay_fail("支付验证签名失败"));
        }
        let ticket = ids::alnum(32);
        let elapsed = self.clock.elapsed();
        let mut cashier = lock(&self.cashier);
        cashier
            .tickets
            .retain(|_, t| elapsed.saturating_sub(t.issued) < CASHIER_TTL);
        cashier.tickets.insert(
            ticket.clone(),
            CashierTicket {
                out_trade_no,
                issued: elapsed,
            },
        );
        Ok(ticket)
    }

    /// The unpaid JSAPI order of `app_id` with this prepay_id: its number,
    /// API and merchant key.
    fn payable_jsapi_order(
        &self,
        prepay_id: &str,
        app_id: &str,
    ) -> Result<(String, PayApi, String), String> {
        let now = self.now();
        let store = lock(&self.orders);
        let order = store
            .by_prepay_id(prepay_id)
            .filter(|o| o.appid == app_id && o.trade_type == "JSAPI")
            .ok_or_else(|| pay_fail("订单不存在或 prepay_id 已失效"))?;
        match order.state_at(now) {
            TradeState::NotPay | TradeState::PayError => {}
            TradeState::Success | TradeState::Refund => {
                return Err(pay_fail("该订单已支付"));
            }
            TradeState::Closed => return Err(pay_fail("订单已关闭")),
        }
        let key = self
            .merchant(&order.mch_id)
            .map(|m| m.key.clone())
            .ok_or_else(|| pay_fail("商户不存在"))?;
        Ok((order.out_trade_no.clone(), order.api, key))
    }

    fn v2_pay_sign_holds(&self, p: &PayBody, sign_type: SignType, key: &str) -> bool {
        let expected = pay_sign_pairs(
            [
                ("appId", p.app_id.as_str()),
                ("timeStamp", p.time_stamp.as_str()),
                ("nonceStr", p.nonce_str.as_str()),
                ("package", p.package.as_str()),
                ("signType", sign_type.as_str()),
            ],
            key,
            sign_type,
        );
        constant_time_eq(
            expected.as_bytes(),
            p.pay_sign.to_ascii_uppercase().as_bytes(),
        )
    }

    fn rsa_pay_sign_holds(&self, p: &PayBody) -> bool {
        let message = jsapi_pay_message(&p.app_id, &p.time_stamp, &p.nonce_str, &p.package);
        self.v3
            .merchant_public_key()
            .verify(message.as_bytes(), &p.pay_sign)
            .is_ok()
    }

    /// The order behind a live cashier ticket.
    fn cashier_order(&self, ticket: &str) -> Option<String> {
        let elapsed = self.clock.elapsed();
        lock(&self.cashier)
            .tickets
            .get(ticket)
            .filter(|t| elapsed.saturating_sub(t.issued) < CASHIER_TTL)
            .map(|t| t.out_trade_no.clone())
    }

    /// Ends a cashier ticket: each one pays or cancels once.
    fn take_cashier_ticket(&self, ticket: &str) -> Option<String> {
        let elapsed = self.clock.elapsed();
        lock(&self.cashier)
            .tickets
            .remove(ticket)
            .filter(|t| elapsed.saturating_sub(t.issued) < CASHIER_TTL)
            .map(|t| t.out_trade_no)
    }
}

fn control_error(message: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "error": message }))
}

/// `GET /sandbox/jweixin.js`
pub(crate) async fn script(sandbox: web::Data<SandboxState>) -> HttpResponse {
    // A JSON string is a valid JS string literal; `</` cannot end a script
    // element because the file is never inlined, but escape it anyway.
    let base = serde_json::to_string(sandbox.public_base_url())
        .unwrap_or_else(|_| "\"\"".into())
        .replace("</", "<\\/");
    HttpResponse::Ok()
        .content_type("application/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(JWEIXIN_JS.replace("__SANDBOX_BASE__", &base))
}

/// `POST /sandbox/jssdk/verify`: `{appId, timestamp, nonceStr, signature, url}`
/// → `{errMsg}`, HTTP 200 whether or not the signature holds.
pub(crate) async fn verify(sandbox: web::Data<SandboxState>, body: web::Bytes) -> HttpResponse {
    let Ok(req) = serde_json::from_slice::<VerifyBody>(&body) else {
        return control_error("body must be a JSON object");
    };
    let err_msg = match timestamp_of(&req.timestamp) {
        // A timestamp that is not a number cannot be what was signed.
        None => INVALID_SIGNATURE,
        Some(ts) => {
            sandbox.verify_jssdk_config(&req.app_id, ts, &req.nonce_str, &req.signature, &req.url)
        }
    };
    HttpResponse::Ok().json(json!({ "errMsg": err_msg }))
}

/// `POST /sandbox/jssdk/pay`: the `chooseWXPay` parameters plus the configured
/// appId → `{errMsg: "chooseWXPay:ok", cashierUrl}` or `{errMsg: "chooseWXPay:fail, …"}`.
pub(crate) async fn pay(sandbox: web::Data<SandboxState>, body: web::Bytes) -> HttpResponse {
    let Ok(req) = serde_json::from_slice::<PayBody>(&body) else {
        return control_error("body must be a JSON object");
    };
    match sandbox.open_cashier(&req) {
        Ok(ticket) => HttpResponse::Ok().json(json!({
            "errMsg": PAY_OK,
            "cashierUrl": format!(
                "{}/sandbox/jsapi/cashier?{}",
                sandbox.public_base_url(),
                encode_pairs(&[("ticket", &ticket)])
            ),
        })),
        Err(err_msg) => HttpResponse::Ok().json(json!({ "errMsg": err_msg })),
    }
}

/// `GET /sandbox/jsapi/cashier?ticket=T`: the payment sheet.
pub(crate) async fn cashier(sandbox: web::Data<SandboxState>, req: HttpRequest) -> HttpResponse {
    let q = Params::from_query(&req);
    let ticket = q.str("ticket");
    let order = sandbox
        .cashier_order(ticket)
        .and_then(|no| sandbox.order(&no));
    match order {
        Some(o) => pages::jsapi_cashier_page(&JsapiCashier {
            body: &o.body,
            out_trade_no: &o.out_trade_no,
            total_fee: o.total_fee,
            ticket,
        }),
        None => pages::jsapi_cashier_result(
            "无法支付",
            "支付链接已失效，请返回商户页面重新发起支付。",
            &pay_fail("支付链接已失效"),
        ),
    }
}

/// `POST /sandbox/jsapi/cashier/confirm` (form `ticket`): 确认支付 pays the
/// order as its JSAPI payer and sends the notification.
pub(crate) async fn confirm(sandbox: web::Data<SandboxState>, body: web::Bytes) -> HttpResponse {
    let form = Params::parse(&body);
    let Some(no) = sandbox.take_cashier_ticket(form.str("ticket")) else {
        return pages::jsapi_cashier_result(
            "无法支付",
            "支付链接已失效，请返回商户页面重新发起支付。",
            &pay_fail("支付链接已失效"),
        );
    };
    match sandbox.pay_order_as(&no, PayOptions::default(), None) {
        Ok(_) => pages::jsapi_cashier_result("支付成功", "商户将收到支付结果通知。", PAY_OK),
        Err(r) => {
            let why = match r {
                PayRefusal::AlreadyPaid => "该订单已支付",
                PayRefusal::Closed | PayRefusal::Expired => "订单已关闭",
                PayRefusal::NotFound | PayRefusal::UnknownUser => "订单不存在",
            };
            pages::jsapi_cashier_result("无法支付", why, &pay_fail(why))
        }
    }
}

/// `POST /sandbox/jsapi/cashier/cancel` (form `ticket`): 取消 leaves the order unpaid.
pub(crate) async fn cancel(sandbox: web::Data<SandboxState>, body: web::Bytes) -> HttpResponse {
    let form = Params::parse(&body);
    // Cancelling a dead ticket is still a cancel for the page that shows it.
    let _ = sandbox.take_cashier_ticket(form.str("ticket"));
    pages::jsapi_cashier_result("已取消支付", "订单未支付。", PAY_CANCEL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_numbers_or_digit_strings() {
        assert_eq!(timestamp_of(&json!(1700000000)), Some(1700000000));
        assert_eq!(timestamp_of(&json!("1700000000")), Some(1700000000));
        assert_eq!(timestamp_of(&json!("17e8")), None);
        assert_eq!(timestamp_of(&json!("")), None);
        assert_eq!(timestamp_of(&json!(1.5)), None);
        assert_eq!(timestamp_of(&serde_json::Value::Null), None);
    }

    #[test]
    fn the_script_names_every_api_it_stands_in_for() {
        for api in [
            "wx.config",
            "wx.ready",
            "wx.error",
            "wx.checkJsApi",
            "wx.updateAppMessageShareData",
            "wx.updateTimelineShareData",
            "wx.chooseWXPay",
        ] {
            assert!(JWEIXIN_JS.contains(&format!("{api} =")), "{api}");
        }
        assert_eq!(JWEIXIN_JS.matches("__SANDBOX_BASE__").count(), 1);
    }
}
