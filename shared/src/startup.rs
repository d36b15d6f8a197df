//! How every service starts: build what it needs once ([`Infra`]: the cache,
//! the WeChat client and the session keys; [`connect_database`], migrated, for
//! the services that have one), bind a port
//! ([`listen`]), then serve ([`Application`]) until stopped. One error type,
//! [`StartupError`], covers every step.

use std::any::Any;
use std::net::TcpListener;

use actix_web::dev::{Server, ServerHandle};
use actix_web::web;

use crate::cache::Cache;
use crate::config::CommonConfig;
use crate::db::{Database, Migrations};
use crate::http::ServerSettings;
use crate::session::SessionKeys;
use crate::telemetry::Readiness;
use crate::wechat::WechatClient;

/// Redis keys of every service start with this, so that wxpay can share a Redis.
pub const CACHE_PREFIX: &str = "wxpay:";

/// What every service shares. The database is not here: a service that has one
/// connects it with [`connect_database`], so that one without (jssdk-service)
/// never reaches `shared::db` and links no libpq.
#[derive(Clone, Debug)]
pub struct Infra {
    pub cache: Cache,
    pub wechat: WechatClient,
    pub sessions: SessionKeys,
}

/// Why a service did not start.
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
    /// A configuration that parsed but cannot be served as given.
    #[error("configuration: {0}")]
    Config(String),
    /// A service's own setup step failed: its TLS identity, a file it reads,
    /// a setup task.
    #[error("{what}: {source}")]
    Service {
        what: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StartupError {
    /// A failed setup step of the service, named by `what`.
    pub fn service(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StartupError::Service {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// A service's `main`: the value, or the error on stderr and exit status 2
/// (as `shared::config::exit_on_error` does for configuration errors).
pub fn exit_on_startup_error<T>(result: Result<T, StartupError>) -> T {
    match result {
        Ok(v) => v,
        Err(e) => {
            eprintln!("startup error: {e}");
            std::process::exit(2);
        }
    }
}

impl Infra {
    /// Connects what the service needs. `cache` lets `stack` hand its one
    /// in-process cache to every service; otherwise `REDIS_URL` decides.
    pub async fn build(common: &CommonConfig, cache: Option<Cache>) -> Result<Self, StartupError> {
        let cache = match cache {
            Some(c) => c,
            None => {
                Cache::connect_with(
                    common.redis_url.as_ref().map(|s| s.expose()),
                    CACHE_PREFIX,
                    common.memory_cache,
                )
                .await?
            }
        };
        // Revocations live in the cache every service shares, so that each
        // service's session check sees a logout at once.
        let sessions = SessionKeys::for_service(common, cache.clone());
        Ok(Infra {
            cache,
            wechat: WechatClient::new(common.wechat.clone(), &common.http),
            sessions,
        })
    }

    /// The cache; a service with a database adds it.
    pub fn readiness(&self) -> Readiness {
        Readiness {
            databases: Vec::new(),
            caches: vec![self.cache.clone()],
        }
    }
}

/// The service's database (`DATABASE_URL`, `DATABASE_POOL_SIZE`), migrated.
pub async fn connect_database(
    common: &CommonConfig,
    migrations: Migrations,
) -> Result<Database, StartupError> {
    let url = common.database_url.clone();
    let pool_size = common.database_pool_size;
    // Connecting and migrating block: keep them off the async workers.
    let connected = tokio::task::spawn_blocking(move || {
        Database::connect_with_pool_size(&url, migrations, pool_size)
    })
    .await
    .map_err(|e| StartupError::service("database setup task", e))?;
    Ok(connected?)
}

/// Binds the address (port 0 picks a free port; read it back from the listener).
pub fn listen(addr: std::net::SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr).map_err(|source| StartupError::Listen {
        addr: addr.to_string(),
        source,
    })
}

/// Server settings from the common configuration.
pub fn server_settings(common: &CommonConfig) -> ServerSettings {
    ServerSettings {
        allowed_origins: common.allowed_origins.clone(),
        max_json_bytes: common.max_json_bytes,
        workers: None,
        body_timeout: common.body_timeout,
        trusted_gateways: common.trusted_gateways.clone(),
    }
}

/// Hands back to the system the heap that starting freed: configuration,
/// migrations, the first connections' TLS set-up. glibc keeps freed memory
/// inside its heaps, so without this an idle service holds about 0.5-1 MiB it
/// no longer uses (issue #16, goal 5: idle RSS). Called once, before serving;
/// what serving allocates is glibc's to keep or give back as usual.
fn release_startup_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of glibc's own heaps to the
    // kernel; it takes the arenas' locks and touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A service serving on its port: the actix server, the port it is bound to,
/// and whatever must live exactly as long as the server (background workers
/// and the state whose drop stops them).
pub struct Application {
    port: u16,
    server: Server,
    keep_alive: Vec<Box<dyn Any + Send>>,
}

impl Application {
    /// Serves `routes`, plus `/healthz`, `/readyz` (checking `readiness`) and
    /// `/metrics`, on `listener` with the shared middleware
    /// ([`crate::http::serve`]). Bind port 0 and read [`Application::port`]
    /// back in tests.
    pub fn serve<F>(
        listener: TcpListener,
        settings: ServerSettings,
        readiness: Readiness,
        routes: F,
    ) -> Result<Self, StartupError>
    where
        F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    {
        let addr = listener
            .local_addr()
            .map_err(|source| StartupError::Listen {
                addr: "the given listener".to_owned(),
                source,
            })?;
        let server = crate::http::serve(listener, settings, move |cfg| {
            // Health first: no route of the service (a catch-all file service,
            // say) can shadow it.
            crate::telemetry::configure_health(cfg, readiness.clone());
            routes(cfg);
        })
        .map_err(|source| StartupError::Listen {
            addr: addr.to_string(),
            source,
        })?;
        release_startup_memory();
        Ok(Application {
            port: addr.port(),
            server,
            keep_alive: Vec::new(),
        })
    }

    /// Keeps `guard` alive until [`Application::run_until_stopped`] returns,
    /// then drops it: a service's background workers stop with its server.
    pub fn keep_alive(mut self, guard: impl Any + Send) -> Self {
        self.keep_alive.push(Box::new(guard));
        self
    }

    /// The port the server is bound to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from elsewhere (graceful with `stop(true)`).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until the server stops (a signal, or [`ServerHandle::stop`]),
    /// then drops what [`Application::keep_alive`] holds.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Application {
            server, keep_alive, ..
        } = self;
        let result = server.await;
        drop(keep_alive);
        result
    }
}
