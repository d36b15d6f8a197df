//! Refunds whose outcome WeChat leaves unknown (issue 15, item 4), against
//! the sandbox's TLS listener with injected answers, on SQLite and, when
//! configured, PostgreSQL.
//!
//! The property: whatever sequence of answers WeChat gives (accepted,
//! SYSTEMERROR or BIZERR_NEED_RETRY with or without the refund having been
//! made, HTTP 500, garbage, timeouts, definite refusals, CHANGE, REFUNDCLOSE,
//! notifications), the order never shows more refunded than WeChat refunded,
//! and never releases an amount that WeChat has paid or may still pay out
//! (its PROCESSING, SUCCESS and CHANGE refunds): an operator can therefore
//! never refund the same money twice under a new number.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use pay_service::{inspect, migrations};
use testkit::all_backends;
use wechat_sandbox::{FaultKind, RefundSnapshot, RefundStatus};

const REFUND_PATH: &str = "/secapi/pay/refund";
/// These are APIv2 refunds (`/secapi/pay/refund`, `/pay/refundquery`).
const V2: (&str, &str) = ("PAY_API_VERSION", "v2");
const QUERY_PATH: &str = "/pay/refundquery";

/// xorshift64*: a reproducible sequence per seed (printed on failure).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn pay_error(code: &str, applied: bool) -> FaultKind {
    FaultKind::PayError {
        err_code: code.into(),
        err_code_des: "sandbox".into(),
        applied,
    }
}

/// One of the answers WeChat may give to `/secapi/pay/refund`; None is the
/// real answer. A definite refusal only for a new number: WeChat answers a
/// number it already has with that refund.
fn refund_answer(rng: &mut Rng, new_number: bool) -> Option<FaultKind> {
    match rng.below(10) {
        0 => Some(pay_error("SYSTEMERROR", true)),
        1 => Some(pay_error("SYSTEMERROR", false)),
        2 => Some(pay_error("BIZERR_NEED_RETRY", true)),
        3 => Some(FaultKind::Http500),
        4 => Some(FaultKind::Garbage),
        // A definite refusal: the refund will not happen.
        5 if new_number => Some(pay_error("NOTENOUGH", false)),
        // Longer than the client waits (WECHAT_TIMEOUT_MS below).
        6 if rng.below(3) == 0 => Some(FaultKind::Delay(Duration::from_millis(900))),
        _ => None,
    }
}

fn query_answer(rng: &mut Rng) -> Option<FaultKind> {
    match rng.below(6) {
        0 => Some(pay_error("SYSTEMERROR", false)),
        1 => Some(FaultKind::Garbage),
        2 => Some(FaultKind::Http500),
        _ => None,
    }
}

/// What WeChat has refunded (SUCCESS) and what it has paid or may still pay
/// out (PROCESSING, SUCCESS, CHANGE).
fn at_wechat(refunds: &[RefundSnapshot]) -> (i64, i64) {
    let sum = |f: &dyn Fn(RefundStatus) -> bool| -> i64 {
        refunds
            .iter()
            .filter(|r| f(r.status))
            .map(|r| r.refund_fee as i64)
            .sum()
    };
    (
        sum(&|s| s == RefundStatus::Success),
        sum(&|s| {
            matches!(
                s,
                RefundStatus::Processing | RefundStatus::Success | RefundStatus::Change
            )
        }),
    )
}

async fn check_invariants(app: &TestApp, no: &str, context: &str) {
    let order = inspect::order(app.state.db(), no).await.unwrap().unwrap();
    let sandbox = app.sandbox.state().refunds_of(no);
    let (refunded, may_pay) = at_wechat(&sandbox);
    assert!(
        order.refunded_fen <= refunded,
        "{context}: we show {} refunded, WeChat refunded {refunded}",
        order.refunded_fen
    );
    assert!(
        order.refund_reserved_fen >= may_pay,
        "{context}: {} fen held, but WeChat has paid or may pay {may_pay}; sandbox {sandbox:?}",
        order.refund_reserved_fen
    );
    assert!(order.refund_reserved_fen <= order.amount_fen, "{context}");
    // Refund by refund: nothing released here is alive at WeChat.
    let ours = inspect::refunds_of(app.state.db(), no).await.unwrap();
    for r in &ours {
        let theirs = sandbox.iter().find(|s| s.out_refund_no == r.out_refund_no);
        if r.status.as_str() == "FAILED" {
            assert!(
                theirs.is_none_or(|s| s.status == RefundStatus::RefundClose),
                "{context}: {} released but WeChat has it as {:?}",
                r.out_refund_no,
                theirs.map(|s| s.status)
            );
        }
    }
}

/// The sandbox's PROCESSING refunds of `no`.
fn processing(app: &TestApp, no: &str) -> Vec<String> {
    app.sandbox
        .state()
        .refunds_of(no)
        .into_iter()
        .filter(|r| r.status == RefundStatus::Processing)
        .map(|r| r.out_refund_no)
        .collect()
}

/// The local statuses a sequence went through, so that the test knows it
/// explored the cases it is about.
async fn run_sequence(
    app: &TestApp,
    seed: u64,
    steps: usize,
) -> std::collections::BTreeSet<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut rng = Rng(seed);
    let no = app.paid_order("10.00").await;
    let sb = app.sandbox.state();
    sb.hold_refunds(true);
    for step in 0..steps {
        let context = format!("seed {seed} step {step}");
        match rng.below(8) {
            0..=2 => {
                if let Some(fault) = refund_answer(&mut rng, true) {
                    sb.inject_fault(REFUND_PATH, fault, 1);
                }
                let fen = 1 + rng.below(250) as i64;
                let res = app.refund(&no, fen, "prop").await;
                let status = res.status().as_u16();
                assert!(
                    matches!(status, 200 | 409 | 502 | 504),
                    "{context}: {status}"
                );
            }
            3 | 4 => {
                let open = processing(app, &no);
                if !open.is_empty() {
                    let r = &open[rng.below(open.len() as u64) as usize];
                    let end = match rng.below(4) {
                        0 | 1 => RefundStatus::Success,
                        2 => RefundStatus::RefundClose,
                        _ => RefundStatus::Change,
                    };
                    sb.complete_refund(r, end, rng.below(2) == 0).unwrap();
                }
            }
            5 | 6 => {
                if let Some(fault) = refund_answer(&mut rng, false) {
                    sb.inject_fault(REFUND_PATH, fault, 1);
                }
                if let Some(fault) = query_answer(&mut rng) {
                    sb.inject_fault(QUERY_PATH, fault, 1);
                }
                pay_service::reconcile_once(&app.state).await.unwrap();
            }
            _ => {
                if let Some(fault) = query_answer(&mut rng) {
                    sb.inject_fault(QUERY_PATH, fault, 1);
                }
                let res = app
                    .admin_get(&format!("/api/pay/admin/orders/{no}/refunds"))
                    .await;
                assert_eq!(res.status().as_u16(), 200, "{context}");
            }
        }
        sb.clear_faults();
        check_invariants(app, &no, &context).await;
        for r in inspect::refunds_of(app.state.db(), &no).await.unwrap() {
            seen.insert(r.status.as_str().to_owned());
        }
    }
    drain(app, &no, seed).await;
    seen
}

/// Faults off, WeChat finishes every refund it has: once reconciliation has
/// run, ours and WeChat's agree exactly.
async fn drain(app: &TestApp, no: &str, seed: u64) {
    let sb = app.sandbox.state();
    sb.clear_faults();
    sb.hold_refunds(false);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        for r in processing(app, no) {
            sb.complete_refund(&r, RefundStatus::Success, false)
                .unwrap();
        }
        pay_service::reconcile_once(&app.state).await.unwrap();
        let ours = inspect::refunds_of(app.state.db(), no).await.unwrap();
        if ours
            .iter()
            .all(|r| !matches!(r.status.as_str(), "PENDING" | "PROCESSING"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "seed {seed}: refunds still open: {ours:?}"
        );
    }
    check_invariants(app, no, &format!("seed {seed} drained")).await;
    let order = inspect::order(app.state.db(), no).await.unwrap().unwrap();
    let sandbox = sb.refunds_of(no);
    let (refunded, may_pay) = at_wechat(&sandbox);
    assert_eq!(order.refunded_fen, refunded, "seed {seed}");
    assert_eq!(order.refund_reserved_fen, may_pay, "seed {seed}");
    let theirs: BTreeMap<String, &'static str> = sandbox
        .iter()
        .map(|s| (s.out_refund_no.clone(), s.status.as_str()))
        .collect();
    for r in inspect::refunds_of(app.state.db(), no).await.unwrap() {
        let expected = match theirs.get(&r.out_refund_no).copied() {
            Some("SUCCESS") => "SUCCESS",
            Some("CHANGE") => "CHANGE",
            Some(_) | None => "FAILED",
        };
        assert_eq!(r.status.as_str(), expected, "seed {seed}: {r:?}");
    }
}

#[tokio::test]
async fn no_sequence_of_answers_refunds_more_than_wechat_did() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[V2, ("WECHAT_TIMEOUT_MS", "400")]).await;
        let mut seen = std::collections::BTreeSet::new();
        for seed in [0x9E37_79B9_7F4A_7C15, 7, 1_000_003, 42] {
            seen.extend(run_sequence(&app, seed, 40).await);
        }
        // The sequences went through every status, PENDING (unknown
        // outcomes) and CHANGE included.
        for status in ["PENDING", "PROCESSING", "SUCCESS", "FAILED", "CHANGE"] {
            assert!(
                seen.contains(status),
                "no refund was ever {status}: {seen:?}"
            );
        }
    }
}

/// SYSTEMERROR without the refund made, then BIZERR_NEED_RETRY with it made:
/// both stay PENDING with the amount held; reconciliation sends each again
/// under its own number, and WeChat ends up with one refund per number.
#[tokio::test]
async fn an_unknown_outcome_stays_pending_and_is_sent_again_under_the_same_number() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[V2]).await;
        let sb = app.sandbox.state();
        let no = app.paid_order("1.00").await;
        // WeChat's answers come back here, not by notification, in this test.
        sb.hold_refunds(true);
        sb.inject_fault(REFUND_PATH, pay_error("SYSTEMERROR", false), 1);
        let msg = expect_error(app.refund(&no, 60, "x").await, 502, 10009).await;
        assert!(msg.contains("SYSTEMERROR"), "{msg}");
        let ours = inspect::refunds_of(app.state.db(), &no).await.unwrap();
        assert_eq!(ours.len(), 1);
        let r1 = ours[0].out_refund_no.clone();
        assert_eq!(ours[0].status.as_str(), "PENDING");
        assert!(ours[0].error.as_deref().unwrap().contains("SYSTEMERROR"));
        // The amount stays held: the operator cannot refund it again.
        let msg = expect_error(app.refund(&no, 41, "x").await, 409, 1005).await;
        assert_eq!(msg, "amountFen 41 exceeds the 40 fen left to refund");
        // WeChat has no such refund yet: the list's refundquery keeps it PENDING.
        let (status, body) = envelope(
            app.admin_get(&format!("/api/pay/admin/orders/{no}/refunds"))
                .await,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["data"][0]["status"], "PENDING");

        sb.inject_fault(REFUND_PATH, pay_error("BIZERR_NEED_RETRY", true), 1);
        expect_error(app.refund(&no, 40, "y").await, 502, 10009).await;
        let ours = inspect::refunds_of(app.state.db(), &no).await.unwrap();
        let r2 = ours[1].out_refund_no.clone();
        assert_eq!(ours[1].status.as_str(), "PENDING");
        // WeChat made the second one, though it said otherwise.
        assert_eq!(sb.refunds_of(&no).len(), 1);

        let calls = sb.calls(REFUND_PATH);
        let report = pay_service::reconcile_once(&app.state).await.unwrap();
        assert_eq!(report.refunds_settled, 2, "{report:?}");
        assert_eq!(sb.calls(REFUND_PATH), calls + 2);
        let at_wechat: Vec<(String, u64)> = sb
            .refunds_of(&no)
            .into_iter()
            .map(|r| (r.out_refund_no, r.refund_fee))
            .collect();
        assert_eq!(at_wechat, vec![(r2.clone(), 40), (r1.clone(), 60)]);
        for r in [&r1, &r2] {
            let row = inspect::refund(app.state.db(), r).await.unwrap().unwrap();
            assert_eq!(row.status.as_str(), "PROCESSING");
            assert_eq!(row.refund_id, Some(sb.refund(r).unwrap().refund_id));
            sb.complete_refund(r, RefundStatus::Success, true).unwrap();
            assert!(sb.wait_refund_acknowledged(r, WAIT).await);
            let row = inspect::refund(app.state.db(), r).await.unwrap().unwrap();
            assert_eq!(row.status.as_str(), "SUCCESS");
        }
        let order = inspect::order(app.state.db(), &no).await.unwrap().unwrap();
        assert_eq!((order.refunded_fen, order.refund_reserved_fen), (100, 100));
    }
}

/// A definite refusal releases the amount; WeChat's CHANGE does not.
#[tokio::test]
async fn a_definite_refusal_releases_and_change_waits_for_an_operator() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[V2]).await;
        let sb = app.sandbox.state();
        let no = app.paid_order("1.00").await;
        sb.inject_fault(REFUND_PATH, pay_error("NOTENOUGH", false), 1);
        expect_error(app.refund(&no, 60, "x").await, 502, 10009).await;
        let ours = inspect::refunds_of(app.state.db(), &no).await.unwrap();
        assert_eq!(ours[0].status.as_str(), "FAILED");
        let order = inspect::order(app.state.db(), &no).await.unwrap().unwrap();
        assert_eq!(order.refund_reserved_fen, 0);

        sb.hold_refunds(true);
        let (status, body) = envelope(app.refund(&no, 70, "x").await).await;
        assert_eq!(status, 200, "{body}");
        let r = body["data"]["outRefundNo"].as_str().unwrap().to_owned();
        sb.complete_refund(&r, RefundStatus::Change, false).unwrap();
        let report = pay_service::reconcile_once(&app.state).await.unwrap();
        assert_eq!(report.refunds_settled, 1);
        let row = inspect::refund(app.state.db(), &r).await.unwrap().unwrap();
        assert_eq!(row.status.as_str(), "CHANGE");
        assert!(
            row.error.as_deref().unwrap().contains("operator"),
            "{row:?}"
        );
        let order = inspect::order(app.state.db(), &no).await.unwrap().unwrap();
        assert_eq!(
            (order.refund_reserved_fen, order.refunded_fen),
            (70, 0),
            "CHANGE keeps the amount held"
        );
        let msg = expect_error(app.refund(&no, 31, "x").await, 409, 1005).await;
        assert_eq!(msg, "amountFen 31 exceeds the 30 fen left to refund");
        // Asked again, nothing changes; it is never sent again.
        let calls = sb.calls(REFUND_PATH);
        let report = pay_service::reconcile_once(&app.state).await.unwrap();
        assert_eq!(report.refunds_settled, 0);
        assert_eq!(sb.calls(REFUND_PATH), calls);
        let (_, body) = envelope(
            app.admin_get(&format!("/api/pay/admin/orders/{no}/refunds"))
                .await,
        )
        .await;
        assert_eq!(body["data"][1]["status"], "CHANGE");
    }
}

/// The same rules over APIv3: WeChat's `SYSTEM_ERROR` (HTTP 500, `{code,
/// message}`) leaves the refund PENDING and held, and reconciliation sends
/// it again under the same out_refund_no, whether or not WeChat had made it;
/// `NOT_ENOUGH` (a definite refusal) releases it.
#[tokio::test]
async fn over_v3_an_unknown_outcome_stays_pending_and_a_refusal_releases() {
    const V3_REFUND_PATH: &str = "/v3/refund/domestic/refunds";
    for db in all_backends(migrations) {
        let app =
            spawn_refund_app(&db, &[("PAY_API_VERSION", "v3"), ("WECHAT_RETRIES", "0")]).await;
        let sb = app.sandbox.state();
        let no = app.paid_order("1.00").await;
        sb.hold_refunds(true);

        sb.inject_fault(V3_REFUND_PATH, pay_error("NOT_ENOUGH", false), 1);
        expect_error(app.refund(&no, 30, "refused").await, 502, 10009).await;
        let ours = inspect::refunds_of(app.state.db(), &no).await.unwrap();
        assert_eq!(ours[0].status.as_str(), "FAILED", "{ours:?}");

        sb.inject_fault(V3_REFUND_PATH, pay_error("SYSTEM_ERROR", false), 1);
        expect_error(app.refund(&no, 60, "x").await, 502, 10009).await;
        sb.inject_fault(V3_REFUND_PATH, pay_error("SYSTEM_ERROR", true), 1);
        expect_error(app.refund(&no, 40, "y").await, 502, 10009).await;
        let ours = inspect::refunds_of(app.state.db(), &no).await.unwrap();
        let pending: Vec<_> = ours
            .iter()
            .filter(|r| r.status.as_str() == "PENDING")
            .map(|r| r.out_refund_no.clone())
            .collect();
        assert_eq!(pending.len(), 2, "{ours:?}");
        // Everything is held: nothing is left to refund under a new number.
        expect_error(app.refund(&no, 1, "z").await, 409, 1005).await;
        // WeChat made the second one, though it answered SYSTEM_ERROR.
        assert_eq!(sb.refunds_of(&no).len(), 1);

        pay_service::reconcile_once(&app.state).await.unwrap();
        let mut at_wechat: Vec<(String, u64)> = sb
            .refunds_of(&no)
            .into_iter()
            .map(|r| (r.out_refund_no, r.refund_fee))
            .collect();
        at_wechat.sort();
        let mut expected: Vec<(String, u64)> = ours
            .iter()
            .filter(|r| r.status.as_str() == "PENDING")
            .map(|r| (r.out_refund_no.clone(), r.amount_fen as u64))
            .collect();
        expected.sort();
        assert_eq!(
            at_wechat, expected,
            "each sent once more, under its own number"
        );
        for r in &pending {
            sb.complete_refund(r, RefundStatus::Success, true).unwrap();
            assert!(sb.wait_refund_acknowledged(r, WAIT).await);
            let row = inspect::refund(app.state.db(), r).await.unwrap().unwrap();
            assert_eq!(row.status.as_str(), "SUCCESS");
        }
        let order = inspect::order(app.state.db(), &no).await.unwrap().unwrap();
        assert_eq!((order.refunded_fen, order.refund_reserved_fen), (100, 100));
    }
}

/// A service setting: name, value.
type Var = (&'static str, &'static str);

/// Runs `f` on the test database (a fixture change the service cannot make).
async fn on_db<F>(db: &testkit::TestDb, f: F)
where
    F: FnOnce(&mut shared::db::DbConnection) -> Result<(), shared::db::DbError> + Send + 'static,
{
    db.db.run(f).await.unwrap();
}

/// Moves a refund's `updated_at` to `at`: reconciliation visits the oldest first.
async fn set_updated_at(db: &testkit::TestDb, out_refund_no: &str, at: i64) {
    let no = out_refund_no.to_owned();
    on_db(db, move |conn| {
        use diesel::prelude::*;
        use pay_service::schema::pay_refunds;
        diesel::update(pay_refunds::table.filter(pay_refunds::out_refund_no.eq(no)))
            .set(pay_refunds::updated_at.eq(at))
            .execute(conn)?;
        Ok(())
    })
    .await;
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn status_of_refund(app: &TestApp, r: &str) -> String {
    inspect::refund(app.state.db(), r)
        .await
        .unwrap()
        .unwrap()
        .status
        .as_str()
        .to_owned()
}

async fn reserved(app: &TestApp, no: &str) -> i64 {
    inspect::order(app.state.db(), no)
        .await
        .unwrap()
        .unwrap()
        .refund_reserved_fen
}

/// A PENDING refund (SYSTEMERROR, made at WeChat or not, as `applied` says).
async fn pending_refund(app: &TestApp, no: &str, fen: i64, applied: bool) -> String {
    let sb = app.sandbox.state();
    sb.inject_fault(REFUND_PATH, pay_error("SYSTEMERROR", applied), 1);
    expect_error(app.refund(no, fen, "x").await, 502, 10009).await;
    let ours = inspect::refunds_of(app.state.db(), no).await.unwrap();
    let r = ours.last().unwrap();
    assert_eq!(r.status.as_str(), "PENDING", "{r:?}");
    r.out_refund_no.clone()
}

/// Rate limits and unsigned gateway failures say nothing about a refund: a
/// v2 `INVALID_REQ_TOO_MUCH` leaves it PENDING and held.
#[tokio::test]
async fn a_rate_limit_is_no_refusal() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[V2]).await;
        let sb = app.sandbox.state();
        let no = app.paid_order("1.00").await;
        sb.hold_refunds(true);
        sb.inject_fault(REFUND_PATH, pay_error("INVALID_REQ_TOO_MUCH", false), 1);
        expect_error(app.refund(&no, 60, "x").await, 502, 10009).await;
        let ours = inspect::refunds_of(app.state.db(), &no).await.unwrap();
        assert_eq!(ours[0].status.as_str(), "PENDING", "{ours:?}");
        assert_eq!(reserved(&app, &no).await, 60);
        // Sent again, WeChat takes it.
        pay_service::reconcile_once(&app.state).await.unwrap();
        assert_eq!(
            status_of_refund(&app, &ours[0].out_refund_no).await,
            "PROCESSING"
        );
        check_invariants(&app, &no, "rate limit").await;
    }
}

/// A refusal of a re-sent number is no proof that WeChat lacks the refund
/// (an earlier request may have made it): refundquery decides. WeChat has
/// it → PROCESSING, held; refundquery fails → still PENDING, held; WeChat
/// has no such refund → released.
#[tokio::test]
async fn a_refused_re_send_is_confirmed_by_refundquery() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[V2]).await;
        let sb = app.sandbox.state();
        let no = app.paid_order("1.00").await;
        sb.hold_refunds(true);
        // Made at WeChat, though it answered SYSTEMERROR.
        let made = pending_refund(&app, &no, 60, true).await;
        sb.inject_fault(REFUND_PATH, pay_error("NOTENOUGH", false), 1);
        let queries = sb.calls(QUERY_PATH);
        pay_service::reconcile_once(&app.state).await.unwrap();
        assert_eq!(sb.calls(QUERY_PATH), queries + 1, "the refusal was checked");
        assert_eq!(status_of_refund(&app, &made).await, "PROCESSING");
        assert_eq!(reserved(&app, &no).await, 60);
        check_invariants(&app, &no, "made, re-send refused").await;
        sb.complete_refund(&made, RefundStatus::Success, true)
            .unwrap();
        assert!(sb.wait_refund_acknowledged(&made, WAIT).await);

        // Not made at WeChat.
        let unmade = pending_refund(&app, &no, 30, false).await;
        sb.inject_fault(REFUND_PATH, pay_error("NOTENOUGH", false), 1);
        sb.inject_fault(QUERY_PATH, FaultKind::Http500, 1);
        pay_service::reconcile_once(&app.state).await.unwrap();
        assert_eq!(status_of_refund(&app, &unmade).await, "PENDING");
        assert_eq!(reserved(&app, &no).await, 90);
        sb.inject_fault(REFUND_PATH, pay_error("NOTENOUGH", false), 1);
        pay_service::reconcile_once(&app.state).await.unwrap();
        let row = inspect::refund(app.state.db(), &unmade)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.status.as_str(), "FAILED", "{row:?}");
        assert!(
            row.error.as_deref().unwrap().contains("no such refund"),
            "{row:?}"
        );
        assert_eq!(reserved(&app, &no).await, 60);
        check_invariants(&app, &no, "unmade, re-send refused").await;
    }
}

/// The same over APIv3: a re-sent refund refused with NOT_ENOUGH stays held
/// while WeChat has it, and is released once the query answers
/// RESOURCE_NOT_EXISTS.
#[tokio::test]
async fn over_v3_a_refused_re_send_is_confirmed_by_the_refund_query() {
    const V3_REFUND_PATH: &str = "/v3/refund/domestic/refunds";
    for db in all_backends(migrations) {
        let app =
            spawn_refund_app(&db, &[("PAY_API_VERSION", "v3"), ("WECHAT_RETRIES", "0")]).await;
        let sb = app.sandbox.state();
        let no = app.paid_order("1.00").await;
        sb.hold_refunds(true);
        sb.inject_fault(V3_REFUND_PATH, pay_error("SYSTEM_ERROR", true), 1);
        expect_error(app.refund(&no, 60, "x").await, 502, 10009).await;
        sb.inject_fault(V3_REFUND_PATH, pay_error("SYSTEM_ERROR", false), 1);
        expect_error(app.refund(&no, 40, "y").await, 502, 10009).await;
        let ours = inspect::refunds_of(app.state.db(), &no).await.unwrap();
        let (made, unmade) = (ours[0].out_refund_no.clone(), ours[1].out_refund_no.clone());
        sb.inject_fault(V3_REFUND_PATH, pay_error("NOT_ENOUGH", false), 2);
        pay_service::reconcile_once(&app.state).await.unwrap();
        assert_eq!(status_of_refund(&app, &made).await, "PROCESSING");
        assert_eq!(status_of_refund(&app, &unmade).await, "FAILED");
        assert_eq!(reserved(&app, &no).await, 60);
        check_invariants(&app, &no, "v3").await;
    }
}

/// Two re-sends of one refund race (an Idempotency-Key replay and a
/// reconciliation pass, or two replicas' passes): one is accepted while the
/// other is refused. The refusal releases only a refund still PENDING, so
/// the accepted one keeps its amount. The acceptance is written while the
/// refused re-send waits for its refundquery (delayed by the sandbox).
#[tokio::test]
async fn a_refusal_does_not_release_a_refund_a_racing_send_got_accepted() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(&db, &[V2]).await;
        let sb = app.sandbox.state();
        let no = app.paid_order("1.00").await;
        sb.hold_refunds(true);
        let r = pending_refund(&app, &no, 60, false).await;
        sb.inject_fault(REFUND_PATH, pay_error("NOTENOUGH", false), 1);
        sb.inject_fault(QUERY_PATH, FaultKind::Delay(Duration::from_millis(1500)), 1);
        let queries = sb.calls(QUERY_PATH);
        let state = app.state.clone();
        let pass = tokio::spawn(async move { pay_service::reconcile_once(&state).await });
        let deadline = std::time::Instant::now() + WAIT;
        while sb.calls(QUERY_PATH) == queries {
            assert!(std::time::Instant::now() < deadline, "no refundquery");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The racing send's acceptance.
        let accepted = r.clone();
        on_db(&db, move |conn| {
            use diesel::prelude::*;
            use pay_service::RefundStatus as Ours;
            use pay_service::schema::pay_refunds;
            diesel::update(pay_refunds::table.filter(pay_refunds::out_refund_no.eq(accepted)))
                .set((
                    pay_refunds::status.eq(Ours::Processing),
                    pay_refunds::refund_id.eq("50000000000000000000000000000001"),
                ))
                .execute(conn)?;
            Ok(())
        })
        .await;
        pass.await.unwrap().unwrap();
        assert_eq!(status_of_refund(&app, &r).await, "PROCESSING");
        assert_eq!(reserved(&app, &no).await, 60);
        expect_error(app.refund(&no, 41, "x").await, 409, 1005).await;
    }
}

/// A reconciliation pass claims the refunds it visits: the next pass (this
/// replica's or another's) leaves them alone for RECONCILE_AFTER_SECONDS,
/// and refunds nothing moves (PROCESSING, CHANGE) cannot fill every batch
/// and starve newer PENDING ones.
#[tokio::test]
async fn reconciliation_claims_refunds_and_stuck_ones_do_not_starve_the_rest() {
    for db in all_backends(migrations) {
        let app = spawn_refund_app(
            &db,
            &[
                V2,
                ("RECONCILE_AFTER_SECONDS", "600"),
                ("RECONCILE_BATCH", "1"),
            ],
        )
        .await;
        let sb = app.sandbox.state();
        let no = app.paid_order("1.00").await;
        sb.hold_refunds(true);
        let (status, body) = envelope(app.refund(&no, 30, "stuck").await).await;
        assert_eq!(status, 200, "{body}");
        let stuck = body["data"]["outRefundNo"].as_str().unwrap().to_owned();
        let pending = pending_refund(&app, &no, 40, false).await;
        set_updated_at(&db, &stuck, now() - 7200).await;
        set_updated_at(&db, &pending, now() - 3600).await;

        let (sends, queries) = (sb.calls(REFUND_PATH), sb.calls(QUERY_PATH));
        pay_service::reconcile_once(&app.state).await.unwrap();
        assert_eq!(
            sb.calls(QUERY_PATH),
            queries + 1,
            "the stuck one was asked about"
        );
        assert_eq!(sb.calls(REFUND_PATH), sends);
        pay_service::reconcile_once(&app.state).await.unwrap();
        assert_eq!(
            sb.calls(REFUND_PATH),
            sends + 1,
            "the PENDING one was sent again"
        );
        assert_eq!(status_of_refund(&app, &pending).await, "PROCESSING");
        // Both were visited just now: nothing is due.
        pay_service::reconcile_once(&app.state).await.unwrap();
        assert_eq!(
            (sb.calls(REFUND_PATH), sb.calls(QUERY_PATH)),
            (sends + 1, queries + 1)
        );
        check_invariants(&app, &no, "claims").await;
    }
}

/// WeChat reports CHANGE for a refund we had released (it refused the
/// request, yet made the refund): the amount is held again and the refund
/// waits for an operator, as a SUCCESS would have it counted again.
#[tokio::test]
async fn change_on_a_released_refund_holds_its_amount_again() {
    let v3 = [("PAY_API_VERSION", "v3"), ("WECHAT_RETRIES", "0")];
    let apis: [(&[Var], &str, &str); 2] = [
        (&[V2], REFUND_PATH, "NOTENOUGH"),
        // WeChat's ABNORMAL, over v3.
        (&v3, "/v3/refund/domestic/refunds", "NOT_ENOUGH"),
    ];
    for db in all_backends(migrations) {
        for (vars, path, refusal) in apis {
            change_after_release(&db, vars, path, refusal).await;
        }
    }
}

async fn change_after_release(
    db: &testkit::TestDb,
    vars: &[(&str, &str)],
    path: &str,
    refusal: &str,
) {
    let app = spawn_refund_app(db, vars).await;
    let sb = app.sandbox.state();
    let no = app.paid_order("1.00").await;
    sb.hold_refunds(true);
    sb.inject_fault(path, pay_error(refusal, true), 1);
    expect_error(app.refund(&no, 60, "x").await, 502, 10009).await;
    let ours = inspect::refunds_of(app.state.db(), &no).await.unwrap();
    let r = ours[0].out_refund_no.clone();
    assert_eq!(ours[0].status.as_str(), "FAILED", "{path}");
    assert_eq!(reserved(&app, &no).await, 0);

    sb.complete_refund(&r, RefundStatus::Change, true).unwrap();
    assert!(sb.wait_refund_acknowledged(&r, WAIT).await);
    let row = inspect::refund(app.state.db(), &r).await.unwrap().unwrap();
    assert_eq!(row.status.as_str(), "CHANGE", "{row:?}");
    assert_eq!(reserved(&app, &no).await, 60);
    let msg = expect_error(app.refund(&no, 41, "x").await, 409, 1005).await;
    assert_eq!(msg, "amountFen 41 exceeds the 40 fen left to refund");
    check_invariants(&app, &no, &format!("change after release, {path}")).await;
}
