//! deploy/nginx/gateway.conf in real nginx (Debian's `/usr/sbin/nginx`), on
//! loopback, with the address lists its own script (wxpay-gateway-env.sh)
//! renders, and a TLS terminator's stand-in in front of it, in front of:
//! - three recording upstreams, to check that every path the contract names goes
//!   to the right service with the forwarding headers, that connections are
//!   reused, that what the gateway answers itself is an API envelope, whose
//!   address the services are told (TRUSTED_PROXIES), who may reach the admin
//!   routes (ADMIN_ALLOW_FROM), that notification floods are cut off and that
//!   credentials in query strings stay out of the access log;
//! - the real auth-, jssdk- and pay-service with the WeChat sandbox, walking
//!   the seed's journeys through the gateway (OAuth through the consent page,
//!   mini-program login, wx.config, v2Pay, WeChat's payment notification, the
//!   order's status), and counting login attempts per client behind the
//!   terminator.
//!
//! Each test walks named steps; the harness is in gateway_support/. The
//! config is used as shipped; only its `server host:port` lines, its `listen`
//! line, its web root, its access log and the folder of the rendered lists
//! are rewritten to loopback and a temporary folder. Without nginx the tests
//! are skipped with a message, except under CI=true, where they fail.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod deploy_support;
mod gateway_support;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deploy_support::{ApiPath, SANDBOX_FROM_GATEWAY, api_paths, contract, read_repo, skip_or_fail};
use gateway_support::{
    GatewayEnv, Nginx, NginxOptions, RecordedGateway, assert_gateway_envelope, assert_no_route,
    client, client_from, free_port, header, json_of, nginx_binary, render_env, temp_dir,
    web_root_with_demo_page,
};
use serde_json::json;
use shared::config::Env;
use wechat_sandbox::{
    PayOptions, SANDBOX_MCH_ID, SANDBOX_MP_APPID, SANDBOX_OA_APPID, Sandbox, SandboxConfig,
    SandboxState, TestPki,
};

/// Two clients and a third party, on loopback addresses of their own. The
/// terminator's stand-in connects to the gateway from 127.0.0.1.
const CLIENT_A: &str = "127.0.0.2";
const CLIENT_B: &str = "127.0.0.3";
const CLIENT_C: &str = "127.0.0.4";
const TERMINATOR: &str = "127.0.0.1";

/// The gateway behind the terminator: only the terminator is trusted with
/// X-Forwarded-For, and only client A may reach the admin routes.
fn behind_the_terminator() -> GatewayEnv {
    GatewayEnv {
        trusted_proxies: Some(format!("{TERMINATOR}/32")),
        admin_allow_from: Some(format!("{CLIENT_A}/32")),
    }
}

/// nginx, or the test is skipped (a failure under CI=true). With the image
/// under test (WXPAY_TEST_IMAGE) it always fails: `scripts/image-test` builds
/// the image only to walk through it, and a skip would read as a pass.
macro_rules! nginx_or_skip {
    () => {
        match nginx_binary() {
            Some(bin) => bin,
            None if std::env::var_os(TEST_IMAGE).is_some() => {
                panic!("{TEST_IMAGE} is set but nginx is not installed (apt-get install nginx)")
            }
            None => return skip_or_fail("nginx is not installed (apt-get install nginx)"),
        }
    };
}

// ================================================== recording upstreams ====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_path_reaches_its_service_with_the_forwarding_headers() {
    let bin = nginx_or_skip!();
    let api = contract();
    let gw = RecordedGateway::start(&bin, &GatewayEnv::default()).await;
    step_every_api_path_reaches_its_service(&gw, &api_paths(&api)).await;
    step_the_sandbox_stand_in_reaches_the_sandbox(&gw).await;
    step_a_bare_client_gets_fresh_forwarding_headers(&gw).await;
    step_an_untrusted_clients_forwarding_headers_are_extended_not_believed(&gw).await;
    step_the_trace_context_passes_unchanged(&gw).await;
    step_bodies_and_methods_pass(&gw).await;
    step_no_idle_upstream_connection_is_kept(&gw).await;
    step_every_answer_carries_the_security_headers(&gw).await;
    step_the_healthcheck_path_answers_the_container_only(&gw).await;
    step_a_services_error_status_passes_through(&gw).await;
    step_too_large_a_body_is_refused_at_the_gateway(&gw).await;
    step_what_is_not_routed_is_a_404_envelope(&gw).await;
    step_the_demo_page_is_served(&gw).await;
    step_credentials_in_query_strings_stay_out_of_the_access_log(&gw).await;
    gw.stop().await;
}

async fn step_every_api_path_reaches_its_service(gw: &RecordedGateway, paths: &[ApiPath]) {
    assert!(paths.len() >= 20, "{paths:?}");
    for p in paths {
        let res = gw
            .http
            .get(format!("{}{}?a=1&b=%E4%B8%AD", gw.base, p.path))
            .send()
            .await
            .unwrap();
        if p.path.starts_with("/internal/") {
            assert_no_route(res).await;
            continue;
        }
        let (status, echo) = json_of(res).await;
        assert_eq!(status, 200, "{}: {echo}", p.path);
        assert_eq!(
            echo["upstream"],
            p.section.as_str(),
            "{} goes to {}",
            p.path,
            p.section
        );
        assert_eq!(
            echo["uri"],
            format!("{}?a=1&b=%E4%B8%AD", p.path),
            "path and query pass unchanged"
        );
        // HTTP/1.1, and the connection closes after the answer (no idle
        // upstream connection: gateway.conf says why).
        assert_eq!(echo["version"], "HTTP/1.1");
        assert_eq!(echo["headers"]["connection"], "close", "{echo}");
    }
    // `/internal/access-token` never reached jssdk-service.
    let internal_seen = gw
        .recorder("jssdk-service")
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.uri.starts_with("/internal/"))
        .count();
    assert_eq!(internal_seen, 0);
}

/// The one sandbox path (development only) goes to the sandbox.
async fn step_the_sandbox_stand_in_reaches_the_sandbox(gw: &RecordedGateway) {
    let (status, echo) = json_of(
        gw.http
            .get(format!("{}/sandbox/jweixin.js", gw.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, echo["upstream"].as_str()),
        (200, Some("wechat-sandbox"))
    );
}

/// Forwarding headers, as a bare client sends nothing of the sort.
async fn step_a_bare_client_gets_fresh_forwarding_headers(gw: &RecordedGateway) {
    let url = format!("{}/api/pay/orders/T1", gw.base);
    let (_, echo) = json_of(gw.http.get(&url).send().await.unwrap()).await;
    let h = &echo["headers"];
    let generated = h["x-request-id"].as_str().unwrap();
    assert_eq!(generated.len(), 32, "nginx's $request_id: {generated}");
    assert!(generated.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(h["x-real-ip"], "127.0.0.1");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["host"], "127.0.0.1");
    // A second request gets another id.
    let (_, again) = json_of(gw.http.get(&url).send().await.unwrap()).await;
    assert_ne!(again["headers"]["x-request-id"], generated);
}

/// W3C `traceparent`/`tracestate` reach the service as the client sent them
/// (the services continue that trace, stack/tests/traces.rs), and the access
/// log names the trace; without them, the service gets none.
async fn step_the_trace_context_passes_unchanged(gw: &RecordedGateway) {
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let res = gw
        .http
        .post(format!("{}/api/pay/v3/notify", gw.base))
        .header("traceparent", parent)
        .header("tracestate", "congo=t61rcWkgMzE")
        .body("{}")
        .send()
        .await
        .unwrap();
    let (_, echo) = json_of(res).await;
    assert_eq!(echo["upstream"], "pay-service");
    assert_eq!(echo["headers"]["traceparent"], parent);
    assert_eq!(echo["headers"]["tracestate"], "congo=t61rcWkgMzE");
    let log = wait_for_log_line(&gw.nginx, parent).await;
    let line = log.lines().find(|l| l.contains(parent)).unwrap();
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["traceparent"], parent);

    let res = gw
        .http
        .get(format!("{}/api/wechat/jssdkConfig?url=x", gw.base))
        .send()
        .await
        .unwrap();
    let (_, echo) = json_of(res).await;
    assert!(echo["headers"].get("traceparent").is_none(), "{echo}");
    assert!(echo["headers"].get("tracestate").is_none(), "{echo}");
}

/// A client's request id and X-Forwarded-* are kept and extended (as a TLS
/// terminator's would be); its X-Real-IP is never believed, and with no
/// TRUSTED_PROXIES neither is its X-Forwarded-For.
async fn step_an_untrusted_clients_forwarding_headers_are_extended_not_believed(
    gw: &RecordedGateway,
) {
    let res = gw
        .http
        .get(format!("{}/api/wechat/jssdkConfig?url=x", gw.base))
        .header("x-request-id", "req-from-the-edge-1")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .header("x-real-ip", "198.51.100.9")
        .send()
        .await
        .unwrap();
    let (_, echo) = json_of(res).await;
    let h = &echo["headers"];
    assert_eq!(echo["upstream"], "jssdk-service");
    assert_eq!(h["x-request-id"], "req-from-the-edge-1");
    assert_eq!(h["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-real-ip"], "127.0.0.1");
}

/// Bodies pass; POST is proxied as POST.
async fn step_bodies_and_methods_pass(gw: &RecordedGateway) {
    let xml = "<xml><return_code><![CDATA[SUCCESS]]></return_code></xml>";
    let res = gw
        .http
        .post(format!("{}/api/mp/payCallback", gw.base))
        .body(xml)
        .send()
        .await
        .unwrap();
    let (_, echo) = json_of(res).await;
    assert_eq!(
        (echo["upstream"].as_str(), echo["method"].as_str()),
        (Some("pay-service"), Some("POST"))
    );
    assert_eq!(echo["bodyLen"].as_u64(), Some(xml.len() as u64));
}

/// The gateway keeps no idle connection to a service (gateway.conf says
/// why: a service closing an idle one after 5 s would race a POST): each
/// request comes on a connection of its own, told to close.
async fn step_no_idle_upstream_connection_is_kept(gw: &RecordedGateway) {
    let pay = gw.recorder("pay-service");
    let mut ports = Vec::new();
    for _ in 0..3 {
        gw.http
            .get(format!("{}/api/pay/orders/T2", gw.base))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let seen = pay.last();
        assert_eq!(seen.headers["connection"], "close");
        ports.push(seen.peer_port);
    }
    let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
    assert_eq!(distinct.len(), 3, "one connection per request: {ports:?}");
}

/// The compose healthcheck's path: nginx's own 200 to a request from the
/// container's loopback, nothing proxied; from anyone else, not a route.
async fn step_the_healthcheck_path_answers_the_container_only(gw: &RecordedGateway) {
    let before = gw.recorders.total();
    let url = format!("{}/gateway-healthz", gw.base);
    let res = gw.http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ok\n");
    let res = client_from(CLIENT_A).get(&url).send().await.unwrap();
    assert_no_route(res).await;
    assert_eq!(gw.recorders.total(), before, "nothing proxied");
}

/// Security headers on every answer, the services' and the gateway's own,
/// and one X-Request-Id: the one the service was given. HSTS only where
/// the browser came over https.
async fn step_every_answer_carries_the_security_headers(gw: &RecordedGateway) {
    let proxied = gw
        .http
        .get(format!("{}/api/pay/orders/T4", gw.base))
        .send()
        .await
        .unwrap();
    let own = gw
        .http
        .get(format!("{}/api/nope", gw.base))
        .send()
        .await
        .unwrap();
    let page = gw.http.get(format!("{}/", gw.base)).send().await.unwrap();
    for (what, res) in [("proxied", &proxied), ("404", &own), ("page", &page)] {
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("content-security-policy", "frame-ancestors 'none'"),
            ("referrer-policy", "strict-origin-when-cross-origin"),
        ] {
            assert_eq!(header(res, name).as_deref(), Some(value), "{what}: {name}");
        }
        assert_eq!(
            res.headers().get_all("x-request-id").iter().count(),
            1,
            "{what}: one request id"
        );
        assert!(header(res, "strict-transport-security").is_none(), "{what}");
    }
    let id = header(&proxied, "x-request-id").unwrap();
    let (_, echo) = json_of(proxied).await;
    assert_eq!(echo["headers"]["x-request-id"], id.as_str());
    let https = gw
        .http
        .get(format!("{}/api/pay/orders/T4", gw.base))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&https, "strict-transport-security").as_deref(),
        Some("max-age=31536000")
    );
}

/// A service's own error statuses pass through untouched (WeChat errors are
/// 502 with WeChat's code; the gateway must not mask them).
async fn step_a_services_error_status_passes_through(gw: &RecordedGateway) {
    let res = gw
        .http
        .get(format!("{}/api/mp/getSession?echo_status=502", gw.base))
        .send()
        .await
        .unwrap();
    let (status, echo) = json_of(res).await;
    assert_eq!(
        (status, echo["upstream"].as_str()),
        (502, Some("auth-service"))
    );
}

/// Too large a body is refused by the gateway, in the envelope, and never
/// reaches the service.
async fn step_too_large_a_body_is_refused_at_the_gateway(gw: &RecordedGateway) {
    let before = gw.recorders.total();
    let res = gw
        .http
        .post(format!("{}/api/pay/orders", gw.base))
        .header("content-type", "application/json")
        .body(vec![b' '; 300 * 1024])
        .send()
        .await
        .unwrap();
    assert!(header(&res, "x-request-id").is_some());
    let (status, body) = json_of(res).await;
    assert_eq!(
        (status, body),
        (
            413,
            json!({"code": 1001, "data": null, "message": "request body is too large"})
        )
    );
    assert_eq!(gw.recorders.total(), before);
}

/// What the gateway does not route: 404 in the envelope, nothing proxied.
async fn step_what_is_not_routed_is_a_404_envelope(gw: &RecordedGateway) {
    let before = gw.recorders.total();
    for path in [
        "/internal/access-token",
        "/internal/",
        "/sandbox/users",
        "/api/nope",
        "/api/pay",
        "/api/auth",
        "/API/pay/orders",
        "/api/wechat/redirect/extra",
        "/healthz",
        "/readyz",
        "/metrics",
        "/nope",
        "/missing.js",
        "/sub/",
        "/sub",
    ] {
        let res = gw
            .http
            .get(format!("{}{path}", gw.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{path}");
        assert_no_route(res).await;
    }
    assert_eq!(gw.recorders.total(), before, "nothing unrouted was proxied");
}

/// The demo page's files.
async fn step_the_demo_page_is_served(gw: &RecordedGateway) {
    let res = gw.http.get(format!("{}/", gw.base)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-type").as_deref(), Some("text/html"));
    assert_eq!(
        res.text().await.unwrap(),
        "<!doctype html><title>wxpay demo</title>\n"
    );
    let res = gw
        .http
        .get(format!("{}/app.js", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "console.log('wxpay');\n");
    let res = gw
        .http
        .get(format!("{}/sub/page.html", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "<p>sub</p>\n");
}

/// OAuth codes and states, mini-program codes and profiles travel in query
/// strings; the access log keeps only the path of those routes (however the
/// path is spelt), and the query of every other route.
async fn step_credentials_in_query_strings_stay_out_of_the_access_log(gw: &RecordedGateway) {
    for path_and_query in [
        "/api/wechat/getOpenId?code=SECRET-OAUTH-CODE&state=SECRET-STATE",
        "/api/mp/getSession?code=SECRET-JS-CODE",
        "/api/mp/login?userInfo=%7B%22nickName%22%3A%22SECRET-PROFILE%22%7D",
        // Spelt otherwise, the same route (nginx matches the normalised path).
        "/api/wechat//getOpenId?code=SECRET-SLASHED-CODE",
        "/api/mp/getSessio%6E?code=SECRET-ENCODED-CODE",
    ] {
        let (status, echo) = json_of(
            gw.http
                .get(format!("{}{path_and_query}", gw.base))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, echo["upstream"].as_str()),
            (200, Some("auth-service")),
            "{path_and_query} reaches the service, query and all: {echo}"
        );
    }
    // Last, so that once its line is there every line above is too (one
    // nginx process logs each request before it reads the next).
    let marker = "/api/pay/orders/T3?kept=in-the-log";
    gw.http
        .get(format!("{}{marker}", gw.base))
        .send()
        .await
        .unwrap();
    let log = wait_for_log_line(&gw.nginx, &format!("\"GET {marker} HTTP/1.1\"")).await;
    assert!(!log.contains("SECRET"), "a credential was logged:\n{log}");
    for logged in [
        "\"GET /api/wechat/getOpenId HTTP/1.1\"",
        "\"GET /api/mp/getSession HTTP/1.1\"",
        "\"GET /api/mp/login HTTP/1.1\"",
    ] {
        assert!(log.contains(logged), "{logged} is logged:\n{log}");
    }
    // One JSON object a line, with the request id the service was given and
    // where the time went.
    let line: serde_json::Value = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .find(|v: &serde_json::Value| v["request"] == format!("GET {marker} HTTP/1.1"))
        .unwrap();
    let seen = gw.recorder("pay-service").last();
    assert_eq!(line["request_id"], seen.headers["x-request-id"].as_str());
    assert_eq!(line["status"], 200);
    assert_eq!(line["upstream_status"], "200");
    assert_eq!(
        line["upstream_addr"],
        format!("127.0.0.1:{}", gw.recorder("pay-service").port)
    );
    for timing in [
        "upstream_connect_time",
        "upstream_header_time",
        "upstream_response_time",
    ] {
        let t: f64 = line[timing].as_str().unwrap().parse().unwrap();
        assert!((0.0..5.0).contains(&t), "{timing}: {line}");
    }
    assert!(line["request_time"].as_f64().is_some(), "{line}");
}

/// The access log once it holds `line`; nginx writes a request's line just
/// after its answer, so the test polls, with a deadline.
async fn wait_for_log_line(nginx: &Nginx, line: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = nginx.access_log();
        if log.contains(line) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "{line} not in the access log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_is_down_is_a_503_envelope_and_no_page_is_a_404() {
    let bin = nginx_or_skip!();
    // Nothing listens on these ports; the web root does not exist.
    let missing = std::env::temp_dir().join("wxpay-no-such-web-root");
    let nginx = Nginx::start(&bin, |_, _| free_port(), &missing, &GatewayEnv::default()).await;
    step_every_service_is_a_503_envelope(&nginx).await;
    step_without_a_demo_page_root_is_not_a_route(&nginx).await;
}

async fn step_every_service_is_a_503_envelope(nginx: &Nginx) {
    let http = client();
    for path in [
        "/api/wechat/redirect",
        "/api/wechat/jssdkConfig",
        "/api/pay/orders/T1",
        // As in production: no sandbox in the gateway's network.
        "/sandbox/jweixin.js",
    ] {
        let res = http
            .get(format!("{}{path}", nginx.base()))
            .send()
            .await
            .unwrap();
        assert!(header(&res, "x-request-id").is_some());
        let (status, body) = json_of(res).await;
        assert_eq!(
            (status, body),
            (
                503,
                json!({"code": 5003, "data": null, "message": "service unavailable"})
            ),
            "{path}"
        );
    }
}

/// A service that does not answer in time is a 504, not a 503: the request
/// may have been carried out, and the client must not take it for "not
/// done". It is not sent again (proxy_next_upstream: `error` only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_times_out_is_a_504_envelope_and_not_retried() {
    let bin = nginx_or_skip!();
    let recorders = gateway_support::Recorders::start().await;
    let missing = std::env::temp_dir().join("wxpay-no-such-web-root");
    let nginx = Nginx::start_with(
        &bin,
        |h, p| format!("127.0.0.1:{}", recorders.port_for(h, p)),
        &missing,
        &GatewayEnv::default(),
        NginxOptions {
            read_timeout_secs: Some(1),
            ..NginxOptions::default()
        },
    )
    .await;
    let res = client()
        .get(format!(
            "{}/api/wechat/getOpenId?code=C&echo_delay_ms=3000",
            nginx.base()
        ))
        .send()
        .await
        .unwrap();
    assert!(header(&res, "x-request-id").is_some());
    let (status, body) = json_of(res).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["code"], 5003, "{body}");
    assert_eq!(
        recorders.by_service["auth-service"].count(),
        1,
        "not retried"
    );
    drop(nginx);
    recorders.stop().await;
}

/// The services are found by name at run time (gateway.conf's `set` lines
/// and the resolver rendered from resolv.conf): the gateway starts while a
/// name does not resolve yet, reaches the service once it does, and follows
/// it to a new address when its container is recreated, without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_found_by_name_at_run_time() {
    let bin = nginx_or_skip!();
    let dns = gateway_support::Dns::start().await;
    let name = "pay-service.wxpay.test";
    // The service's port: free on both addresses the test gives it.
    let port = free_port();
    let missing = std::env::temp_dir().join("wxpay-no-such-web-root");
    let nginx = Nginx::start_with(
        &bin,
        |host, _| {
            if host == "pay-service" {
                format!("{name}:{port}")
            } else {
                format!("127.0.0.1:{}", free_port())
            }
        },
        &missing,
        &GatewayEnv::default(),
        NginxOptions {
            dns_port: Some(dns.port),
            ..NginxOptions::default()
        },
    )
    .await;
    let http = client();
    let url = format!("{}/api/pay/orders/T1", nginx.base());

    // Started although the name does not resolve: its routes answer 503.
    let (status, body) = json_of(http.get(&url).send().await.unwrap()).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        dns.queries.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "asked the DNS"
    );

    // The container starts: reached once nginx asks again (valid=5s).
    let first = gateway_support::Recorder::start_on(
        "pay-service",
        TcpListener::bind(("127.0.0.5", port)).unwrap(),
    );
    dns.set(name, "127.0.0.5".parse().unwrap());
    let started = Instant::now();
    let reached = |recorder: &gateway_support::Recorder| recorder.count() > 0;
    while !reached(&first) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never reached the service at its new name"
        );
        let _ = http.get(&url).send().await.unwrap().bytes().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let appeared_after = started.elapsed();

    // Recreated at another address: followed, and nothing is sent to the old one.
    first.stop().await;
    let second = gateway_support::Recorder::start_on(
        "pay-service",
        TcpListener::bind(("127.0.0.6", port)).unwrap(),
    );
    dns.set(name, "127.0.0.6".parse().unwrap());
    let moved = Instant::now();
    while !reached(&second) {
        assert!(
            moved.elapsed() < Duration::from_secs(20),
            "never followed the service to its new address"
        );
        let _ = http.get(&url).send().await.unwrap().bytes().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, echo) = json_of(http.get(&url).send().await.unwrap()).await;
    assert_eq!(
        (status, echo["upstream"].as_str()),
        (200, Some("pay-service"))
    );
    eprintln!(
        "reached {:.1} s after the name appeared, {:.1} s after it moved",
        appeared_after.as_secs_f64(),
        moved.elapsed().as_secs_f64()
    );
    // Within `valid` (5 s) plus the polling, not Docker's TTL of 600 s.
    assert!(
        moved.elapsed() < Duration::from_secs(12),
        "{:?}",
        moved.elapsed()
    );
    second.stop().await;
}

/// No demo page installed: `/` is simply not a route.
async fn step_without_a_demo_page_root_is_not_a_route(nginx: &Nginx) {
    let res = client()
        .get(format!("{}/", nginx.base()))
        .send()
        .await
        .unwrap();
    assert_no_route(res).await;
}

// ======================= client addresses: TRUSTED_PROXIES, ADMIN_ALLOW_FROM ====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_client_is_told_apart_and_admin_is_allow_listed() {
    let bin = nginx_or_skip!();
    let gw = RecordedGateway::start(&bin, &behind_the_terminator()).await;
    step_each_client_behind_the_terminator_is_its_own_x_real_ip(&gw).await;
    step_a_forged_forwarded_for_changes_no_address(&gw).await;
    step_admin_routes_answer_admin_allow_from_only(&gw).await;
    gw.stop().await;
}

/// What the gateway told pay-service about a request from `ip` to `url`
/// (one of the recorder's catch-all paths): (X-Real-IP, X-Forwarded-For).
async fn forwarded_as(from: &str, url: &str, forged_xff: Option<&str>) -> (String, String) {
    let mut req = client_from(from).get(url);
    if let Some(xff) = forged_xff {
        req = req.header("x-forwarded-for", xff);
    }
    let (status, echo) = json_of(req.send().await.unwrap()).await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["upstream"], "pay-service");
    let h = &echo["headers"];
    (
        h["x-real-ip"].as_str().unwrap().to_owned(),
        h["x-forwarded-for"].as_str().unwrap().to_owned(),
    )
}

async fn step_each_client_behind_the_terminator_is_its_own_x_real_ip(gw: &RecordedGateway) {
    let url = format!("{}/api/pay/orders/T4", gw.nginx.terminator_base());
    for who in [CLIENT_A, CLIENT_B] {
        assert_eq!(
            forwarded_as(who, &url, None).await,
            (who.to_owned(), format!("{who}, {TERMINATOR}")),
            "the terminator's X-Forwarded-For names {who}"
        );
    }
}

/// A client may write anything into X-Forwarded-For: sent straight to the
/// gateway (from a peer that is not a trusted proxy) it is not believed at
/// all; through the terminator, only the address the terminator itself saw
/// is.
async fn step_a_forged_forwarded_for_changes_no_address(gw: &RecordedGateway) {
    let direct = format!("{}/api/pay/orders/T5", gw.base);
    let (real_ip, xff) = forwarded_as(CLIENT_B, &direct, Some(CLIENT_A)).await;
    assert_eq!(
        real_ip, CLIENT_B,
        "a forged X-Forwarded-For from {CLIENT_B}"
    );
    assert_eq!(
        xff,
        format!("{CLIENT_A}, {CLIENT_B}"),
        "kept, for the record"
    );
    let through = format!("{}/api/pay/orders/T5", gw.nginx.terminator_base());
    let (real_ip, _) = forwarded_as(CLIENT_B, &through, Some("203.0.113.9")).await;
    assert_eq!(real_ip, CLIENT_B, "a forged hop left of the terminator's");
}

/// /api/pay/admin/ and the operator console's pages /admin/ exist for
/// ADMIN_ALLOW_FROM only (client A), judged by the client's own address; to
/// everyone else they are unrouted paths.
async fn step_admin_routes_answer_admin_allow_from_only(gw: &RecordedGateway) {
    for path in [
        "/api/pay/admin/events?status=PENDING",
        "/admin/",
        "/admin/console.js",
    ] {
        admin_path_answers_admin_allow_from_only(gw, path).await;
    }
}

async fn admin_path_answers_admin_allow_from_only(gw: &RecordedGateway, path: &str) {
    let pay = gw.recorder("pay-service");
    for base in [gw.base.clone(), gw.nginx.terminator_base()] {
        let (status, echo) = json_of(
            client_from(CLIENT_A)
                .get(format!("{base}{path}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, echo["upstream"].as_str()),
            (200, Some("pay-service"))
        );
        assert_eq!(pay.last().headers["x-real-ip"], CLIENT_A);
    }
    let before = gw.recorders.total();
    for (base, forged) in [
        (gw.base.clone(), None),
        (gw.nginx.terminator_base(), None),
        // Naming client A gains nothing, directly or through the terminator.
        (gw.base.clone(), Some(CLIENT_A)),
        (gw.nginx.terminator_base(), Some(CLIENT_A)),
    ] {
        let mut req = client_from(CLIENT_B).get(format!("{base}{path}"));
        if let Some(xff) = forged {
            req = req.header("x-forwarded-for", xff);
        }
        assert_no_route(req.send().await.unwrap()).await;
    }
    // The terminator's own address is not client A's either.
    let res = client_from(TERMINATOR)
        .get(format!("{}{path}", gw.base))
        .send()
        .await
        .unwrap();
    assert_no_route(res).await;
    assert_eq!(gw.recorders.total(), before, "no admin request was proxied");
}

#[test]
fn the_gateway_script_renders_the_lists_and_refuses_what_is_not_an_address() {
    let dir = temp_dir("gateway-env");
    let out = dir.join("wxpay");
    step_each_address_becomes_one_line(&out);
    step_unset_means_no_proxy_and_loopback_and_private_admins(&out);
    step_a_bad_value_stops_naming_its_variable_and_keeps_the_lists(&out);
    step_the_resolver_is_the_containers_dns(&dir);
    let _ = std::fs::remove_dir_all(dir);
}

/// resolver.conf names the nameservers of resolv.conf (Docker's embedded DNS
/// is 127.0.0.11; an IPv6 one in brackets) with `valid=5s`, which overrides
/// the records' TTL; without a nameserver the container stops, saying so.
fn step_the_resolver_is_the_containers_dns(dir: &std::path::Path) {
    let script = deploy_support::repo_root().join("deploy/nginx/wxpay-gateway-env.sh");
    let run = |resolv: &str| {
        let conf = dir.join("resolv.conf");
        let out = dir.join("resolver-out");
        let _ = std::fs::remove_dir_all(&out);
        std::fs::write(&conf, resolv).unwrap();
        let res = std::process::Command::new("sh")
            .arg(&script)
            .env("WXPAY_NGINX_DIR", &out)
            .env("WXPAY_RESOLV_CONF", &conf)
            .env_remove("TRUSTED_PROXIES")
            .env_remove("ADMIN_ALLOW_FROM")
            .output()
            .unwrap();
        (res, out)
    };
    let (res, out) =
        run("search wxpay_default\nnameserver 127.0.0.11\nnameserver fd00::53\noptions ndots:0\n");
    assert!(res.status.success(), "{res:?}");
    assert_eq!(
        rendered(&out, "resolver.conf"),
        ["resolver 127.0.0.11 [fd00::53] valid=5s;"]
    );
    let (res, out) = run("search nothing-else\n");
    assert!(!res.status.success());
    assert!(
        String::from_utf8_lossy(&res.stderr).contains("no nameserver"),
        "{res:?}"
    );
    assert!(!out.join("resolver.conf").exists(), "nothing half-written");
}

/// The lines of a rendered list, without its comment.
fn rendered(out: &std::path::Path, file: &str) -> Vec<String> {
    std::fs::read_to_string(out.join(file))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

const DEFAULT_ADMINS: [&str; 6] = [
    "127.0.0.0/8 1;",
    "10.0.0.0/8 1;",
    "172.16.0.0/12 1;",
    "192.168.0.0/16 1;",
    "::1/128 1;",
    "fc00::/7 1;",
];

/// Commas and spaces both separate; addresses, CIDRs and IPv6 pass as given.
fn step_each_address_becomes_one_line(out: &std::path::Path) {
    let env = GatewayEnv {
        trusted_proxies: Some("10.0.0.0/8, 192.0.2.7 2001:db8::/32".into()),
        admin_allow_from: Some("203.0.113.0/24".into()),
    };
    assert!(render_env(&env, out).status.success());
    assert_eq!(
        rendered(out, "trusted_proxies.conf"),
        [
            "set_real_ip_from 10.0.0.0/8;",
            "set_real_ip_from 192.0.2.7;",
            "set_real_ip_from 2001:db8::/32;"
        ]
    );
    assert_eq!(
        rendered(out, "admin_allow_from.conf"),
        ["203.0.113.0/24 1;"]
    );
}

/// Unset (or empty, as compose passes an unset .env value): no trusted
/// proxy, and the admin routes for loopback and the private ranges.
fn step_unset_means_no_proxy_and_loopback_and_private_admins(out: &std::path::Path) {
    let empty = GatewayEnv {
        trusted_proxies: Some(String::new()),
        admin_allow_from: Some(String::new()),
    };
    for env in [GatewayEnv::default(), empty] {
        assert!(render_env(&env, out).status.success());
        assert!(rendered(out, "trusted_proxies.conf").is_empty());
        assert_eq!(rendered(out, "admin_allow_from.conf"), DEFAULT_ADMINS);
    }
}

/// A value that is not a list of addresses stops the container, naming the
/// variable, and leaves the previous lists as they were.
fn step_a_bad_value_stops_naming_its_variable_and_keeps_the_lists(out: &std::path::Path) {
    for (bad, var) in [
        (
            GatewayEnv {
                trusted_proxies: Some("10.0.0.0/8;include /etc/passwd".into()),
                ..GatewayEnv::default()
            },
            "TRUSTED_PROXIES",
        ),
        (
            GatewayEnv {
                admin_allow_from: Some("*".into()),
                ..GatewayEnv::default()
            },
            "ADMIN_ALLOW_FROM",
        ),
    ] {
        let run = render_env(&bad, out);
        assert!(!run.status.success(), "{bad:?} was accepted");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains(var), "{stderr}");
    }
    assert!(rendered(out, "trusted_proxies.conf").is_empty());
    assert_eq!(rendered(out, "admin_allow_from.conf"), DEFAULT_ADMINS);
}

// ================================================ notification floods ====

/// The burst gateway.conf allows the notification paths (`burst=N`).
fn notify_burst() -> usize {
    let conf = read_repo("deploy/nginx/gateway.conf");
    let bursts: Vec<usize> = conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("limit_req zone=wxpay_notify burst="))
        .map(|rest| rest.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        bursts.len(),
        NOTIFY_PATHS.len(),
        "one limit per notification path"
    );
    assert!(bursts.windows(2).all(|w| w[0] == w[1]), "{bursts:?}");
    bursts[0]
}

const NOTIFY_PATHS: [&str; 5] = [
    "/api/pay/notify",
    "/api/mp/payCallback",
    "/api/pay/refund-notify",
    "/api/pay/v3/notify",
    "/api/pay/v3/refund-notify",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_notifications_from_one_address_gets_429s_while_the_first_pass() {
    let bin = nginx_or_skip!();
    let gw = RecordedGateway::start(&bin, &GatewayEnv::default()).await;
    let burst = notify_burst();
    step_the_first_notifications_of_a_burst_all_pass(&gw, burst).await;
    step_a_flood_beyond_the_burst_is_answered_429_in_the_envelope(&gw).await;
    step_other_addresses_and_other_routes_are_not_limited(&gw).await;
    gw.stop().await;
}

async fn notify(http: &reqwest::Client, base: &str, i: usize) -> reqwest::Response {
    http.post(format!("{base}{}", NOTIFY_PATHS[i % NOTIFY_PATHS.len()]))
        .header("content-type", "text/xml")
        .body("<xml><return_code>SUCCESS</return_code></xml>")
        .send()
        .await
        .unwrap()
}

/// However slowly they arrive, the first burst + 1 notifications pass (the
/// limit queues nothing: nodelay), across all the notification paths.
async fn step_the_first_notifications_of_a_burst_all_pass(gw: &RecordedGateway, burst: usize) {
    let http = client_from(CLIENT_A);
    for i in 0..=burst {
        let (status, echo) = json_of(notify(&http, &gw.base, i).await).await;
        assert_eq!(
            (status, echo["upstream"].as_str()),
            (200, Some("pay-service")),
            "notification {i} of the first {}",
            burst + 1
        );
    }
}

/// Then, many at once from the same address: those over the rate are
/// answered 429 in the envelope by the gateway and never reach pay-service.
async fn step_a_flood_beyond_the_burst_is_answered_429_in_the_envelope(gw: &RecordedGateway) {
    let before = gw.recorder("pay-service").count();
    let http = client_from(CLIENT_A);
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..30 {
        let (http, base) = (http.clone(), gw.base.clone());
        tasks.spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..10 {
                let res = notify(&http, &base, t * 10 + i).await;
                let status = res.status().as_u16();
                if status == 429 {
                    assert_gateway_envelope(
                        res,
                        429,
                        json!({"code": 1006, "data": null, "message": "too many requests"}),
                    )
                    .await;
                } else {
                    res.bytes().await.unwrap();
                }
                statuses.push(status);
            }
            statuses
        });
    }
    let statuses: Vec<u16> = tasks.join_all().await.into_iter().flatten().collect();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    let passed = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(limited + passed, statuses.len(), "{statuses:?}");
    assert!(limited > 0, "300 notifications at once, none limited");
    assert_eq!(
        gw.recorder("pay-service").count() - before,
        passed,
        "a limited notification never reaches pay-service"
    );
}

/// The limit is per client address and for the notification paths only.
async fn step_other_addresses_and_other_routes_are_not_limited(gw: &RecordedGateway) {
    let (status, _) = json_of(notify(&client_from(CLIENT_B), &gw.base, 0).await).await;
    assert_eq!(status, 200, "{CLIENT_B} has a budget of its own");
    let res = client_from(CLIENT_A)
        .get(format!("{}/api/pay/orders/T6", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "orders are not notifications");
}

// ===================================================== the real services ====

const SESSION_SECRET: &str = "gateway-walk-through-session-secret-0123456789";
const INTERNAL_TOKEN: &str = "gateway-walk-internal-token-0123";
/// pay-service's admin token when it runs from the image (refunds on).
const ADMIN_TOKEN: &str = "gateway-walk-admin-token-0123456789";

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A service's environment: WeChat is the sandbox, PUBLIC_BASE_URL is the
/// gateway.
fn service_env(public: &str, sandbox: &str, extra: &[(&str, &str)]) -> Env {
    Env::from_pairs(service_pairs(public, sandbox, extra))
}

fn service_pairs(public: &str, sandbox: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = [
        ("SESSION_SECRET", SESSION_SECRET),
        ("PUBLIC_BASE_URL", public),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain(
        wechat_sandbox::service_env(sandbox)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v)),
    )
    .collect();
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    pairs
}

/// The image under test (`scripts/image-test` builds it and sets this): the
/// walk then runs the three services from it with podman instead of in this
/// process.
const TEST_IMAGE: &str = "WXPAY_TEST_IMAGE";

/// A service running from the image in a podman container, as production
/// runs it: uid 10001, read-only root filesystem, folders mounted read-only
/// (`host folder`, `path in the container`), the host's network (its
/// PostgreSQL and Redis, the gateway's nginx and the sandbox on loopback).
/// Removed on drop.
struct Container {
    name: String,
}

impl Container {
    async fn start(
        image: &str,
        service: &str,
        port: u16,
        env: &[(String, String)],
        mounts: &[(&std::path::Path, &str)],
    ) -> Container {
        let name = format!(
            "wxpay-test-{service}-{}",
            shared::random::alphanumeric(8).to_lowercase()
        );
        let mut cmd = std::process::Command::new("podman");
        // No --rm: a service that exits at start keeps its log for the
        // failure message; Drop removes the container.
        cmd.args(["run", "--detach", "--pull", "never", "--name", &name])
            .args(["--network", "host", "--read-only", "--user", "10001:10001"])
            .args(["--env", &format!("LISTEN_ADDR=127.0.0.1:{port}")]);
        for (k, v) in env {
            cmd.args(["--env", &format!("{k}={v}")]);
        }
        for (host, path) in mounts {
            cmd.args(["--volume", &format!("{}:{path}:ro", host.display())]);
        }
        let out = cmd.args([image, service]).output().expect("run podman");
        // Before the check: a container that failed to start is removed too.
        let container = Container { name };
        assert!(
            out.status.success(),
            "podman run {service}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ready = format!("http://127.0.0.1:{port}/readyz");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if client()
                .get(&ready)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return container;
            }
            // A service that exited (its configuration refused, a library
            // or file missing) fails now, with its log.
            if !container.running() {
                panic!("{service} from {image} exited:\n{}", container.logs());
            }
            if Instant::now() > deadline {
                panic!(
                    "{service} from {image} was not ready within 60 s:\n{}",
                    container.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn running(&self) -> bool {
        std::process::Command::new("podman")
            .args([
                "container",
                "inspect",
                "--format",
                "{{.State.Running}}",
                &self.name,
            ])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "true")
    }

    /// What the service wrote (its log is JSON on stdout, panics on stderr).
    fn logs(&self) -> String {
        std::process::Command::new("podman")
            .args(["logs", &self.name])
            .output()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_else(|e| format!("podman logs: {e}"))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = std::process::Command::new("podman")
            .args(["rm", "--force", "--time", "2", &self.name])
            .output();
    }
}

fn loopback_listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// One database for auth- and pay-service, as in docker-compose.yml:
/// PostgreSQL when TEST_DATABASE_URL is set (always in CI), else SQLite.
/// With the image under test PostgreSQL is required: the containers cannot
/// reach a SQLite file of this process (and issue #19 asks for PostgreSQL).
fn database() -> testkit::TestDb {
    testkit::postgres_db(pay_service::migrations()).unwrap_or_else(|| {
        assert!(
            std::env::var_os(TEST_IMAGE).is_none(),
            "{TEST_IMAGE} is set, so TEST_DATABASE_URL must name this machine's PostgreSQL"
        );
        testkit::sqlite_db(pay_service::migrations())
    })
}

/// The three services and the sandbox behind the gateway.
struct Walk {
    nginx: Nginx,
    /// The gateway: the services' PUBLIC_BASE_URL.
    public: String,
    /// The sandbox's base URL (WeChat).
    sb: String,
    sandbox: Sandbox,
    state: Arc<SandboxState>,
    http: reqwest::Client,
    service_ports: [u16; 3],
    web: PathBuf,
    _db: testkit::TestDb,
    /// The services, when they run from the image (WXPAY_TEST_IMAGE).
    _containers: Vec<Container>,
    /// pay-service's client certificate folder, when it runs from the image.
    secrets: Option<TempFolder>,
}

/// A folder removed on drop, so a failing walk leaves no keys behind either.
struct TempFolder(PathBuf);

impl Drop for TempFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Redis for the services from the image: TEST_REDIS_URL's server, database
/// 15, emptied first. The services' keys have a fixed prefix (`wxpay:`), so
/// the tests' database would hand them a previous walk's access token and
/// ticket, which this walk's sandbox never issued.
fn image_walk_redis() -> String {
    let base = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!("{TEST_IMAGE} is set, so TEST_REDIS_URL must name this machine's Redis")
    });
    let mut url = url::Url::parse(&base).expect("TEST_REDIS_URL is a URL");
    url.set_path("/15");
    let out = std::process::Command::new("redis-cli")
        .args(["-u", url.as_str(), "flushdb"])
        .output()
        .expect("run redis-cli (apt-get install redis-tools)");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.trim() == "OK",
        "redis-cli flushdb: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    url.into()
}

/// WeChat Pay's client certificate and key and the CA of its refund API
/// (the sandbox's stand-ins) in a folder of their own, as an operator puts
/// them in `./secrets/wechatpay/`: readable by the container's uid 10001
/// (test keys, so readable by all; the README's 640 with group 10001 needs
/// root).
fn client_certificate_folder(pki: &TestPki) -> TempFolder {
    use std::os::unix::fs::PermissionsExt;
    let dir = gateway_support::temp_dir("walk-secrets");
    let folder = TempFolder(dir.clone());
    for (name, pem) in [
        ("apiclient_cert.pem", &pki.client_cert_pem),
        ("apiclient_key.pem", &pki.client_key_pem),
        ("wechatpay_ca.pem", &pki.ca_pem),
    ] {
        let file = dir.join(name);
        std::fs::write(&file, pem).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    folder
}

impl Walk {
    async fn start(bin: &std::path::Path) -> Walk {
        let db = database();
        let image = std::env::var(TEST_IMAGE).ok();
        // From the image pay-service runs with refunds on, as compose runs
        // it: WeChat's refund API is mutual TLS, the sandbox's TLS listener
        // (a CA and client certificate of its own) stands in for it.
        let mut cfg = SandboxConfig::for_tests();
        let pki = match image {
            Some(_) => {
                let pki = tokio::task::spawn_blocking(|| TestPki::generate(SANDBOX_MCH_ID))
                    .await
                    .unwrap()
                    .unwrap();
                cfg.tls = Some(pki.sandbox_tls("127.0.0.1:0".parse().unwrap()));
                Some(pki)
            }
            None => None,
        };
        let sandbox = Sandbox::start(cfg).await.unwrap();
        let sb = sandbox.base_url();
        // The gateway's port must be known before the services start: it is
        // their PUBLIC_BASE_URL (redirect_uri, notify_url).
        let web = web_root_with_demo_page();
        let (auth_l, auth_port) = loopback_listener();
        let (jssdk_l, jssdk_port) = loopback_listener();
        let (pay_l, pay_port) = loopback_listener();
        let sandbox_port = sandbox.addr().port();
        let nginx = Nginx::start(
            bin,
            |host, port| match host {
                "auth-service" => auth_port,
                "jssdk-service" => jssdk_port,
                "pay-service" => pay_port,
                _ if (host, port) == SANDBOX_FROM_GATEWAY => sandbox_port,
                other => panic!("unexpected upstream {other}"),
            },
            &web,
            &GatewayEnv::default(),
        )
        .await;
        let public = nginx.base();
        let db_url = [("DATABASE_URL", db.url.as_str())];
        let jssdk_extra = [
            ("INTERNAL_TOKEN", INTERNAL_TOKEN),
            ("JSSDK_BACKGROUND_REFRESH", "off"),
        ];
        if let (Some(image), Some(pki)) = (image, pki) {
            drop((auth_l, jssdk_l, pay_l)); // the containers bind the ports
            // As docker-compose.yml runs them: Redis for all three, and
            // pay-service with WeChat Pay's client certificate (refunds, on
            // with ADMIN_TOKEN) in a folder mounted read-only, which it loads
            // at start as uid 10001.
            let redis = image_walk_redis();
            let secrets = client_certificate_folder(&pki);
            let refund_base = sandbox.tls_base_url().expect("the sandbox's TLS listener");
            let cert_dir = "/run/secrets/wechatpay";
            let redis_url = ("REDIS_URL", redis.as_str());
            let pay_cert = format!("{cert_dir}/apiclient_cert.pem");
            let pay_key = format!("{cert_dir}/apiclient_key.pem");
            let pay_ca = format!("{cert_dir}/wechatpay_ca.pem");
            let auth_extra = [db_url[0], redis_url];
            let jssdk_extra = [jssdk_extra[0], jssdk_extra[1], redis_url];
            let pay_extra = [
                db_url[0],
                redis_url,
                ("ADMIN_TOKEN", ADMIN_TOKEN),
                ("MCH_CERT_PEM", pay_cert.as_str()),
                ("MCH_KEY_PEM", pay_key.as_str()),
                ("WECHATPAY_CA_PEM", pay_ca.as_str()),
                ("WECHATPAY_REFUND_BASE", refund_base.as_str()),
            ];
            let pay_mounts = [(secrets.0.as_path(), cert_dir)];
            let mut containers = Vec::new();
            for (service, port, extra, mounts) in [
                ("auth-service", auth_port, &auth_extra[..], &[][..]),
                ("jssdk-service", jssdk_port, &jssdk_extra[..], &[][..]),
                ("pay-service", pay_port, &pay_extra[..], &pay_mounts[..]),
            ] {
                let env = service_pairs(&public, &sb, extra);
                containers.push(Container::start(&image, service, port, &env, mounts).await);
            }
            return Walk {
                nginx,
                public,
                state: sandbox.state(),
                sb,
                sandbox,
                http: client(),
                service_ports: [auth_port, jssdk_port, pay_port],
                web,
                _db: db,
                _containers: containers,
                secrets: Some(secrets),
            };
        }
        let auth = auth_service::config::AuthConfig::from_env(&service_env(&public, &sb, &db_url))
            .expect("auth config");
        let jssdk = jssdk_service::JssdkConfig::from_env(&service_env(&public, &sb, &jssdk_extra))
            .expect("jssdk config");
        let pay = pay_service::PayConfig::from_env(&service_env(&public, &sb, &db_url))
            .expect("pay config");
        let auth = auth_service::with_listener(auth, auth_l)
            .await
            .expect("auth starts");
        let jssdk = jssdk_service::with_listener(jssdk, jssdk_l)
            .await
            .expect("jssdk starts");
        let pay = pay_service::with_listener(pay, pay_l)
            .await
            .expect("pay starts");
        tokio::spawn(auth.run_until_stopped());
        tokio::spawn(jssdk.run_until_stopped());
        tokio::spawn(pay.run_until_stopped());
        Walk {
            nginx,
            public,
            state: sandbox.state(),
            sb,
            sandbox,
            http: client(),
            service_ports: [auth_port, jssdk_port, pay_port],
            web,
            _db: db,
            _containers: Vec::new(),
            secrets: None,
        }
    }

    async fn stop(self) {
        drop(self.nginx);
        self.sandbox.stop().await;
        let _ = std::fs::remove_dir_all(self.web);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_journeys_work_through_the_gateway() {
    let bin = nginx_or_skip!();
    let w = Walk::start(&bin).await;
    step_health_is_the_services_own(&w).await;
    let page = step_oauth_through_the_consent_page_sets_a_session(&w).await;
    step_the_oauth_session_reads_the_profile(&w).await;
    step_wx_config_signs_the_page(&w, &page).await;
    let token = step_mini_program_session_profile_and_open_data(&w).await;
    let no = step_v2pay_is_paid_through_the_gateways_notification(&w, &token).await;
    step_an_unsigned_notification_is_refused(&w, &no).await;
    step_a_native_order_has_a_qr_code_and_closes(&w, &token).await;
    step_internal_is_for_the_shops_own_services_only(&w).await;
    step_only_the_sandboxs_js_sdk_stand_in_is_routed(&w).await;
    step_unknown_paths_and_logout(&w).await;
    if w.secrets.is_some() {
        step_a_refund_goes_out_with_the_mounted_client_certificate(&w, &no).await;
    }
    w.stop().await;
}

/// From the image only (refunds are off in-process): refunding the paid
/// order reaches WeChat's refund API over mutual TLS, with the client
/// certificate pay-service read from its read-only mount.
async fn step_a_refund_goes_out_with_the_mounted_client_certificate(w: &Walk, no: &str) {
    let res = w
        .http
        .post(format!("{}/api/pay/admin/orders/{no}/refunds", w.public))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"amountFen": 1, "reason": "walk"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["amountFen"], 1, "{body}");
    assert!(
        matches!(
            body["data"]["status"].as_str(),
            Some("PROCESSING" | "SUCCESS")
        ),
        "{body}"
    );
    assert_eq!(w.state.calls("/secapi/pay/refund"), 1);
}

/// Health is the services' own, never the gateway's.
async fn step_health_is_the_services_own(w: &Walk) {
    for port in w.service_ports {
        for path in ["/healthz", "/readyz"] {
            let res = w
                .http
                .get(format!("http://127.0.0.1:{port}{path}"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{port}{path}");
        }
    }
    let res = w
        .http
        .get(format!("{}/readyz", w.public))
        .send()
        .await
        .unwrap();
    assert_no_route(res).await;
}

/// Official-account OAuth, snsapi_userinfo, through the consent page; returns
/// the page the browser comes back to.
async fn step_oauth_through_the_consent_page_sets_a_session(w: &Walk) -> String {
    let (public, sb) = (&w.public, &w.sb);
    let page = format!("{public}/index.html?from=menu#/me");
    let res = w
        .http
        .get(format!(
            "{public}/api/wechat/redirect?url={}&scope=snsapi_userinfo",
            enc(&page)
        ))
        .header("x-request-id", "walk-oauth-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(
        header(&res, "x-request-id").as_deref(),
        Some("walk-oauth-1"),
        "the id reaches the service"
    );
    let authorize = header(&res, "location").unwrap();
    let prefix = format!(
        "{sb}/connect/oauth2/authorize?appid={SANDBOX_OA_APPID}&redirect_uri={}&response_type=code&scope=snsapi_userinfo&state=",
        enc(&format!("{public}/api/wechat/getOpenId"))
    );
    assert!(authorize.starts_with(&prefix), "{authorize}\n{prefix}");
    assert!(authorize.ends_with("#wechat_redirect"));
    let consent = w.http.get(&authorize).send().await.unwrap();
    assert_eq!(consent.status(), 200);
    let html = consent.text().await.unwrap();
    let start = html
        .find("href=\"/sandbox/oauth/allow?")
        .expect("an allow link")
        + "href=\"".len();
    let allow = html[start..start + html[start..].find('"').unwrap()].replace("&amp;", "&");
    let res = w.http.get(format!("{sb}{allow}")).send().await.unwrap();
    assert_eq!(res.status(), 302);
    let callback = header(&res, "location").unwrap();
    assert!(
        callback.starts_with(&format!("{public}/api/wechat/getOpenId?code=")),
        "{callback}"
    );
    let res = w.http.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(header(&res, "location").as_deref(), Some(page.as_str()));
    let cookies: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cookies.iter().any(|c| c.starts_with("wx_session=")),
        "{cookies:?}"
    );
    // The same callback again: the state was single-use.
    let (status, body) = json_of(w.http.get(&callback).send().await.unwrap()).await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(1001)), "{body}");
    page
}

async fn step_the_oauth_session_reads_the_profile(w: &Walk) {
    let oa_openid = w.state.openid(SANDBOX_OA_APPID, "u1");
    let (status, body) = json_of(
        w.http
            .get(format!("{}/api/wechat/getUserInfo", w.public))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["openid"], oa_openid.as_str());
    assert_eq!(body["data"]["nickname"], "张三");
    let (status, body) = json_of(
        w.http
            .get(format!("{}/api/auth/me", w.public))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["data"]["openid"].as_str()),
        (200, Some(oa_openid.as_str())),
        "{body}"
    );
}

/// wx.config for the page (signed without its fragment).
async fn step_wx_config_signs_the_page(w: &Walk, page: &str) {
    let (status, body) = json_of(
        w.http
            .get(format!(
                "{}/api/wechat/jssdkConfig?url={}",
                w.public,
                enc(page)
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let cfg = &body["data"];
    assert_eq!(cfg["appId"], SANDBOX_OA_APPID);
    let ticket = w
        .state
        .current_jsapi_ticket(SANDBOX_OA_APPID)
        .expect("a ticket was issued");
    let expected = shared::sign::jssdk_signature(
        &ticket,
        cfg["nonceStr"].as_str().unwrap(),
        cfg["timestamp"].as_i64().unwrap(),
        &format!("{}/index.html?from=menu", w.public),
    );
    assert_eq!(cfg["signature"].as_str(), Some(expected.as_str()));
}

/// Mini program: session, profile, open data; returns the Bearer token.
async fn step_mini_program_session_profile_and_open_data(w: &Walk) -> String {
    let public = &w.public;
    let code = w.state.issue_js_code(SANDBOX_MP_APPID, "u2");
    let (status, body) = json_of(
        w.http
            .get(format!("{public}/api/mp/getSession?code={code}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mp_openid = w.state.openid(SANDBOX_MP_APPID, "u2");
    assert_eq!(body["data"]["openid"], mp_openid.as_str());
    let token = body["data"]["token"].as_str().unwrap().to_owned();
    let res = w
        .http
        .post(format!("{public}/api/mp/login"))
        .bearer_auth(&token)
        .json(&json!({"userInfo": {"nickName": "李小龙", "gender": 1}}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert!(
        status == 200 && body["data"]["userId"].is_i64(),
        "{status} {body}"
    );
    let (encrypted, iv) = w.state.encrypt_open_data(
        SANDBOX_MP_APPID,
        "u2",
        json!({"phoneNumber": "13800138000"}),
    );
    let res = w
        .http
        .post(format!("{public}/api/mp/decrypt"))
        .bearer_auth(&token)
        .json(&json!({"encryptedData": encrypted, "iv": iv}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(
        (status, body["data"]["phoneNumber"].as_str()),
        (200, Some("13800138000")),
        "{body}"
    );
    token
}

/// v2Pay, WeChat's notification through the gateway, the order's status;
/// returns the order's number.
async fn step_v2pay_is_paid_through_the_gateways_notification(w: &Walk, token: &str) -> String {
    let public = &w.public;
    let res = w
        .http
        .get(format!("{public}/api/mp/v2Pay?money=0.01"))
        .bearer_auth(token)
        // A client cannot choose the address WeChat is told about.
        .header("x-real-ip", "198.51.100.9")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, 200, "{body}");
    let pay_params = &body["data"];
    let no = pay_params["outTradeNo"].as_str().unwrap().to_owned();
    assert!(
        pay_params["package"]
            .as_str()
            .unwrap()
            .starts_with("prepay_id=")
    );
    let order = w
        .state
        .order(&no)
        .expect("unifiedorder reached the sandbox");
    assert_eq!(order.total_fee, 1);
    let mp_openid = w.state.openid(SANDBOX_MP_APPID, "u2");
    assert_eq!(order.openid.as_deref(), Some(mp_openid.as_str()));
    assert_eq!(order.notify_url, format!("{public}/api/pay/notify"));
    assert_eq!(
        order.spbill_create_ip, "127.0.0.1",
        "X-Real-IP is the gateway's, not the client's"
    );

    w.state.pay_order(&no, PayOptions::default()).unwrap();
    assert!(
        w.state
            .wait_acknowledged(&no, Duration::from_secs(15))
            .await,
        "the notification through the gateway was acknowledged: {:?}",
        w.state.deliveries(&no)
    );
    assert_eq!(w.state.deliveries(&no)[0].http_status, Some(200));
    let res = w
        .http
        .get(format!("{public}/api/pay/orders/{no}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "PAID");
    assert_eq!(body["data"]["amountFen"].as_i64(), Some(1));
    no
}

/// The seed's notification path, with a notification nobody signed: the
/// gateway delivers it to pay-service, which refuses it.
async fn step_an_unsigned_notification_is_refused(w: &Walk, no: &str) {
    let forged = format!(
        "<xml><return_code>SUCCESS</return_code><result_code>SUCCESS</result_code>\
         <appid>{SANDBOX_MP_APPID}</appid><mch_id>{SANDBOX_MCH_ID}</mch_id><out_trade_no>{no}</out_trade_no>\
         <total_fee>1</total_fee><sign>00000000000000000000000000000000</sign></xml>"
    );
    let res = w
        .http
        .post(format!("{}/api/mp/payCallback", w.public))
        .header("content-type", "text/xml")
        .body(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let reply = res.text().await.unwrap();
    assert!(
        reply.contains("<return_code><![CDATA[FAIL]]></return_code>"),
        "{reply}"
    );
}

/// A NATIVE order: QR code, close.
async fn step_a_native_order_has_a_qr_code_and_closes(w: &Walk, token: &str) {
    let public = &w.public;
    let res = w
        .http
        .post(format!("{public}/api/pay/orders"))
        .bearer_auth(token)
        .json(&json!({"amountFen": 2, "tradeType": "NATIVE"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, 200, "{body}");
    let native = body["data"]["outTradeNo"].as_str().unwrap().to_owned();
    assert!(
        body["data"]["codeUrl"]
            .as_str()
            .unwrap()
            .starts_with("weixin://"),
        "{body}"
    );
    let res = w
        .http
        .get(format!("{public}/api/pay/orders/{native}/qrcode.svg"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        header(&res, "content-type")
            .unwrap()
            .starts_with("image/svg+xml")
    );
    let res = w
        .http
        .post(format!("{public}/api/pay/orders/{native}/close"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let res = w
        .http
        .get(format!("{public}/api/pay/orders/{native}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(res).await.1["data"]["status"], "CLOSED");
}

/// /internal/ is for the shop's own services only.
async fn step_internal_is_for_the_shops_own_services_only(w: &Walk) {
    let jssdk_port = w.service_ports[1];
    let direct = w
        .http
        .get(format!(
            "http://127.0.0.1:{jssdk_port}/internal/access-token"
        ))
        .bearer_auth(INTERNAL_TOKEN)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(direct).await;
    assert_eq!(status, 200, "jssdk-service serves it directly: {body}");
    assert!(body["data"]["accessToken"].is_string());
    let via_gateway = w
        .http
        .get(format!("{}/internal/access-token", w.public))
        .bearer_auth(INTERNAL_TOKEN)
        .send()
        .await
        .unwrap();
    assert_no_route(via_gateway).await;
}

/// The demo page's JS-SDK stand-in (development), and nothing else of the
/// sandbox.
async fn step_only_the_sandboxs_js_sdk_stand_in_is_routed(w: &Walk) {
    let res = w
        .http
        .get(format!("{}/sandbox/jweixin.js", w.public))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(header(&res, "content-type").unwrap().contains("javascript"));
    let res = w
        .http
        .get(format!("{}/sandbox/users", w.public))
        .send()
        .await
        .unwrap();
    assert_no_route(res).await;
}

async fn step_unknown_paths_and_logout(w: &Walk) {
    let public = &w.public;
    let res = w
        .http
        .get(format!("{public}/api/wechat/nope"))
        .send()
        .await
        .unwrap();
    assert_no_route(res).await;
    let res = w
        .http
        .post(format!("{public}/api/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (status, body) = json_of(
        w.http
            .get(format!("{public}/api/auth/me"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["code"].as_i64()), (401, Some(1002)), "{body}");
}

// ========================= login budgets per client, behind the terminator ====

/// Login attempts auth-service allows each client per minute in this test.
const LOGIN_BUDGET: usize = 3;

/// auth-service alone behind the gateway (which trusts the terminator), told
/// that the gateway connects from 127.0.0.1 (TRUSTED_GATEWAYS).
struct LoginGateway {
    nginx: Nginx,
    sandbox: Sandbox,
    auth_port: u16,
    web: PathBuf,
    _db: testkit::TestDb,
}

impl LoginGateway {
    async fn start(bin: &std::path::Path) -> LoginGateway {
        let db = database();
        let sandbox = Sandbox::start(SandboxConfig::for_tests()).await.unwrap();
        let web = web_root_with_demo_page();
        let (auth_l, auth_port) = loopback_listener();
        let nginx = Nginx::start(
            bin,
            |host, _| {
                if host == "auth-service" {
                    auth_port
                } else {
                    free_port()
                }
            },
            &web,
            &behind_the_terminator(),
        )
        .await;
        let budget = LOGIN_BUDGET.to_string();
        let env = service_env(
            &nginx.base(),
            &sandbox.base_url(),
            &[
                ("DATABASE_URL", db.url.as_str()),
                ("LOGIN_RATE_LIMIT", budget.as_str()),
                ("TRUSTED_GATEWAYS", "127.0.0.1/32"),
            ],
        );
        let auth = auth_service::config::AuthConfig::from_env(&env).expect("auth config");
        let auth = auth_service::with_listener(auth, auth_l)
            .await
            .expect("auth starts");
        tokio::spawn(auth.run_until_stopped());
        LoginGateway {
            nginx,
            sandbox,
            auth_port,
            web,
            _db: db,
        }
    }

    /// One login attempt (a mini-program code WeChat never issued) from
    /// `from` to `base`; true when auth-service answered 429.
    async fn limited(&self, from: &str, base: &str, headers: &[(&str, &str)]) -> bool {
        let mut req = client_from(from).get(format!("{base}/api/mp/getSession?code=never-issued"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let (status, body) = json_of(req.send().await.unwrap()).await;
        if status == 429 {
            assert_eq!(body["code"], 1006, "{body}");
            return true;
        }
        assert!(
            (400..500).contains(&status) || status == 502,
            "{status} {body}"
        );
        false
    }

    async fn stop(self) {
        drop(self.nginx);
        self.sandbox.stop().await;
        let _ = std::fs::remove_dir_all(self.web);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_behind_the_terminator_have_two_login_budgets() {
    let bin = nginx_or_skip!();
    let g = LoginGateway::start(&bin).await;
    step_each_client_behind_the_terminator_has_its_own_login_budget(&g).await;
    step_a_forged_forwarded_for_moves_no_attempt_to_another_budget(&g).await;
    step_auth_believes_x_real_ip_from_the_gateway_only(&g).await;
    g.stop().await;
}

/// Client A spends its budget through the terminator; client B, behind the
/// same terminator, still has all of its own.
async fn step_each_client_behind_the_terminator_has_its_own_login_budget(g: &LoginGateway) {
    let edge = g.nginx.terminator_base();
    for i in 0..LOGIN_BUDGET {
        assert!(!g.limited(CLIENT_A, &edge, &[]).await, "attempt {i}");
    }
    assert!(g.limited(CLIENT_A, &edge, &[]).await, "A's budget is spent");
    assert!(
        !g.limited(CLIENT_B, &edge, &[]).await,
        "B has its own budget"
    );
}

/// Client A cannot escape its spent budget by naming another address, and
/// a client sending straight to the gateway cannot spend A's.
async fn step_a_forged_forwarded_for_moves_no_attempt_to_another_budget(g: &LoginGateway) {
    let edge = g.nginx.terminator_base();
    let forged = [("x-forwarded-for", "203.0.113.9")];
    assert!(g.limited(CLIENT_A, &edge, &forged).await, "A stays A");
    let framing = [("x-forwarded-for", CLIENT_A)];
    for _ in 0..LOGIN_BUDGET {
        assert!(
            !g.limited(CLIENT_C, &g.nginx.base(), &framing).await,
            "C's attempts count as C's, not as A's"
        );
    }
}

/// Straight to auth-service, X-Real-IP is believed only from the gateway's
/// address (TRUSTED_GATEWAYS), not from another loopback peer.
async fn step_auth_believes_x_real_ip_from_the_gateway_only(g: &LoginGateway) {
    let auth = format!("http://127.0.0.1:{}", g.auth_port);
    let as_a = [("x-real-ip", CLIENT_A)];
    assert!(
        !g.limited(CLIENT_B, &auth, &as_a).await,
        "from {CLIENT_B}, X-Real-IP is ignored: B's own budget"
    );
    assert!(
        g.limited(TERMINATOR, &auth, &as_a).await,
        "from the gateway's address, X-Real-IP is A: spent"
    );
}
