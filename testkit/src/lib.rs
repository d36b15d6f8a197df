//! testkit: helpers for the workspace's tests, kept out of every production
//! binary (a dev-dependency only; `bench`, a dev tool, uses it as a normal one).
//!
//! Per-test databases (a fresh SQLite file, or a fresh PostgreSQL schema as
//! crates.io's tests do), per-test Redis key prefixes, waiting on a condition
//! with a deadline, a `redis-server` of one's own (for outage tests and the
//! bench), and the rule that under `CI=true` nothing is skipped.

#![allow(
    clippy::expect_used,
    reason = "test support: a setup step that fails panics the test that asked for it, \
              with the step named"
)]

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::Connection;
use diesel::connection::SimpleConnection;

use shared::cache::Cache;
use shared::db::{Database, Migrations};

/// The value of a test service variable. Unset: a printed skip outside CI, a
/// panic under `CI=true`, where every test must run.
pub fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{var} must be set when CI=true: tests never skip in CI")
        }
        _ => {
            eprintln!("skipping: {var} is not set");
            None
        }
    }
}

/// A database that exists for one test and is removed when dropped.
pub struct TestDb {
    pub db: Database,
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    File(std::path::PathBuf),
    Schema { admin_url: String, schema: String },
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Schema { admin_url, schema } => {
                if let Ok(mut conn) = diesel::PgConnection::establish(admin_url) {
                    let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
                }
            }
        }
    }
}

fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// A fresh SQLite file with the migrations applied.
pub fn sqlite_db(migrations: Migrations) -> TestDb {
    let path = std::env::temp_dir().join(format!("{}.db", unique_name("wxpay_test")));
    let url = format!("sqlite://{}", path.display());
    let db = Database::connect(&url, migrations).expect("test SQLite database");
    TestDb {
        db,
        url,
        cleanup: Cleanup::File(path),
    }
}

/// A fresh schema in `TEST_DATABASE_URL` with the migrations applied, or None
/// (outside CI) when PostgreSQL is not configured.
pub fn postgres_db(migrations: Migrations) -> Option<TestDb> {
    let admin_url = service_url("TEST_DATABASE_URL")?;
    let schema = unique_name("t");
    let mut admin = diesel::PgConnection::establish(&admin_url).expect("TEST_DATABASE_URL answers");
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .expect("create test schema");
    let url = with_search_path(&admin_url, &schema);
    let db = Database::connect(&url, migrations).expect("test PostgreSQL database");
    Some(TestDb {
        db,
        url,
        cleanup: Cleanup::Schema { admin_url, schema },
    })
}

/// The URL with libpq's `options=-c search_path=SCHEMA`, so every connection of
/// the pool works inside the test's own schema.
pub fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

/// Each backend the tests run on: SQLite always, PostgreSQL when configured.
pub fn all_backends(migrations: fn() -> Migrations) -> Vec<TestDb> {
    let mut dbs = vec![sqlite_db(migrations())];
    dbs.extend(postgres_db(migrations()));
    dbs
}

/// A Redis cache under a key prefix of its own, or None (outside CI) when
/// `TEST_REDIS_URL` is unset.
pub async fn redis_cache() -> Option<(Cache, String)> {
    let url = service_url("TEST_REDIS_URL")?;
    let prefix = format!("{}:", unique_name("wxpay_test"));
    let cache = Cache::connect(Some(&url), &prefix)
        .await
        .expect("TEST_REDIS_URL answers");
    Some((cache, prefix))
}

/// The in-process cache, and Redis when configured.
pub async fn all_caches() -> Vec<Cache> {
    let mut caches = vec![Cache::memory()];
    if let Some((redis, _)) = redis_cache().await {
        caches.push(redis);
    }
    caches
}

/// Polls `cond` until it holds; panics naming `what` after `within`. For
/// waiting on a condition in tests, never a fixed sleep.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if cond().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `redis-server` of the caller's own on a unix socket: nothing shared with
/// other runs, no port to collide on, and it can be killed and started again
/// mid-run (the outage tests do). Killed, and its socket removed, on drop.
pub struct RedisServer {
    socket: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Whether `redis-server` can be run here. When it cannot: a printed skip
    /// outside CI, a panic under `CI=true`, where every test must run.
    pub fn available() -> bool {
        let installed = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "redis-server must be installed when CI=true"
            );
            eprintln!("skipping: redis-server is not installed");
        }
        installed
    }

    /// Starts one with its socket in `dir` and waits until it answers PING.
    pub async fn start(dir: &Path) -> io::Result<Self> {
        let socket = dir.join(format!("redis-{}.sock", shared::random::alphanumeric(8)));
        let mut server = RedisServer {
            socket,
            child: None,
        };
        server.restart().await?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    /// Starts the server (again, after `kill`) and waits until it answers.
    pub async fn restart(&mut self) -> io::Result<()> {
        if self.child.is_some() {
            return Err(io::Error::other("redis-server is already running"));
        }
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&self.socket)
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start redis-server: {e}")))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(cache) = Cache::connect(Some(&self.url()), "probe:").await
                && cache.ping().await.is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "redis-server did not answer",
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL, as a crash would, and reap it. Err when either failed (the
    /// process is reaped even when the kill failed).
    pub fn kill(&mut self) -> io::Result<()> {
        match self.child.take() {
            Some(mut child) => {
                let killed = child.kill();
                let reaped = child.wait();
                killed.and(reaped.map(drop))
            }
            None => Ok(()),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.kill();
        let _ = std::fs::remove_file(&self.socket);
    }
}
