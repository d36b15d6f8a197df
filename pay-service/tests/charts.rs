//! The console's charts on SQLite and PostgreSQL: orders planted with known
//! times (created, WeChat's paid_at, our commit of PAID) come back as the
//! figures of each Beijing hour and day through `GET
//! /api/pay/admin/charts/{name}.json`; the same route's `.svg` answers an
//! SVG image, admin only, never cached; a bad name is 404, a bad range 400.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod common;

use common::*;
use diesel::prelude::*;
use serde_json::{Value, json};
use testkit::openapi::Document;
use testkit::{TestDb, all_backends};

/// 2025-11-30T00:00:00+08:00.
const NOV30: i64 = 1_764_432_000;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// One planted order: number, status, amount, created, paid_at, and the
/// delay of our PAID commit after paid_at (when it was paid).
struct Planted {
    no: &'static str,
    status: &'static str,
    fen: i64,
    created: i64,
    paid: Option<(i64, i64)>,
}

const fn order(
    no: &'static str,
    status: &'static str,
    fen: i64,
    created: i64,
    paid: Option<(i64, i64)>,
) -> Planted {
    Planted {
        no,
        status,
        fen,
        created,
        paid,
    }
}

const ORDERS: [Planted; 8] = [
    // Created the day before, paid in the first hour of 11-30: counted by
    // paid_at in the paid charts, not among 11-30's created orders.
    order("F", "PAID", 7, NOV30 - 10, Some((NOV30 + 20, 1))),
    order("A", "PAID", 29, NOV30 + HOUR, Some((NOV30 + HOUR + 10, 2))),
    // Refunded since: it was paid.
    order(
        "B",
        "REFUND",
        100,
        NOV30 + HOUR + 100,
        Some((NOV30 + HOUR + 200, 5)),
    ),
    order(
        "C",
        "PAID",
        1,
        NOV30 + 2 * HOUR,
        Some((NOV30 + 2 * HOUR + 5, 30)),
    ),
    order("D", "NOTPAY", 500, NOV30 + 3 * HOUR, None),
    order("E", "CLOSED", 600, NOV30 + 3 * HOUR, None),
    order(
        "G",
        "PAID",
        50,
        NOV30 + DAY + 5 * HOUR,
        Some((NOV30 + DAY + 5 * HOUR + 1, 100)),
    ),
    // Paid exactly at the range's end: outside the paid charts, but one of
    // 12-01's created and paid orders.
    order(
        "H",
        "PAID",
        1000,
        NOV30 + DAY + 6 * HOUR,
        Some((NOV30 + 2 * DAY, 3)),
    ),
];

async fn execute(db: &TestDb, sql: String) {
    db.db
        .run(move |conn| {
            diesel::sql_query(sql).execute(conn)?;
            Ok(())
        })
        .await
        .unwrap();
}

async fn plant(db: &TestDb) {
    for o in &ORDERS {
        let (paid_at, tx) = match o.paid {
            Some((at, _)) => (at.to_string(), format!("'42000{}'", o.no)),
            None => ("NULL".to_owned(), "NULL".to_owned()),
        };
        execute(
            db,
            format!(
                "INSERT INTO pay_orders (out_trade_no, user_id, appid, openid, trade_type, \
                 amount_fen, description, status, client_ip, expires_at, next_check_at, \
                 created_at, updated_at, paid_at, transaction_id) VALUES ('{}', 1, 'wxmp', 'o1', \
                 'JSAPI', {}, 'tea', '{}', '127.0.0.1', 0, 0, {}, {}, {paid_at}, {tx})",
                o.no, o.fen, o.status, o.created, o.created
            ),
        )
        .await;
        let mut transitions = Vec::new();
        if let Some((at, delay)) = o.paid {
            transitions.push(("NOTPAY", "PAID", at + delay));
        }
        match o.status {
            // Other transitions of the same orders do not count as commits.
            "REFUND" => transitions.push(("PAID", "REFUND", NOV30 + 20 * HOUR)),
            "CLOSED" => transitions.push(("NOTPAY", "CLOSED", o.created + 7)),
            _ => {}
        }
        for (from, to, at) in transitions {
            execute(
                db,
                format!(
                    "INSERT INTO pay_order_transitions (out_trade_no, from_status, to_status, \
                     source, at) VALUES ('{}', '{from}', '{to}', 'notify', {at})",
                    o.no
                ),
            )
            .await;
        }
    }
}

/// The series of `name` over `[from, to)`, its reply checked against the
/// OpenAPI document.
async fn chart(app: &TestApp, name: &str, from: i64, to: i64) -> Value {
    let res = app
        .get(
            &format!("/api/pay/admin/charts/{name}.json?from={from}&to={to}"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(
        res.headers()["cache-control"],
        "no-store",
        "{name}: {res:?}"
    );
    let document = Document::new(serde_json::to_value(pay_service::openapi()).unwrap());
    let (status, body) = document
        .check_reply("GET", "/api/pay/admin/charts/{name}.json", res)
        .await;
    assert_eq!((status, &body["code"]), (200, &json!(0)), "{name}: {body}");
    let data = body["data"].clone();
    assert_eq!((&data["from"], &data["to"]), (&json!(from), &json!(to)));
    assert_eq!(data["name"], name);
    data
}

/// The points that are not all zero, as `(start, point)`.
fn nonzero(series: &Value) -> Vec<Value> {
    series["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p.as_object()
                .unwrap()
                .iter()
                .any(|(k, v)| k != "start" && v != &json!(0))
        })
        .cloned()
        .collect()
}

#[tokio::test]
async fn planted_orders_are_counted_in_their_beijing_hour_and_day() {
    for db in all_backends(pay_service::migrations) {
        plant(&db).await;
        let app = spawn_refund_app(&db, &[]).await;
        let (from, to) = (NOV30, NOV30 + 2 * DAY);

        let daily = chart(&app, "paid-daily", from, to).await;
        assert_eq!(daily["bucketSeconds"], 86_400);
        assert_eq!(
            daily["points"],
            json!([
                {"start": NOV30, "paidCount": 4, "paidFen": 137},
                {"start": NOV30 + DAY, "paidCount": 1, "paidFen": 50},
            ]),
            "{}",
            db.url
        );

        let hourly = chart(&app, "paid-hourly", from, from + DAY).await;
        assert_eq!(hourly["points"].as_array().unwrap().len(), 24);
        assert_eq!(
            nonzero(&hourly),
            [
                json!({"start": NOV30, "paidCount": 1, "paidFen": 7}),
                json!({"start": NOV30 + HOUR, "paidCount": 2, "paidFen": 129}),
                json!({"start": NOV30 + 2 * HOUR, "paidCount": 1, "paidFen": 1}),
            ],
            "{}",
            db.url
        );

        let ratio = chart(&app, "success-ratio", from, to).await;
        assert_eq!(
            ratio["points"],
            json!([
                {"start": NOV30, "createdCount": 5, "paidCount": 3, "ratioPermille": 600},
                {"start": NOV30 + DAY, "createdCount": 2, "paidCount": 2, "ratioPermille": 1000},
            ]),
            "{}",
            db.url
        );

        // 11-30's delays are 1, 2, 5 and 30 s: p50 is the 2nd, p90 the 4th.
        let delay = chart(&app, "notify-delay", from, to).await;
        assert_eq!(
            delay["points"],
            json!([
                {"start": NOV30, "delayCount": 4, "p50Seconds": 2, "p90Seconds": 30},
                {"start": NOV30 + DAY, "delayCount": 1, "p50Seconds": 100, "p90Seconds": 100},
            ]),
            "{}",
            db.url
        );

        // A range with nothing in it: zeros, and no ratio or delay at all.
        let empty = chart(&app, "success-ratio", from - 3 * DAY, from - DAY).await;
        assert_eq!(
            empty["points"],
            json!([
                {"start": NOV30 - 3 * DAY, "createdCount": 0, "paidCount": 0},
                {"start": NOV30 - 2 * DAY, "createdCount": 0, "paidCount": 0},
            ])
        );
    }
}

#[tokio::test]
async fn the_svg_is_an_admin_only_uncached_image() {
    let db = testkit::sqlite_db(pay_service::migrations());
    plant(&db).await;
    let app = spawn_refund_app(&db, &[]).await;
    let range = format!("from={NOV30}&to={}", NOV30 + 2 * DAY);
    for name in ["paid-hourly", "paid-daily", "success-ratio", "notify-delay"] {
        let path = if name == "paid-hourly" {
            format!(
                "/api/pay/admin/charts/{name}.svg?from={NOV30}&to={}",
                NOV30 + DAY
            )
        } else {
            format!("/api/pay/admin/charts/{name}.svg?{range}")
        };
        let res = app.get(&path, ADMIN_TOKEN).await;
        assert_eq!(res.status(), 200, "{name}");
        let h = res.headers();
        assert!(
            h["content-type"]
                .to_str()
                .unwrap()
                .starts_with("image/svg+xml"),
            "{h:?}"
        );
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(
            h["content-security-policy"],
            "default-src 'none'; frame-ancestors 'none'"
        );
        let svg = res.text().await.unwrap();
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{svg}"
        );
        assert!(!svg.contains("暂无数据"), "{name}: {svg}");
        if name == "paid-daily" {
            // 137 fen on 11-30, written in yuan.
            assert!(svg.contains("11-30：1.37</title>"), "{svg}");
        }
    }
    // Admin only (two failed logins: under the limit of 5 a minute).
    let path = format!("/api/pay/admin/charts/paid-daily.svg?{range}");
    let res = app.client.get(app.url(&path)).send().await.unwrap();
    expect_error(res, 401, 1002).await;
    let res = app.get(&path, "not-the-admin-token").await;
    expect_error(res, 401, 1002).await;
    // Nothing in the range: still a chart, saying so.
    let res = app
        .get(
            &format!(
                "/api/pay/admin/charts/paid-daily.svg?from={}&to={NOV30}",
                NOV30 - DAY
            ),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("暂无数据"));
}

#[tokio::test]
async fn a_bad_name_is_404_and_a_bad_range_400() {
    let db = testkit::sqlite_db(pay_service::migrations());
    let app = spawn_refund_app(&db, &[]).await;
    for path in [
        "/api/pay/admin/charts/refunds.svg",
        "/api/pay/admin/charts/PAID-DAILY.svg",
        "/api/pay/admin/charts/paid-daily.json.svg",
    ] {
        let message = expect_error(app.get(path, ADMIN_TOKEN).await, 404, 1004).await;
        assert!(message.contains("no chart named"), "{path}: {message}");
    }
    for (query, why) in [
        (
            format!("from={NOV30}&to={}", NOV30 + 7 * DAY + 1),
            "at most 7 days",
        ),
        (format!("from={NOV30}&to={NOV30}"), "before"),
        ("from=yesterday".to_owned(), "from must be Unix seconds"),
        (format!("from={NOV30}&to=1e9"), "to must be Unix seconds"),
    ] {
        for ext in ["svg", "json"] {
            let path = format!("/api/pay/admin/charts/paid-hourly.{ext}?{query}");
            let message = expect_error(app.get(&path, ADMIN_TOKEN).await, 400, 1001).await;
            assert!(message.contains(why), "{path}: {message}");
        }
    }
    let path = format!(
        "/api/pay/admin/charts/notify-delay.svg?from={NOV30}&to={}",
        NOV30 + 93 * DAY
    );
    let message = expect_error(app.get(&path, ADMIN_TOKEN).await, 400, 1001).await;
    assert!(message.contains("at most 92 days"), "{message}");
    // The defaults (the last 24 hours, the last 30 days) need no range.
    let (status, body) = envelope(
        app.get("/api/pay/admin/charts/paid-hourly.json", ADMIN_TOKEN)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["points"].as_array().unwrap().len(), 24);
    let (_, body) = envelope(
        app.get("/api/pay/admin/charts/paid-daily.json", ADMIN_TOKEN)
            .await,
    )
    .await;
    assert_eq!(body["data"]["points"].as_array().unwrap().len(), 30);
}
