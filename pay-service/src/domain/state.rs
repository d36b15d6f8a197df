//! Everything the handlers and the background jobs share. Building it
//! connects (and migrates) the database and the cache; it starts nothing:
//! the application starts the workers (`jobs::Workers`).

use std::sync::Arc;

use shared::cache::Cache;
use shared::db::Database;
use shared::session::SessionKeys;
use shared::startup::{Infra, StartupError, connect_database};
use shared::telemetry::Readiness;

use crate::config::{PayConfig, WebhookConfig};
use crate::db;
use crate::wechat::v3::V3Api;
use crate::wechat::{PayApi, RefundClient};

#[derive(Clone)]
pub struct PayState {
    pub(crate) config: Arc<PayConfig>,
    pub(crate) db: Database,
    pub(crate) cache: Cache,
    pub(crate) pay: PayApi,
    /// The APIv3 client, present when `MCH_API_V3_KEY` is set.
    pub(crate) v3: Option<V3Api>,
    pub(crate) sessions: SessionKeys,
    /// Present when refunds are configured (`ADMIN_TOKEN` set).
    pub(crate) refund_client: Option<RefundClient>,
    /// Present when `MERCHANT_WEBHOOK_URL` is set.
    pub(crate) webhook: Option<Arc<Webhook>>,
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

impl PayState {
    /// Connects and migrates the database, and connects the cache (or takes
    /// `stack`'s). Call it inside a Tokio runtime.
    pub async fn build(config: PayConfig, cache: Option<Cache>) -> Result<Self, StartupError> {
        let db = connect_database(&config.common, db::migrations()).await?;
        let infra = Infra::build(&config.common, cache).await?;
        let pay = PayApi::new(
            infra.wechat.clone(),
            config.mch_id.clone(),
            config.mch_key.clone(),
            config.sign_type,
        );
        let v3 = match &config.v3 {
            Some(v3) => Some(
                V3Api::new(
                    &config.mch_id,
                    v3,
                    &config.common.wechat.pay,
                    &config.common.http,
                    infra.cache.clone(),
                )
                .map_err(|e| StartupError::service("APIv3 client", e))?,
            ),
            None => None,
        };
        let refund_client = match &config.refunds {
            // PayConfig::from_env loaded the same PEMs; what is left to fail
            // is the TLS backend itself, as for shared's WechatClient.
            Some(r) => Some(
                RefundClient::new(r, &config.common.http)
                    .map_err(|e| StartupError::service("refund TLS client", e.to_string()))?,
            ),
            None => None,
        };
        let webhook = match &config.webhook {
            Some(w) => {
                let http = shared::http_client::builder()
                    .timeout(w.timeout)
                    .connect_timeout(w.timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("wxpay-events/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| StartupError::service("merchant webhook client", e))?;
                Some(Arc::new(Webhook {
                    http,
                    config: w.clone(),
                }))
            }
            None => None,
        };
        Ok(PayState {
            config: Arc::new(config),
            db,
            cache: infra.cache,
            pay,
            v3,
            sessions: infra.sessions,
            refund_client,
            webhook,
        })
    }

    /// What `/readyz` checks: the database only. WeChat's notifications and
    /// the background passes on PostgreSQL need nothing else; the routes
    /// that need the cache (a user's session, checked against revocations)
    /// answer 503 on their own while it is down. The cache is one Redis for
    /// every replica, so its outage would make all of them unready at once:
    /// nothing to route around, and the notifications would get 503 too.
    pub fn readiness(&self) -> Readiness {
        Readiness {
            databases: vec![Arc::new(self.db.clone())],
            caches: Vec::new(),
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
