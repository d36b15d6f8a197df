//! The operator console's reads (and its one write, an event made due):
//! the order list paged by keyset, an order's notifications, the stored
//! reconciliation days. Nothing here decides; `domain::console` validates
//! the filters and shapes the answers.

use diesel::prelude::*;
use shared::db::{Database, DbError};

use super::bills::pay_reconciliations;
use super::notifications::Notification;
use super::orders::Order;
use super::outbox::Event;
use super::schema::{pay_events, pay_notifications, pay_orders};
use super::types::{ApiVersion, Status, TradeType};
use super::with_reason;

/// Which orders the list shows; every field narrows it. `before` is the
/// keyset position `(created_at, id)` of the last row of the previous page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    pub status: Option<Status>,
    pub trade_type: Option<TradeType>,
    pub api: Option<ApiVersion>,
    /// `created_at` in `[from, to)`, Unix seconds.
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub min_fen: Option<i64>,
    pub max_fen: Option<i64>,
    /// Exactly an `out_trade_no` or a `transaction_id`.
    pub q: Option<String>,
    pub before: Option<(i64, i64)>,
}

/// At most `limit` orders matching `f`, newest first: `created_at DESC, id
/// DESC`, which the indexes `pay_orders_newest` and
/// `pay_orders_status_newest` hold in that order, so a page is a range scan
/// of `limit` rows whatever its depth.
pub async fn orders(db: &Database, f: OrderFilter, limit: i64) -> Result<Vec<Order>, DbError> {
    db.run(move |conn| {
        let mut q = pay_orders::table
            .select(Order::as_select())
            .order((pay_orders::created_at.desc(), pay_orders::id.desc()))
            .limit(limit)
            .into_boxed();
        if let Some(s) = f.status {
            q = q.filter(pay_orders::status.eq(s));
        }
        if let Some(t) = f.trade_type {
            q = q.filter(pay_orders::trade_type.eq(t));
        }
        if let Some(a) = f.api {
            q = q.filter(pay_orders::api.eq(a));
        }
        if let Some(from) = f.from {
            q = q.filter(pay_orders::created_at.ge(from));
        }
        if let Some(to) = f.to {
            q = q.filter(pay_orders::created_at.lt(to));
        }
        if let Some(min) = f.min_fen {
            q = q.filter(pay_orders::amount_fen.ge(min));
        }
        if let Some(max) = f.max_fen {
            q = q.filter(pay_orders::amount_fen.le(max));
        }
        if let Some(text) = f.q {
            q = q.filter(
                pay_orders::out_trade_no
                    .eq(text.clone())
                    .or(pay_orders::transaction_id.eq(text)),
            );
        }
        if let Some((at, id)) = f.before {
            // `created_at <= at` alone bounds the index scan (the OR below
            // cannot); the OR then drops the page's earlier rows of that
            // same second.
            q = q
                .filter(pay_orders::created_at.le(at))
                .filter(pay_orders::created_at.lt(at).or(pay_orders::id.lt(id)));
        }
        Ok(q.load(conn).map_err(with_reason)?)
    })
    .await
}

/// Every notification stored for the order, oldest first.
pub async fn notifications_of(
    db: &Database,
    out_trade_no: &str,
) -> Result<Vec<Notification>, DbError> {
    let no = out_trade_no.to_owned();
    db.run(move |conn| {
        Ok(pay_notifications::table
            .filter(pay_notifications::out_trade_no.eq(no))
            .order(pay_notifications::id.asc())
            .select(Notification::as_select())
            .load(conn)?)
    })
    .await
}

pub async fn event(db: &Database, id: i64) -> Result<Option<Event>, DbError> {
    db.run(move |conn| {
        Ok(pay_events::table
            .filter(pay_events::id.eq(id))
            .select(Event::as_select())
            .first(conn)
            .optional()?)
    })
    .await
}

/// An undelivered event becomes due at `now_ms`: the dispatcher's next
/// pass sends it (after its order's earlier events, as always). False when
/// the event is delivered or does not exist.
pub async fn make_due(db: &Database, id: i64, now_ms: i64) -> Result<bool, DbError> {
    db.run(move |conn| {
        let n = diesel::update(
            pay_events::table
                .filter(pay_events::id.eq(id))
                .filter(pay_events::delivered.eq(false)),
        )
        .set(pay_events::next_attempt_ms.eq(now_ms))
        .execute(conn)?;
        Ok(n == 1)
    })
    .await
}

/// A stored reconciliation day without its result (the discrepancies).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = pay_reconciliations)]
pub struct ReconciliationDay {
    pub bill_date: String,
    pub api: String,
    pub bill_rows: i64,
    pub matched: i64,
    pub discrepancies: i64,
    pub reconciled_at: i64,
}

/// The stored reconciliation days in `[from, to]` (`YYYY-MM-DD`, which
/// sorts as text), newest first, at most `limit`.
pub async fn reconciliations(
    db: &Database,
    from: String,
    to: String,
    limit: i64,
) -> Result<Vec<ReconciliationDay>, DbError> {
    db.run(move |conn| {
        Ok(pay_reconciliations::table
            .filter(pay_reconciliations::bill_date.ge(from))
            .filter(pay_reconciliations::bill_date.le(to))
            .order(pay_reconciliations::bill_date.desc())
            .limit(limit)
            .select(ReconciliationDay::as_select())
            .load(conn)?)
    })
    .await
}
