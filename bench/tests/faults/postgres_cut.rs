//! PostgreSQL unreachable (a proxy in between, cut) when WeChat's payment
//! notification arrives: answered FAIL, and applied once when WeChat retries
//! after the database is back. Nothing is lost, nothing applied twice.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use bench::scenarios::notification_xml;
use pay_service::{PayConfig, PayState};
use shared::session::SessionKind;
use testkit::postgres_db;
use url::Url;
use wechat_sandbox::{PayOptions, SANDBOX_MCH_KEY, SANDBOX_MP_APPID};

use crate::common::*;

/// POSTs a notification; WeChat's `return_code` in the reply.
async fn return_code(client: &reqwest::Client, base: &str, xml: &str) -> String {
    let res = client
        .post(format!("{base}/api/pay/notify"))
        .header("content-type", "text/xml")
        .body(xml.to_owned())
        .send()
        .await
        .expect("an answer");
    let text = res.text().await.unwrap();
    let reply = shared::xml::parse(text.as_bytes(), 4096).expect("an XML reply");
    reply["return_code"].clone()
}

/// Where the database listens.
fn database_addr(database_url: &str) -> SocketAddr {
    let url = Url::parse(database_url).expect("TEST_DATABASE_URL is a URL");
    let host = url.host_str().expect("TEST_DATABASE_URL names a TCP host");
    (host, url.port().unwrap_or(5432))
        .to_socket_addrs()
        .expect("the database host resolves")
        .next()
        .expect("an address")
}

/// The same URL through `proxy`.
fn via(database_url: &str, proxy: SocketAddr) -> String {
    let mut url = Url::parse(database_url).unwrap();
    url.set_host(Some(&proxy.ip().to_string())).unwrap();
    url.set_port(Some(proxy.port())).unwrap();
    url.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_while_postgres_is_cut_is_refused_then_applied_once_on_retry() {
    let Some(db) = postgres_db(pay_service::migrations()) else {
        return;
    };
    // WeChat's retry after 15 s comes after 0.25 s here.
    let sb = start_sandbox(60.0).await;
    let upstream = database_addr(&db.url);
    let proxy = CuttableProxy::start(upstream).await;
    let proxied_url = via(&db.url, proxy.addr);

    let (listener, base) = bind();
    let env = env_for(
        &sb,
        &base,
        &[
            ("DATABASE_URL", proxied_url.as_str()),
            ("WECHAT_RETRIES", "0"),
        ],
    );
    let state = PayState::build(PayConfig::from_env(&env).expect("config"), None)
        .await
        .expect("state builds");
    let app = pay_service::with_state(state.clone(), listener).expect("server starts");
    tokio::spawn(app.run_until_stopped());
    let client = client();
    let readyz = format!("{base}/readyz");
    wait_status(&client, &readyz, 200, Duration::from_secs(20)).await;

    let openid = sb.state().openid(SANDBOX_MP_APPID, "u1");
    let token = state
        .sessions()
        .issue(1, SANDBOX_MP_APPID, &openid, SessionKind::Mp)
        .0;
    let (status, body) = get_json(
        client
            .get(format!("{base}/api/mp/v2Pay"))
            .query(&[("money", "0.29")])
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let no = body["data"]["outTradeNo"].as_str().unwrap().to_owned();

    proxy.cut();
    wait_status(&client, &readyz, 503, Duration::from_secs(20)).await;
    sb.state()
        .pay_order(
            &no,
            PayOptions {
                notify: true,
                fail_first_deliveries: 0,
            },
        )
        .expect("the sandbox pays");
    assert!(
        sb.state()
            .wait_deliveries(&no, 1, Duration::from_secs(20))
            .await,
        "WeChat delivered the notification"
    );
    let first = sb.state().deliveries(&no)[0];
    assert!(
        !first.acknowledged,
        "answered SUCCESS without a database: {first:?}"
    );
    assert!(first.http_status.is_some(), "no answer at all: {first:?}");
    // The same notification, by hand, to read the answer: FAIL.
    let xml = notification_xml(&sb.state().order(&no).unwrap(), SANDBOX_MCH_KEY);
    assert_eq!(return_code(&client, &base, &xml).await, "FAIL");

    proxy.restore();
    assert!(
        sb.state()
            .wait_acknowledged(&no, Duration::from_secs(30))
            .await,
        "a retry was acknowledged once the database was back"
    );
    let deliveries = sb.state().deliveries(&no);
    assert_eq!(
        deliveries.iter().filter(|d| d.acknowledged).count(),
        1,
        "{deliveries:?}"
    );
    assert!(deliveries.last().unwrap().acknowledged, "{deliveries:?}");

    let (status, body) = get_json(
        client
            .get(format!("{base}/api/pay/orders/{no}"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "PAID");
    assert_eq!(body["data"]["amountFen"], 29);
    let transitions = pay_service::inspect::transitions(state.db(), &no)
        .await
        .unwrap();
    assert_eq!(transitions.len(), 1, "applied exactly once");
    assert_eq!(transitions[0].to_status, "PAID");
    // A late duplicate is acknowledged and changes nothing.
    assert_eq!(return_code(&client, &base, &xml).await, "SUCCESS");
    let transitions = pay_service::inspect::transitions(state.db(), &no)
        .await
        .unwrap();
    assert_eq!(transitions.len(), 1);
    wait_status(&client, &readyz, 200, Duration::from_secs(20)).await;
}
