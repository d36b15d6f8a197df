//! The statements one payment notification costs, pinned (issue #16 goal 2):
//! each is a round trip to the database, and on PostgreSQL they are most of a
//! notification's time. Counted with diesel's instrumentation, installed for
//! every connection this test binary opens (a binary of its own, so no other
//! test's queries are counted).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use diesel::connection::{Instrumentation, InstrumentationEvent, set_default_instrumentation};
use pay_service::migrations;
use shared::db::Backend;
use shared::sign::SignType;
use testkit::all_backends;
use wechat_sandbox::{PayOptions, SANDBOX_MCH_KEY};

/// Whether statements are being counted now.
static COUNTING: AtomicBool = AtomicBool::new(false);
/// The statements counted, as their SQL's first words.
static STATEMENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Every statement a connection of this binary kept prepared, counting or
/// not, as its SQL's first words.
static CACHED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// One connection's view. A connection opened while counting is left out:
/// its set-up statements (SQLite's PRAGMAs) belong to the pool refilling
/// itself in the background, not to the notification.
struct Counter {
    opened_while_counting: bool,
}

impl Instrumentation for Counter {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::CacheQuery { sql, .. } = event {
            CACHED.lock().unwrap().push(head(sql));
        }
        if let InstrumentationEvent::StartQuery { query, .. } = event
            && COUNTING.load(Ordering::SeqCst)
            && !self.opened_while_counting
        {
            STATEMENTS.lock().unwrap().push(head(&query.to_string()));
        }
    }
}

/// A statement's first four words.
fn head(sql: &str) -> String {
    sql.split_whitespace().take(4).collect::<Vec<_>>().join(" ")
}

fn counter() -> Option<Box<dyn Instrumentation>> {
    Some(Box::new(Counter {
        opened_while_counting: COUNTING.load(Ordering::SeqCst),
    }))
}

/// The statements run while `f` runs.
async fn statements_of<F: std::future::Future<Output = ()>>(f: F) -> Vec<String> {
    STATEMENTS.lock().unwrap().clear();
    COUNTING.store(true, Ordering::SeqCst);
    f.await;
    COUNTING.store(false, Ordering::SeqCst);
    std::mem::take(&mut *STATEMENTS.lock().unwrap())
}

/// POSTs the signed notification of sandbox order `no`; it must be SUCCESS.
async fn notify(app: &TestApp, no: &str) {
    let xml = notification_xml(
        &app.sandbox_order(no),
        SANDBOX_MCH_KEY,
        SignType::Md5,
        |_| {},
    );
    let (status, reply) = app.notify_raw("/api/pay/notify", xml).await;
    assert_eq!(status, 200);
    assert!(success(&reply), "{reply:?}");
}

async fn paid_silently(app: &TestApp) -> String {
    let no = app.v2pay("1").await["outTradeNo"]
        .as_str()
        .unwrap()
        .to_owned();
    let silent = PayOptions {
        notify: false,
        fail_first_deliveries: 0,
    };
    app.sandbox.state().pay_order(&no, silent).unwrap();
    no
}

/// Applying one notification on PostgreSQL: BEGIN, the conditional UPDATE …
/// RETURNING that makes the order PAID, one INSERT of the transition, the
/// merchant event and the notification's row, COMMIT. A replay: the UPDATE
/// that matches nothing, the read under the row lock that says why (`SELECT …
/// FOR UPDATE`), the notification's row. (It was 10 before issue #16: the
/// pool's check-out `SELECT 1`, a no-op UPDATE as the row lock, two reads of
/// the order, three INSERTs; then 5, with the `SELECT 1`.) The connection was
/// used a moment ago (the pool hands out the last one returned), so the pool
/// does not check it again.
///
/// The UPDATE and the INSERT are kept prepared by the connection: each is one
/// round trip, planned once, not a Parse and an Execute every time.
#[tokio::test]
async fn one_applied_notification_is_four_prepared_statements_on_postgres() {
    set_default_instrumentation(counter).unwrap();
    for db in all_backends(migrations) {
        let app = spawn_app(&db).await;
        let postgres = app.state.db().backend() == Backend::Postgres;
        // Warm: the pool holds idle connections before counting starts.
        let warm = paid_silently(&app).await;
        notify(&app, &warm).await;
        let no = paid_silently(&app).await;

        let applied = statements_of(notify(&app, &no)).await;
        println!("{:?} applied: {applied:#?}", app.state.db().backend());
        let expected: &[&str] = if postgres {
            &[
                "BEGIN",
                "UPDATE pay_orders SET",
                "WITH transition AS (INSERT",
                "COMMIT",
            ]
        } else {
            &[
                "BEGIN",
                "UPDATE pay_orders SET",
                "INSERT INTO `pay_order_transitions`",
                "INSERT INTO `pay_events`",
                "INSERT INTO `pay_notifications`",
                "COMMIT",
            ]
        };
        let heads: Vec<String> = applied.iter().map(|s| first_words(s, expected)).collect();
        assert_eq!(heads, expected, "applied: {applied:#?}");
        assert_eq!(app.status_of(&no).await, "PAID");
        let cached = CACHED.lock().unwrap().clone();
        assert!(
            cached
                .iter()
                .any(|s| s.starts_with("UPDATE pay_orders SET")),
            "the UPDATE is not kept prepared: {cached:#?}"
        );
        if postgres {
            assert!(
                cached.iter().any(|s| s.starts_with("WITH transition AS")),
                "the INSERT is not kept prepared: {cached:#?}"
            );
        }

        // SQLite's read under the lock is a no-op UPDATE and a SELECT.
        let replay = statements_of(notify(&app, &no)).await;
        let expected = if postgres { 5 } else { 6 };
        assert_eq!(replay.len(), expected, "replay: {replay:#?}");
        assert_eq!(app.transitions(&no).await.len(), 1);
    }
}

/// `sql` cut to as many words as the expected statement at the same place
/// has (so the pin names only what matters).
fn first_words(sql: &str, expected: &[&str]) -> String {
    let n = expected
        .iter()
        .find(|e| sql.starts_with(**e))
        .map(|e| e.split_whitespace().count())
        .unwrap_or(4);
    sql.split_whitespace().take(n).collect::<Vec<_>>().join(" ")
}
