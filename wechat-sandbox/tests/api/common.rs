use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use shared::sign::{SignType, pay_sign};
use wechat_sandbox::{SANDBOX_MCH_ID, SANDBOX_MCH_KEY, Sandbox, SandboxConfig, SandboxState};

pub struct Env {
    pub sandbox: Sandbox,
    pub state: Arc<SandboxState>,
    pub base: String,
    pub http: reqwest::Client,
}

pub async fn start() -> Env {
    start_with(|_| {}).await
}

pub async fn start_with(adjust: impl FnOnce(&mut SandboxConfig)) -> Env {
    let mut cfg = SandboxConfig::for_tests();
    adjust(&mut cfg);
    let sandbox = Sandbox::start(cfg).await.expect("sandbox starts");
    let http = shared::http_client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    Env {
        state: sandbox.state(),
        base: sandbox.base_url(),
        sandbox,
        http,
    }
}

impl Env {
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    pub async fn get(&self, path_and_query: &str) -> reqwest::Response {
        self.http
            .get(self.url(path_and_query))
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path_and_query: &str) -> Value {
        let res = self.get(path_and_query).await;
        assert_eq!(res.status(), 200, "GET {path_and_query}");
        res.json().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let res = self
            .http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap())
    }

    pub async fn post_xml_raw(&self, path: &str, body: String) -> BTreeMap<String, String> {
        let res = self
            .http
            .post(self.url(path))
            .header("content-type", "text/xml")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "POST {path}");
        let bytes = res.bytes().await.unwrap();
        shared::xml::parse(&bytes, 1 << 16).expect("the sandbox answers XML")
    }

    /// Signs `fields` with the sandbox merchant key and posts them.
    pub async fn post_pay(
        &self,
        path: &str,
        fields: &BTreeMap<String, String>,
        sign_type: SignType,
    ) -> BTreeMap<String, String> {
        self.post_xml_raw(path, signed_xml(fields, sign_type)).await
    }
}

pub fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn signed_xml(fields: &BTreeMap<String, String>, sign_type: SignType) -> String {
    let mut f = fields.clone();
    if sign_type == SignType::HmacSha256 {
        f.insert("sign_type".into(), sign_type.as_str().into());
    }
    let sign = pay_sign(&f, SANDBOX_MCH_KEY, sign_type);
    f.insert("sign".into(), sign);
    shared::xml::map_to_xml(&f)
}

/// A complete unifiedorder request for a mini-program JSAPI order by `u1`.
pub fn jsapi_order(
    state: &SandboxState,
    out_trade_no: &str,
    total_fee: u64,
) -> BTreeMap<String, String> {
    let openid = state.openid(wechat_sandbox::SANDBOX_MP_APPID, "u1");
    map(&[
        ("appid", wechat_sandbox::SANDBOX_MP_APPID),
        ("mch_id", SANDBOX_MCH_ID),
        ("nonce_str", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"),
        ("body", "测试商品-会员月卡"),
        ("out_trade_no", out_trade_no),
        ("total_fee", &total_fee.to_string()),
        ("spbill_create_ip", "127.0.0.1"),
        ("notify_url", "http://127.0.0.1:9/api/pay/notify"),
        ("trade_type", "JSAPI"),
        ("openid", &openid),
    ])
}

pub fn query_string(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

pub fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_owned()
}

/// The query parameters of an absolute URL.
pub fn query_of(u: &str) -> BTreeMap<String, String> {
    url::Url::parse(u)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub fn errcode(v: &Value) -> i64 {
    v["errcode"].as_i64().unwrap_or(0)
}
