//! The database layer: auth-service's tables (`schema`, `migrations/`) and
//! the queries on them, as free functions taking a connection. The only place
//! in the crate that speaks diesel.

pub mod schema;
pub mod users;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use shared::db::Migrations;

const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// auth-service's migrations (versions `2026-11-25-1000NN`, table `users`).
pub fn migrations() -> Migrations {
    Migrations {
        sqlite: SQLITE,
        postgres: POSTGRES,
    }
}
