//! The database and cache a run uses, made fresh for it and removed after:
//! SQLite files and each service's in-process cache, or a new schema in
//! PostgreSQL and Redis.

use std::path::{Path, PathBuf};

use diesel::Connection;
use diesel::connection::SimpleConnection;

use testkit::RedisServer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            other => Err(format!("unknown backend {other:?}: use sqlite or postgres")),
        }
    }
}

/// Where `BENCH_DATABASE_URL` points when unset.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A run's storage. Dropping it removes the files, the schema and our Redis.
pub struct Storage {
    pub backend: Backend,
    dir: PathBuf,
    schema: Option<(String, String)>,
    redis_url: Option<String>,
    _redis: Option<RedisServer>,
}

impl Storage {
    /// SQLite: files in a new temporary folder, no Redis. PostgreSQL: a new
    /// schema in `BENCH_DATABASE_URL` and Redis at `BENCH_REDIS_URL`, or a
    /// `redis-server` of the run's own when that is unset.
    pub async fn prepare(opts: &crate::Options) -> anyhow::Result<Self> {
        let backend = opts.backend;
        let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let dir =
            std::env::temp_dir().join(format!("wxpay-bench-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let mut storage = Storage {
            backend,
            dir,
            schema: None,
            redis_url: None,
            _redis: None,
        };
        if backend == Backend::Postgres {
            let admin = opts
                .database_url
                .clone()
                .or_else(|| from_env("BENCH_DATABASE_URL"))
                .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
            let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
            let (a, s) = (admin.clone(), schema.clone());
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                let mut conn = diesel::PgConnection::establish(&a)
                    .map_err(|e| anyhow::anyhow!("BENCH_DATABASE_URL: {e}"))?;
                conn.batch_execute(&format!("CREATE SCHEMA {s}"))?;
                Ok(())
            })
            .await??;
            storage.schema = Some((admin, schema));
            match opts
                .redis_url
                .clone()
                .or_else(|| from_env("BENCH_REDIS_URL"))
            {
                Some(url) => storage.redis_url = Some(url),
                None => {
                    let redis = RedisServer::start(&storage.dir).await?;
                    storage.redis_url = Some(redis.url());
                    storage._redis = Some(redis);
                }
            }
        }
        Ok(storage)
    }

    /// `DATABASE_URL` for a service. On PostgreSQL the services share the
    /// schema, as they may in production (their tables and migration
    /// versions do not collide).
    pub fn database_url(&self, service: &str) -> String {
        match &self.schema {
            Some((admin, schema)) => testkit::with_search_path(admin, schema),
            None => format!(
                "sqlite://{}",
                self.dir.join(format!("{service}.db")).display()
            ),
        }
    }

    /// PostgreSQL runs: the admin URL and the run's schema.
    pub fn postgres(&self) -> Option<(&str, &str)> {
        self.schema.as_ref().map(|(a, s)| (a.as_str(), s.as_str()))
    }

    pub fn redis_url(&self) -> Option<&str> {
        self.redis_url.as_deref()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        if let Some((admin, schema)) = &self.schema
            && let Ok(mut conn) = diesel::PgConnection::establish(admin)
        {
            let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
