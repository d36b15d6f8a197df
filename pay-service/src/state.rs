//! Everything the handlers and the reconciliation worker share.

use std::sync::Arc;

use shared::cache::Cache;
use shared::db::Database;
use shared::session::SessionKeys;
use shared::startup::{Infra, StartupError};
use shared::telemetry::Readiness;
use tokio::task::JoinHandle;

use crate::config::PayConfig;
use crate::wxpay::PayApi;

#[derive(Clone)]
pub struct PayState {
    pub(crate) config: Arc<PayConfig>,
    pub(crate) db: Database,
    pub(crate) cache: Cache,
    pub(crate) pay: PayApi,
    pub(crate) sessions: SessionKeys,
    /// Stops the reconciliation worker once the last handle to the state
    /// (the server's app data) is gone. The worker's own copy has none.
    worker: Option<Arc<AbortOnDrop>>,
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
        let interval = config.reconcile_interval;
        let mut state = PayState {
            config: Arc::new(config),
            db,
            cache: infra.cache,
            pay,
            sessions: infra.sessions,
            worker: None,
        };
        if !interval.is_zero() {
            let handle = tokio::spawn(crate::reconcile::run(state.clone(), interval));
            state.worker = Some(Arc::new(AbortOnDrop(handle)));
        }
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
