//! Making sure WeChat has an order: unifiedorder (v2) or
//! `/v3/pay/transactions/*` (v3), by the order's API, called until it
//! answered once. A retry sends the same parameters (time_expire included),
//! which WeChat accepts for the same out_trade_no.

use shared::db::now_unix;

use super::audit::Cause;
use super::gateway;
use super::state::PayState;
use super::trade::{self, close_locally};
use crate::db::Status;
use crate::db::orders::{self, Order};
use crate::error::PayError;

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
    let reply = match gateway::prepay(state, &order).await {
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

/// What WeChat's refusal means for the order here.
async fn after_refusal(
    state: &PayState,
    order: &Order,
    code: &str,
    request_id: &str,
) -> Result<(), PayError> {
    match code {
        // WeChat asks for a retry with the same parameters (v2, v3), or
        // refused us rather than the order (v3: rate, our signature).
        "SYSTEMERROR" | "SYSTEM_ERROR" | "FREQUENCY_LIMITED" | "SIGN_ERROR" => {}
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
