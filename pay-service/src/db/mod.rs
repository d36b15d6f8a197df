//! The database layer: the schema, the typed columns, and one module per
//! table group. Only diesel lives here; the rules about what may change
//! when are the domain's, which calls these functions (inside its own
//! transactions where a change spans tables).

pub mod bills;
pub mod console;
pub mod notifications;
pub mod orders;
pub mod outbox;
pub mod refunds;
pub mod schema;
pub mod stats;
pub mod transitions;
pub mod types;

use diesel::result::Error;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use shared::db::Migrations;

pub use types::{ApiVersion, RefundStatus, Status, TradeType};

const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");

pub fn migrations() -> Migrations {
    Migrations {
        sqlite: SQLITE,
        postgres: POSTGRES,
    }
}

/// diesel names a field that failed to read ("Error deserializing field
/// 'status'") and keeps the reason as its source, which the service's error
/// messages and logs do not show; this puts the reason (an unknown value of a
/// typed column names its column, `types`) into the message itself.
fn with_reason(e: Error) -> Error {
    match e {
        Error::DeserializationError(inner) => {
            let mut message = inner.to_string();
            let mut source = inner.source();
            while let Some(s) = source {
                message = format!("{message}: {s}");
                source = s.source();
            }
            Error::DeserializationError(message.into())
        }
        other => other,
    }
}
