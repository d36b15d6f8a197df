//! `pay_notifications`: every payment and refund notification that was read,
//! whatever became of it, for an operator. Those refused before they verified
//! (`sign_verified` false) keep only a prefix of the body with its SHA-256
//! and size, and are trimmed to a row count and an age ([`insert_refused`]).

use diesel::prelude::*;
use serde::Serialize;
use shared::db::{Database, DbConnection, DbError};

use super::schema::pay_notifications;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = pay_notifications)]
pub struct Notification {
    pub id: i64,
    pub out_trade_no: Option<String>,
    pub raw_body: String,
    pub sign_verified: bool,
    pub outcome: String,
    pub detail: String,
    pub received_at: i64,
    /// `payment` or `refund` (or a v3 kind).
    pub kind: String,
    /// Refused before verification: the whole body's SHA-256 (hex) and size;
    /// `raw_body` is then only a prefix.
    pub body_sha256: Option<String>,
    pub body_size: Option<i64>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = pay_notifications)]
pub struct NewNotification {
    pub out_trade_no: Option<String>,
    pub raw_body: String,
    pub sign_verified: bool,
    pub outcome: String,
    pub detail: String,
    pub received_at: i64,
    /// `payment` or `refund`.
    pub kind: String,
    pub body_sha256: Option<String>,
    pub body_size: Option<i64>,
}

pub fn insert(conn: &mut DbConnection, n: &NewNotification) -> Result<(), DbError> {
    diesel::insert_into(pay_notifications::table)
        .values(n)
        .execute(conn)?;
    Ok(())
}

/// Writes a refused notification's row (`sign_verified` false), then trims
/// the refused rows to the newest `keep_rows` and to those received at or
/// after `keep_since` (Unix seconds), in the caller's transaction. Verified
/// notifications are never trimmed.
pub fn insert_refused(
    conn: &mut DbConnection,
    n: &NewNotification,
    keep_rows: i64,
    keep_since: i64,
) -> Result<(), DbError> {
    insert(conn, n)?;
    let refused = pay_notifications::table.filter(pay_notifications::sign_verified.eq(false));
    let cutoff: Option<i64> = refused
        .order(pay_notifications::id.desc())
        .offset(keep_rows)
        .select(pay_notifications::id)
        .first(conn)
        .optional()?;
    if let Some(cutoff) = cutoff {
        diesel::delete(
            pay_notifications::table
                .filter(pay_notifications::sign_verified.eq(false))
                .filter(pay_notifications::id.le(cutoff)),
        )
        .execute(conn)?;
    }
    diesel::delete(
        pay_notifications::table
            .filter(pay_notifications::sign_verified.eq(false))
            .filter(pay_notifications::received_at.lt(keep_since)),
    )
    .execute(conn)?;
    Ok(())
}

/// Every notification received (payment and refund), oldest first;
/// `out_trade_no` None lists all.
pub async fn list(db: &Database, out_trade_no: Option<&str>) -> Result<Vec<Notification>, DbError> {
    let no = out_trade_no.map(str::to_owned);
    db.run(move |conn| {
        let mut q = pay_notifications::table
            .order(pay_notifications::id.asc())
            .select(Notification::as_select())
            .into_boxed();
        if let Some(no) = no {
            q = q.filter(pay_notifications::out_trade_no.eq(no));
        }
        Ok(q.load(conn)?)
    })
    .await
}
