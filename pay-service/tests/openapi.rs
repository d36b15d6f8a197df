//! The OpenAPI document against the service: it names exactly the routes the
//! route table mounts (plus the health routes and `/openapi.json`), it is
//! what `/openapi.json` serves, and real replies — orders of each trade
//! type, refunds, events, notifications, errors — match its schemas.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod common;

use common::*;
use serde_json::{Value, json};
use testkit::openapi::{Document, mounted_routes};

fn document() -> Document {
    Document::new(serde_json::to_value(pay_service::openapi()).unwrap())
}

#[actix_web::test]
async fn the_document_names_exactly_the_mounted_routes() {
    let db = testkit::sqlite_db(pay_service::migrations());
    let app = spawn_app(&db).await;
    let state = app.state.clone();
    let readiness = state.readiness();
    let mounted = mounted_routes(move |cfg| {
        shared::telemetry::configure_health(cfg, readiness);
        pay_service::with_openapi(state)(cfg);
    })
    .await;
    // The operator console's static files (`/admin`, `/admin/`,
    // `/admin/{file}`: HTML, JS, CSS) are pages for a browser, not API
    // operations; the document describes the JSON API they call.
    let mounted: std::collections::BTreeSet<_> = mounted
        .into_iter()
        .filter(|(_, path)| path != "/admin" && !path.starts_with("/admin/"))
        .collect();
    assert!(mounted.len() >= 15, "{mounted:?}");
    document().assert_matches(&mounted);
}

#[tokio::test]
async fn openapi_json_serves_the_document() {
    let db = testkit::sqlite_db(pay_service::migrations());
    let app = spawn_app(&db).await;
    let res = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let served: Value = res.json().await.unwrap();
    assert_eq!(served, document().json);
}

#[tokio::test]
async fn real_replies_match_the_document() {
    let doc = document();
    let db = testkit::sqlite_db(pay_service::migrations());
    let app = spawn_refund_app(&db, &[]).await;
    let token = app.mp_token();
    let oa_token = app.token(OA, "u1", 2);

    // The seed's v2Pay, and one order of each trade type.
    let res = app.get("/api/mp/v2Pay?money=0.01", &token).await;
    let (status, v2) = doc.check_reply("GET", "/api/mp/v2Pay", res).await;
    assert_eq!(status, 200, "{v2}");
    let unpaid = v2["data"]["outTradeNo"].as_str().unwrap().to_owned();
    for (trade_type, tok) in [
        ("JSAPI", &token),
        ("MWEB", &oa_token),
        ("NATIVE", &oa_token),
    ] {
        let mut order = json!({"amountFen": 2, "tradeType": trade_type});
        if trade_type == "MWEB" {
            order["redirectUrl"] = json!(format!("{SHOP}/done.html"));
        }
        let res = app.post_json("/api/pay/orders", tok, &order, None).await;
        let (status, created) = doc.check_reply("POST", "/api/pay/orders", res).await;
        assert_eq!(status, 200, "{trade_type}: {created}");
        if trade_type == "NATIVE" {
            let no = created["data"]["outTradeNo"].as_str().unwrap();
            let path = format!("/api/pay/orders/{no}/qrcode.svg");
            let res = app.get(&path, tok).await;
            let (status, svg) = doc
                .check_reply("GET", "/api/pay/orders/{outTradeNo}/qrcode.svg", res)
                .await;
            assert_eq!(status, 200);
            assert!(svg.as_str().unwrap().contains("<svg"));
        }
    }
    let res = app.get(&format!("/api/pay/orders/{unpaid}"), &token).await;
    let (status, order) = doc
        .check_reply("GET", "/api/pay/orders/{outTradeNo}", res)
        .await;
    assert_eq!(
        (status, &order["data"]["status"]),
        (200, &json!("NOTPAY")),
        "{order}"
    );
    let res = app
        .post(&format!("/api/pay/orders/{unpaid}/close"), &token)
        .await;
    let (status, closed) = doc
        .check_reply("POST", "/api/pay/orders/{outTradeNo}/close", res)
        .await;
    assert_eq!(status, 200, "{closed}");

    // Paid, refunded, and the admin views.
    let paid = app.paid_order("0.05").await;
    let res = app.get(&format!("/api/pay/orders/{paid}"), &token).await;
    let (_, order) = doc
        .check_reply("GET", "/api/pay/orders/{outTradeNo}", res)
        .await;
    assert_eq!(order["data"]["status"], "PAID", "{order}");
    let res = app
        .post(&format!("/api/pay/orders/{paid}/close"), &token)
        .await;
    let (status, e) = doc
        .check_reply("POST", "/api/pay/orders/{outTradeNo}/close", res)
        .await;
    assert_eq!((status, &e["code"]), (409, &json!(1005)), "{e}");
    let res = app.refund(&paid, 1, "顾客退货").await;
    let (status, refund) = doc
        .check_reply("POST", "/api/pay/admin/orders/{outTradeNo}/refunds", res)
        .await;
    assert_eq!(status, 200, "{refund}");
    let res = app
        .admin_get(&format!("/api/pay/admin/orders/{paid}/refunds"))
        .await;
    let (status, list) = doc
        .check_reply("GET", "/api/pay/admin/orders/{outTradeNo}/refunds", res)
        .await;
    assert_eq!(status, 200, "{list}");
    for filter in ["pending", "delivered", "failed"] {
        let res = app
            .admin_get(&format!("/api/pay/admin/events?status={filter}"))
            .await;
        let (status, events) = doc.check_reply("GET", "/api/pay/admin/events", res).await;
        assert_eq!(status, 200, "{events}");
    }

    // Errors, in the error envelope.
    let res = app.get("/api/mp/v2Pay?money=abc", &token).await;
    let (status, e) = doc.check_reply("GET", "/api/mp/v2Pay", res).await;
    assert_eq!((status, &e["code"]), (400, &json!(1001)), "{e}");
    let res = app
        .get("/api/pay/orders/T0000000000000000000", &token)
        .await;
    let (status, e) = doc
        .check_reply("GET", "/api/pay/orders/{outTradeNo}", res)
        .await;
    assert_eq!(status, 404, "{e}");
    let res = app
        .get(&format!("/api/pay/orders/{paid}"), "not-a-token")
        .await;
    let (status, _) = doc
        .check_reply("GET", "/api/pay/orders/{outTradeNo}", res)
        .await;
    assert_eq!(status, 401);
    let res = app.get("/api/pay/admin/events", "wrong-admin-token").await;
    let (status, _) = doc.check_reply("GET", "/api/pay/admin/events", res).await;
    assert_eq!(status, 401);

    // Notifications: v2 answers XML, v3 refuses a forged one in JSON.
    let res = app
        .client
        .post(app.url("/api/pay/notify"))
        .body("<xml><return_code>SUCCESS</return_code></xml>")
        .send()
        .await
        .unwrap();
    let (status, xml) = doc.check_reply("POST", "/api/pay/notify", res).await;
    assert_eq!(status, 200);
    assert!(xml.as_str().unwrap().contains("FAIL"), "{xml}");
    for path in ["/api/pay/v3/notify", "/api/pay/v3/refund-notify"] {
        let res = app
            .client
            .post(app.url(path))
            .header("content-type", "application/json")
            .header("Wechatpay-Serial", "PUB_KEY_ID_0000")
            .header("Wechatpay-Timestamp", "1")
            .header("Wechatpay-Nonce", "n")
            .header("Wechatpay-Signature", "c2ln")
            .body(r#"{"id":"EV-1","resource":{}}"#)
            .send()
            .await
            .unwrap();
        let (status, e) = doc.check_reply("POST", path, res).await;
        assert!((400..500).contains(&status), "{path}: {status} {e}");
        assert_eq!(e["code"], "FAIL", "{e}");
    }

    // Reconciliation of a day with no bill yet: an envelope error.
    let res = app
        .admin_get("/api/pay/admin/reconciliations?date=2000-01-01")
        .await;
    doc.check_reply("GET", "/api/pay/admin/reconciliations", res)
        .await;
    let res = app
        .admin_get("/api/pay/admin/reconciliations?date=yesterday")
        .await;
    let (status, _) = doc
        .check_reply("GET", "/api/pay/admin/reconciliations", res)
        .await;
    assert_eq!(status, 400);
}

/// The schemas catch a reply of another shape.
#[test]
fn a_reply_of_another_shape_does_not_match() {
    let doc = document();
    let order = json!({"outTradeNo": "T1", "status": "PAID", "amountFen": 1,
                       "tradeType": "JSAPI", "refundedFen": 0});
    let ok = |data: &Value| json!({"code": 0, "data": data, "message": "ok"});
    doc.validate(
        "GET",
        "/api/pay/orders/{outTradeNo}",
        200,
        "application/json",
        &ok(&order),
    );
    let mut fractional = order.clone();
    fractional["amountFen"] = json!(0.01);
    let mut unknown_status = order.clone();
    unknown_status["status"] = json!("SUCCESS");
    let mut extra = order.clone();
    extra["openid"] = json!("o1");
    for bad in [fractional, unknown_status, extra] {
        let body = ok(&bad);
        let result = std::panic::catch_unwind(|| {
            doc.validate(
                "GET",
                "/api/pay/orders/{outTradeNo}",
                200,
                "application/json",
                &body,
            )
        });
        assert!(result.is_err(), "{body} passed");
    }
}

/// The operator console's routes: sign-in, the session, the order list and
/// page, an event retried, the reconciled days, sign-out — replies and
/// errors as documented.
#[tokio::test]
async fn console_replies_match_the_document() {
    let doc = document();
    let db = testkit::sqlite_db(pay_service::migrations());
    let app = spawn_refund_app(&db, &[]).await;
    let paid = app.paid_order("0.07").await;
    let session = "/api/pay/admin/session";

    let post = |body: Value| app.client.post(app.url(session)).json(&body).send();
    let (status, _) = doc
        .check_reply(
            "POST",
            session,
            post(json!({"token": "wrong-token-wrong-token"}))
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = doc
        .check_reply("POST", session, post(json!({"nope": 1})).await.unwrap())
        .await;
    assert_eq!(status, 400);
    let res = post(json!({"token": ADMIN_TOKEN})).await.unwrap();
    let cookie = res
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let (status, signed) = doc.check_reply("POST", session, res).await;
    assert_eq!(status, 200, "{signed}");
    let csrf = signed["data"]["csrfToken"].as_str().unwrap().to_owned();
    let res = app
        .client
        .get(app.url(session))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let (status, _) = doc.check_reply("GET", session, res).await;
    assert_eq!(status, 200);

    for query in ["", "?status=PAID&limit=1", "?cursor=bad"] {
        let res = app
            .admin_get(&format!("/api/pay/admin/orders{query}"))
            .await;
        let (status, page) = doc.check_reply("GET", "/api/pay/admin/orders", res).await;
        assert_eq!(
            status,
            if query.contains("bad") { 400 } else { 200 },
            "{page}"
        );
    }
    for no in [paid.as_str(), "T0000000000000000000"] {
        let res = app.admin_get(&format!("/api/pay/admin/orders/{no}")).await;
        let (status, story) = doc
            .check_reply("GET", "/api/pay/admin/orders/{outTradeNo}", res)
            .await;
        assert_eq!(status, if no == paid { 200 } else { 404 }, "{story}");
    }
    let event = pay_service::inspect::events(app.state.db(), &paid)
        .await
        .unwrap()[0]
        .id;
    for id in [event.to_string(), "999999".into()] {
        let res = app
            .post(&format!("/api/pay/admin/events/{id}/retry"), ADMIN_TOKEN)
            .await;
        let (status, e) = doc
            .check_reply("POST", "/api/pay/admin/events/{id}/retry", res)
            .await;
        assert_eq!(
            status,
            if id == event.to_string() { 200 } else { 404 },
            "{e}"
        );
    }
    let res = app
        .admin_get("/api/pay/admin/reconciliations?from=2026-01-01")
        .await;
    let (status, days) = doc
        .check_reply("GET", "/api/pay/admin/reconciliations", res)
        .await;
    assert_eq!((status, &days["data"]), (200, &json!([])));

    let delete = |csrf: Option<&str>| {
        let mut req = app
            .client
            .delete(app.url(session))
            .header("cookie", &cookie);
        if let Some(t) = csrf {
            req = req.header("x-csrf-token", t);
        }
        req.send()
    };
    let (status, _) = doc
        .check_reply("DELETE", session, delete(None).await.unwrap())
        .await;
    assert_eq!(status, 403);
    let (status, out) = doc
        .check_reply("DELETE", session, delete(Some(&csrf)).await.unwrap())
        .await;
    assert_eq!(status, 200, "{out}");
}
