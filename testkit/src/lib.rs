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

/// OpenAPI documents against route tables and real responses.
pub mod openapi;

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::Connection;
use diesel::connection::SimpleConnection;

use shared::cache::Cache;
use shared::db::{Database, Migrations};

/// Whether this run is CI's (`CI=true`), where every test must run.
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Records that the running test (or a part of it) could not run here, and
/// why: printed, and appended as `test<TAB>reason` to `$WXPAY_SKIP_LOG` when
/// set, so that `scripts/test` reports it as skipped — never as passed.
/// Under `CI=true` nothing may skip: the test fails instead.
pub fn skip_or_fail(reason: &str) {
    assert!(
        !in_ci(),
        "CI=true, so this test may not be skipped: {reason}"
    );
    record_skip(reason);
}

fn record_skip(reason: &str) {
    let thread = std::thread::current();
    // libtest names each test's thread after the test.
    let test = thread.name().unwrap_or("unknown test");
    eprintln!("SKIPPED: {test}: {reason}");
    let Some(log) = std::env::var_os("WXPAY_SKIP_LOG") else {
        return;
    };
    if let Err(e) = append_skip(Path::new(&log), test, reason) {
        eprintln!(
            "could not record the skip in {}: {e}",
            log.to_string_lossy()
        );
    }
}

/// Appends `test<TAB>reason` to the skip log, the format `scripts/test` reads.
fn append_skip(log: &Path, test: &str, reason: &str) -> io::Result<()> {
    let line = format!("{test}\t{}\n", reason.replace(['\n', '\t'], " "));
    // One short write with O_APPEND: lines from parallel tests do not interleave.
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    io::Write::write_all(&mut file, line.as_bytes())
}

/// The value of a test service variable. Unset: a printed skip outside CI, a
/// panic under `CI=true`, where every test must run.
pub fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            skip_or_fail(&format!(
                "{var} is not set (the part that needs it did not run)"
            ));
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
    /// Set by [`RedisServer::start_tls`]: a TLS listener beside the socket.
    tls: Option<RedisTls>,
}

/// A TLS listener of a test `redis-server`: its port on 127.0.0.1 and the
/// files of a CA of its own, whose certificate for `localhost` it serves.
struct RedisTls {
    port: u16,
    ca_cert: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    log: PathBuf,
}

/// Runs openssl (the independent oracle for the test certificates), failing
/// with its stderr.
fn openssl(dir: &Path, args: &[&str]) -> io::Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run openssl: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// A port that was free a moment ago (bind port 0 and let go): for servers,
/// such as redis-server's TLS listener, that cannot pick one themselves.
fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
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
            skip_or_fail("redis-server is not installed");
        }
        installed
    }

    /// Starts one with its socket in `dir` and waits until it answers PING.
    pub async fn start(dir: &Path) -> io::Result<Self> {
        let socket = dir.join(format!("redis-{}.sock", shared::random::alphanumeric(8)));
        let mut server = RedisServer {
            socket,
            child: None,
            tls: None,
        };
        server.restart().await?;
        Ok(server)
    }

    /// Starts one that also listens with TLS on a free port of 127.0.0.1
    /// ([`RedisServer::tls_url`]), serving a certificate for `localhost` only,
    /// signed by a CA made for it with openssl in `dir`
    /// ([`RedisServer::tls_ca_file`]). The unix socket stays plain: it is how
    /// the start is awaited, and how a test looks inside.
    pub async fn start_tls(dir: &Path) -> io::Result<Self> {
        let tag = shared::random::alphanumeric(8);
        let name = |what: &str| format!("redis-{tag}-{what}");
        let (ca_key, ca_cert, key, csr, cert, ext) = (
            name("ca.key"),
            name("ca.pem"),
            name("server.key"),
            name("server.csr"),
            name("server.pem"),
            name("server.ext"),
        );
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=wxpay test Redis CA",
                "-keyout",
                &ca_key,
                "-out",
                &ca_cert,
            ],
        )?;
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
        )?;
        std::fs::write(
            dir.join(&ext),
            "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )?;
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_cert,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &cert,
            ],
        )?;
        // The port is free when chosen, but another process may take it
        // before redis-server binds it: a server that exits at once is
        // retried on another port.
        let mut last = io::Error::other("no attempt");
        for _ in 0..5 {
            let mut server = RedisServer {
                socket: dir.join(name("tls.sock")),
                child: None,
                tls: Some(RedisTls {
                    port: free_port()?,
                    ca_cert: dir.join(&ca_cert),
                    cert: dir.join(&cert),
                    key: dir.join(&key),
                    log: dir.join(name("server.log")),
                }),
            };
            match server.restart().await {
                Ok(()) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// `rediss://localhost:PORT/0` of a server from [`RedisServer::start_tls`].
    pub fn tls_url(&self) -> Option<String> {
        self.tls
            .as_ref()
            .map(|t| format!("rediss://localhost:{}/0", t.port))
    }

    /// The PEM file of the CA that signed the TLS listener's certificate.
    pub fn tls_ca_file(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca_cert.as_path())
    }

    /// The TLS listener's port.
    pub fn tls_port(&self) -> Option<u16> {
        self.tls.as_ref().map(|t| t.port)
    }

    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    /// Starts the server (again, after `kill`) and waits until it answers.
    pub async fn restart(&mut self) -> io::Result<()> {
        if self.child.is_some() {
            return Err(io::Error::other("redis-server is already running"));
        }
        let mut command = Command::new("redis-server");
        command
            .args(["--port", "0", "--unixsocket"])
            .arg(&self.socket)
            .args(["--save", "", "--appendonly", "no"]);
        if let Some(tls) = &self.tls {
            command
                .args(["--bind", "127.0.0.1", "--tls-port", &tls.port.to_string()])
                .arg("--tls-cert-file")
                .arg(&tls.cert)
                .arg("--tls-key-file")
                .arg(&tls.key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca_cert)
                // Server authentication only, as managed Redis offers it.
                .args(["--tls-auth-clients", "no"])
                // Why it did not start (a redis-server built without TLS
                // refuses --tls-port) is kept for the error below.
                .arg("--logfile")
                .arg(&tls.log);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start redis-server: {e}")))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            // A server that exited (a taken port, a refused option) will not answer.
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                let log = self
                    .tls
                    .as_ref()
                    .and_then(|t| std::fs::read_to_string(&t.log).ok())
                    .unwrap_or_default();
                return Err(io::Error::other(format!(
                    "redis-server exited ({status}): {}",
                    log.lines().rev().take(3).collect::<Vec<_>>().join(" | ")
                )));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_is_one_line_naming_the_test_and_the_reason() {
        let dir = std::env::temp_dir().join(format!("testkit-skip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("skips.log");
        append_skip(&log, "a::b", "nginx\tis not\ninstalled").unwrap();
        append_skip(&log, "c", "no node").unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text, "a::b\tnginx is not installed\nc\tno node\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
