//! Where one payment notification's time goes, measured from outside
//! pay-service (its code is not instrumented for the bench):
//!
//! - end to end: notifications sent one at a time, mean;
//! - HTTP round trip: `/healthz` of the same process, one at a time, mean
//!   (connection, actix, the middleware: what every request pays);
//! - parse + verify: `shared::xml::parse` and the MD5 sign check on the same
//!   bodies, in the bench (what pay-service calls, on the same kind of CPU);
//! - commit: on PostgreSQL, a one-row INSERT committed with
//!   `synchronous_commit` on (the WAL flush every applied notification
//!   waits for), and off for comparison;
//! - the rest: statements, pool checkout and the `web::block` hop to the
//!   blocking pool and back;
//! - and on PostgreSQL, from `pg_stat_user_tables` of the run's schema, the
//!   rows inserted and updated and the index and sequential scans per
//!   notification: how many statements one costs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, QueryableByName, RunQueryDsl};
use serde::Serialize;
use shared::sign::{SignType, pay_sign};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationSteps {
    pub notifications: usize,
    pub end_to_end_ms: f64,
    pub http_round_trip_ms: f64,
    pub parse_verify_ms: f64,
    /// PostgreSQL only.
    pub commit_ms: Option<f64>,
    pub commit_async_ms: Option<f64>,
    /// End to end less the three above.
    pub rest_ms: f64,
    /// Per table of the run's schema, per notification (PostgreSQL only).
    pub tables: Vec<TableWork>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableWork {
    pub table: String,
    pub inserts: f64,
    pub updates: f64,
    pub index_scans: f64,
    pub seq_scans: f64,
}

/// Mean of `f` over `n` runs, in milliseconds.
pub fn mean_ms(n: usize, mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    for _ in 0..n {
        f();
    }
    started.elapsed().as_secs_f64() * 1000.0 / n.max(1) as f64
}

/// What pay-service does before it touches the database: parse the XML, then
/// recompute the MD5 sign over the other fields and compare.
pub fn parse_and_verify(body: &str, key: &str) -> bool {
    let Ok(mut fields) = shared::xml::parse(body.as_bytes(), 65536) else {
        return false;
    };
    let Some(given) = fields.remove("sign") else {
        return false;
    };
    let fields: BTreeMap<String, String> = fields;
    shared::sign::constant_time_eq(
        pay_sign(&fields, key, SignType::Md5).as_bytes(),
        given.to_ascii_uppercase().as_bytes(),
    )
}

/// Mean commit time of a one-row INSERT in `schema`, with
/// `synchronous_commit` on and off (ms). Blocking.
pub fn commit_costs(admin_url: &str, schema: &str, n: usize) -> anyhow::Result<(f64, f64)> {
    let mut conn = diesel::PgConnection::establish(admin_url)
        .map_err(|e| anyhow::anyhow!("commit probe: {e}"))?;
    let table = format!("{schema}.bench_commit_probe");
    conn.batch_execute(&format!(
        "CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, v INTEGER NOT NULL)"
    ))?;
    let insert = format!("INSERT INTO {table} (v) VALUES (1)");
    let mut failed = None;
    let mut timed = |conn: &mut diesel::PgConnection| {
        mean_ms(n, || {
            if let Err(e) = conn.batch_execute(&insert) {
                failed = Some(e);
            }
        })
    };
    conn.batch_execute("SET synchronous_commit = on")?;
    let on = timed(&mut conn);
    conn.batch_execute("SET synchronous_commit = off")?;
    let off = timed(&mut conn);
    conn.batch_execute(&format!("DROP TABLE {table}"))?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    Ok((on, off))
}

#[derive(QueryableByName, Debug, Clone, PartialEq)]
struct TableRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    relname: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    ins: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    upd: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    idx: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    seq: i64,
}

/// The counters of every table of `schema`, as PostgreSQL has them now.
/// Blocking.
pub fn table_counters(admin_url: &str, schema: &str) -> anyhow::Result<Vec<(String, [i64; 4])>> {
    let mut conn = diesel::PgConnection::establish(admin_url)
        .map_err(|e| anyhow::anyhow!("table statistics: {e}"))?;
    // The schema name is the bench's own (bench_<uuid>), never input.
    let rows: Vec<TableRow> = diesel::sql_query(format!(
        "SELECT relname::text AS relname, n_tup_ins AS ins, n_tup_upd AS upd, \
         COALESCE(idx_scan, 0) AS idx, seq_scan AS seq \
         FROM pg_stat_user_tables WHERE schemaname = '{schema}' ORDER BY relname"
    ))
    .load(&mut conn)?;
    Ok(rows
        .into_iter()
        .map(|r| (r.relname, [r.ins, r.upd, r.idx, r.seq]))
        .collect())
}

/// Per-notification work from two snapshots of [`table_counters`].
pub fn table_work(
    before: &[(String, [i64; 4])],
    after: &[(String, [i64; 4])],
    notifications: usize,
) -> Vec<TableWork> {
    let n = notifications.max(1) as f64;
    after
        .iter()
        .filter_map(|(table, a)| {
            let b = before
                .iter()
                .find(|(t, _)| t == table)
                .map_or([0; 4], |(_, b)| *b);
            let d: Vec<f64> = (0..4).map(|i| (a[i] - b[i]) as f64 / n).collect();
            (d.iter().any(|x| *x > 0.0)).then(|| TableWork {
                table: table.clone(),
                inserts: d[0],
                updates: d[1],
                index_scans: d[2],
                seq_scans: d[3],
            })
        })
        .collect()
}

/// PostgreSQL flushes a backend's table counters at most once a second, and
/// an idle backend's last ones up to ten seconds later; this waits (with a
/// deadline) until the counters have stopped moving and show at least `min`
/// inserts since `before`.
pub async fn settled_counters(
    admin_url: &str,
    schema: &str,
    before: &[(String, [i64; 4])],
    min_inserts: i64,
) -> anyhow::Result<Vec<(String, [i64; 4])>> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let inserts = |rows: &[(String, [i64; 4])]| -> i64 {
        rows.iter().map(|(_, c)| c[0]).sum::<i64>() - before.iter().map(|(_, c)| c[0]).sum::<i64>()
    };
    let read = || {
        let (u, s) = (admin_url.to_owned(), schema.to_owned());
        async move { tokio::task::spawn_blocking(move || table_counters(&u, &s)).await? }
    };
    let mut last = read().await?;
    loop {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let now = read().await?;
        if (now == last && inserts(&now) >= min_inserts) || Instant::now() > deadline {
            return Ok(now);
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_wechats_signature_and_refuses_a_changed_body() {
        // WeChat Pay's published example key and the sandbox's way of signing.
        let key = "192006250b4c09247ec02edce69f6a2d";
        let mut f = BTreeMap::new();
        for (k, v) in [("appid", "wxd930ea5d5a258f4f"), ("total_fee", "1")] {
            f.insert(k.to_owned(), v.to_owned());
        }
        let sign = pay_sign(&f, key, SignType::Md5);
        f.insert("sign".into(), sign);
        let xml = shared::xml::map_to_xml(&f);
        assert!(parse_and_verify(&xml, key));
        assert!(!parse_and_verify(&xml.replace(">1<", ">2<"), key));
        assert!(!parse_and_verify("<xml>", key));
    }

    #[test]
    fn work_per_notification_is_the_difference_over_the_count() {
        let before = vec![("pay_orders".to_owned(), [0, 10, 20, 1])];
        let after = vec![
            ("pay_orders".to_owned(), [0, 20, 40, 1]),
            ("pay_notifications".to_owned(), [10, 0, 0, 0]),
            ("idle".to_owned(), [0, 0, 0, 0]),
        ];
        let w = table_work(&before, &after, 10);
        assert_eq!(w.len(), 2);
        assert_eq!(
            (w[0].updates, w[0].index_scans, w[0].seq_scans),
            (1.0, 2.0, 0.0)
        );
        assert_eq!(w[1].inserts, 1.0);
    }
}
