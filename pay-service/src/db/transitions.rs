//! `pay_order_transitions`: one row per status change, written with the
//! change's merchant event (the outbox) and, for a notification, its
//! `pay_notifications` row, in the changing transaction (on PostgreSQL in
//! one statement).

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use serde::Serialize;
use shared::db::{Database, DbConnection, DbError, Prepared};

use super::notifications::{self, NewNotification};
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

/// Writes the transition row and, when the change has them, its merchant
/// event and the row of the notification that reported it, inside the
/// caller's transaction: all or none are committed. On PostgreSQL the rows
/// go in one statement (the first INSERTs in a `WITH`), one round trip
/// instead of one per row; on SQLite one INSERT each (no network between
/// them).
pub fn record(
    conn: &mut DbConnection,
    t: &NewTransition,
    event: Option<&NewEvent>,
    notification: Option<&NewNotification>,
) -> Result<(), DbError> {
    if let DbConnection::Pg(c) = conn {
        insert_together(t, event, notification).execute(c)?;
        return Ok(());
    }
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
    if let Some(e) = event {
        outbox::insert(conn, e)?;
    }
    if let Some(n) = notification {
        notifications::insert(conn, n)?;
    }
    Ok(())
}

/// The INSERTs of [`record`] as one PostgreSQL statement: `WITH
/// transition AS (INSERT …), event AS (INSERT …) INSERT …`. Data-modifying
/// statements in a `WITH` run exactly once, whether or not the last one
/// reads them. [`Prepared`]: each of its three shapes is planned once per
/// connection, not at every notification (issue #16).
fn insert_together<'a>(
    t: &'a NewTransition,
    event: Option<&'a NewEvent>,
    notification: Option<&'a NewNotification>,
) -> Prepared<'a, Pg> {
    let mut sql = Placeholders::default();
    let mut inserts = vec![("transition", sql.insert(TRANSITION))];
    if event.is_some() {
        inserts.push(("event", sql.insert(EVENT)));
    }
    if notification.is_some() {
        inserts.push(("notification", sql.insert(NOTIFICATION)));
    }
    let (_, last) = inserts.pop().unwrap_or_default();
    let with: Vec<String> = inserts
        .into_iter()
        .map(|(name, insert)| format!("{name} AS ({insert})"))
        .collect();
    let text = if with.is_empty() {
        last
    } else {
        format!("WITH {} {last}", with.join(", "))
    };
    let mut q = Prepared::new(text)
        .bind::<Text, _>(t.out_trade_no)
        .bind::<Text, _>(t.from)
        .bind::<Text, _>(t.to)
        .bind::<Text, _>(t.source)
        .bind::<BigInt, _>(t.at)
        .bind::<Nullable<Text>, _>(Some(t.request_id));
    if let Some(e) = event {
        q = q
            .bind::<Text, _>(&e.out_trade_no)
            .bind::<Text, _>(e.event_type)
            .bind::<Text, _>(&e.payload)
            .bind::<Bool, _>(false)
            .bind::<BigInt, _>(0i64)
            .bind::<BigInt, _>(e.next_attempt_ms)
            .bind::<BigInt, _>(e.created_at);
    }
    if let Some(n) = notification {
        q = q
            .bind::<Nullable<Text>, _>(&n.out_trade_no)
            .bind::<Text, _>(&n.raw_body)
            .bind::<Bool, _>(n.sign_verified)
            .bind::<Text, _>(&n.outcome)
            .bind::<Text, _>(&n.detail)
            .bind::<BigInt, _>(n.received_at)
            .bind::<Text, _>(&n.kind)
            .bind::<Nullable<Text>, _>(&n.body_sha256)
            .bind::<Nullable<BigInt>, _>(n.body_size);
    }
    q
}

/// A table and the columns one INSERT writes.
type Insert = (&'static str, &'static [&'static str]);

/// Each INSERT's columns, bound in this order by [`insert_together`].
const TRANSITION: Insert = (
    "pay_order_transitions",
    &[
        "out_trade_no",
        "from_status",
        "to_status",
        "source",
        "at",
        "request_id",
    ],
);
const EVENT: Insert = (
    "pay_events",
    &[
        "out_trade_no",
        "event_type",
        "payload",
        "delivered",
        "attempts",
        "next_attempt_ms",
        "created_at",
    ],
);
const NOTIFICATION: Insert = (
    "pay_notifications",
    &[
        "out_trade_no",
        "raw_body",
        "sign_verified",
        "outcome",
        "detail",
        "received_at",
        "kind",
        "body_sha256",
        "body_size",
    ],
);

/// Numbers the bind placeholders (`$1`, `$2`, …) across the INSERTs of one
/// statement.
#[derive(Default)]
struct Placeholders {
    used: usize,
}

impl Placeholders {
    /// `INSERT INTO table (columns…) VALUES ($n, …)`.
    fn insert(&mut self, (table, columns): Insert) -> String {
        let values: Vec<String> = (1..=columns.len())
            .map(|i| format!("${}", self.used + i))
            .collect();
        self.used += columns.len();
        format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            columns.join(", "),
            values.join(", ")
        )
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
