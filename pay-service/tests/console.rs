//! The operator console's JSON routes over real HTTP: sign-in for an
//! HttpOnly cookie and the CSRF token every change needs with it, the order
//! list (each filter, keyset pages), an order's page, an event retried, the
//! reconciled days. The Bearer token keeps working as before.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod common;

use std::collections::BTreeSet;

use common::*;
use diesel::prelude::*;
use pay_service::inspect;
use pay_service::migrations;
use pay_service::schema::{pay_events, pay_orders};
use serde_json::{Value, json};
use shared::db::now_unix;
use shared::sign::SignType;
use testkit::all_backends;
use wechat_sandbox::SANDBOX_MCH_KEY;

const SESSION: &str = "/api/pay/admin/session";

/// A signed-in browser: the cookie's value and the session's CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

/// The `wxpay_admin` Set-Cookie line of a reply.
fn set_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("wxpay_admin="))
}

async fn sign_in(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url(SESSION))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap()
}

async fn signed_in(app: &TestApp) -> Browser {
    let res = sign_in(app, ADMIN_TOKEN).await;
    let line = set_cookie(&res).expect("a session cookie");
    let (status, body) = envelope(res).await;
    assert_eq!(status, 200, "{body}");
    let value = line
        .trim_start_matches("wxpay_admin=")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    Browser {
        cookie: format!("wxpay_admin={value}"),
        csrf: body["data"]["csrfToken"].as_str().unwrap().to_owned(),
    }
}

/// A request as the console's page sends it: the cookie, and the CSRF token
/// and Origin when given.
fn with_cookie(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    b: &Browser,
    csrf: Option<&str>,
    origin: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut req = app
        .client
        .request(method, app.url(path))
        .header("cookie", &b.cookie);
    if let Some(t) = csrf {
        req = req.header("x-csrf-token", t);
    }
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    req
}

#[tokio::test]
async fn a_cookie_session_needs_its_csrf_token_for_every_change() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[]).await;
        let no = app.paid_order("1.00").await;

        // A wrong token sets no cookie.
        let res = sign_in(&app, "wrong-token-wrong-token").await;
        assert!(set_cookie(&res).is_none());
        expect_error(res, 401, 1002).await;

        let res = sign_in(&app, ADMIN_TOKEN).await;
        let line = set_cookie(&res).expect("a session cookie");
        let (status, body) = envelope(res).await;
        assert_eq!(status, 200, "{body}");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
            assert!(line.contains(attribute), "{attribute}: {line}");
        }
        let id = line
            .trim_start_matches("wxpay_admin=")
            .split(';')
            .next()
            .unwrap();
        assert_eq!(id.len(), 64, "{line}");
        let session = &body["data"];
        assert_eq!(session["operator"], "admin");
        let expires = session["expiresAt"].as_i64().unwrap();
        assert!((expires - now_unix() - 28800).abs() <= 5, "{session}");
        let b = Browser {
            cookie: format!("wxpay_admin={id}"),
            csrf: session["csrfToken"].as_str().unwrap().to_owned(),
        };
        assert_eq!(b.csrf.len(), 64);

        // Reads need the cookie only.
        let get = reqwest::Method::GET;
        let res = with_cookie(&app, get.clone(), SESSION, &b, None, None)
            .send()
            .await
            .unwrap();
        let (status, again) = envelope(res).await;
        assert_eq!((status, &again["data"]), (200, session), "{again}");
        let res = with_cookie(&app, get.clone(), "/api/pay/admin/events", &b, None, None)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        // Reads from another site's page (CORS may let an allowed shop
        // origin read with credentials): refused, the session's CSRF token
        // and the orders included; the page's own Origin reads.
        for path in [SESSION, "/api/pay/admin/events"] {
            for origin in ["https://evil.example", "null"] {
                let res = with_cookie(&app, get.clone(), path, &b, None, Some(origin))
                    .send()
                    .await
                    .unwrap();
                let msg = expect_error(res, 403, 1003).await;
                assert!(msg.contains("Origin"), "{path} {origin}: {msg}");
            }
            let res = with_cookie(&app, get.clone(), path, &b, None, Some(&app.base))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{path}");
        }

        // A change without the CSRF token, with another, or from another
        // site's page: 403, and no refund is asked for.
        let refund_path = format!("/api/pay/admin/orders/{no}/refunds");
        let post = reqwest::Method::POST;
        let body = json!({"amountFen": 10, "reason": "console"});
        let own = app.base.clone();
        for (csrf, origin, says) in [
            (None, None, "X-CSRF-Token"),
            (Some("0".repeat(64)), None, "X-CSRF-Token"),
            (Some(b.csrf.clone()), Some("https://evil.example"), "Origin"),
            (Some(b.csrf.clone()), Some("null"), "Origin"),
        ] {
            let res = with_cookie(
                &app,
                post.clone(),
                &refund_path,
                &b,
                csrf.as_deref(),
                origin,
            )
            .json(&body)
            .send()
            .await
            .unwrap();
            let msg = expect_error(res, 403, 1003).await;
            assert!(msg.contains(says), "{msg}");
        }
        assert!(
            inspect::refunds_of(app.state.db(), &no)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(app.sandbox.state().calls("/secapi/pay/refund"), 0);

        // With it (and the page's own Origin): the refund, in the operator's name.
        let res = with_cookie(
            &app,
            post.clone(),
            &refund_path,
            &b,
            Some(&b.csrf),
            Some(&own),
        )
        .json(&body)
        .send()
        .await
        .unwrap();
        let (status, refund) = envelope(res).await;
        assert_eq!(status, 200, "{refund}");
        assert_eq!(refund["data"]["operator"], "admin");
        assert_eq!(
            inspect::refunds_of(app.state.db(), &no)
                .await
                .unwrap()
                .len(),
            1
        );

        // The Bearer token needs no CSRF token, cookie or not.
        let res = app.refund(&no, 5, "bearer").await;
        assert_eq!(res.status(), 200);

        // Signing out is a change too; then the cookie is worth nothing.
        let delete = reqwest::Method::DELETE;
        let res = with_cookie(&app, delete.clone(), SESSION, &b, None, None)
            .send()
            .await
            .unwrap();
        expect_error(res, 403, 1003).await;
        let res = with_cookie(&app, delete, SESSION, &b, Some(&b.csrf), None)
            .send()
            .await
            .unwrap();
        let cleared = set_cookie(&res).expect("the cookie cleared");
        assert!(cleared.starts_with("wxpay_admin=;"), "{cleared}");
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
        let (status, out) = envelope(res).await;
        assert_eq!((status, &out["data"]["operator"]), (200, &json!("admin")));
        for path in [SESSION, "/api/pay/admin/events"] {
            let res = with_cookie(&app, get.clone(), path, &b, None, None)
                .send()
                .await
                .unwrap();
            let msg = expect_error(res, 401, 1002).await;
            assert!(msg.contains("sign in again"), "{msg}");
        }
        // Without any cookie, asking whether one is signed in is just 401.
        let res = app.client.get(app.url(SESSION)).send().await.unwrap();
        expect_error(res, 401, 1002).await;

        // Signing in again from a signed-in browser ends its old session.
        let first = signed_in(&app).await;
        let res = app
            .client
            .post(app.url(SESSION))
            .header("cookie", &first.cookie)
            .json(&json!({ "token": ADMIN_TOKEN }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let res = with_cookie(&app, get.clone(), SESSION, &first, None, None)
            .send()
            .await
            .unwrap();
        expect_error(res, 401, 1002).await;
    }
}

#[tokio::test]
async fn failed_sign_ins_count_toward_the_failed_login_limit() {
    let db = testkit::sqlite_db(migrations());
    let app = spawn_refund_app(&db, &[("ADMIN_FAILED_LOGINS_PER_MINUTE", "3")]).await;
    // Asking whether signed in (no cookie) is no login attempt.
    for _ in 0..5 {
        let res = app.client.get(app.url(SESSION)).send().await.unwrap();
        expect_error(res, 401, 1002).await;
    }
    // A right token costs nothing either.
    signed_in(&app).await;
    let res = sign_in(&app, "wrong-token-wrong-token").await;
    expect_error(res, 401, 1002).await;
    // A cookie naming no session is a failed login too.
    let stale = Browser {
        cookie: format!("wxpay_admin={}", "ab".repeat(32)),
        csrf: String::new(),
    };
    let res = with_cookie(
        &app,
        reqwest::Method::GET,
        "/api/pay/admin/events",
        &stale,
        None,
        None,
    )
    .send()
    .await
    .unwrap();
    expect_error(res, 401, 1002).await;
    let res = sign_in(&app, "").await;
    expect_error(res, 401, 1002).await;
    // Three failures: the address is shut out, whatever it sends now.
    let res = sign_in(&app, ADMIN_TOKEN).await;
    assert!(set_cookie(&res).is_none());
    expect_error(res, 429, 1006).await;
    expect_error(app.admin_get("/api/pay/admin/events").await, 429, 1006).await;
}

#[tokio::test]
async fn without_an_admin_token_the_session_routes_do_not_exist() {
    let db = testkit::sqlite_db(migrations());
    let app = spawn_app(&db).await;
    let msg = expect_error(sign_in(&app, ADMIN_TOKEN).await, 404, 1004).await;
    assert_eq!(msg, "no such route");
    let res = app.client.get(app.url(SESSION)).send().await.unwrap();
    expect_error(res, 404, 1004).await;
    let res = app
        .client
        .get(app.url("/api/pay/admin/orders"))
        .send()
        .await
        .unwrap();
    expect_error(res, 404, 1004).await;
}

/// One order row written by hand: `n` numbers it.
struct Planted {
    no: String,
    created_at: i64,
    status: &'static str,
    trade_type: &'static str,
    api: &'static str,
    amount_fen: i64,
    transaction_id: Option<String>,
}

fn planted(n: i64, base: i64) -> Planted {
    let statuses = ["NOTPAY", "PAID", "CLOSED", "REFUND"];
    let paid = matches!(n % 4, 1 | 3);
    Planted {
        no: format!("TCONSOLE{n:08}"),
        // Four orders share each second: pages must split such groups.
        created_at: base + n / 4,
        status: statuses[(n % 4) as usize],
        trade_type: ["JSAPI", "MWEB", "NATIVE"][(n % 3) as usize],
        api: if n % 2 == 0 { "v2" } else { "v3" },
        amount_fen: 100 * (n + 1),
        transaction_id: paid.then(|| format!("42000CONSOLE{n:08}")),
    }
}

async fn plant(app: &TestApp, rows: &[Planted]) {
    for r in rows {
        let (no, tx) = (r.no.clone(), r.transaction_id.clone());
        let (status, tt, api, fen, at) =
            (r.status, r.trade_type, r.api, r.amount_fen, r.created_at);
        app.state
            .db()
            .run(move |conn| {
                diesel::insert_into(pay_orders::table)
                    .values((
                        pay_orders::out_trade_no.eq(no),
                        pay_orders::user_id.eq(1i64),
                        pay_orders::appid.eq(MP),
                        pay_orders::openid.eq("oCONSOLE"),
                        pay_orders::trade_type.eq(tt),
                        pay_orders::amount_fen.eq(fen),
                        pay_orders::description.eq("planted"),
                        pay_orders::status.eq(status),
                        pay_orders::transaction_id.eq(tx),
                        pay_orders::client_ip.eq("127.0.0.1"),
                        pay_orders::expires_at.eq(at + 1800),
                        pay_orders::next_check_at.eq(at + 1800),
                        pay_orders::created_at.eq(at),
                        pay_orders::updated_at.eq(at),
                        pay_orders::api.eq(api),
                    ))
                    .execute(conn)?;
                Ok(())
            })
            .await
            .unwrap();
    }
}

async fn admin_data(app: &TestApp, path: &str) -> Value {
    let (status, body) = envelope(app.admin_get(path).await).await;
    assert_eq!(status, 200, "{path}: {body}");
    body["data"].clone()
}

/// Every order the list gives for `query`, page by page (`limit` each),
/// checking that every page but the last is full and the last links nowhere.
async fn all_pages(app: &TestApp, query: &str, limit: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut path = format!("/api/pay/admin/orders?limit={limit}&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = admin_data(app, &path).await;
        let items = page["items"].as_array().unwrap();
        seen.extend(
            items
                .iter()
                .map(|o| o["outTradeNo"].as_str().unwrap().to_owned()),
        );
        match page["nextCursor"].as_str() {
            Some(c) => {
                assert_eq!(items.len(), limit, "{path}: a page before the last is full");
                cursor = Some(c.to_owned());
            }
            None => return seen,
        }
    }
    panic!("more than 100 pages for {query}");
}

/// Which planted orders a filter should give.
type Keep = Box<dyn Fn(&Planted) -> bool>;

/// The planted orders `keep` selects, in the list's order (newest first,
/// then the higher id: rows were inserted in `n` order).
fn expected(rows: &[Planted], keep: impl Fn(&Planted) -> bool) -> Vec<String> {
    let mut v: Vec<(i64, usize, String)> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| keep(r))
        .map(|(i, r)| (r.created_at, i, r.no.clone()))
        .collect();
    v.sort_by_key(|r| std::cmp::Reverse((r.0, r.1)));
    v.into_iter().map(|x| x.2).collect()
}

#[tokio::test]
async fn the_order_list_filters_and_pages_by_keyset() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[]).await;
        let base = 1_764_547_200;
        let rows: Vec<Planted> = (0..23).map(|n| planted(n, base)).collect();
        plant(&app, &rows).await;

        // Every row exactly once, in order, whatever the page size, though
        // four rows share each second.
        let all = expected(&rows, |_| true);
        for limit in [1, 3, 4, 5, 23, 50] {
            let got = all_pages(&app, "", limit).await;
            assert_eq!(got, all, "limit {limit}");
            assert_eq!(got.iter().collect::<BTreeSet<_>>().len(), 23);
        }
        let first = admin_data(&app, "/api/pay/admin/orders").await;
        assert!(first["nextCursor"].is_null(), "23 rows fit the default 50");
        let item = &first["items"][0];
        assert_eq!(item["outTradeNo"], rows[22].no.as_str());
        for field in [
            "status",
            "tradeType",
            "api",
            "amountFen",
            "refundedFen",
            "refundReservedFen",
            "description",
            "createdAt",
            "paidAt",
            "transactionId",
        ] {
            assert!(item.get(field).is_some(), "{field}: {item}");
        }

        // Each filter, through pages.
        let cases: Vec<(&str, Keep)> = vec![
            ("status=PAID", Box::new(|r| r.status == "PAID")),
            ("status=NOTPAY", Box::new(|r| r.status == "NOTPAY")),
            ("tradeType=NATIVE", Box::new(|r| r.trade_type == "NATIVE")),
            ("api=v3", Box::new(|r| r.api == "v3")),
            (
                "from=1764547202&to=1764547204",
                Box::new(move |r| (base + 2..base + 4).contains(&r.created_at)),
            ),
            (
                "minFen=500&maxFen=1200",
                Box::new(|r| (500..=1200).contains(&r.amount_fen)),
            ),
            (
                "status=REFUND&api=v3&minFen=400",
                Box::new(|r| r.status == "REFUND" && r.api == "v3" && r.amount_fen >= 400),
            ),
        ];
        for (query, keep) in &cases {
            let want = expected(&rows, keep);
            assert!(!want.is_empty() && want.len() < 23, "{query} narrows");
            assert_eq!(all_pages(&app, query, 2).await, want, "{query}");
        }

        // Searched by either number, exactly.
        for q in [rows[5].no.clone(), rows[5].transaction_id.clone().unwrap()] {
            let page = admin_data(&app, &format!("/api/pay/admin/orders?q={q}")).await;
            let found: Vec<&str> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["outTradeNo"].as_str().unwrap())
                .collect();
            assert_eq!(found, [rows[5].no.as_str()], "{q}");
        }
        let page = admin_data(&app, "/api/pay/admin/orders?q=TCONSOLE0000000").await;
        assert_eq!(page["items"], json!([]), "no prefix search");

        // Bad input: 400 naming it.
        for (query, names) in [
            ("cursor=garbage", "cursor"),
            ("cursor=MTc2NDU0NzIwMA", "cursor"),
            ("limit=0", "limit"),
            ("limit=201", "limit"),
            ("status=SUCCESS", "status"),
            ("tradeType=APP", "tradeType"),
            ("api=v1", "api"),
            ("from=yesterday", "from"),
            ("minFen=2&maxFen=1", "minFen"),
        ] {
            let res = app
                .admin_get(&format!("/api/pay/admin/orders?{query}"))
                .await;
            let msg = expect_error(res, 400, 1001).await;
            assert!(msg.contains(names), "{query}: {msg}");
        }
        let page = admin_data(&app, "/api/pay/admin/orders?limit=200").await;
        assert_eq!(page["items"].as_array().unwrap().len(), 23);
    }
}

#[tokio::test]
async fn an_orders_page_shows_its_transitions_notifications_refunds_and_events() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[]).await;
        let no = app.paid_order("1.00").await;
        // A notification that verifies but claims another amount: refused.
        let order = app.sandbox_order(&no);
        let forged = notification_xml(&order, SANDBOX_MCH_KEY, SignType::Md5, |f| {
            f.insert("total_fee".into(), "1".into());
            f.insert("cash_fee".into(), "1".into());
        });
        let (_, reply) = app.notify_raw("/api/pay/notify", forged).await;
        assert!(!success(&reply));
        assert_eq!(app.refund(&no, 30, "顾客退货").await.status(), 200);

        let story = admin_data(&app, &format!("/api/pay/admin/orders/{no}")).await;
        let o = &story["order"];
        assert_eq!(o["outTradeNo"], no.as_str());
        // PAID, or REFUND once the sandbox's refund notification arrived.
        let status = o["status"].as_str().unwrap();
        assert!(["PAID", "REFUND"].contains(&status), "{o}");
        assert_eq!(
            (o["amountFen"].as_i64(), o["refundableFen"].as_i64()),
            (Some(100), Some(70))
        );
        assert_eq!(o["refundReservedFen"], 30);
        assert_eq!(o["userId"], 1);
        assert!(o.get("openid").is_none(), "{o}");

        let t = &story["transitions"].as_array().unwrap()[0];
        assert_eq!(
            (t["from"].as_str(), t["to"].as_str()),
            (Some("NOTPAY"), Some("PAID"))
        );
        assert_eq!(t["source"], "notify");

        let notes = story["notifications"].as_array().unwrap();
        // (then maybe the sandbox's refund notification)
        assert!(notes.len() >= 2, "{notes:?}");
        assert_eq!(notes[0]["outcome"], "applied");
        assert_eq!(notes[1]["outcome"], "mismatch");
        assert_eq!(notes[1]["signVerified"], true);
        assert!(
            !notes[1]["detail"].as_str().unwrap().is_empty(),
            "{notes:?}"
        );

        let refunds = story["refunds"].as_array().unwrap();
        assert_eq!(refunds.len(), 1);
        assert_eq!(
            (
                refunds[0]["amountFen"].as_i64(),
                refunds[0]["operator"].as_str()
            ),
            (Some(30), Some("admin"))
        );

        let events = story["events"].as_array().unwrap();
        assert_eq!(events[0]["eventType"], "order.paid");
        assert_eq!(
            events[0]["state"], "pending",
            "no webhook configured: waiting"
        );

        let res = app
            .admin_get("/api/pay/admin/orders/T0000000000000000000")
            .await;
        expect_error(res, 404, 1004).await;
    }
}

/// Sets the event's counters by hand.
async fn set_event(app: &TestApp, id: i64, attempts: i64, delivered: bool, next_ms: i64) {
    app.state
        .db()
        .run(move |conn| {
            diesel::update(pay_events::table.filter(pay_events::id.eq(id)))
                .set((
                    pay_events::attempts.eq(attempts),
                    pay_events::delivered.eq(delivered),
                    pay_events::next_attempt_ms.eq(next_ms),
                ))
                .execute(conn)?;
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failed_event_retried_is_due_now_and_a_delivered_one_is_409() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[]).await;
        let no = app.paid_order("0.50").await;
        let event = inspect::events(app.state.db(), &no).await.unwrap()[0].clone();
        let far = chrono::Utc::now().timestamp_millis() + 3_600_000;
        set_event(&app, event.id, 9, false, far).await;
        let path = format!("/api/pay/admin/events/{}/retry", event.id);

        // From the console: the CSRF token is needed, and nothing moves without it.
        let b = signed_in(&app).await;
        let res = with_cookie(&app, reqwest::Method::POST, &path, &b, None, None)
            .send()
            .await
            .unwrap();
        expect_error(res, 403, 1003).await;
        let stored = inspect::events(app.state.db(), &no).await.unwrap()[0].clone();
        assert_eq!(stored.next_attempt_ms, far);

        let before = chrono::Utc::now().timestamp_millis();
        let res = with_cookie(&app, reqwest::Method::POST, &path, &b, Some(&b.csrf), None)
            .send()
            .await
            .unwrap();
        let (status, body) = envelope(res).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            (body["data"]["id"].as_i64(), body["data"]["state"].as_str()),
            (Some(event.id), Some("failed"))
        );
        let stored = inspect::events(app.state.db(), &no).await.unwrap()[0].clone();
        let after = chrono::Utc::now().timestamp_millis();
        assert!(
            (before..=after).contains(&stored.next_attempt_ms),
            "due now: {stored:?}"
        );
        assert_eq!(stored.attempts, 9, "its history is kept");

        set_event(&app, event.id, 10, true, far).await;
        let msg = expect_error(app.post(&path, ADMIN_TOKEN).await, 409, 1005).await;
        assert!(msg.contains("delivered"), "{msg}");
        expect_error(
            app.post("/api/pay/admin/events/999999/retry", ADMIN_TOKEN)
                .await,
            404,
            1004,
        )
        .await;
        expect_error(
            app.post("/api/pay/admin/events/abc/retry", ADMIN_TOKEN)
                .await,
            400,
            1001,
        )
        .await;
        expect_error(app.post(&path, "wrong-token-wrong-token").await, 401, 1002).await;
    }
}

#[tokio::test]
async fn reconciled_days_are_listed_newest_first() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[]).await;
        for (day, found) in [("2026-11-28", 0), ("2026-11-30", 2), ("2026-11-29", 1)] {
            let sql = format!(
                "INSERT INTO pay_reconciliations \
                 (bill_date, api, bill_rows, matched, discrepancies, result, reconciled_at) \
                 VALUES ('{day}', 'v2', 5, {}, {found}, '{{}}', 1764554400)",
                5 - found
            );
            app.state
                .db()
                .run(move |conn| {
                    diesel::sql_query(sql).execute(conn)?;
                    Ok(())
                })
                .await
                .unwrap();
        }
        let days = admin_data(&app, "/api/pay/admin/reconciliations").await;
        let dates: Vec<&str> = days
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["date"].as_str().unwrap())
            .collect();
        assert_eq!(dates, ["2026-11-30", "2026-11-29", "2026-11-28"]);
        assert_eq!(
            days[0],
            json!({"date": "2026-11-30", "api": "v2", "billRows": 5, "matched": 3,
                   "discrepancies": 2, "reconciledAt": 1764554400})
        );
        let days = admin_data(
            &app,
            "/api/pay/admin/reconciliations?from=2026-11-29&to=2026-11-29",
        )
        .await;
        assert_eq!(days.as_array().unwrap().len(), 1);
        assert_eq!(days[0]["date"], "2026-11-29");
        let days = admin_data(&app, "/api/pay/admin/reconciliations?from=2026-11-29").await;
        assert_eq!(days.as_array().unwrap().len(), 2);
        for (query, names) in [
            ("from=2026-11-30&to=2026-11-29", "after"),
            ("from=2025-01-01&to=2026-11-30", "366"),
            ("from=yesterday", "date"),
        ] {
            let res = app
                .admin_get(&format!("/api/pay/admin/reconciliations?{query}"))
                .await;
            let msg = expect_error(res, 400, 1001).await;
            assert!(msg.contains(names), "{query}: {msg}");
        }
    }
}

/// With several replicas the sessions live in Redis: signed in on one, the
/// cookie works on another, and signing out on either ends it everywhere. A
/// replica whose operator token was rotated ends the old token's sessions.
#[tokio::test]
async fn replicas_share_sessions_through_redis_and_a_rotated_token_ends_them() {
    let Ok(redis) = std::env::var("TEST_REDIS_URL") else {
        testkit::skip_or_fail("TEST_REDIS_URL is not set");
        return;
    };
    let db = testkit::sqlite_db(migrations());
    let (sandbox, pki) = start_tls_sandbox().await;
    let (_pem, vars) = refund_vars(&sandbox, &pki);
    let mut shared: Vec<(&str, &str)> =
        vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // The failure budget is per address in the shared Redis; other tests'
    // counts must not reach into this one.
    shared.extend([
        ("REDIS_URL", redis.as_str()),
        ("ADMIN_FAILED_LOGINS_PER_MINUTE", "0"),
    ]);
    let a = spawn_service(&db, &sandbox, &shared).await;
    let b = spawn_service(&db, &sandbox, &shared).await;
    let mut rotated = shared.clone();
    rotated.push(("ADMIN_TOKEN", "a-rotated-admin-token-0123456789"));
    let c = spawn_service(&db, &sandbox, &rotated).await;
    let http = client();

    let sign_in = || async {
        let res = http
            .post(format!("{}{SESSION}", a.base))
            .json(&json!({ "token": ADMIN_TOKEN }))
            .send()
            .await
            .unwrap();
        let cookie = set_cookie(&res)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let (status, body) = envelope(res).await;
        assert_eq!(status, 200, "{body}");
        (cookie, body["data"].clone())
    };
    let session_on = |base: &str, cookie: &str| {
        http.get(format!("{base}{SESSION}"))
            .header("cookie", cookie)
            .send()
    };

    let (cookie, session) = sign_in().await;
    let (status, on_b) = envelope(session_on(&b.base, &cookie).await.unwrap()).await;
    assert_eq!((status, &on_b["data"]), (200, &session), "{on_b}");
    let res = http
        .delete(format!("{}{SESSION}", b.base))
        .header("cookie", &cookie)
        .header("x-csrf-token", session["csrfToken"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    expect_error(session_on(&a.base, &cookie).await.unwrap(), 401, 1002).await;

    let (cookie, _) = sign_in().await;
    expect_error(session_on(&c.base, &cookie).await.unwrap(), 401, 1002).await;
    expect_error(session_on(&a.base, &cookie).await.unwrap(), 401, 1002).await;
}
