//! Trade bills: v2 `/pay/downloadbill` and v3 `/v3/bill/tradebill` + its
//! download, from the sandbox's ledger, read back with `shared::bill`
//! (whose reader is checked against WeChat's own sample bill); "No Bill
//! Exist" before the day is closed and for days without trades; planted
//! discrepancies.

use std::io::Read;
use std::time::Duration;

use chrono::NaiveDate;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use shared::bill::{BillError, BillReader, BillRow, BillTotals, TradeState as BillState};
use shared::sign::SignType;
use shared::wechatpay_v3::MerchantSigner;
use wechat_sandbox::{PayOptions, SANDBOX_MCH_ID, SANDBOX_MP_APPID};

use crate::common::*;

fn signer(env: &Env) -> MerchantSigner {
    let keys = env.state.v3_keys();
    MerchantSigner::from_pem(
        SANDBOX_MCH_ID,
        keys.merchant_serial_no,
        &keys.merchant.key_pem,
    )
    .unwrap()
}

/// A signed v3 call: (status, body bytes).
async fn v3(env: &Env, method: &str, path_and_query: &str, body: Option<&Value>) -> (u16, Vec<u8>) {
    let text = body.map(Value::to_string).unwrap_or_default();
    let auth = signer(env).authorization(method, path_and_query, &text);
    let mut req = env
        .http
        .request(method.parse().unwrap(), env.url(path_and_query))
        .header("authorization", auth)
        .header("accept", "application/json");
    if !text.is_empty() {
        req = req.header("content-type", "application/json").body(text);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.bytes().await.unwrap().to_vec())
}

fn read_bill(bytes: &[u8]) -> Result<(Vec<BillRow>, BillTotals), BillError> {
    let mut reader = BillReader::new(bytes)?;
    let rows = reader.by_ref().collect::<Result<Vec<_>, _>>()?;
    Ok((rows, *reader.totals().unwrap()))
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// v2 downloadbill: the raw answer bytes.
async fn downloadbill(env: &Env, date: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut fields = map(&[
        ("appid", SANDBOX_MP_APPID),
        ("mch_id", SANDBOX_MCH_ID),
        ("nonce_str", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"),
        ("bill_date", date),
        ("bill_type", "ALL"),
    ]);
    for (k, v) in extra {
        fields.insert((*k).into(), (*v).into());
    }
    let res = env
        .http
        .post(env.url("/pay/downloadbill"))
        .body(signed_xml(&fields, SignType::Md5))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.bytes().await.unwrap().to_vec()
}

fn xml_error(bytes: &[u8]) -> (String, String) {
    let m = shared::xml::parse(bytes, 1 << 16).expect("an XML error answer");
    assert_eq!(m["return_code"], "FAIL");
    (
        m["return_msg"].clone(),
        m.get("error_code").cloned().unwrap_or_default(),
    )
}

/// Places and pays (no notification) a v2 JSAPI order; returns its Beijing pay day.
async fn paid_v2(env: &Env, no: &str, fen: u64) -> NaiveDate {
    let reply = env
        .post_pay(
            "/pay/unifiedorder",
            &jsapi_order(&env.state, no, fen),
            SignType::Md5,
        )
        .await;
    assert_eq!(reply["result_code"], "SUCCESS", "{reply:?}");
    env.state
        .pay_order(
            no,
            PayOptions {
                notify: false,
                ..PayOptions::default()
            },
        )
        .unwrap();
    let time_end = env.state.order(no).unwrap().time_end.unwrap();
    NaiveDate::parse_from_str(&time_end[..8], "%Y%m%d").unwrap()
}

/// Moves the sandbox clock to past 09:00 (Beijing) the day after `day`.
fn close_day(env: &Env, day: NaiveDate) {
    let ready = day.succ_opt().unwrap().and_hms_opt(9, 0, 1).unwrap();
    let now = env
        .state
        .now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .naive_local();
    if ready > now {
        env.state.advance(Duration::from_secs(
            (ready - now).num_seconds().unsigned_abs() + 1,
        ));
    }
}

#[actix_web::test]
async fn downloadbill_serves_the_ledger_in_wechats_format() {
    let env = start().await;
    let day = paid_v2(&env, "BILL1", 1000).await;
    assert_eq!(paid_v2(&env, "BILL2", 84).await, day);
    // A placed but unpaid order is not in the bill.
    env.post_pay(
        "/pay/unifiedorder",
        &jsapi_order(&env.state, "BILL3", 500),
        SignType::Md5,
    )
    .await;
    // A v3 refund of part of BILL1, the same day.
    let (status, _) = v3(
        &env,
        "POST",
        "/v3/refund/domestic/refunds",
        Some(&json!({
            "out_trade_no": "BILL1", "out_refund_no": "BILLR1",
            "notify_url": "http://127.0.0.1:9/n",
            "amount": { "refund": 400, "total": 1000, "currency": "CNY" },
        })),
    )
    .await;
    assert_eq!(status, 200);
    let date = day.format("%Y%m%d").to_string();

    // The day is not over: no bill yet.
    let early = downloadbill(&env, &date, &[]).await;
    assert_eq!(
        xml_error(&early),
        ("No Bill Exist".to_owned(), "20002".to_owned())
    );

    close_day(&env, day);
    let text = downloadbill(&env, &date, &[]).await;
    assert!(text.starts_with("\u{feff}交易时间,公众账号ID,商户号,".as_bytes()));
    let (rows, totals) = read_bill(&text).unwrap();
    assert_eq!(rows.len(), 3, "{}", String::from_utf8_lossy(&text));
    let payment = rows
        .iter()
        .find(|r| r.out_trade_no == "BILL1" && r.trade_state == BillState::Success)
        .unwrap();
    let order = env.state.order("BILL1").unwrap();
    assert_eq!(Some(&payment.transaction_id), order.transaction_id.as_ref());
    assert_eq!(payment.appid, SANDBOX_MP_APPID);
    assert_eq!(payment.mch_id, SANDBOX_MCH_ID);
    assert_eq!(payment.trade_type, "JSAPI");
    assert_eq!(
        (payment.settlement_fen, payment.total_fen, payment.fee_fen),
        (1000, 1000, 6)
    );
    assert_eq!(payment.rate, "0.60%");
    assert_eq!(
        payment.trade_time.format("%Y%m%d%H%M%S").to_string(),
        order.time_end.unwrap()
    );
    let refund = rows
        .iter()
        .find(|r| r.trade_state == BillState::Refund)
        .unwrap();
    let sandbox_refund = env.state.refund("BILLR1").unwrap();
    assert_eq!(
        refund.refund(),
        Some((sandbox_refund.refund_id.as_str(), "BILLR1"))
    );
    assert_eq!(
        (
            refund.refund_fen,
            refund.applied_refund_fen,
            refund.fee_fen,
            refund.total_fen
        ),
        (400, 400, -2, 0)
    );
    assert_eq!(refund.refund_status, "SUCCESS");
    assert_eq!(
        totals,
        BillTotals {
            rows: 3,
            settlement_fen: 1084,
            refund_fen: 400,
            coupon_refund_fen: 0,
            fee_fen: 6 + 1 - 2,
            total_fen: 1084,
            applied_refund_fen: 400,
        }
    );
    // Fields are backquoted, the fee has five decimals, as in WeChat's files.
    let body = String::from_utf8(text.clone()).unwrap();
    assert!(body.contains(",`0.06000,`0.60%,`10.00,`0.00,`"), "{body}");
    assert!(body.contains("\n总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n`3,`10.84,`4.00,`0.00,`0.05,`10.84,`4.00\n"), "{body}");

    // GZIP: the same bill compressed.
    let gz = downloadbill(&env, &date, &[("tar_type", "GZIP")]).await;
    assert_eq!(gunzip(&gz), text);

    // bill_type=REFUND lists the refund only.
    let refunds = downloadbill(&env, &date, &[("bill_type", "REFUND")]).await;
    assert_eq!(read_bill(&refunds).unwrap().0.len(), 1);

    // A day without trades, a malformed date or type, a bad sign.
    let empty = day.pred_opt().unwrap().format("%Y%m%d").to_string();
    assert_eq!(
        xml_error(&downloadbill(&env, &empty, &[]).await).0,
        "No Bill Exist"
    );
    assert_eq!(
        xml_error(&downloadbill(&env, "2026-11-29", &[]).await).1,
        "20001"
    );
    assert_eq!(
        xml_error(&downloadbill(&env, &date, &[("bill_type", "EVERYTHING")]).await).1,
        "20001"
    );
    let mut fields = map(&[
        ("appid", SANDBOX_MP_APPID),
        ("mch_id", SANDBOX_MCH_ID),
        ("nonce_str", "x"),
        ("bill_date", &date),
    ]);
    fields.insert("sign".into(), "0".repeat(32));
    let forged = env
        .post_xml_raw("/pay/downloadbill", shared::xml::map_to_xml(&fields))
        .await;
    assert_eq!(forged["return_code"], "FAIL");
    assert_eq!(env.state.calls("/pay/downloadbill"), 8);
}

#[actix_web::test]
async fn tradebill_answers_a_hash_and_a_signed_download() {
    let env = start().await;
    let day = paid_v2(&env, "V3BILL1", 2345).await;
    let date = day.to_string();
    let path = format!("/v3/bill/tradebill?bill_date={date}&bill_type=ALL");

    let (status, body) = v3(&env, "GET", &path, None).await;
    assert_eq!(status, 400);
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["code"], "NO_STATEMENT_EXIST");

    close_day(&env, day);
    for tar in ["", "&tar_type=GZIP"] {
        let (status, body) = v3(&env, "GET", &format!("{path}{tar}"), None).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer["hash_type"], "SHA1");
        let url = answer["download_url"].as_str().unwrap();
        let path_and_query = url.strip_prefix(&env.base).expect("a sandbox URL");
        assert!(path_and_query.starts_with("/v3/billdownload/file?token="));
        // The download is a signed request too.
        let unsigned = env.http.get(url).send().await.unwrap();
        assert_eq!(unsigned.status(), 401);
        let (status, file) = v3(&env, "GET", path_and_query, None).await;
        assert_eq!(status, 200);
        let text = if tar.is_empty() { file } else { gunzip(&file) };
        // hash_value is the SHA1 of the bill itself (before gzip).
        assert_eq!(answer["hash_value"], hex::encode(Sha1::digest(&text)));
        let (rows, _) = read_bill(&text).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].out_trade_no.as_str(), rows[0].total_fen),
            ("V3BILL1", 2345)
        );
    }
    let (status, _) = v3(&env, "GET", "/v3/billdownload/file?token=nope", None).await;
    assert_eq!(status, 400);
    let (status, _) = v3(&env, "GET", "/v3/bill/tradebill?bill_date=20261129", None).await;
    assert_eq!(status, 400);
}

#[actix_web::test]
async fn planted_discrepancies_change_the_bill() {
    let env = start().await;
    let day = paid_v2(&env, "PLANT1", 100).await;
    paid_v2(&env, "PLANT2", 200).await;
    paid_v2(&env, "PLANT3", 300).await;
    close_day(&env, day);
    let date = day.to_string();
    let compact = day.format("%Y%m%d").to_string();
    let plant = |body: Value| {
        let env = &env;
        let date = date.clone();
        async move {
            env.post_json(&format!("/sandbox/bills/{date}/discrepancies"), &body)
                .await
        }
    };
    assert_eq!(
        plant(json!({"kind": "DROP_ROW", "outTradeNo": "PLANT1"}))
            .await
            .0,
        200
    );
    assert_eq!(
        plant(json!({"kind": "CHANGE_AMOUNT", "outTradeNo": "PLANT2", "amountFen": 201}))
            .await
            .0,
        200
    );
    assert_eq!(
        plant(json!({"kind": "UNKNOWN_TRADE", "outTradeNo": "STRANGER", "amountFen": 999}))
            .await
            .0,
        200
    );
    // Incomplete plants are refused.
    assert_eq!(plant(json!({"kind": "DROP_ROW"})).await.0, 400);
    assert_eq!(
        plant(json!({"kind": "CHANGE_AMOUNT", "outTradeNo": "PLANT2"}))
            .await
            .0,
        400
    );
    assert_eq!(plant(json!({"kind": "NOPE"})).await.0, 400);

    let (rows, totals) = read_bill(&downloadbill(&env, &compact, &[]).await).unwrap();
    let amounts: std::collections::BTreeMap<_, _> = rows
        .iter()
        .map(|r| (r.out_trade_no.as_str(), r.total_fen))
        .collect();
    assert_eq!(
        amounts,
        [("PLANT2", 201), ("PLANT3", 300), ("STRANGER", 999)]
            .into_iter()
            .collect()
    );
    // The totals still agree with the (changed) rows: a consistent bill.
    assert_eq!(totals.total_fen, 201 + 300 + 999);
    // The control shows the same bill.
    let shown = env.get(&format!("/sandbox/bills/{date}")).await;
    assert_eq!(shown.status(), 200);
    assert_eq!(read_bill(&shown.bytes().await.unwrap()).unwrap().0.len(), 3);

    // Wrong totals, a truncated download, a wrong hash.
    let cleared = env
        .http
        .delete(env.url(&format!("/sandbox/bills/{date}/discrepancies")))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 204);
    assert_eq!(
        read_bill(&downloadbill(&env, &compact, &[]).await)
            .unwrap()
            .0
            .len(),
        3
    );
    plant(json!({"kind": "WRONG_TOTALS"})).await;
    assert!(matches!(
        read_bill(&downloadbill(&env, &compact, &[]).await),
        Err(BillError::TotalsMismatch {
            column: "应结订单总金额",
            ..
        })
    ));
    env.state.clear_bill_discrepancies(day);
    plant(json!({"kind": "TRUNCATE"})).await;
    let truncated = downloadbill(&env, &compact, &[]).await;
    assert!(read_bill(&truncated).is_err());
    let (_, answer) = v3(
        &env,
        "GET",
        &format!("/v3/bill/tradebill?bill_date={date}"),
        None,
    )
    .await;
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    let url = answer["download_url"]
        .as_str()
        .unwrap()
        .strip_prefix(&env.base)
        .unwrap()
        .to_owned();
    let (_, file) = v3(&env, "GET", &url, None).await;
    assert_ne!(answer["hash_value"], hex::encode(Sha1::digest(&file)));
    env.state.clear_bill_discrepancies(day);
    plant(json!({"kind": "WRONG_HASH"})).await;
    let (_, answer) = v3(
        &env,
        "GET",
        &format!("/v3/bill/tradebill?bill_date={date}"),
        None,
    )
    .await;
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    let url = answer["download_url"]
        .as_str()
        .unwrap()
        .strip_prefix(&env.base)
        .unwrap()
        .to_owned();
    let (_, file) = v3(&env, "GET", &url, None).await;
    assert!(read_bill(&file).is_ok());
    assert_ne!(answer["hash_value"], hex::encode(Sha1::digest(&file)));
}
