//! The sandbox's shared state and the methods tests call directly. Each area
//! (OAuth, mini program, tokens, pay, notifications) keeps its own store
//! (defined in [`crate::store`]) behind its own lock and adds its methods in
//! its own module.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::{AppKind, SandboxApp, SandboxConfig, SandboxMerchant, SandboxUser};
use crate::ids;
use crate::keys::{SignMode, V3KeysInfo, V3State};
use crate::store::{
    BillStore, CallCounts, CashierStore, FaultKind, Faults, MpStore, OauthStore, OrderStore,
    RefundStore, TokenStore,
};

/// How long the sandbox waits for a merchant to answer a notification. WeChat
/// documents no figure; a few seconds keeps a hung receiver from stalling retries.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SandboxState {
    /// Lets `&self` methods hand an owned handle to background deliveries.
    pub(crate) me: Weak<SandboxState>,
    pub(crate) clock: Clock,
    pub(crate) apps: Vec<SandboxApp>,
    pub(crate) merchants: Vec<SandboxMerchant>,
    pub(crate) users: Vec<SandboxUser>,
    /// No trailing slash.
    pub(crate) base_url: String,
    pub(crate) faults: Faults,
    pub(crate) counts: CallCounts,
    pub(crate) oauth: Mutex<OauthStore>,
    pub(crate) mp: Mutex<MpStore>,
    pub(crate) tokens: Mutex<TokenStore>,
    pub(crate) orders: Mutex<OrderStore>,
    /// Taken after `orders` when both are needed.
    pub(crate) refunds: Mutex<RefundStore>,
    /// Live `wx.chooseWXPay` cashier tickets.
    pub(crate) cashier: Mutex<CashierStore>,
    /// Bumped whenever a delivery attempt is recorded or a schedule ends.
    pub(crate) delivery_events: watch::Sender<u64>,
    pub(crate) shutdown: watch::Sender<bool>,
    /// Deliveries run here rather than on an actix worker, whose runtime goes
    /// away with the worker.
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) http: reqwest::Client,
    /// APIv3 keys and signing mode.
    pub(crate) v3: V3State,
    /// Planted bill discrepancies and v3 bill downloads.
    pub(crate) bills: Mutex<BillStore>,
}

impl SandboxState {
    pub(crate) fn new(
        cfg: SandboxConfig,
        base_url: String,
        runtime: tokio::runtime::Handle,
        v3: V3State,
    ) -> Arc<Self> {
        let http = shared::http_client::builder()
            .timeout(NOTIFY_TIMEOUT)
            // Notifications go to the merchant directly, like WeChat's do; a
            // developer's HTTP_PROXY must not swallow calls to 127.0.0.1.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| shared::http_client::client());
        Arc::new_cyclic(|me| SandboxState {
            me: me.clone(),
            clock: Clock::new(cfg.time_scale),
            apps: cfg.apps,
            merchants: cfg.merchants,
            users: cfg.users,
            base_url: base_url.trim_end_matches('/').to_owned(),
            faults: Faults::default(),
            counts: CallCounts::default(),
            oauth: Mutex::default(),
            mp: Mutex::default(),
            tokens: Mutex::default(),
            orders: Mutex::default(),
            refunds: Mutex::default(),
            cashier: Mutex::default(),
            delivery_events: watch::Sender::new(0),
            shutdown: watch::Sender::new(false),
            runtime,
            http,
            v3,
            bills: Mutex::default(),
        })
    }

    /// Requests served on `path` (e.g. `/cgi-bin/token`), faulted ones included.
    pub fn calls(&self, path: &str) -> u64 {
        self.counts.get(path)
    }

    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        self.counts.all()
    }

    pub fn reset_counts(&self) {
        self.counts.clear();
    }

    /// Drops every fault not yet served.
    pub fn clear_faults(&self) {
        self.faults.clear();
    }

    /// What v3 answers and notifications are signed with from now on.
    pub fn set_v3_sign_mode(&self, mode: SignMode) {
        self.v3.set_mode(mode);
    }

    /// What a merchant holding both the platform certificate and the WeChat
    /// Pay public key verifies the sandbox's v3 signatures with.
    pub fn v3_verifier(&self) -> shared::wechatpay_v3::Verifier {
        self.v3.verifier()
    }

    /// The v3 identities in use (merchant key and certificate, platform
    /// certificate, WeChat Pay public key and its ID).
    pub fn v3_keys(&self) -> V3KeysInfo {
        self.v3.info()
    }

    /// What `POST /sandbox/reset` does: counts and faults.
    pub fn reset(&self) {
        self.reset_counts();
        self.clear_faults();
    }

    /// Moves the sandbox clock forward; pending notification retries whose
    /// time has come fire at once.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// The sandbox's wall clock (UTC): real time scaled, plus advances.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The next `count` requests to `path` get `kind` instead of (or, for
    /// `Delay`, before) the normal answer.
    pub fn inject_fault(&self, path: &str, kind: FaultKind, count: u32) {
        self.faults.inject(path, kind, count);
    }

    pub fn users(&self) -> &[SandboxUser] {
        &self.users
    }

    pub fn apps(&self) -> &[SandboxApp] {
        &self.apps
    }

    pub fn merchants(&self) -> &[SandboxMerchant] {
        &self.merchants
    }

    /// What the sandbox calls itself in URLs it hands out.
    pub fn public_base_url(&self) -> &str {
        &self.base_url
    }

    /// The user's openid in that app: deterministic, different per app.
    pub fn openid(&self, appid: &str, user_key: &str) -> String {
        ids::openid(appid, user_key)
    }

    pub(crate) fn app(&self, appid: &str) -> Option<&SandboxApp> {
        self.apps.iter().find(|a| a.appid == appid)
    }

    pub(crate) fn app_of_kind(&self, appid: &str, kind: AppKind) -> Option<&SandboxApp> {
        self.app(appid).filter(|a| a.kind == kind)
    }

    pub(crate) fn first_app_of_kind(&self, kind: AppKind) -> Option<&SandboxApp> {
        self.apps.iter().find(|a| a.kind == kind)
    }

    pub(crate) fn user(&self, key: &str) -> Option<&SandboxUser> {
        self.users.iter().find(|u| u.key == key)
    }

    pub(crate) fn user_by_openid(&self, appid: &str, openid: &str) -> Option<&SandboxUser> {
        self.users
            .iter()
            .find(|u| ids::openid(appid, &u.key) == openid)
    }

    pub(crate) fn merchant(&self, mch_id: &str) -> Option<&SandboxMerchant> {
        self.merchants.iter().find(|m| m.mch_id == mch_id)
    }

    pub(crate) fn avatar_url(&self, user_key: &str) -> String {
        format!("{}/sandbox/avatar/{user_key}.svg", self.base_url)
    }

    /// An owned handle for work that outlives the request.
    pub(crate) fn arc(&self) -> Option<Arc<SandboxState>> {
        self.me.upgrade()
    }
}
