//! `pay_order_transitions`: one row per status change, written with the
//! change's merchant event (the outbox) in the changing transaction.

use diesel::prelude::*;
use serde::Serialize;
use shared::db::{Database, DbConnection, DbError};

use super::outbox::{self, NewEvent};
use super::schema::pay_order_transitions;
use super::types::Status;

/// A transition as stored: history, read back as the text it was written
/// from (a [`Status`]); no logic reads it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = pay_order_transitions)]
pub struct Transition {
    pub id: i64,
    pub out_trade_no: String,
    pub from_status: String,
    pub to_status: String,
    /// `notify`, `query` (GET ?sync=true), `reconcile`, `close`,
    /// `unifiedorder`, `refund`, `refund_notify`.
    pub source: String,
    pub at: i64,
    /// The request (or background pass, `reconcile-<n>`) that made the change.
    pub request_id: Option<String>,
}

/// A status change about to be recorded.
#[derive(Debug, Clone)]
pub struct NewTransition<'a> {
    pub out_trade_no: &'a str,
    pub from: Status,
    pub to: Status,
    pub source: &'a str,
    pub at: i64,
    pub request_id: &'a str,
}

/// Writes the transition row and, when the change has one, its merchant
/// event, inside the caller's transaction: both or neither are committed.
pub fn record(
    conn: &mut DbConnection,
    t: &NewTransition,
    event: Option<&NewEvent>,
) -> Result<(), DbError> {
    diesel::insert_into(pay_order_transitions::table)
        .values((
            pay_order_transitions::out_trade_no.eq(t.out_trade_no),
            pay_order_transitions::from_status.eq(t.from),
            pay_order_transitions::to_status.eq(t.to),
            pay_order_transitions::source.eq(t.source),
            pay_order_transitions::at.eq(t.at),
            pay_order_transitions::request_id.eq(t.request_id),
        ))
        .execute(conn)?;
    match event {
        Some(e) => outbox::insert(conn, e),
        None => Ok(()),
    }
}

/// Every transition of an order, oldest first (operators and tests).
pub async fn of_order(db: &Database, out_trade_no: &str) -> Result<Vec<Transition>, DbError> {
    let no = out_trade_no.to_owned();
    db.run(move |conn| {
        Ok(pay_order_transitions::table
            .filter(pay_order_transitions::out_trade_no.eq(no))
            .order(pay_order_transitions::id.asc())
            .select(Transition::as_select())
            .load(conn)?)
    })
    .await
}
