//! What a service builds once at start: its database (migrated), the cache, the
//! WeChat client and the session keys; and the listener it serves on.

use std::net::TcpListener;

use crate::cache::Cache;
use crate::config::CommonConfig;
use crate::db::{Database, Migrations};
use crate::session::SessionKeys;
use crate::telemetry::Readiness;
use crate::wechat::WechatClient;

/// Redis keys of every service start with this, so that wxpay can share a Redis.
pub const CACHE_PREFIX: &str = "wxpay:";

#[derive(Clone, Debug)]
pub struct Infra {
    pub db: Option<Database>,
    pub cache: Cache,
    pub wechat: WechatClient,
    pub sessions: SessionKeys,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database: {0}")]
    Database(#[from] crate::db::DbError),
    #[error("cache: {0}")]
    Cache(#[from] crate::cache::CacheError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

impl Infra {
    /// Connects what the service needs. `cache` lets `stack` hand its one
    /// in-process cache to every service; otherwise `REDIS_URL` decides.
    pub async fn build(
        common: &CommonConfig,
        migrations: Option<Migrations>,
        cache: Option<Cache>,
    ) -> Result<Self, StartupError> {
        let db = match migrations {
            Some(m) => {
                let url = common.database_url.clone();
                // Connecting and migrating block: keep them off the async workers.
                Some(
                    tokio::task::spawn_blocking(move || Database::connect(&url, m))
                        .await
                        .expect("database setup task")?,
                )
            }
            None => None,
        };
        let cache = match cache {
            Some(c) => c,
            None => {
                Cache::connect(common.redis_url.as_ref().map(|s| s.expose()), CACHE_PREFIX).await?
            }
        };
        Ok(Infra {
            db,
            cache,
            wechat: WechatClient::new(common.wechat.clone(), &common.http),
            sessions: SessionKeys::new(common.session_secret.clone(), common.session_ttl),
        })
    }

    pub fn readiness(&self) -> Readiness {
        Readiness {
            databases: self.db.iter().cloned().collect(),
            caches: vec![self.cache.clone()],
        }
    }
}

/// Binds the address (port 0 picks a free port; read it back from the listener).
pub fn listen(addr: std::net::SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr).map_err(|source| StartupError::Listen {
        addr: addr.to_string(),
        source,
    })
}

/// Server settings from the common configuration.
pub fn server_settings(common: &CommonConfig) -> crate::http::ServerSettings {
    crate::http::ServerSettings {
        allowed_origins: common.allowed_origins.clone(),
        max_json_bytes: common.max_json_bytes,
        workers: None,
        body_timeout: common.body_timeout,
    }
}
