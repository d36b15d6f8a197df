//! One code base on SQLite and PostgreSQL: migrations, the `db_run!` macro,
//! transactions, and the error mapping (NotFound → 404, pool errors → 503).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use shared::db::{Database, DbError, Migrations};
use shared::db_run;
use shared::error::ApiError;

diesel::table! {
    probe (id) {
        id -> BigInt,
        name -> Text,
        n -> BigInt,
    }
}

const SQLITE: EmbeddedMigrations = embed_migrations!("tests/migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("tests/migrations/postgres");

fn migrations() -> Migrations {
    Migrations {
        sqlite: SQLITE,
        postgres: POSTGRES,
    }
}

async fn upsert(db: &Database, id: i64, name: &'static str) -> Result<i64, DbError> {
    db.run(move |conn| {
        db_run!(conn => {
            diesel::insert_into(probe::table)
                .values((probe::id.eq(id), probe::name.eq(name), probe::n.eq(1)))
                .on_conflict(probe::id)
                .do_update()
                .set(probe::n.eq(probe::n + 1))
                .returning(probe::n)
                .get_result::<i64>(conn)
                .map_err(DbError::from)
        })
    })
    .await
}

#[tokio::test]
async fn same_code_on_every_backend() {
    for t in testkit::all_backends(migrations) {
        let db = &t.db;
        db.ping().await.unwrap();
        assert_eq!(upsert(db, 1, "one").await.unwrap(), 1, "{}", t.url);
        assert_eq!(upsert(db, 1, "one").await.unwrap(), 2);

        // A unique violation is recognisable.
        let err = upsert(db, 2, "one").await.unwrap_err();
        assert!(err.is_unique_violation(), "{err}");

        // A failed transaction leaves nothing behind.
        let result = db
            .transaction(|conn| {
                db_run!(conn => {
                    diesel::update(probe::table).set(probe::n.eq(100)).execute(conn)?;
                    Err::<(), _>(DbError::Setup("abort".into()))
                })
            })
            .await;
        assert!(result.is_err());
        let n: i64 = db
            .run(|conn| db_run!(conn => probe::table.select(probe::n).find(1).first(conn).map_err(DbError::from)))
            .await
            .unwrap();
        assert_eq!(n, 2);

        // NotFound maps to 404/1004.
        let missing = db
            .run(|conn| db_run!(conn => probe::table.select(probe::n).find(99).first::<i64>(conn).map_err(DbError::from)))
            .await
            .unwrap_err();
        assert!(matches!(missing, DbError::NotFound));
        assert_eq!(ApiError::from(missing).code(), 1004);
    }
}

#[tokio::test]
async fn migrations_are_idempotent() {
    for t in testkit::all_backends(migrations) {
        // Connecting again runs no migration twice.
        let again = Database::connect(&t.url, migrations()).unwrap();
        again.ping().await.unwrap();
    }
}

#[test]
fn unreachable_postgres_is_unavailable() {
    let err = Database::connect("postgres://nobody@127.0.0.1:1/none", migrations()).unwrap_err();
    assert!(matches!(err, DbError::Unavailable(_)), "{err}");
    assert_eq!(ApiError::from(err).code(), 5003);
}

#[test]
fn bad_urls_are_refused() {
    assert!(Database::connect("mysql://x", migrations()).is_err());
}
