//! `POST /v3/pay/transactions/{jsapi,h5,native}`: WeChat learns of an order
//! and answers its `prepay_id` (JSAPI), `h5_url` (H5) or `code_url` (Native).

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::{V3Api, parse, rfc3339_beijing};
use crate::error::PayError;

/// Where the payer pays, with what each trade type adds to the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V3Scene {
    /// JSAPI (mini program or official account): `payer.openid`.
    Jsapi { openid: String },
    /// H5: `scene_info.h5_info`, required by WeChat.
    H5 { app_url: String },
    /// Native: a QR code of `code_url`.
    Native,
}

impl V3Scene {
    fn path(&self) -> &'static str {
        match self {
            V3Scene::Jsapi { .. } => "/v3/pay/transactions/jsapi",
            V3Scene::H5 { .. } => "/v3/pay/transactions/h5",
            V3Scene::Native => "/v3/pay/transactions/native",
        }
    }
}

/// The order as the three endpoints take it.
#[derive(Debug, Clone)]
pub struct V3Prepay {
    pub appid: String,
    pub description: String,
    pub out_trade_no: String,
    /// Unix seconds; sent as RFC 3339 Beijing time.
    pub time_expire: i64,
    pub notify_url: String,
    /// In fen, CNY.
    pub total: i64,
    pub payer_client_ip: String,
    pub scene: V3Scene,
}

#[derive(Serialize)]
struct Body<'a> {
    appid: &'a str,
    mchid: &'a str,
    description: &'a str,
    out_trade_no: &'a str,
    time_expire: String,
    notify_url: &'a str,
    amount: Amount,
    #[serde(skip_serializing_if = "Option::is_none")]
    payer: Option<Payer<'a>>,
    scene_info: SceneInfo<'a>,
}

#[derive(Serialize)]
struct Amount {
    total: i64,
    currency: &'static str,
}

#[derive(Serialize)]
struct Payer<'a> {
    openid: &'a str,
}

#[derive(Serialize)]
struct SceneInfo<'a> {
    payer_client_ip: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    h5_info: Option<H5Info<'a>>,
}

#[derive(Serialize)]
struct H5Info<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    app_name: &'static str,
    app_url: &'a str,
}

impl V3Prepay {
    /// The JSON body, with `mchid`.
    pub fn body(&self, mchid: &str) -> String {
        let body = Body {
            appid: &self.appid,
            mchid,
            description: &self.description,
            out_trade_no: &self.out_trade_no,
            time_expire: rfc3339_beijing(self.time_expire),
            notify_url: &self.notify_url,
            amount: Amount {
                total: self.total,
                currency: "CNY",
            },
            payer: match &self.scene {
                V3Scene::Jsapi { openid } => Some(Payer { openid }),
                _ => None,
            },
            scene_info: SceneInfo {
                payer_client_ip: &self.payer_client_ip,
                h5_info: match &self.scene {
                    V3Scene::H5 { app_url } => Some(H5Info {
                        kind: "Wap",
                        app_name: "wxpay",
                        app_url,
                    }),
                    _ => None,
                },
            },
        };
        serde_json::to_string(&body).unwrap_or_default()
    }
}

#[derive(Deserialize)]
struct Answer {
    prepay_id: Option<String>,
    h5_url: Option<String>,
    code_url: Option<String>,
}

/// What WeChat answered. v3 gives H5 and Native orders no prepay_id, only
/// their URL, which then stands for "WeChat has the order" in `prepay_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V3PrepayReply {
    pub prepay_id: String,
    /// `h5_url` (H5) or `code_url` (Native); None for JSAPI.
    pub pay_url: Option<String>,
}

impl V3PrepayReply {
    fn from_answer(scene: &V3Scene, a: Answer) -> Result<Self, PayError> {
        let missing =
            |what: &str| PayError::PayUnusable(format!("Pay v3 transactions answer has no {what}"));
        let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
        match scene {
            V3Scene::Jsapi { .. } => Ok(V3PrepayReply {
                prepay_id: non_empty(a.prepay_id).ok_or_else(|| missing("prepay_id"))?,
                pay_url: None,
            }),
            V3Scene::H5 { .. } => {
                let url = non_empty(a.h5_url).ok_or_else(|| missing("h5_url"))?;
                Ok(V3PrepayReply {
                    prepay_id: url.clone(),
                    pay_url: Some(url),
                })
            }
            V3Scene::Native => {
                let url = non_empty(a.code_url).ok_or_else(|| missing("code_url"))?;
                Ok(V3PrepayReply {
                    prepay_id: url.clone(),
                    pay_url: Some(url),
                })
            }
        }
    }
}

impl V3Api {
    /// `/v3/pay/transactions/{jsapi,h5,native}`. A retry sends the same
    /// order, which WeChat answers the same for the same out_trade_no.
    pub async fn prepay(&self, req: &V3Prepay) -> Result<V3PrepayReply, PayError> {
        let path = req.scene.path();
        let (_, body) = self
            .call(path, Method::POST, path, Some(&req.body(self.mchid())))
            .await?;
        V3PrepayReply::from_answer(&req.scene, parse(path, &body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(scene: V3Scene) -> V3Prepay {
        V3Prepay {
            appid: "wxmp".into(),
            description: "tea".into(),
            out_trade_no: "N1".into(),
            time_expire: 1_709_310_605,
            notify_url: "https://shop.example/api/pay/v3/notify".into(),
            total: 100,
            payer_client_ip: "203.0.113.9".into(),
            scene,
        }
    }

    #[test]
    fn bodies_carry_what_each_trade_type_requires() {
        let jsapi: serde_json::Value = serde_json::from_str(
            &request(V3Scene::Jsapi {
                openid: "o1".into(),
            })
            .body("1900000109"),
        )
        .unwrap();
        assert_eq!(jsapi["payer"]["openid"], "o1");
        assert_eq!(jsapi["mchid"], "1900000109");
        assert_eq!(
            jsapi["amount"],
            serde_json::json!({"total": 100, "currency": "CNY"})
        );
        assert_eq!(jsapi["time_expire"], "2024-03-02T00:30:05+08:00");
        assert!(jsapi["scene_info"].get("h5_info").is_none());
        let h5: serde_json::Value = serde_json::from_str(
            &request(V3Scene::H5 {
                app_url: "https://shop.example/".into(),
            })
            .body("1"),
        )
        .unwrap();
        assert_eq!(h5["scene_info"]["payer_client_ip"], "203.0.113.9");
        assert_eq!(h5["scene_info"]["h5_info"]["type"], "Wap");
        assert!(h5.get("payer").is_none());
        let native: serde_json::Value =
            serde_json::from_str(&request(V3Scene::Native).body("1")).unwrap();
        assert!(native.get("payer").is_none());
    }

    #[test]
    fn answers_need_the_field_of_their_scene() {
        let answer = |p: Option<&str>, c: Option<&str>| Answer {
            prepay_id: p.map(Into::into),
            h5_url: None,
            code_url: c.map(Into::into),
        };
        let e =
            V3PrepayReply::from_answer(&V3Scene::Native, answer(Some("wx1"), None)).unwrap_err();
        assert!(e.to_string().contains("code_url"), "{e}");
        let r =
            V3PrepayReply::from_answer(&V3Scene::Native, answer(None, Some("weixin://x"))).unwrap();
        assert_eq!(r.pay_url.as_deref(), Some("weixin://x"));
        let jsapi = V3Scene::Jsapi { openid: "o".into() };
        assert!(V3PrepayReply::from_answer(&jsapi, answer(Some(""), None)).is_err());
    }
}
