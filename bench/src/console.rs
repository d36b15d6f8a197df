//! The operator console at scale (issue #18 §1): 1,000,000 orders in a fresh
//! PostgreSQL schema, loaded by one `INSERT … SELECT generate_series`, then
//! pay-service started on it and its admin order list (`GET
//! /api/pay/admin/orders`) timed per filter — first page, a page 20 pages
//! deep through the keyset cursor, status, trade type + API, amount range,
//! date range, search by out_trade_no and by transaction_id — against the
//! issue's goal of a page in under 200 ms; beside it the console's charts at
//! that size. Each request is sent alone (one at a time): the figure is a
//! page's latency, not throughput. `EXPLAIN` of each list query (the SQL
//! diesel builds for it, written out here) is printed, and a plan that sorts
//! the table is flagged.
//!
//! The orders are spread over the last 90 days, ids rising with time as a
//! real table's do; a multiplicative hash of the row number picks the
//! status (60 % PAID, 5 % REFUND, 20 % CLOSED, 15 % NOTPAY), trade type,
//! API (v3 three times in four) and amount (1 fen … ¥500); paid ones carry
//! a transaction_id, paid_at a few seconds to two minutes after creation,
//! and their PAID transition our commit 1-5 s later (one in 97 five minutes
//! later, as after a WeChat retry).

use std::process::Command;
use std::time::{Duration, Instant};

use diesel::Connection;
use diesel::connection::SimpleConnection;
use serde::Serialize;
use serde_json::Value;
use wechat_sandbox::{SANDBOX_MCH_ID, Sandbox, SandboxConfig};

use crate::backends::{Backend, Storage};
use crate::services::{Kind, Launch, Service};
use crate::{Extras, Options};

/// The goal for one page of the order list.
pub const GOAL: Duration = Duration::from_millis(200);
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789abcdef";
const DAY: i64 = 86_400;

#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    pub orders: i64,
    /// Timed requests per list query.
    pub repeats: usize,
    /// Timed requests per chart.
    pub chart_repeats: usize,
    /// How many pages deep the deep-page query is.
    pub depth: usize,
    pub launch: Launch,
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
}

/// One timed request, repeated.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleRow {
    pub query: String,
    pub path: String,
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Orders on the page (list queries).
    pub items: Option<usize>,
    /// The goal, for the list queries; None for the charts (no goal set).
    pub goal_ms: Option<f64>,
    pub pass: Option<bool>,
    /// `EXPLAIN` of the list query's SQL.
    pub plan: Option<String>,
    /// What in that plan reads more than a page ([`plan_flag`]).
    pub plan_flag: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleReport {
    pub started_at: String,
    pub orders: i64,
    pub paid_transitions: i64,
    pub load_seconds: f64,
    pub vacuum_analyze_seconds: f64,
    pub table_mib: f64,
    pub rows: Vec<ConsoleRow>,
}

impl ConsoleReport {
    pub fn table(&self) -> String {
        let mut out = format!(
            "console at scale: {} orders ({} PAID transitions) loaded in {:.1} s, VACUUM ANALYZE {:.1} s, \
             pay_orders {:.0} MiB with indexes\n\n",
            self.orders,
            self.paid_transitions,
            self.load_seconds,
            self.vacuum_analyze_seconds,
            self.table_mib
        );
        out.push_str(&format!(
            "{:<34} {:>7} {:>9} {:>9} {:>9} {:>6} {:>10}\n",
            "query", "samples", "p50 ms", "p99 ms", "max ms", "items", "< 200 ms"
        ));
        for r in &self.rows {
            let verdict = match r.pass {
                Some(true) => "pass",
                Some(false) => "FAIL",
                None => "-",
            };
            out.push_str(&format!(
                "{:<34} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>6} {:>10}\n",
                r.query,
                r.samples,
                r.p50_ms,
                r.p99_ms,
                r.max_ms,
                r.items.map_or("-".to_owned(), |n| n.to_string()),
                verdict
            ));
        }
        for r in self.rows.iter().filter(|r| r.plan.is_some()) {
            let sorts = r
                .plan_flag
                .as_deref()
                .map_or(String::new(), |f| format!("  <- {f}"));
            out.push_str(&format!(
                "\nEXPLAIN {}{sorts}\n{}\n",
                r.query,
                r.plan.as_deref().unwrap_or("")
            ));
        }
        out
    }
}

/// The rows: ids 1..=n in creation order; `h` mixes the id (Knuth's
/// multiplicative hash) so that status, type, API and amount do not follow
/// each other.
fn load_sql(n: i64, now: i64) -> String {
    let start = now - 90 * DAY;
    let span = 90 * DAY;
    format!(
        "INSERT INTO pay_orders (out_trade_no, user_id, appid, openid, trade_type, amount_fen, \
           description, status, transaction_id, client_ip, expires_at, paid_at, next_check_at, \
           created_at, updated_at, api, refund_reserved_fen, refunded_fen) \
         SELECT 'B' || lpad(g::text, 12, '0'), 1 + h % 20000, 'wxbenchapp000001', \
           'obench' || (h % 20000), \
           (ARRAY['JSAPI', 'MWEB', 'NATIVE'])[1 + (h / 100) % 3], amount, 'bench order', status, \
           CASE WHEN status IN ('PAID', 'REFUND') THEN '4200' || lpad(g::text, 24, '0') END, \
           '127.0.0.1', created + 1800, \
           CASE WHEN status IN ('PAID', 'REFUND') THEN created + 5 + (h / 7) % 120 END, \
           created + 300, created, created, \
           CASE WHEN (h / 300) % 4 = 0 THEN 'v2' ELSE 'v3' END, \
           CASE WHEN status = 'REFUND' THEN amount ELSE 0 END, \
           CASE WHEN status = 'REFUND' THEN amount ELSE 0 END \
         FROM ( \
           SELECT g, h, {start} + (g * {span}) / {n} AS created, 1 + (h / 1200) % 50000 AS amount, \
             CASE WHEN h % 100 < 60 THEN 'PAID' WHEN h % 100 < 65 THEN 'REFUND' \
                  WHEN h % 100 < 85 THEN 'CLOSED' ELSE 'NOTPAY' END AS status \
           FROM (SELECT g, (g * 2654435761) % 4294967296 AS h \
                 FROM generate_series(1::bigint, {n}::bigint) AS g) AS mixed \
         ) AS o; \
         INSERT INTO pay_order_transitions (out_trade_no, from_status, to_status, source, at) \
         SELECT out_trade_no, 'NOTPAY', 'PAID', 'notify', \
           paid_at + 1 + ((id * 2654435761) % 4294967296 / 13) % 5 \
             + CASE WHEN (id * 2654435761) % 4294967296 % 97 = 0 THEN 300 ELSE 0 END \
         FROM pay_orders WHERE paid_at IS NOT NULL;"
    )
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `url` with blocking diesel, off the async workers.
async fn on_pg<R: Send + 'static>(
    url: &str,
    f: impl FnOnce(&mut diesel::PgConnection) -> anyhow::Result<R> + Send + 'static,
) -> anyhow::Result<R> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn = diesel::PgConnection::establish(&url)?;
        f(&mut conn)
    })
    .await?
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn count(conn: &mut diesel::PgConnection, sql: &str) -> anyhow::Result<i64> {
    use diesel::RunQueryDsl;
    let rows: Vec<Count> = diesel::sql_query(sql).load(conn)?;
    Ok(rows.first().map_or(0, |c| c.n))
}

/// Loads the orders, then VACUUM ANALYZE (statistics for the planner, and
/// the visibility map that index-only scans need, as autovacuum would
/// leave a real table).
async fn load(url: &str, n: i64, report: &mut ConsoleReport) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp();
    let sql = load_sql(n, now);
    let started = Instant::now();
    let transitions = on_pg(url, move |conn| {
        conn.batch_execute(&sql)?;
        count(
            conn,
            "SELECT COUNT(*) AS n FROM pay_order_transitions WHERE to_status = 'PAID'",
        )
    })
    .await?;
    report.load_seconds = seconds(started.elapsed());
    report.paid_transitions = transitions;
    let started = Instant::now();
    let mib = on_pg(url, |conn| {
        // One statement per call: several would be one implicit
        // transaction, where VACUUM cannot run.
        conn.batch_execute("VACUUM ANALYZE pay_orders")?;
        conn.batch_execute("VACUUM ANALYZE pay_order_transitions")?;
        count(conn, "SELECT pg_total_relation_size('pay_orders') AS n")
    })
    .await?;
    report.vacuum_analyze_seconds = seconds(started.elapsed());
    report.table_mib = mib as f64 / (1024.0 * 1024.0);
    Ok(())
}

/// A list query: its name, its query string, and the WHERE clause diesel
/// writes for it (for EXPLAIN).
struct ListQuery {
    name: &'static str,
    query: String,
    sql_where: String,
}

fn list_queries(now: i64, probe_no: &str, probe_tx: &str) -> Vec<ListQuery> {
    let (from, to) = (now - 45 * DAY, now - 44 * DAY);
    let q = |name: &'static str, query: String, sql_where: String| ListQuery {
        name,
        query,
        sql_where,
    };
    vec![
        q("first page", String::new(), "TRUE".into()),
        q(
            "status=REFUND",
            "status=REFUND".into(),
            "status = 'REFUND'".into(),
        ),
        q(
            "status=CLOSED",
            "status=CLOSED".into(),
            "status = 'CLOSED'".into(),
        ),
        q(
            "tradeType=NATIVE&api=v2",
            "tradeType=NATIVE&api=v2".into(),
            "trade_type = 'NATIVE' AND api = 'v2'".into(),
        ),
        q(
            "amount 100.00-100.99 yuan",
            "minFen=10000&maxFen=10099".into(),
            "amount_fen >= 10000 AND amount_fen <= 10099".into(),
        ),
        q(
            "amount >= 499.00 yuan",
            "minFen=49900".into(),
            "amount_fen >= 49900".into(),
        ),
        q(
            "date range (one day, 45 days ago)",
            format!("from={from}&to={to}"),
            format!("created_at >= {from} AND created_at < {to}"),
        ),
        q(
            "status=PAID + one day",
            format!("status=PAID&from={from}&to={to}"),
            format!("status = 'PAID' AND created_at >= {from} AND created_at < {to}"),
        ),
        q(
            "q=out_trade_no",
            format!("q={probe_no}"),
            format!("(out_trade_no = '{probe_no}' OR transaction_id = '{probe_no}')"),
        ),
        q(
            "q=transaction_id",
            format!("q={probe_tx}"),
            format!("(out_trade_no = '{probe_tx}' OR transaction_id = '{probe_tx}')"),
        ),
        q(
            "q=unknown",
            "q=T000000000000000000".into(),
            "(out_trade_no = 'T000000000000000000' OR transaction_id = 'T000000000000000000')"
                .into(),
        ),
    ]
}

/// The keyset condition of a page after `cursor` (base64url of
/// `created_at.id`, as pay-service writes it).
fn cursor_where(cursor: &str) -> anyhow::Result<String> {
    use base64::Engine as _;
    let text = String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor)?)?;
    let (at, id) = text
        .split_once('.')
        .ok_or_else(|| anyhow::anyhow!("a cursor of another shape: {text}"))?;
    let (at, id): (i64, i64) = (at.parse()?, id.parse()?);
    Ok(format!(
        "created_at <= {at} AND (created_at < {at} OR id < {id})"
    ))
}

/// `EXPLAIN` through psql (the plan is text, one row per line).
fn explain(url: &str, sql_where: &str, limit: i64) -> anyhow::Result<String> {
    let sql = format!(
        "EXPLAIN SELECT * FROM pay_orders WHERE {sql_where} \
         ORDER BY created_at DESC, id DESC LIMIT {limit}"
    );
    let out = Command::new("psql")
        .args([url, "-X", "-q", "-A", "-t", "-c", &sql])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
}

/// What in a plan reads more than a page: a sequential scan of the table,
/// or a sort of more than a thousand rows (estimated) before the LIMIT; a
/// sort of the few rows a search finds is not flagged.
fn plan_flag(plan: &str) -> Option<String> {
    let mut flags = Vec::new();
    for line in plan.lines() {
        let node = line.trim_start_matches([' ', '-', '>']);
        if node.starts_with("Seq Scan on pay_orders") {
            flags.push("reads the whole table (Seq Scan)".to_owned());
        }
        // A node's line carries its estimate; "Sort Key: …" lines do not.
        let is_sort = node.starts_with("Sort  (") || node.starts_with("Incremental Sort  (");
        if is_sort {
            let rows = node
                .split("rows=")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|r| r.parse::<u64>().ok())
                .unwrap_or(0);
            if rows > 1000 {
                flags.push(format!("sorts ~{rows} rows"));
            }
        }
    }
    (!flags.is_empty()).then(|| flags.join(", "))
}

struct Timed {
    samples: Vec<Duration>,
    last: Value,
}

/// `path` `repeats` times, one at a time, after one untimed request (the
/// connection and PostgreSQL's cache warmed as a person's second click
/// finds them). Every answer must be 200.
async fn timed(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    repeats: usize,
    json: bool,
) -> anyhow::Result<Timed> {
    let url = format!("{base}{path}");
    let mut samples = Vec::with_capacity(repeats);
    let mut last = Value::Null;
    for i in 0..=repeats {
        let started = Instant::now();
        let res = client.get(&url).bearer_auth(ADMIN_TOKEN).send().await?;
        let status = res.status();
        let body = res.bytes().await?;
        let took = started.elapsed();
        anyhow::ensure!(
            status == 200,
            "{path}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        if i > 0 {
            samples.push(took);
        }
        if json {
            last = serde_json::from_slice(&body)?;
        }
    }
    samples.sort();
    Ok(Timed { samples, last })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn row(query: &str, path: &str, t: &Timed, goal: Option<Duration>) -> ConsoleRow {
    let p99 = percentile(&t.samples, 0.99);
    ConsoleRow {
        query: query.to_owned(),
        path: path.to_owned(),
        samples: t.samples.len(),
        p50_ms: millis(percentile(&t.samples, 0.50)),
        p99_ms: millis(p99),
        max_ms: millis(t.samples.last().copied().unwrap_or_default()),
        items: t.last["data"]["items"].as_array().map(Vec::len),
        goal_ms: goal.map(millis),
        pass: goal.map(|g| p99 < g),
        plan: None,
        plan_flag: None,
    }
}

/// The cursor `depth` pages into the unfiltered list.
async fn deep_cursor(client: &reqwest::Client, base: &str, depth: usize) -> anyhow::Result<String> {
    let mut cursor = String::new();
    for page in 0..depth {
        let path = if cursor.is_empty() {
            "/api/pay/admin/orders".to_owned()
        } else {
            format!("/api/pay/admin/orders?cursor={cursor}")
        };
        let t = timed(client, base, &path, 0, true).await?;
        cursor = t.last["data"]["nextCursor"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("page {page} has no nextCursor: {}", t.last))?
            .to_owned();
    }
    Ok(cursor)
}

/// pay-service's variables: the run's schema, an admin token and what the
/// admin token requires (refunds over TLS to the sandbox, with its PKI).
fn pay_vars(
    sandbox: &Sandbox,
    storage: &Storage,
    pki: &wechat_sandbox::TestPki,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut vars = crate::service_vars(Kind::Pay, &sandbox.base_url(), storage);
    let file = |name: &str, pem: &str| -> anyhow::Result<String> {
        let path = storage.dir().join(name);
        std::fs::write(&path, pem)?;
        Ok(path.display().to_string())
    };
    vars.extend([
        ("ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned()),
        (
            "MCH_CERT_PEM".to_owned(),
            file("apiclient_cert.pem", &pki.client_cert_pem)?,
        ),
        (
            "MCH_KEY_PEM".to_owned(),
            file("apiclient_key.pem", &pki.client_key_pem)?,
        ),
        (
            "WECHATPAY_CA_PEM".to_owned(),
            file("wechat_ca.pem", &pki.ca_pem)?,
        ),
        (
            "WECHATPAY_REFUND_BASE".to_owned(),
            sandbox
                .tls_base_url()
                .ok_or_else(|| anyhow::anyhow!("the sandbox has no TLS listener"))?,
        ),
    ]);
    Ok(vars)
}

/// The whole scenario; the schema and the service are gone when it returns.
pub async fn run(opts: &ConsoleOptions) -> anyhow::Result<ConsoleReport> {
    anyhow::ensure!(opts.orders > 0, "--orders must be > 0");
    let mut report = ConsoleReport {
        started_at: chrono::Utc::now().to_rfc3339(),
        orders: opts.orders,
        paid_transitions: 0,
        load_seconds: 0.0,
        vacuum_analyze_seconds: 0.0,
        table_mib: 0.0,
        rows: Vec::new(),
    };
    let pki = wechat_sandbox::TestPki::generate(SANDBOX_MCH_ID)
        .map_err(|e| anyhow::anyhow!("test PKI: {e}"))?;
    let mut cfg = SandboxConfig::for_tests();
    cfg.tls = Some(pki.sandbox_tls("127.0.0.1:0".parse()?));
    let sandbox = Sandbox::start(cfg).await?;
    let storage = Storage::prepare(&Options {
        backend: Backend::Postgres,
        launch: opts.launch.clone(),
        requests: 1,
        concurrency: 1,
        database_url: opts.database_url.clone(),
        redis_url: opts.redis_url.clone(),
        extras: Extras::default(),
    })
    .await?;
    let client = crate::client(1)?;
    let vars = pay_vars(&sandbox, &storage, &pki)?;
    // Started first: its migrations make the tables the orders go into.
    let pay = Service::start(Kind::Pay, &opts.launch, &vars, &client).await?;
    let url = storage.database_url("pay");
    load(&url, opts.orders, &mut report).await?;

    let now = chrono::Utc::now().timestamp();
    let probe = opts.orders / 2;
    let probe_no = format!("B{probe:012}");
    let probe_tx = on_pg(&url, move |conn| {
        #[derive(diesel::QueryableByName)]
        struct Tx {
            #[diesel(sql_type = diesel::sql_types::Text)]
            t: String,
        }
        use diesel::RunQueryDsl;
        let rows: Vec<Tx> = diesel::sql_query(format!(
            "SELECT transaction_id AS t FROM pay_orders WHERE transaction_id IS NOT NULL \
             AND id >= {probe} ORDER BY id LIMIT 1"
        ))
        .load(conn)?;
        rows.into_iter()
            .next()
            .map(|r| r.t)
            .ok_or_else(|| anyhow::anyhow!("no paid order to search for"))
    })
    .await?;

    let cursor = deep_cursor(&client, &pay.base, opts.depth).await?;
    let deep = ListQuery {
        name: "deep page (keyset cursor)",
        query: format!("cursor={cursor}"),
        sql_where: cursor_where(&cursor)?,
    };
    let mut queries = list_queries(now, &probe_no, &probe_tx);
    queries.insert(1, deep);
    for q in queries {
        let path = if q.query.is_empty() {
            "/api/pay/admin/orders".to_owned()
        } else {
            format!("/api/pay/admin/orders?{}", q.query)
        };
        let t = timed(&client, &pay.base, &path, opts.repeats, true).await?;
        let mut r = row(q.name, &path, &t, Some(GOAL));
        // The list asks for one row more than the page (50), to know
        // whether another page follows.
        let plan = explain(&url, &q.sql_where, 51)?;
        r.plan_flag = plan_flag(&plan);
        r.plan = Some(plan);
        report.rows.push(r);
    }

    for name in ["paid-daily", "success-ratio", "notify-delay", "paid-hourly"] {
        let path = format!("/api/pay/admin/charts/{name}.svg");
        let t = timed(&client, &pay.base, &path, opts.chart_repeats, false).await?;
        report.rows.push(row(
            &format!("chart {name} (default range)"),
            &path,
            &t,
            None,
        ));
    }
    // The longest daily range the charts allow.
    for name in ["paid-daily", "success-ratio", "notify-delay"] {
        let path = format!(
            "/api/pay/admin/charts/{name}.svg?from={}&to={now}",
            now - 92 * DAY
        );
        let t = timed(&client, &pay.base, &path, opts.chart_repeats, false).await?;
        report
            .rows
            .push(row(&format!("chart {name} (92 days)"), &path, &t, None));
    }
    drop(pay);
    drop(storage);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::plan_flag;

    #[test]
    fn only_plans_reading_more_than_a_page_are_flagged() {
        let small_sort = "Limit  (cost=16.86..16.86 rows=2 width=347)\n  ->  Sort  (cost=16.86..16.86 rows=2 width=347)\n        Sort Key: created_at DESC, id DESC\n        ->  Bitmap Heap Scan on pay_orders  (cost=8.87..16.85 rows=2 width=347)";
        assert_eq!(plan_flag(small_sort), None);
        let index = "Limit  (cost=0.42..5.87 rows=51 width=347)\n  ->  Index Scan using pay_orders_newest on pay_orders  (cost=0.42..106778.74 rows=1000000 width=347)";
        assert_eq!(plan_flag(index), None);
        let whole = "Limit  (cost=857.10..857.20 rows=41 width=347)\n  ->  Sort  (cost=857.10..857.20 rows=41000 width=347)\n        Sort Key: created_at DESC, id DESC\n        ->  Seq Scan on pay_orders  (cost=0.00..856.00 rows=41000 width=347)";
        assert_eq!(
            plan_flag(whole).as_deref(),
            Some("sorts ~41000 rows, reads the whole table (Seq Scan)")
        );
    }
}
