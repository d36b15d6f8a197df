//! The typed text columns (`pay_orders.status`, `pay_orders.trade_type`,
//! `pay_refunds.status`) on SQLite and, when configured, PostgreSQL: the text
//! stored as it always was reads back as its enum, and a value outside the
//! set is an error naming the column, never a silent default.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

use diesel::prelude::*;
use pay_service::{RefundStatus, Status, TradeType, inspect, migrations};
use testkit::{TestDb, all_backends};

async fn execute(db: &TestDb, sql: &'static str) {
    db.db
        .run(move |conn| {
            diesel::sql_query(sql).execute(conn)?;
            Ok(())
        })
        .await
        .unwrap();
}

async fn add_order(db: &TestDb, no: &'static str, trade_type: &'static str, status: &'static str) {
    let sql = format!(
        "INSERT INTO pay_orders (out_trade_no, user_id, appid, openid, trade_type, amount_fen, \
         description, status, client_ip, expires_at, next_check_at, created_at, updated_at) \
         VALUES ('{no}', 1, 'wxmp', 'o1', '{trade_type}', 100, 'tea', '{status}', '127.0.0.1', \
         0, 0, 0, 0)"
    );
    db.db
        .run(move |conn| {
            diesel::sql_query(sql).execute(conn)?;
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn stored_text_reads_as_its_enum() {
    for db in all_backends(migrations) {
        add_order(&db, "N1", "NATIVE", "REFUND").await;
        execute(
            &db,
            "INSERT INTO pay_refunds (out_refund_no, out_trade_no, amount_fen, reason, status, \
             request_id, created_at, updated_at) VALUES ('R1', 'N1', 100, '', 'PROCESSING', '-', 0, 0)",
        )
        .await;
        let order = inspect::order(&db.db, "N1").await.unwrap().unwrap();
        assert_eq!(
            (order.status, order.trade_type),
            (Status::Refund, TradeType::Native)
        );
        let refund = inspect::refund(&db.db, "R1").await.unwrap().unwrap();
        assert_eq!(refund.status, RefundStatus::Processing);
        assert_eq!(
            inspect::count_by_status(&db.db).await.unwrap(),
            [(Status::Refund, 1)]
        );
    }
}

#[tokio::test]
async fn an_unknown_stored_value_is_an_error_naming_its_column() {
    for db in all_backends(migrations) {
        add_order(&db, "BADSTATUS", "JSAPI", "XYZ").await;
        let e = inspect::order(&db.db, "BADSTATUS").await.unwrap_err();
        assert!(
            e.to_string()
                .contains("pay_orders.status: unknown value 'XYZ'"),
            "{e}"
        );
        let e = inspect::count_by_status(&db.db).await.unwrap_err();
        assert!(
            e.to_string()
                .contains("pay_orders.status: unknown value 'XYZ'"),
            "{e}"
        );

        add_order(&db, "BADTYPE", "APP", "NOTPAY").await;
        let e = inspect::order(&db.db, "BADTYPE").await.unwrap_err();
        assert!(
            e.to_string()
                .contains("pay_orders.trade_type: unknown value 'APP'"),
            "{e}"
        );

        execute(
            &db,
            "INSERT INTO pay_refunds (out_refund_no, out_trade_no, amount_fen, reason, status, \
             request_id, created_at, updated_at) VALUES ('R1', 'BADTYPE', 100, '', 'paid', '-', 0, 0)",
        )
        .await;
        let e = inspect::refund(&db.db, "R1").await.unwrap_err();
        assert!(
            e.to_string()
                .contains("pay_refunds.status: unknown value 'paid'"),
            "{e}"
        );
    }
}
