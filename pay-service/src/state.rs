//! Everything the handlers and the reconciliation worker share.

use std::sync::Arc;

use shared::cache::Cache;
use shared::db::Database;
use shared::session::SessionKeys;
use shared::startup::{Infra, StartupError};
use shared::telemetry::Readiness;
use tokio::task::JoinHandle;

use crate::config::{PayConfig, WebhookConfig};
use crate::wxpay::PayApi;
use crate::wxrefund::RefundClient;

#[derive(Clone)]
pub struct PayState {
    pub(crate) config: Arc<PayConfig>,
    pub(crate) db: Database,
    pub(crate) cache: Cache,
    pub(crate) pay: PayApi,
    pub(crate) sessions: SessionKeys,
    /// Present when refunds are configured (`ADMIN_TOKEN` set).
    pub(crate) refund_client: Option<RefundClient>,
    /// Present when `MERCHANT_WEBHOOK_URL` is set.
    pub(crate) webhook: Option<Arc<Webhook>>,
    /// Stop the background workers (reconciliation, event dispatch) once the
    /// last handle to the state (the server's app data) is gone. The
    /// workers' own copies have none.
    workers: Vec<Arc<AbortOnDrop>>,
}

/// The event dispatcher's HTTP client and settings.
pub(crate) struct Webhook {
    pub http: reqwest::Client,
    pub config: WebhookConfig,
}

impl std::fmt::Debug for PayState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayState")
            .field("db", &self.db)
            .field("pay", &self.pay)
            .finish()
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl PayState {
    /// Connects and migrates the database, connects the cache (or takes
    /// `stack`'s), and starts the reconciliation worker unless
    /// `RECONCILE_INTERVAL_SECONDS` is 0. Call it inside a Tokio runtime.
    pub async fn build(config: PayConfig, cache: Option<Cache>) -> Result<Self, StartupError> {
        let infra = Infra::build(&config.common, Some(crate::migrations()), cache).await?;
        let db = infra
            .db
            .clone()
            .expect("Infra::build with migrations yields a database");
        let pay = PayApi::new(
            infra.wechat.clone(),
            config.mch_id.clone(),
            config.mch_key.clone(),
            config.sign_type,
        );
        let refund_client = match &config.refunds {
            // PayConfig::from_env loaded the same PEMs; what is left to fail
            // is the TLS backend itself, as for shared's WechatClient.
            Some(r) => Some(
                RefundClient::new(r, &config.common.http)
                    .unwrap_or_else(|e| panic!("refund TLS client: {e}")),
            ),
            None => None,
        };
        let webhook = match &config.webhook {
            Some(w) => {
                let http = reqwest::Client::builder()
                    .timeout(w.timeout)
                    .connect_timeout(w.timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("wxpay-events/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .expect("TLS backend initialises");
                Some(Arc::new(Webhook {
                    http,
                    config: w.clone(),
                }))
            }
            None => None,
        };
        let interval = config.reconcile_interval;
        let mut state = PayState {
            config: Arc::new(config),
            db,
            cache: infra.cache,
            pay,
            sessions: infra.sessions,
            refund_client,
            webhook,
            workers: Vec::new(),
        };
        let mut workers = Vec::new();
        if !interval.is_zero() {
            let handle = tokio::spawn(crate::reconcile::run(state.clone(), interval));
            workers.push(Arc::new(AbortOnDrop(handle)));
        }
        if let Some(w) = &state.webhook
            && !w.config.interval.is_zero()
        {
            let handle = tokio::spawn(crate::events::run(state.clone(), w.config.interval));
            workers.push(Arc::new(AbortOnDrop(handle)));
        }
        state.workers = workers;
        Ok(state)
    }

    pub fn readiness(&self) -> Readiness {
        Readiness {
            databases: vec![self.db.clone()],
            caches: vec![self.cache.clone()],
        }
    }

    pub fn config(&self) -> &PayConfig {
        &self.config
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    pub fn sessions(&self) -> &SessionKeys {
        &self.sessions
    }
}
