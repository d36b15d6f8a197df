//! Issue 15, pay-service's side: notification floods stay bounded (item 3),
//! failed admin logins are audited and rate-limited per address and each
//! operator has a token of their own (item 5), and v2Pay takes only a
//! mini-program Bearer token, with order creation and `?sync=true`
//! rate-limited per user (item 7). SQLite and, when configured, PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod common;

use std::collections::BTreeMap;

use common::*;
use futures_util::StreamExt;
use pay_service::{PayConfig, inspect, migrations};
use serde_json::json;
use shared::config::Env;
use testkit::{TestDb, all_backends};
use wechat_sandbox::{PayOptions, SANDBOX_MCH_ID, SANDBOX_MCH_KEY};

const V2: (&str, &str) = ("PAY_API_VERSION", "v2");
const KIB: usize = 1024;

/// What the database occupies: on PostgreSQL every table of the test's
/// schema with its indexes and TOAST (`pg_total_relation_size`); on SQLite
/// the database file with its WAL.
async fn db_bytes(db: &TestDb) -> u64 {
    if let Some(path) = db.url.strip_prefix("sqlite://") {
        let size = |p: String| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        return size(path.to_owned()) + size(format!("{path}-wal"));
    }
    db.db
        .run(|conn| {
            use diesel::prelude::*;
            #[derive(QueryableByName)]
            struct Size {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                bytes: i64,
            }
            let s: Size = diesel::sql_query(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::BIGINT AS bytes \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = current_schema() AND c.relkind = 'r'",
            )
            .get_result(conn)?;
            Ok(s.bytes as u64)
        })
        .await
        .unwrap()
}

/// 60 KiB bodies of three shapes: not XML, XML with a sign made with another
/// key (one 60 KiB field), and a refund notification whose `req_info` does
/// not decrypt.
fn junk(i: usize) -> (&'static str, Vec<u8>) {
    let filler = "A".repeat(60 * KIB);
    match i % 3 {
        0 => {
            let mut b: Vec<u8> = (0..60 * KIB)
                .map(|j| ((i * 31 + j * 7) % 251) as u8)
                .collect();
            b[0] = b'%';
            ("/api/pay/notify", b)
        }
        1 => {
            let mut f = BTreeMap::new();
            f.insert("return_code".to_owned(), "SUCCESS".to_owned());
            f.insert("out_trade_no".to_owned(), format!("FORGED{i}"));
            f.insert("filler".to_owned(), filler);
            let sign = shared::sign::pay_sign(
                &f,
                "not-our-key-not-our-key-00000000",
                shared::sign::SignType::Md5,
            );
            f.insert("sign".to_owned(), sign);
            ("/api/pay/notify", shared::xml::map_to_xml(&f).into_bytes())
        }
        _ => {
            let mut f = BTreeMap::new();
            f.insert("return_code".to_owned(), "SUCCESS".to_owned());
            f.insert("appid".to_owned(), MP.to_owned());
            f.insert("mch_id".to_owned(), SANDBOX_MCH_ID.to_owned());
            f.insert("req_info".to_owned(), filler);
            (
                "/api/pay/refund-notify",
                shared::xml::map_to_xml(&f).into_bytes(),
            )
        }
    }
}

#[tokio::test]
async fn a_flood_of_junk_notifications_stays_bounded_and_a_real_one_still_applies() {
    for db in all_backends(migrations) {
        let app = spawn_app_with(&db, &[V2], 1.0).await;
        let no = app.v2pay("0.37").await["outTradeNo"]
            .as_str()
            .unwrap()
            .to_owned();
        let before = db_bytes(&db).await;
        let flood = futures_util::stream::iter(0..1000)
            .map(|i| {
                let (path, body) = junk(i);
                let (client, base) = (app.client.clone(), app.base.clone());
                async move {
                    assert!(body.len() >= 60 * KIB);
                    let (status, reply) = notify_raw(&client, &base, path, body).await;
                    assert_eq!(status, 200);
                    assert_eq!(reply["return_code"], "FAIL", "junk {i} acknowledged");
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<()>>();
        // WeChat's real notification arrives in the middle of the flood.
        let real = async {
            app.sandbox
                .state()
                .pay_order(&no, PayOptions::default())
                .unwrap();
            assert!(app.sandbox.state().wait_acknowledged(&no, WAIT).await);
        };
        futures_util::join!(flood, real);
        assert_eq!(app.status_of(&no).await, "PAID");
        let grown = db_bytes(&db).await.saturating_sub(before);
        println!(
            "{}: 1000 junk 60 KiB bodies grew the database by {grown} bytes",
            db.url
        );
        assert!(grown < 1024 * 1024, "grew by {grown} bytes");
        let refused: Vec<_> = app
            .notifications(None)
            .await
            .into_iter()
            .filter(|n| !n.sign_verified)
            .collect();
        // REFUSED_NOTIFY_PER_MINUTE (30 by default) rows at most, none whole.
        assert!(
            !refused.is_empty() && refused.len() <= 30,
            "{}",
            refused.len()
        );
        for n in &refused {
            assert!(n.raw_body.len() <= 256, "{}", n.raw_body.len());
            assert!(n.body_size.unwrap() >= (60 * KIB) as i64);
            assert_eq!(n.body_sha256.as_ref().map(String::len), Some(64));
            assert!(n.out_trade_no.is_none());
        }
        let real: Vec<_> = app
            .notifications(Some(&no))
            .await
            .into_iter()
            .map(|n| (n.outcome, n.sign_verified))
            .collect();
        assert_eq!(real, vec![("applied".to_owned(), true)]);
    }
}

/// Refused rows keep the hash and size of the whole body and a prefix, and
/// are trimmed to REFUSED_NOTIFY_KEEP_ROWS; verified rows are never trimmed.
#[tokio::test]
async fn the_refused_log_keeps_a_hash_a_prefix_and_at_most_its_rows() {
    for db in all_backends(migrations) {
        let app = spawn_app_with(
            &db,
            &[
                V2,
                ("REFUSED_NOTIFY_PER_MINUTE", "100000"),
                ("REFUSED_NOTIFY_KEEP_ROWS", "20"),
            ],
            1.0,
        )
        .await;
        let paid = app.v2pay("0.11").await["outTradeNo"]
            .as_str()
            .unwrap()
            .to_owned();
        app.sandbox
            .state()
            .pay_order(&paid, PayOptions::default())
            .unwrap();
        assert!(app.sandbox.state().wait_acknowledged(&paid, WAIT).await);
        let mut last = Vec::new();
        for i in 0..60 {
            let body = format!(
                "<xml><sign>x</sign><n>{i}</n><f>{}</f></xml>",
                "é".repeat(300)
            )
            .into_bytes();
            let (_, reply) = app.notify_raw("/api/pay/notify", body.clone()).await;
            assert_eq!(reply["return_code"], "FAIL");
            last = body;
        }
        let refused: Vec<_> = app
            .notifications(None)
            .await
            .into_iter()
            .filter(|n| !n.sign_verified)
            .collect();
        assert_eq!(refused.len(), 20);
        let newest = refused.last().unwrap();
        assert_eq!(newest.outcome, "bad_sign");
        assert_eq!(newest.kind, "payment");
        assert_eq!(newest.body_size, Some(last.len() as i64));
        assert!(newest.raw_body.len() <= 256 && last.starts_with(newest.raw_body.as_bytes()));
        // The hash, checked against an independent implementation.
        let file =
            std::env::temp_dir().join(format!("refused-{}", shared::random::alphanumeric(8)));
        std::fs::write(&file, &last).unwrap();
        match std::process::Command::new("sha256sum").arg(&file).output() {
            Ok(out) => {
                let hex = String::from_utf8(out.stdout).unwrap();
                assert_eq!(newest.body_sha256.as_deref(), hex.split_whitespace().next());
            }
            Err(e) => testkit::skip_or_fail(&format!("sha256sum: {e}")),
        }
        let _ = std::fs::remove_file(file);
        // The verified (applied) notification is still there, whole.
        let kept = app.notifications(Some(&paid)).await;
        assert_eq!(kept.len(), 1);
        assert!(kept[0].raw_body.contains(&paid) && kept[0].body_sha256.is_none());
    }
}

fn mp_cookie_request(app: &TestApp, path: &str) -> reqwest::RequestBuilder {
    app.client
        .get(app.url(path))
        .header("cookie", format!("wx_session={}", app.mp_token()))
}

#[tokio::test]
async fn v2pay_takes_only_a_mini_program_bearer_token() {
    for db in all_backends(migrations) {
        let app = spawn_app_with(&db, &[V2], 1.0).await;
        // A link on another site carries the cookie, never a Bearer header.
        let res = mp_cookie_request(&app, "/api/mp/v2Pay?money=1")
            .send()
            .await
            .unwrap();
        let msg = expect_error(res, 401, 1002).await;
        assert!(msg.contains("Bearer"), "{msg}");
        assert_eq!(app.sandbox.state().calls("/pay/unifiedorder"), 0);
        assert!(
            inspect::count_by_status(app.state.db())
                .await
                .unwrap()
                .iter()
                .all(|(_, n)| *n == 0)
        );
        // An official-account session is not a mini-program one.
        let oa = app.token(OA, "u1", 2);
        expect_error(app.get("/api/mp/v2Pay?money=1", &oa).await, 403, 1003).await;
        assert_eq!(app.sandbox.state().calls("/pay/unifiedorder"), 0);
        // The Bearer token works; the cookie still works where API.md allows it.
        app.v2pay("1").await;
        let res = app
            .client
            .post(app.url("/api/pay/orders"))
            .header("cookie", format!("wx_session={}", app.mp_token()))
            .json(&json!({"amountFen": 5, "tradeType": "JSAPI"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
}

#[tokio::test]
async fn order_creation_and_sync_are_rate_limited_per_user() {
    for db in all_backends(migrations) {
        let app = spawn_app_with(
            &db,
            &[
                V2,
                ("ORDER_RATE_LIMIT", "3"),
                ("ORDER_SYNC_RATE_LIMIT", "2"),
            ],
            1.0,
        )
        .await;
        let u1 = app.mp_token();
        // Refused for their parameters: nothing spent.
        for _ in 0..5 {
            expect_error(app.get("/api/mp/v2Pay?money=abc", &u1).await, 400, 1001).await;
        }
        let mut nos = Vec::new();
        for _ in 0..2 {
            nos.push(
                app.v2pay("0.5").await["outTradeNo"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        let res = app
            .post_json(
                "/api/pay/orders",
                &u1,
                &json!({"amountFen": 7, "tradeType": "NATIVE"}),
                None,
            )
            .await;
        assert_eq!(res.status(), 200);
        let calls = app.sandbox.state().calls("/pay/unifiedorder");
        expect_error(app.get("/api/mp/v2Pay?money=0.5", &u1).await, 429, 1006).await;
        let res = app
            .post_json(
                "/api/pay/orders",
                &u1,
                &json!({"amountFen": 7, "tradeType": "NATIVE"}),
                None,
            )
            .await;
        expect_error(res, 429, 1006).await;
        assert_eq!(app.sandbox.state().calls("/pay/unifiedorder"), calls);
        // Another user has a budget of their own.
        let u2 = app.token(MP, "u2", 2);
        let res = app.get("/api/mp/v2Pay?money=0.5", &u2).await;
        assert_eq!(res.status(), 200);

        let path = format!("/api/pay/orders/{}?sync=true", nos[0]);
        for _ in 0..2 {
            assert_eq!(app.get(&path, &u1).await.status(), 200);
        }
        let queries = app.sandbox.state().calls("/pay/orderquery");
        expect_error(app.get(&path, &u1).await, 429, 1006).await;
        assert_eq!(app.sandbox.state().calls("/pay/orderquery"), queries);
        // Reading without asking WeChat is not limited.
        assert_eq!(
            app.get(&format!("/api/pay/orders/{}", nos[0]), &u1)
                .await
                .status(),
            200
        );
    }
}

/// The budget is taken before the order is made: three times the limit at
/// once, and no more than the limit get through (a check before spending
/// would let every one of them pass while none had spent yet).
#[tokio::test]
async fn concurrent_order_creations_cannot_overspend_the_budget() {
    const LIMIT: usize = 3;
    for db in all_backends(migrations) {
        let app = spawn_app_with(&db, &[V2, ("ORDER_RATE_LIMIT", "3")], 1.0).await;
        let u1 = app.mp_token();
        let body = json!({"amountFen": 7, "tradeType": "NATIVE"});
        let answers = futures_util::future::join_all(
            (0..3 * LIMIT).map(|_| app.post_json("/api/pay/orders", &u1, &body, None)),
        )
        .await;
        let mut made = 0;
        for res in answers {
            if res.status() == 200 {
                made += 1;
            } else {
                expect_error(res, 429, 1006).await;
            }
        }
        assert_eq!(made, LIMIT);
        assert_eq!(app.sandbox.state().calls("/pay/unifiedorder"), LIMIT as u64);
    }
}

const ALICE: &str = "alice-token-0123456789abcdef";
const BOB: &str = "bob-token-0123456789abcdef-bob";

async fn metric(app: &TestApp, line_start: &str) -> f64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn failed_admin_logins_are_audited_and_rate_limited_per_address() {
    let db = testkit::sqlite_db(migrations());
    let tokens = format!("alice:{ALICE},bob:{BOB}");
    let app = spawn_refund_app(
        &db,
        &[
            V2,
            ("ADMIN_TOKENS", &tokens),
            ("ADMIN_FAILED_LOGINS_PER_MINUTE", "3"),
        ],
    )
    .await;
    let path = "/api/pay/admin/events";
    let wrong = r#"pay_admin_login_failures_total{reason="wrong_token"}"#;
    let limited = r#"pay_admin_login_failures_total{reason="rate_limited"}"#;
    let (wrong0, limited0) = (metric(&app, wrong).await, metric(&app, limited).await);
    // From the gateway (loopback), X-Real-IP names the client.
    let from = |ip: &'static str, token: &'static str| {
        app.client
            .get(app.url(path))
            .header("x-real-ip", ip)
            .bearer_auth(token)
            .send()
    };
    assert_eq!(from("203.0.113.7", ALICE).await.unwrap().status(), 200);
    for _ in 0..3 {
        expect_error(
            from("203.0.113.7", "guessed-token-guessed-token")
                .await
                .unwrap(),
            401,
            1002,
        )
        .await;
    }
    // The address has spent its failures: even the right token is refused now.
    expect_error(from("203.0.113.7", ALICE).await.unwrap(), 429, 1006).await;
    expect_error(
        from("203.0.113.7", "another-guess-another-guess")
            .await
            .unwrap(),
        429,
        1006,
    )
    .await;
    // Another client is not affected.
    assert_eq!(from("198.51.100.4", BOB).await.unwrap().status(), 200);
    assert_eq!(metric(&app, wrong).await - wrong0, 3.0);
    assert_eq!(metric(&app, limited).await - limited0, 2.0);
}

/// Concurrent guesses from one address: no more are compared with the
/// tokens than the budget allows (each is taken from it before comparing).
#[tokio::test]
async fn concurrent_admin_guesses_cannot_overspend_the_failure_budget() {
    // On Redis: each request then waits on the cache, so the requests
    // interleave as they do in production (the in-process cache answers
    // without yielding, which would hide a check-then-spend race).
    let Ok(redis) = std::env::var("TEST_REDIS_URL") else {
        testkit::skip_or_fail("TEST_REDIS_URL is not set");
        return;
    };
    let db = testkit::sqlite_db(migrations());
    let tokens = format!("alice:{ALICE}");
    let app = spawn_refund_app(
        &db,
        &[
            V2,
            ("ADMIN_TOKENS", &tokens),
            ("ADMIN_FAILED_LOGINS_PER_MINUTE", "3"),
            ("REDIS_URL", &redis),
        ],
    )
    .await;
    // An address of this run's own: the counter outlives the test by a minute.
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let ip = format!("10.{}.{}.{}", n % 251, (n / 251) % 251, (n / 63001) % 251);
    let answers = futures_util::future::join_all((0..9).map(|i| {
        app.client
            .get(app.url("/api/pay/admin/events"))
            .header("x-real-ip", ip.as_str())
            .bearer_auth(format!("guessed-token-guessed-token-{i}"))
            .send()
    }))
    .await;
    let statuses: Vec<u16> = answers
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    let tried = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((tried, limited), (3, 6), "{statuses:?}");
}

#[tokio::test]
async fn each_operator_has_a_token_and_the_refund_names_who_asked() {
    for db in all_backends(migrations) {
        let tokens = format!("alice:{ALICE}, bob:{BOB}");
        let app = spawn_refund_app(&db, &[V2, ("ADMIN_TOKENS", &tokens)]).await;
        let no = app.paid_order("2.00").await;
        let path = format!("/api/pay/admin/orders/{no}/refunds");
        let mut seen = Vec::new();
        // ADMIN_TOKEN (spawn_refund_app sets it) still works, as operator `admin`.
        for (token, fen) in [(ALICE, 10), (BOB, 20), (ADMIN_TOKEN, 30)] {
            let res = app
                .post_json(
                    &path,
                    token,
                    &json!({"amountFen": fen, "reason": "r"}),
                    None,
                )
                .await;
            let (status, body) = envelope(res).await;
            assert_eq!(status, 200, "{body}");
            seen.push(body["data"]["operator"].as_str().unwrap().to_owned());
        }
        assert_eq!(seen, ["alice", "bob", "admin"]);
        let rows: Vec<Option<String>> = inspect::refunds_of(app.state.db(), &no)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.operator)
            .collect();
        assert_eq!(
            rows,
            [
                Some("alice".into()),
                Some("bob".into()),
                Some("admin".into())
            ]
        );
    }
}

fn config_with(vars: &[(&str, &str)]) -> Result<PayConfig, String> {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("SESSION_SECRET", SESSION_SECRET),
        ("MCH_ID", SANDBOX_MCH_ID),
        ("MCH_KEY", SANDBOX_MCH_KEY),
        ("MP_APP_ID", MP),
        ("WECHATPAY_API_BASE", "https://api.mch.weixin.qq.com"),
    ];
    pairs.extend_from_slice(vars);
    PayConfig::from_env(&Env::from_pairs(pairs)).map_err(|e| e.to_string())
}

#[test]
fn admin_tokens_are_checked_at_start_and_never_printed() {
    for (value, needle) in [
        ("alice", "name:token"),
        ("alice:short", "16"),
        (":0123456789abcdef0123", "operator names"),
        ("al ice:0123456789abcdef0123", "operator names"),
        (
            "a:0123456789abcdef0123,a:fedcba9876543210fedc",
            "named twice",
        ),
        (
            "a:0123456789abcdef0123,b:0123456789abcdef0123",
            "share a token",
        ),
    ] {
        let e = config_with(&[("ADMIN_TOKENS", value)]).unwrap_err();
        assert!(
            e.contains("ADMIN_TOKENS") && e.contains(needle),
            "{value}: {e}"
        );
    }
    let e = config_with(&[
        ("ADMIN_TOKENS", "admin:0123456789abcdef0123"),
        ("ADMIN_TOKEN", "fedcba9876543210fedc"),
    ])
    .unwrap_err();
    assert!(e.contains("named twice"), "{e}");
    // Without the certificate files refunds cannot start: the operators'
    // tokens are parsed first, and never show in the error or the Debug form.
    let e = config_with(&[("ADMIN_TOKENS", &format!("alice:{ALICE}"))]).unwrap_err();
    assert!(e.contains("MCH_CERT_PEM") && !e.contains(ALICE), "{e}");
}
