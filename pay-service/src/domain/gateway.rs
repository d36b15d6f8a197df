//! Which WeChat Pay API an order's calls go to: the one it was created with
//! (`pay_orders.api`), whatever `PAY_API_VERSION` says now, so that orders
//! made before a switch finish on their own API. Both clients answer in the
//! same terms (`TradeState`, `RefundState`, `PayError`), so the rules above
//! this module do not know which API spoke.

use super::state::PayState;
use crate::db::orders::Order;
use crate::db::{ApiVersion, TradeType};
use crate::error::PayError;
use crate::wechat::v3::{V3Api, V3Prepay, V3RefundRequest, V3Scene};
use crate::wechat::{
    CloseOrderRequest, OrderQueryRequest, RefundQueryRequest, RefundRequest, RefundState, Scene,
    TradeState, UnifiedOrderRequest,
};

/// The v3 client, or why there is none for an order that needs it.
pub(super) fn v3_api(state: &PayState) -> Result<&V3Api, PayError> {
    state.v3.as_ref().ok_or_else(|| {
        PayError::Internal("a v3 order, but APIv3 is not configured (MCH_API_V3_KEY)".into())
    })
}

/// What WeChat answered for a new order.
pub(super) struct Prepaid {
    pub prepay_id: String,
    pub pay_url: Option<String>,
}

/// unifiedorder (v2) or `/v3/pay/transactions/*` (v3).
pub(super) async fn prepay(state: &PayState, order: &Order) -> Result<Prepaid, PayError> {
    let public_base = state.config.common.public_base_url.to_string();
    match order.api {
        ApiVersion::V2 => {
            let scene = match order.trade_type {
                TradeType::Jsapi => Scene::Jsapi {
                    openid: order.openid.clone(),
                },
                TradeType::Native => Scene::Native {
                    product_id: order.out_trade_no.clone(),
                },
                TradeType::Mweb => Scene::Mweb {
                    wap_url: public_base,
                },
            };
            let req = UnifiedOrderRequest {
                appid: order.appid.clone(),
                body: order.description.clone(),
                out_trade_no: order.out_trade_no.clone(),
                total_fee: order.amount_fen,
                spbill_create_ip: order.client_ip.clone(),
                notify_url: state.config.notify_url(),
                time_expire: order.expires_at,
                scene,
            };
            let reply = state.pay.unified_order(&req).await?;
            Ok(Prepaid {
                prepay_id: reply.prepay_id,
                pay_url: reply.pay_url,
            })
        }
        ApiVersion::V3 => {
            let scene = match order.trade_type {
                TradeType::Jsapi => V3Scene::Jsapi {
                    openid: order.openid.clone(),
                },
                TradeType::Native => V3Scene::Native,
                TradeType::Mweb => V3Scene::H5 {
                    app_url: public_base,
                },
            };
            let req = V3Prepay {
                appid: order.appid.clone(),
                description: order.description.clone(),
                out_trade_no: order.out_trade_no.clone(),
                time_expire: order.expires_at,
                notify_url: state.config.v3_notify_url(),
                total: order.amount_fen,
                payer_client_ip: order.client_ip.clone(),
                scene,
            };
            let reply = v3_api(state)?.prepay(&req).await?;
            Ok(Prepaid {
                prepay_id: reply.prepay_id,
                pay_url: reply.pay_url,
            })
        }
    }
}

/// orderquery (v2) or the query by out_trade_no (v3).
pub(super) async fn query(state: &PayState, order: &Order) -> Result<TradeState, PayError> {
    match order.api {
        ApiVersion::V2 => {
            state
                .pay
                .order_query(&OrderQueryRequest {
                    appid: order.appid.clone(),
                    out_trade_no: order.out_trade_no.clone(),
                })
                .await
        }
        ApiVersion::V3 => v3_api(state)?.query_order(&order.out_trade_no).await,
    }
}

/// closeorder (v2) or `…/close` (v3). ORDERPAID comes back as `PayRefused`.
pub(super) async fn close(state: &PayState, order: &Order) -> Result<(), PayError> {
    match order.api {
        ApiVersion::V2 => {
            state
                .pay
                .close_order(&CloseOrderRequest {
                    appid: order.appid.clone(),
                    out_trade_no: order.out_trade_no.clone(),
                })
                .await
        }
        ApiVersion::V3 => v3_api(state)?.close_order(&order.out_trade_no).await,
    }
}

/// Asks WeChat to refund `amount_fen` of `order`; Ok is its `refund_id`.
/// v2 goes over TLS with the merchant certificate and notifies
/// `/api/pay/refund-notify`; v3 is signed and notifies
/// `/api/pay/v3/refund-notify`.
pub(super) async fn refund(
    state: &PayState,
    order: &Order,
    out_refund_no: &str,
    amount_fen: i64,
    reason: String,
) -> Result<String, PayError> {
    match order.api {
        ApiVersion::V2 => {
            let client = state
                .refund_client
                .clone()
                .ok_or_else(|| PayError::Internal("refunds are not configured".into()))?;
            let req = RefundRequest {
                appid: order.appid.clone(),
                out_trade_no: order.out_trade_no.clone(),
                out_refund_no: out_refund_no.to_owned(),
                total_fee: order.amount_fen,
                refund_fee: amount_fen,
                reason,
                notify_url: state.config.refund_notify_url(),
            };
            Ok(state.pay.refund(&client, &req).await?.refund_id)
        }
        ApiVersion::V3 => {
            let req = V3RefundRequest::new(
                &order.out_trade_no,
                out_refund_no,
                amount_fen,
                order.amount_fen,
                &reason,
                state.config.v3_refund_notify_url(),
            );
            v3_api(state)?.refund(&req).await
        }
    }
}

/// refundquery (v2) or the refund query (v3); None when WeChat has no such
/// refund.
pub(super) async fn refund_query(
    state: &PayState,
    order: &Order,
    out_refund_no: &str,
) -> Result<Option<RefundState>, PayError> {
    match order.api {
        ApiVersion::V2 => {
            state
                .pay
                .refund_query(&RefundQueryRequest {
                    appid: order.appid.clone(),
                    out_refund_no: out_refund_no.to_owned(),
                })
                .await
        }
        ApiVersion::V3 => v3_api(state)?.refund_query(out_refund_no).await,
    }
}
