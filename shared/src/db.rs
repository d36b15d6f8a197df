//! The database: SQLite (embedded default, bundled) and PostgreSQL from one code
//! base. Diesel is synchronous, so connections come from an r2d2 pool and every
//! query runs on the blocking pool (`web::block`), never on an async worker.

use std::future::Future;
use std::time::Duration;

use tracing::Instrument;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{self, ManageConnection, Pool, PooledConnection};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

use crate::error::ApiError;

mod prepared;
pub use prepared::Prepared;

/// One connection of either backend. Queries that both backends spell the same
/// way run on it directly; the others use [`db_run!`] to expand once per backend.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

/// Runs the same diesel code on whichever backend `conn` is, with `conn` rebound
/// to the concrete connection; for upserts, `RETURNING`, locking clauses and the
/// other places where the two backends' query builders differ.
#[macro_export]
macro_rules! db_run {
    ($conn:ident => $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Pg($conn) => $body,
            $crate::db::DbConnection::Sqlite($conn) => $body,
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// OpenTelemetry's `db.system.name`.
    fn system_name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("not found")]
    NotFound,
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Query(diesel::result::Error),
    #[error("database setup failed: {0}")]
    Setup(String),
}

impl From<diesel::result::Error> for DbError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as K, Error as E};
        match e {
            E::NotFound => DbError::NotFound,
            E::DatabaseError(K::ClosedConnection | K::UnableToSendCommand, info) => {
                DbError::Unavailable(info.message().to_owned())
            }
            other => DbError::Query(other),
        }
    }
}

impl From<r2d2::PoolError> for DbError {
    fn from(e: r2d2::PoolError) -> Self {
        DbError::Unavailable(e.to_string())
    }
}

impl DbError {
    /// A unique or primary key constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            DbError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => ApiError::NotFound("not found".to_owned()),
            DbError::Unavailable(m) => ApiError::Unavailable(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// A service's migrations, one folder per backend. Services hand out a fresh
/// value from a function (`embed_migrations!` values cannot be copied).
pub struct Migrations {
    pub sqlite: EmbeddedMigrations,
    pub postgres: EmbeddedMigrations,
}

/// Opens connections for the configured backend (and only that one: a failing
/// PostgreSQL must never quietly become a local SQLite file).
#[derive(Debug, Clone)]
pub struct Manager {
    backend: Backend,
    target: String,
}

/// A pooled connection and when it last answered.
///
/// r2d2 checks a connection (`SELECT 1`) at every check-out; on PostgreSQL
/// that is a round trip of its own, one in seven of an applied notification's
/// (issue #16). As HikariCP's `aliveBypassWindowMs` does, a connection that
/// answered within [`CHECK_AFTER`] is handed out unchecked: one that died in
/// that second fails its query with 503, is marked as not answering, and is
/// checked (and replaced) at its next check-out.
pub struct Pooled {
    conn: DbConnection,
    answered_at: Option<std::time::Instant>,
}

/// How long an answer vouches for a connection.
const CHECK_AFTER: Duration = Duration::from_secs(1);

impl Pooled {
    /// Whether the connection must be checked before it is handed out.
    fn needs_check(&self, now: std::time::Instant) -> bool {
        self.answered_at
            .is_none_or(|at| now.saturating_duration_since(at) >= CHECK_AFTER)
    }

    /// Records how a use ended: any answer from the database (even an
    /// error) vouches for the connection; a lost connection does not.
    fn used<R>(&mut self, result: &Result<R, DbError>) {
        self.answered_at = match result {
            Err(DbError::Unavailable(_)) => None,
            _ => Some(std::time::Instant::now()),
        };
    }
}

const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;";

impl ManageConnection for Manager {
    type Connection = Pooled;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<Pooled, r2d2::Error> {
        let conn = match self.backend {
            Backend::Postgres => PgConnection::establish(&self.target)
                .map(DbConnection::Pg)
                .map_err(r2d2::Error::ConnectionError)?,
            Backend::Sqlite => {
                let mut conn = SqliteConnection::establish(&self.target)
                    .map_err(r2d2::Error::ConnectionError)?;
                conn.batch_execute(SQLITE_PRAGMAS)
                    .map_err(r2d2::Error::QueryError)?;
                DbConnection::Sqlite(conn)
            }
        };
        Ok(Pooled {
            conn,
            answered_at: Some(std::time::Instant::now()),
        })
    }

    fn is_valid(&self, pooled: &mut Pooled) -> Result<(), r2d2::Error> {
        if !pooled.needs_check(std::time::Instant::now()) {
            return Ok(());
        }
        pooled
            .conn
            .batch_execute("SELECT 1")
            .map_err(r2d2::Error::QueryError)?;
        pooled.answered_at = Some(std::time::Instant::now());
        Ok(())
    }

    /// A transaction diesel could not roll back leaves the connection
    /// unusable: r2d2 drops it instead of pooling it again.
    fn has_broken(&self, pooled: &mut Pooled) -> bool {
        use diesel::r2d2::R2D2Connection;
        match &mut pooled.conn {
            DbConnection::Pg(c) => c.is_broken(),
            DbConnection::Sqlite(c) => c.is_broken(),
        }
    }
}

#[derive(Clone)]
pub struct Database {
    pool: Pool<Manager>,
    backend: Backend,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.backend)
            .finish()
    }
}

/// Parses `sqlite://PATH`, `sqlite::memory:` or `postgres://…`.
fn parse_url(url: &str) -> Result<(Backend, String), DbError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_owned()));
    }
    if url == "sqlite::memory:" || url == "sqlite://:memory:" {
        return Ok((Backend::Sqlite, ":memory:".to_owned()));
    }
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if path.is_empty() {
            return Err(DbError::Setup(
                "DATABASE_URL sqlite:// needs a path".to_owned(),
            ));
        }
        return Ok((Backend::Sqlite, path.to_owned()));
    }
    Err(DbError::Setup(
        "DATABASE_URL must start with sqlite:// or postgres://".to_owned(),
    ))
}

impl Database {
    /// Connects, creates the SQLite file's folder if needed, and runs the pending
    /// migrations. Blocking: call it at start, before serving.
    pub fn connect(url: &str, migrations: Migrations) -> Result<Self, DbError> {
        Self::connect_with_pool_size(url, migrations, None)
    }

    /// `connect` with `DATABASE_POOL_SIZE` (None: 16 on PostgreSQL, 8 on a
    /// SQLite file; an in-memory SQLite database always gets one connection,
    /// since each connection would be a database of its own).
    pub fn connect_with_pool_size(
        url: &str,
        migrations: Migrations,
        pool_size: Option<u32>,
    ) -> Result<Self, DbError> {
        let (backend, target) = parse_url(url)?;
        let folder = std::path::Path::new(&target)
            .parent()
            .filter(|d| !d.as_os_str().is_empty());
        if let (Backend::Sqlite, Some(dir)) = (backend, folder)
            && target != ":memory:"
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| DbError::Setup(format!("cannot create {}: {e}", dir.display())))?;
        }
        let max_size = match (backend, target.as_str(), pool_size) {
            (Backend::Sqlite, ":memory:", _) => 1,
            (_, _, Some(n)) => n,
            (Backend::Sqlite, _, None) => 8,
            (Backend::Postgres, _, None) => 16,
        };
        let pool = Pool::builder()
            .max_size(max_size)
            .connection_timeout(Duration::from_secs(3))
            .min_idle(Some(1.min(max_size)))
            .build(Manager { backend, target })
            .map_err(|e| DbError::Unavailable(e.to_string()))?;
        let db = Database { pool, backend };
        db.migrate(migrations)?;
        Ok(db)
    }

    fn migrate(&self, migrations: Migrations) -> Result<(), DbError> {
        let mut pooled = self.pool.get()?;
        let setup = |e: Box<dyn std::error::Error + Send + Sync>| DbError::Setup(e.to_string());
        match &mut pooled.conn {
            DbConnection::Sqlite(c) => {
                c.run_pending_migrations(migrations.sqlite).map_err(setup)?;
            }
            DbConnection::Pg(c) => {
                // Replicas starting together must not run the same migration twice.
                c.batch_execute("SELECT pg_advisory_lock(7261746578)")?;
                let result = c
                    .run_pending_migrations(migrations.postgres)
                    .map(|_| ())
                    .map_err(setup);
                c.batch_execute("SELECT pg_advisory_unlock(7261746578)")?;
                result?;
            }
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs `f` with a pooled connection on the blocking pool.
    ///
    /// Traced as a `db` client span (shared::traces) named after the caller's
    /// file and line, which say which query it is; a plain function returning
    /// the future so that `#[track_caller]` sees the caller.
    #[track_caller]
    pub fn run<F, R>(&self, f: F) -> impl Future<Output = Result<R, DbError>> + use<F, R>
    where
        F: FnOnce(&mut DbConnection) -> Result<R, DbError> + Send + 'static,
        R: Send + 'static,
    {
        let caller = std::panic::Location::caller();
        let span = tracing::debug_span!(
            "db",
            otel.kind = "client",
            otel.name = tracing::field::Empty,
            db.system.name = self.backend.system_name(),
            code.file.path = caller.file(),
            code.line.number = caller.line(),
        );
        if !span.is_disabled() {
            span.record(
                "otel.name",
                format!("db {}:{}", caller.file(), caller.line()),
            );
        }
        let pool = self.pool.clone();
        let inner = span.clone();
        async move {
            actix_web::web::block(move || {
                let _entered = inner.enter();
                let mut pooled: PooledConnection<Manager> = pool.get()?;
                let result = f(&mut pooled.conn);
                pooled.used(&result);
                result
            })
            .await
            .map_err(|e| DbError::Unavailable(format!("blocking pool: {e}")))?
        }
        .instrument(span)
    }

    /// `f` inside one transaction, committed when it returns Ok; traced as
    /// [`run`](Self::run) is, under the caller's file and line.
    #[track_caller]
    pub fn transaction<F, R>(&self, f: F) -> impl Future<Output = Result<R, DbError>> + use<F, R>
    where
        F: FnOnce(&mut DbConnection) -> Result<R, DbError> + Send + 'static,
        R: Send + 'static,
    {
        self.run(move |conn| conn.transaction(|tx| f(tx)))
    }

    pub async fn ping(&self) -> Result<(), DbError> {
        self.run(|conn| conn.batch_execute("SELECT 1").map_err(DbError::from))
            .await
    }
}

impl crate::telemetry::DatabasePing for Database {
    fn ping(&self) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move { Database::ping(self).await.map_err(|e| e.to_string()) })
    }
}

/// Seconds since the Unix epoch: timestamps are stored as integers so that both
/// backends hold and compare them identically.
pub fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("sqlite://data/auth.db").unwrap(),
            (Backend::Sqlite, "data/auth.db".into())
        );
        assert_eq!(
            parse_url("sqlite:///tmp/x.db").unwrap(),
            (Backend::Sqlite, "/tmp/x.db".into())
        );
        assert_eq!(
            parse_url("sqlite::memory:").unwrap(),
            (Backend::Sqlite, ":memory:".into())
        );
        assert_eq!(parse_url("postgres://u@h/db").unwrap().0, Backend::Postgres);
        assert!(parse_url("mysql://x").is_err());
        assert!(parse_url("sqlite://").is_err());
    }

    /// A connection is checked at check-out unless it answered within the
    /// last second; a lost connection is checked whatever its age.
    #[test]
    fn a_connection_is_checked_unless_it_answered_just_now() {
        use std::time::Instant;
        let manager = Manager {
            backend: Backend::Sqlite,
            target: ":memory:".into(),
        };
        let mut pooled = manager.connect().unwrap();
        let now = Instant::now();
        assert!(!pooled.needs_check(now));
        assert!(pooled.needs_check(now + CHECK_AFTER));
        pooled.used::<()>(&Err(DbError::Unavailable("gone".into())));
        assert!(pooled.needs_check(Instant::now()));
        pooled.used::<()>(&Err(DbError::NotFound));
        assert!(!pooled.needs_check(Instant::now()));
        pooled.used::<()>(&Err(DbError::Unavailable("gone".into())));
        manager.is_valid(&mut pooled).unwrap();
        assert!(
            !pooled.needs_check(Instant::now()),
            "the check is an answer"
        );
    }
}
