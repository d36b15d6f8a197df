//! `pay_notifications`: every payment and refund notification that was read,
//! whatever became of it, for an operator.

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
    /// `payment` or `refund`.
    pub kind: String,
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
}

pub fn insert(conn: &mut DbConnection, n: &NewNotification) -> Result<(), DbError> {
    diesel::insert_into(pay_notifications::table)
        .values(n)
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
