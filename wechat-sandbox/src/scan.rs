//! The phone that scans a NATIVE order's QR code: `code_url` opened in the
//! sandbox shows the payment sheet WeChat would show after a scan, and
//! 确认支付 pays as the browser's sandbox user (cookie `sandbox_user`, set on
//! the consent page), else the first test user.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::clock::lock;
use crate::oauth::USER_COOKIE;
use crate::pages::{self, ScanCashier};
use crate::params::Params;
use crate::pay::notify::PayOptions;
use crate::state::SandboxState;
use crate::store::TradeState;

impl SandboxState {
    /// The NATIVE order whose `code_url` this is.
    fn order_by_code_url(&self, code_url: &str) -> Option<String> {
        lock(&self.orders)
            .orders
            .values()
            .find(|o| o.code_url.as_deref() == Some(code_url))
            .map(|o| o.out_trade_no.clone())
    }

    /// The test user this browser pays as.
    fn payer_key(&self, req: &HttpRequest) -> String {
        req.cookie(USER_COOKIE)
            .map(|c| c.value().to_owned())
            .filter(|k| self.user(k).is_some())
            .or_else(|| self.users.first().map(|u| u.key.clone()))
            .unwrap_or_default()
    }
}

const GONE: &str = "二维码已失效或订单不存在";

/// `GET /sandbox/native?code_url=weixin://wxpay/bizpayurl?pr=…`
pub(crate) async fn scan(sandbox: web::Data<SandboxState>, req: HttpRequest) -> HttpResponse {
    let q = Params::from_query(&req);
    let code_url = q.str("code_url");
    let Some(order) = sandbox
        .order_by_code_url(code_url)
        .and_then(|no| sandbox.order(&no))
    else {
        return pages::cashier_message("无法支付", GONE);
    };
    match order.state {
        TradeState::NotPay | TradeState::PayError => {
            let payer = sandbox.payer_key(&req);
            let nickname = sandbox
                .user(&payer)
                .map(|u| u.nickname.as_str())
                .unwrap_or_default();
            pages::scan_cashier_page(&ScanCashier {
                body: &order.body,
                out_trade_no: &order.out_trade_no,
                total_fee: order.total_fee,
                code_url,
                payer: nickname,
            })
        }
        TradeState::Success | TradeState::Refund => {
            pages::cashier_message("无法支付", "该订单已支付")
        }
        TradeState::Closed => pages::cashier_message("无法支付", "订单已关闭"),
    }
}

/// `POST /sandbox/native/pay` (form `code_url`): 确认支付 after the scan.
pub(crate) async fn pay(
    sandbox: web::Data<SandboxState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let form = Params::parse(&body);
    let Some(no) = sandbox.order_by_code_url(form.str("code_url")) else {
        return pages::cashier_message("无法支付", GONE);
    };
    let payer = sandbox.payer_key(&req);
    match sandbox.pay_order_as(&no, PayOptions::default(), Some(&payer)) {
        Ok(_) => pages::cashier_message("支付成功", "商户将收到支付结果通知。"),
        Err(r) => pages::cashier_message("无法支付", r.message()),
    }
}
