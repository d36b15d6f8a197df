//! `/pay/unifiedorder`: WeChat learns of an order and answers its prepay_id
//! (and, for NATIVE and MWEB, the URL the payer opens).

use std::collections::BTreeMap;

use super::{PayApi, PayRequest, beijing};
use crate::error::PayError;

const PATH: &str = "/pay/unifiedorder";

/// Where the payer pays, with what each trade type adds to the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scene {
    /// JSAPI: inside WeChat, as this user of the app.
    Jsapi { openid: String },
    /// NATIVE: by scanning a QR code of `code_url`.
    Native { product_id: String },
    /// MWEB: in a phone browser, coming from `wap_url`.
    Mweb { wap_url: String },
}

impl Scene {
    fn trade_type(&self) -> &'static str {
        match self {
            Scene::Jsapi { .. } => "JSAPI",
            Scene::Native { .. } => "NATIVE",
            Scene::Mweb { .. } => "MWEB",
        }
    }
}

#[derive(Debug, Clone)]
pub struct UnifiedOrderRequest {
    pub appid: String,
    /// The order's description.
    pub body: String,
    pub out_trade_no: String,
    /// In fen, CNY.
    pub total_fee: i64,
    pub spbill_create_ip: String,
    pub notify_url: String,
    /// Unix seconds; sent as Beijing time.
    pub time_expire: i64,
    pub scene: Scene,
}

impl PayRequest for UnifiedOrderRequest {
    fn fields(&self) -> BTreeMap<String, String> {
        let mut fields = BTreeMap::from([
            ("appid".to_owned(), self.appid.clone()),
            ("body".to_owned(), self.body.clone()),
            ("out_trade_no".to_owned(), self.out_trade_no.clone()),
            ("total_fee".to_owned(), self.total_fee.to_string()),
            ("fee_type".to_owned(), "CNY".to_owned()),
            ("spbill_create_ip".to_owned(), self.spbill_create_ip.clone()),
            ("notify_url".to_owned(), self.notify_url.clone()),
            ("trade_type".to_owned(), self.scene.trade_type().to_owned()),
            ("time_expire".to_owned(), beijing::format(self.time_expire)),
        ]);
        let (key, value) = match &self.scene {
            Scene::Jsapi { openid } => ("openid", openid.clone()),
            Scene::Native { product_id } => ("product_id", product_id.clone()),
            Scene::Mweb { wap_url } => (
                "scene_info",
                serde_json::json!({"h5_info": {
                    "type": "Wap",
                    "wap_url": wap_url,
                    "wap_name": "wxpay",
                }})
                .to_string(),
            ),
        };
        fields.insert(key.to_owned(), value);
        fields
    }
}

/// What WeChat answered: the prepay_id, and the URL the payer opens
/// (`code_url` for NATIVE, `mweb_url` for MWEB; none for JSAPI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnifiedOrderReply {
    pub prepay_id: String,
    pub pay_url: Option<String>,
}

impl UnifiedOrderReply {
    fn from_fields(scene: &Scene, reply: &BTreeMap<String, String>) -> Result<Self, PayError> {
        let prepay_id = reply
            .get("prepay_id")
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                PayError::PayUnusable("Pay unifiedorder reply has no prepay_id".into())
            })?;
        let url = |key: &str| {
            reply.get(key).cloned().ok_or_else(|| {
                PayError::PayUnusable(format!("Pay unifiedorder reply has no {key}"))
            })
        };
        let pay_url = match scene {
            Scene::Jsapi { .. } => None,
            Scene::Native { .. } => Some(url("code_url")?),
            Scene::Mweb { .. } => Some(url("mweb_url")?),
        };
        Ok(UnifiedOrderReply {
            prepay_id: prepay_id.clone(),
            pay_url,
        })
    }
}

impl PayApi {
    /// `/pay/unifiedorder`. A retry sends the same request, which WeChat
    /// accepts for the same out_trade_no.
    pub async fn unified_order(
        &self,
        req: &UnifiedOrderRequest,
    ) -> Result<UnifiedOrderReply, PayError> {
        let reply = self.call_pay(PATH, req).await?;
        UnifiedOrderReply::from_fields(&req.scene, &reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(scene: Scene) -> UnifiedOrderRequest {
        UnifiedOrderRequest {
            appid: "wxmp".into(),
            body: "tea".into(),
            out_trade_no: "N1".into(),
            total_fee: 100,
            spbill_create_ip: "127.0.0.1".into(),
            notify_url: "https://shop.example/api/pay/notify".into(),
            time_expire: 1_709_310_605,
            scene,
        }
    }

    #[test]
    fn fields_carry_the_trade_type_and_its_own_parameter() {
        let f = request(Scene::Jsapi {
            openid: "o1".into(),
        })
        .fields();
        assert_eq!(f["trade_type"], "JSAPI");
        assert_eq!(f["openid"], "o1");
        assert_eq!(f["time_expire"], "20240302003005");
        assert_eq!(f["fee_type"], "CNY");
        assert_eq!(f["total_fee"], "100");
        let f = request(Scene::Native {
            product_id: "N1".into(),
        })
        .fields();
        assert_eq!(
            (f["trade_type"].as_str(), f["product_id"].as_str()),
            ("NATIVE", "N1")
        );
        let f = request(Scene::Mweb {
            wap_url: "https://shop.example/".into(),
        })
        .fields();
        assert_eq!(f["trade_type"], "MWEB");
        let info: serde_json::Value = serde_json::from_str(&f["scene_info"]).unwrap();
        assert_eq!(info["h5_info"]["wap_url"], "https://shop.example/");
        assert!(!f.contains_key("openid"));
    }

    #[test]
    fn reply_needs_the_url_of_its_scene() {
        let reply = BTreeMap::from([("prepay_id".to_owned(), "wx1".to_owned())]);
        let native = Scene::Native {
            product_id: "N1".into(),
        };
        let e = UnifiedOrderReply::from_fields(&native, &reply).unwrap_err();
        assert_eq!(e.to_string(), "Pay unifiedorder reply has no code_url");
        let jsapi = Scene::Jsapi { openid: "o".into() };
        assert_eq!(
            UnifiedOrderReply::from_fields(&jsapi, &reply).unwrap(),
            UnifiedOrderReply {
                prepay_id: "wx1".into(),
                pay_url: None
            }
        );
        let e = UnifiedOrderReply::from_fields(&jsapi, &BTreeMap::new()).unwrap_err();
        assert_eq!(e.to_string(), "Pay unifiedorder reply has no prepay_id");
    }
}
