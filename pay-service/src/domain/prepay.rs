//! Making sure WeChat has an order: unifiedorder, called until it answered
//! once. A retry sends the same parameters (time_expire included), which
//! WeChat accepts for the same out_trade_no.

use shared::db::now_unix;

use super::audit::Cause;
use super::state::PayState;
use super::trade::{self, close_locally};
use crate::db::orders::{self, Order};
use crate::db::{Status, TradeType};
use crate::error::PayError;
use crate::wechat::{Scene, UnifiedOrderRequest};

/// WeChat refuses a time_expire less than this many seconds away.
const MIN_EXPIRY_AHEAD: i64 = 300;

/// Calls unifiedorder unless WeChat already answered for this order; the
/// returned order has a prepay_id.
pub(super) async fn ensure(
    state: &PayState,
    order: Order,
    request_id: &str,
) -> Result<Order, PayError> {
    if order.prepay_id.is_some() {
        return Ok(order);
    }
    check_payable(&order)?;
    let req = unified_order(state, &order);
    let reply = match state.pay.unified_order(&req).await {
        Ok(reply) => reply,
        Err(PayError::PayRefused { code, description }) => {
            after_refusal(state, &order, &code, request_id).await?;
            return Err(PayError::PayRefused { code, description });
        }
        Err(e) => return Err(e),
    };
    Ok(orders::set_prepay(
        &state.db,
        &order.out_trade_no,
        &reply.prepay_id,
        reply.pay_url,
    )
    .await?)
}

/// Only a NOTPAY order that has not (nearly) expired can be sent.
fn check_payable(order: &Order) -> Result<(), PayError> {
    if order.status != Status::NotPay {
        return Err(PayError::Conflict(format!(
            "order {} is {}",
            order.out_trade_no,
            order.status.as_str()
        )));
    }
    // A replay that late gets a clear answer instead of WeChat's refusal.
    if order.expires_at < now_unix() + MIN_EXPIRY_AHEAD {
        return Err(PayError::Conflict(format!(
            "order {} has expired; place a new one",
            order.out_trade_no
        )));
    }
    Ok(())
}

/// The order as unifiedorder takes it.
fn unified_order(state: &PayState, order: &Order) -> UnifiedOrderRequest {
    let scene = match order.trade_type {
        TradeType::Jsapi => Scene::Jsapi {
            openid: order.openid.clone(),
        },
        TradeType::Native => Scene::Native {
            product_id: order.out_trade_no.clone(),
        },
        TradeType::Mweb => Scene::Mweb {
            wap_url: state.config.common.public_base_url.to_string(),
        },
    };
    UnifiedOrderRequest {
        appid: order.appid.clone(),
        body: order.description.clone(),
        out_trade_no: order.out_trade_no.clone(),
        total_fee: order.amount_fen,
        spbill_create_ip: order.client_ip.clone(),
        notify_url: state.config.notify_url(),
        time_expire: order.expires_at,
        scene,
    }
}

/// What WeChat's refusal means for the order here.
async fn after_refusal(
    state: &PayState,
    order: &Order,
    code: &str,
    request_id: &str,
) -> Result<(), PayError> {
    match code {
        // WeChat asks for a retry with the same parameters.
        "SYSTEMERROR" => {}
        "ORDERPAID" => {
            trade::sync(state, order.clone(), &Cause::request("query", request_id)).await?;
        }
        // Refused for good: the order can never be paid.
        _ => {
            let cause = Cause::request("unifiedorder", request_id);
            close_locally(state, &order.out_trade_no, &cause).await?;
        }
    }
    Ok(())
}
