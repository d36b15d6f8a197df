//! The console's chart figures: payments, orders and notification delays
//! counted per Beijing-time bucket (an hour or a day) in the database, so a
//! chart reads one row per bucket whatever the number of orders.
//!
//! Bucket `i` is `[i × width − 8 h, (i + 1) × width − 8 h)`, i.e. `(t + 8 h)
//! / width` in integer division: Beijing time has no daylight saving, so
//! every Beijing hour and day is a whole multiple of the width after the
//! shift. The same SQL runs on both backends (recursive CTEs, integer `/`,
//! `ROW_NUMBER` and `COUNT` windows exist on both); the bounds are integers
//! formatted into the text, never user text. The indexes that make a range
//! an index-only read are `pay_orders_paid` (migration `…_chart_indexes`)
//! and the console's `pay_orders_status_newest`.

use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::BigInt;
use shared::db::{Database, DbError};
use shared::db_run;

use super::types::Status;
use super::with_reason;

/// Beijing time's offset from UTC, in seconds.
pub const BEIJING_OFFSET: i64 = 8 * 3600;

/// Paid orders whose `paid_at` (WeChat's time_end) falls in one bucket.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct PaidBucket {
    #[diesel(sql_type = BigInt)]
    pub bucket: i64,
    #[diesel(sql_type = BigInt)]
    pub orders: i64,
    #[diesel(sql_type = BigInt)]
    pub amount_fen: i64,
}

/// Orders created in one bucket, and how many of those were paid.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct CreatedBucket {
    #[diesel(sql_type = BigInt)]
    pub bucket: i64,
    #[diesel(sql_type = BigInt)]
    pub created: i64,
    #[diesel(sql_type = BigInt)]
    pub paid: i64,
}

/// One of the two rows a bucket's delay percentiles are read from: the
/// `nth` smallest delay of the bucket's `orders` delays.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct DelayRank {
    #[diesel(sql_type = BigInt)]
    pub bucket: i64,
    #[diesel(sql_type = BigInt)]
    pub orders: i64,
    #[diesel(sql_type = BigInt)]
    pub nth: i64,
    #[diesel(sql_type = BigInt)]
    pub delay: i64,
}

/// `status IN ('PAID', 'REFUND')`: an order refunded since was paid.
fn paid_statuses() -> String {
    format!(
        "('{}', '{}')",
        Status::Paid.as_str(),
        Status::Refund.as_str()
    )
}

fn bucket_of(column: &str, width: i64) -> String {
    format!("(({column} + {BEIJING_OFFSET}) / {width})")
}

async fn load<R>(db: &Database, sql: String) -> Result<Vec<R>, DbError>
where
    R: QueryableByName<diesel::pg::Pg> + QueryableByName<diesel::sqlite::Sqlite> + Send + 'static,
{
    db.run(move |conn| {
        db_run!(conn => sql_query(&sql).load::<R>(conn))
            .map_err(with_reason)
            .map_err(Into::into)
    })
    .await
}

/// `status IN (every status)`: true of every row the typed column can hold
/// (an unknown status is an error everywhere else), but it lets PostgreSQL
/// read `created_at` ranges from `pay_orders_status_newest` (status,
/// created_at, id) alone, an index-only scan, instead of fetching each row
/// for its status.
fn any_status() -> String {
    // A new status fails to compile here until it is listed below.
    let listed = |s: Status| match s {
        Status::NotPay | Status::Paid | Status::Closed | Status::Refund | Status::PayError => s,
    };
    let all = [
        Status::NotPay,
        Status::Paid,
        Status::Closed,
        Status::Refund,
        Status::PayError,
    ];
    let quoted: Vec<String> = all
        .into_iter()
        .map(|s| format!("'{}'", listed(s).as_str()))
        .collect();
    format!("({})", quoted.join(", "))
}

/// The buckets of `[from, to)` as a recursive CTE `b(i)` of bucket indexes,
/// and the join condition putting `column` in bucket `b.i`. Joined this way
/// the database reads each bucket as an index range and aggregates at most a
/// few hundred groups in memory: grouping by the expression instead made
/// PostgreSQL sort every row of the range (it cannot know the expression has
/// few values), twice as slow at a million orders.
fn buckets(column: &str, from: i64, to: i64, width: i64) -> (String, String) {
    let (first, last) = (
        (from + BEIJING_OFFSET).div_euclid(width),
        (to - 1 + BEIJING_OFFSET).div_euclid(width),
    );
    let cte = format!(
        "WITH RECURSIVE b(i) AS (SELECT CAST({first} AS BIGINT) \
         UNION ALL SELECT i + 1 FROM b WHERE i < {last})"
    );
    let join = format!(
        "{column} >= b.i * {width} - {BEIJING_OFFSET} \
         AND {column} < (b.i + 1) * {width} - {BEIJING_OFFSET}"
    );
    (cte, join)
}

/// Paid orders and their amount per bucket of `width` seconds, for `paid_at`
/// in `[from, to)`; buckets without a payment are absent.
pub async fn paid_per_bucket(
    db: &Database,
    from: i64,
    to: i64,
    width: i64,
) -> Result<Vec<PaidBucket>, DbError> {
    let (cte, join) = buckets("o.paid_at", from, to, width);
    let sql = format!(
        "{cte} SELECT b.i AS bucket, COUNT(*) AS orders, \
         CAST(COALESCE(SUM(o.amount_fen), 0) AS BIGINT) AS amount_fen \
         FROM b JOIN pay_orders o ON {join} \
         WHERE o.paid_at >= {from} AND o.paid_at < {to} AND o.status IN {statuses} \
         GROUP BY b.i ORDER BY 1",
        statuses = paid_statuses()
    );
    load(db, sql).await
}

/// Orders created per bucket for `created_at` in `[from, to)`, with how many
/// of them are paid (or were, and have been refunded since).
pub async fn created_per_bucket(
    db: &Database,
    from: i64,
    to: i64,
    width: i64,
) -> Result<Vec<CreatedBucket>, DbError> {
    let (cte, join) = buckets("o.created_at", from, to, width);
    let sql = format!(
        "{cte} SELECT b.i AS bucket, COUNT(*) AS created, \
         CAST(COALESCE(SUM(CASE WHEN o.status IN {statuses} THEN 1 ELSE 0 END), 0) AS BIGINT) AS paid \
         FROM b JOIN pay_orders o ON {join} \
         WHERE o.created_at >= {from} AND o.created_at < {to} AND o.status IN {every} \
         GROUP BY b.i ORDER BY 1",
        statuses = paid_statuses(),
        every = any_status()
    );
    load(db, sql).await
}

/// Per bucket of `paid_at` in `[from, to)`: the delays (our commit of PAID,
/// `pay_order_transitions.at`, minus WeChat's `paid_at`) at the nearest ranks
/// of each percentile in `percents` (1..=100). Ranked in the database, so
/// only those rows come back, however many orders were paid.
pub async fn delay_ranks(
    db: &Database,
    from: i64,
    to: i64,
    width: i64,
    percents: &[i64],
) -> Result<Vec<DelayRank>, DbError> {
    let bucket = bucket_of("o.paid_at", width);
    // Nearest rank: the ceil(p% × n)-th smallest, in integer arithmetic.
    let wanted = percents
        .iter()
        .map(|p| format!("r.nth = (r.orders * {p} + 99) / 100"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let wanted = if wanted.is_empty() {
        "1 = 0".to_owned()
    } else {
        wanted
    };
    let sql = format!(
        "SELECT r.bucket, r.orders, r.nth, r.delay FROM ( \
           SELECT {bucket} AS bucket, t.at - o.paid_at AS delay, \
             ROW_NUMBER() OVER (PARTITION BY {bucket} ORDER BY t.at - o.paid_at) AS nth, \
             COUNT(*) OVER (PARTITION BY {bucket}) AS orders \
           FROM pay_orders o JOIN pay_order_transitions t \
             ON t.out_trade_no = o.out_trade_no AND t.to_status = '{paid}' \
           WHERE o.paid_at >= {from} AND o.paid_at < {to} AND o.status IN {statuses} \
         ) r WHERE {wanted} ORDER BY r.bucket, r.nth",
        paid = Status::Paid.as_str(),
        statuses = paid_statuses()
    );
    load(db, sql).await
}
