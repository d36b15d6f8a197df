//! Starts the WeChat sandbox and pay-service on port 0 and talks to them over
//! real HTTP. Users are minted as session tokens with the shared secret, as
//! auth-service would issue them.
#![allow(dead_code)] // each test binary uses its own part of the helpers

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::Duration;

use pay_service::inspect::{self, Notification, Transition};
use pay_service::{PayConfig, PayState};
use serde_json::Value;
use shared::config::Env;
use shared::session::SessionKind;
use shared::sign::{SignType, pay_sign};
use testkit::TestDb;
use wechat_sandbox::{
    OrderSnapshot, SANDBOX_MCH_ID, SANDBOX_MP_APPID, SANDBOX_OA_APPID, Sandbox, SandboxConfig,
};

pub const SESSION_SECRET: &str = "pay-service-tests-session-secret-0123456789";
pub const SHOP: &str = "https://shop.example";
pub const MP: &str = SANDBOX_MP_APPID;
pub const OA: &str = SANDBOX_OA_APPID;
pub const WAIT: Duration = Duration::from_secs(20);

/// One pay-service instance.
pub struct Service {
    pub base: String,
    pub state: PayState,
}

pub struct TestApp {
    pub base: String,
    pub state: PayState,
    pub sandbox: Sandbox,
    pub client: reqwest::Client,
}

pub fn client() -> reqwest::Client {
    shared::http_client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

pub async fn start_sandbox(time_scale: f64) -> Sandbox {
    let mut cfg = SandboxConfig::for_tests();
    cfg.time_scale = time_scale;
    Sandbox::start(cfg).await.expect("sandbox starts")
}

/// A pay-service on `db` talking to `sandbox`. `vars` override the defaults.
pub async fn spawn_service(db: &TestDb, sandbox: &Sandbox, vars: &[(&str, &str)]) -> Service {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut env = Env::from_pairs(sandbox.service_env());
    env.extend([
        ("SESSION_SECRET", SESSION_SECRET),
        ("PUBLIC_BASE_URL", base.as_str()),
        ("DATABASE_URL", db.url.as_str()),
        // Tests run reconciliation themselves, deterministically.
        ("RECONCILE_INTERVAL_SECONDS", "0"),
        ("RECONCILE_AFTER_SECONDS", "0"),
        // and the daily bill job (tests/bills.rs calls `bills_once`).
        ("BILL_INTERVAL_SECONDS", "0"),
        ("WECHAT_RETRIES", "0"),
        // The sandbox's env carries v3 credentials, which default new orders
        // to v3; these tests are about v2 unless they say otherwise.
        ("PAY_API_VERSION", "v2"),
    ]);
    env.set("ALLOWED_REDIRECT_ORIGINS", format!("{base},{SHOP}"));
    env.extend(vars.iter().copied());
    let config = PayConfig::from_env(&env).expect("test config");
    let state = PayState::build(config, None).await.expect("state builds");
    let app = pay_service::with_state(state.clone(), listener).expect("server starts");
    tokio::spawn(app.run_until_stopped());
    Service { base, state }
}

pub async fn spawn_app(db: &TestDb) -> TestApp {
    spawn_app_with(db, &[], 1.0).await
}

pub async fn spawn_app_with(db: &TestDb, vars: &[(&str, &str)], time_scale: f64) -> TestApp {
    let sandbox = start_sandbox(time_scale).await;
    let Service { base, state } = spawn_service(db, &sandbox, vars).await;
    TestApp {
        base,
        state,
        sandbox,
        client: client(),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A session token of sandbox user `user_key` in `appid`, user id `uid`.
    pub fn token(&self, appid: &str, user_key: &str, uid: i64) -> String {
        let openid = self.sandbox.state().openid(appid, user_key);
        let kind = if appid == MP {
            SessionKind::Mp
        } else {
            SessionKind::Oa
        };
        self.state.sessions().issue(uid, appid, &openid, kind).0
    }

    pub fn mp_token(&self) -> String {
        self.token(MP, "u1", 1)
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(
        &self,
        path: &str,
        token: &str,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body);
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        req.send().await.unwrap()
    }

    pub async fn post(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// `GET /api/mp/v2Pay?money=M` as u1 of the mini program; returns data.
    pub async fn v2pay(&self, money: &str) -> Value {
        let res = self
            .get(&format!("/api/mp/v2Pay?money={money}"), &self.mp_token())
            .await;
        let (status, body) = envelope(res).await;
        assert_eq!(status, 200, "{body}");
        body["data"].clone()
    }

    pub async fn order_view(&self, no: &str, token: &str) -> Value {
        let (status, body) =
            envelope(self.get(&format!("/api/pay/orders/{no}"), token).await).await;
        assert_eq!(status, 200, "{body}");
        body["data"].clone()
    }

    pub async fn status_of(&self, no: &str) -> String {
        let order = inspect::order(self.state.db(), no)
            .await
            .unwrap()
            .expect("order exists");
        order.status.as_str().to_owned()
    }

    pub async fn transitions(&self, no: &str) -> Vec<Transition> {
        inspect::transitions(self.state.db(), no).await.unwrap()
    }

    pub async fn notifications(&self, no: Option<&str>) -> Vec<Notification> {
        inspect::notifications(self.state.db(), no).await.unwrap()
    }

    pub fn sandbox_order(&self, no: &str) -> OrderSnapshot {
        self.sandbox
            .state()
            .order(no)
            .expect("the sandbox has the order")
    }

    pub async fn notify_raw(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, BTreeMap<String, String>) {
        notify_raw(&self.client, &self.base, path, body).await
    }
}

/// POSTs a notification body; returns the HTTP status and the parsed reply.
pub async fn notify_raw(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, BTreeMap<String, String>) {
    let res = client
        .post(format!("{base}{path}"))
        .header("content-type", "text/xml")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let ctype = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = res.text().await.unwrap();
    assert!(ctype.starts_with("text/xml"), "{ctype}: {text}");
    let fields = shared::xml::parse(text.as_bytes(), 4096).expect("an XML reply");
    (status, fields)
}

/// A payment notification for a paid sandbox order, as WeChat would sign it;
/// `edit` changes fields before signing (wrong amounts, appids, …).
pub fn notification_xml(
    order: &OrderSnapshot,
    key: &str,
    sign_type: SignType,
    edit: impl FnOnce(&mut BTreeMap<String, String>),
) -> String {
    let mut f: BTreeMap<String, String> = BTreeMap::new();
    let mut put = |k: &str, v: &str| {
        f.insert(k.to_owned(), v.to_owned());
    };
    put("return_code", "SUCCESS");
    put("result_code", "SUCCESS");
    put("appid", &order.appid);
    put("mch_id", &order.mch_id);
    put("nonce_str", &shared::random::nonce());
    put("openid", order.payer_openid.as_deref().unwrap_or("oPAYER"));
    put("is_subscribe", "N");
    put("trade_type", &order.trade_type);
    put("bank_type", "OTHERS");
    put("total_fee", &order.total_fee.to_string());
    put("fee_type", "CNY");
    put("cash_fee", &order.total_fee.to_string());
    put(
        "transaction_id",
        order
            .transaction_id
            .as_deref()
            .unwrap_or("4200000000202601010000000000"),
    );
    put("out_trade_no", &order.out_trade_no);
    put(
        "time_end",
        order.time_end.as_deref().unwrap_or("20260101120000"),
    );
    if sign_type == SignType::HmacSha256 {
        put("sign_type", "HMAC-SHA256");
    }
    edit(&mut f);
    let sign = pay_sign(&f, key, sign_type);
    f.insert("sign".into(), sign);
    shared::xml::map_to_xml(&f)
}

/// Status and JSON body.
pub async fn envelope(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let body =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, body)
}

/// Asserts a failure envelope and returns its message.
pub async fn expect_error(res: reqwest::Response, status: u16, code: i64) -> String {
    let (s, body) = envelope(res).await;
    assert_eq!((s, body["code"].as_i64()), (status, Some(code)), "{body}");
    assert!(body["data"].is_null(), "{body}");
    body["message"].as_str().unwrap().to_owned()
}

pub fn success(reply: &BTreeMap<String, String>) -> bool {
    reply.get("return_code").map(String::as_str) == Some("SUCCESS")
}

pub const ADMIN_TOKEN: &str = "admin-token-for-pay-service-tests";

/// PEM files for the service's configuration, removed on drop.
pub struct PemFiles {
    pub dir: std::path::PathBuf,
}

impl PemFiles {
    pub fn write(files: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "pay-service-test-{}",
            shared::random::alphanumeric(12)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, content) in files {
            std::fs::write(dir.join(name), content).unwrap();
        }
        PemFiles { dir }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for PemFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A sandbox with its TLS listener (client certificate required) and the
/// PKI it trusts.
pub async fn start_tls_sandbox() -> (Sandbox, wechat_sandbox::TestPki) {
    let pki = wechat_sandbox::TestPki::generate(SANDBOX_MCH_ID).unwrap();
    let mut cfg = SandboxConfig::for_tests();
    cfg.tls = Some(pki.sandbox_tls("127.0.0.1:0".parse().unwrap()));
    (Sandbox::start(cfg).await.expect("sandbox starts"), pki)
}

/// pay-service with refunds on (ADMIN_TOKEN, the merchant certificate, the
/// sandbox's CA and TLS base) plus `vars`.
pub struct RefundApp {
    pub app: TestApp,
    pub pem: PemFiles,
}

impl std::ops::Deref for RefundApp {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

pub fn refund_vars(
    sandbox: &Sandbox,
    pki: &wechat_sandbox::TestPki,
) -> (PemFiles, Vec<(String, String)>) {
    let pem = PemFiles::write(&[
        ("apiclient_cert.pem", &pki.client_cert_pem),
        ("apiclient_key.pem", &pki.client_key_pem),
        ("wechat_ca.pem", &pki.ca_pem),
    ]);
    let vars = vec![
        ("ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned()),
        ("MCH_CERT_PEM".to_owned(), pem.path("apiclient_cert.pem")),
        ("MCH_KEY_PEM".to_owned(), pem.path("apiclient_key.pem")),
        ("WECHATPAY_CA_PEM".to_owned(), pem.path("wechat_ca.pem")),
        (
            "WECHATPAY_REFUND_BASE".to_owned(),
            sandbox.tls_base_url().expect("TLS listener"),
        ),
    ];
    (pem, vars)
}

pub async fn spawn_refund_app(db: &TestDb, extra: &[(&str, &str)]) -> RefundApp {
    let (sandbox, pki) = start_tls_sandbox().await;
    let (pem, mut vars) = refund_vars(&sandbox, &pki);
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let borrowed: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let Service { base, state } = spawn_service(db, &sandbox, &borrowed).await;
    RefundApp {
        app: TestApp {
            base,
            state,
            sandbox,
            client: client(),
        },
        pem,
    }
}

impl TestApp {
    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.get(path, ADMIN_TOKEN).await
    }

    pub async fn refund(&self, no: &str, amount_fen: i64, reason: &str) -> reqwest::Response {
        self.post_json(
            &format!("/api/pay/admin/orders/{no}/refunds"),
            ADMIN_TOKEN,
            &serde_json::json!({"amountFen": amount_fen, "reason": reason}),
            None,
        )
        .await
    }

    /// A paid v2Pay order of `money` yuan whose notification was acknowledged.
    pub async fn paid_order(&self, money: &str) -> String {
        let data = self.v2pay(money).await;
        let no = data["outTradeNo"].as_str().unwrap().to_owned();
        self.sandbox
            .state()
            .pay_order(&no, wechat_sandbox::PayOptions::default())
            .unwrap();
        assert!(self.sandbox.state().wait_acknowledged(&no, WAIT).await);
        assert_eq!(self.status_of(&no).await, "PAID");
        no
    }
}
