//! OpenTelemetry traces (issue #17 §3), received on a local OTLP/HTTP endpoint
//! exactly as a collector receives them (protobuf, decoded with the
//! specification's own message types), for one payment through `stack`:
//! mini-program sign-in, a v3 JSAPI order, WeChat paying it, the notification.
//!
//! The test plays the gateway: each step's request carries a W3C
//! `traceparent` of one trace, as nginx forwards a client's (the gateway test
//! checks that it does). The spans must then form that trace's tree: each
//! request's server span under the step's parent, `db`/`cache`/`wechat`
//! client spans under it, and WeChat's side (the sandbox, another service
//! over HTTP) under the call that reached it, including the notification
//! WeChat sends back.
//!
//! One test per binary: the tracing subscriber is global to the process.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use shared::config::{Env, LogFormat};
use shared::traces::{Sampling, TraceExport};
use stack::Stack;

/// One span as the collector received it.
#[derive(Debug, Clone)]
struct Got {
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    kind: SpanKind,
    attributes: BTreeMap<String, String>,
    service: String,
}

#[derive(Default)]
struct Received {
    /// Woken by every export.
    arrived: Arc<tokio::sync::Notify>,
    spans: Vec<Got>,
    /// The `x-collector-key` header of every export.
    keys: Vec<String>,
    content_types: Vec<String>,
}

/// A local OTLP/HTTP endpoint (`POST /v1/traces`, protobuf).
struct Collector {
    url: String,
    received: Arc<Mutex<Received>>,
}

impl Collector {
    fn start() -> Collector {
        let received = Arc::new(Mutex::new(Received::default()));
        let data = web::Data::from(received.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                .route("/v1/traces", web::post().to(export))
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
        let url = format!("http://{}/v1/traces", server.addrs()[0]);
        actix_web::rt::spawn(server.run());
        Collector { url, received }
    }

    fn spans(&self) -> Vec<Got> {
        self.received.lock().unwrap().spans.clone()
    }
}

async fn export(
    received: web::Data<Mutex<Received>>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let Ok(export) = ExportTraceServiceRequest::decode(body) else {
        return HttpResponse::BadRequest().finish();
    };
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let mut received = received.lock().unwrap();
    received.arrived.notify_waiters();
    received.keys.push(header("x-collector-key"));
    received.content_types.push(header("content-type"));
    for resource_spans in export.resource_spans {
        let service = resource_spans
            .resource
            .map(|r| attributes(&r.attributes))
            .and_then(|a| a.get("service.name").cloned())
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                received.spans.push(Got {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                    name: span.name.clone(),
                    kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                    attributes: attributes(&span.attributes),
                    service: service.clone(),
                });
            }
        }
    }
    // An empty ExportTraceServiceResponse: everything accepted.
    HttpResponse::Ok()
        .content_type("application/x-protobuf")
        .finish()
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                Some(AnyValue::IntValue(i)) => i.to_string(),
                Some(AnyValue::BoolValue(b)) => b.to_string(),
                Some(AnyValue::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_hex(bytes: usize) -> String {
    shared::random::alphanumeric(bytes * 2)
        .bytes()
        .map(|b| format!("{:x}", b % 16))
        .collect()
}

/// One trace's spans, with the questions the test asks of its tree.
struct Tree {
    spans: Vec<Got>,
}

impl Tree {
    fn children(&self, of: &Got) -> Vec<&Got> {
        self.spans
            .iter()
            .filter(|s| s.parent == of.span_id)
            .collect()
    }

    fn descendants(&self, of: &Got) -> Vec<&Got> {
        let mut out = Vec::new();
        let mut todo = vec![of];
        while let Some(s) = todo.pop() {
            for c in self.children(s) {
                out.push(c);
                todo.push(c);
            }
        }
        out
    }

    /// The one server span whose parent is the step's `traceparent` span.
    fn step(&self, parent: &str) -> Option<&Got> {
        self.spans.iter().find(|s| s.parent == parent)
    }

    fn describe(&self) -> String {
        let mut out = String::new();
        for s in &self.spans {
            out.push_str(&format!(
                "{} <- {} {:?} {}\n",
                s.span_id, s.parent, s.kind, s.name
            ));
        }
        out
    }
}

fn client() -> reqwest::Client {
    shared::http_client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A folder removed on drop, for the stack's SQLite file.
struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[actix_web::test]
async fn one_payment_is_one_trace_across_the_services() {
    let collector = Collector::start();
    let export = TraceExport {
        endpoint: collector.url.parse().unwrap(),
        service_name: "wxpay-stack".to_owned(),
        headers: HashMap::from([("x-collector-key".to_owned(), "k-42".to_owned())]),
        timeout: Duration::from_secs(10),
        sampling: Sampling::AlwaysOn,
    };
    let traces = shared::telemetry::init_tracing(LogFormat::Pretty, Some(&export));
    assert!(
        shared::traces::exporting(),
        "the exporter is installed (nothing else in this binary installs a subscriber)"
    );

    let dir =
        std::env::temp_dir().join(format!("wxpay-traces-{}", shared::random::alphanumeric(12)));
    std::fs::create_dir_all(&dir).unwrap();
    let _dir = TempDir(dir.clone());
    let stack = Stack::start(Env::from_pairs([
        ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("SANDBOX_ADDR", "127.0.0.1:0".to_owned()),
        (
            "DATABASE_URL",
            format!("sqlite://{}/stack.db", dir.display()),
        ),
    ]))
    .await
    .expect("stack starts");
    let base = format!("http://{}", stack.addr());
    let sandbox = stack.sandbox().expect("sandbox on by default");
    let (sandbox_base, sandbox_state) = (sandbox.base_url(), sandbox.state());
    actix_web::rt::spawn(stack.run_until_stopped());
    let http = client();

    let trace_id = random_hex(16);
    let parent = |step: &str| format!("00-{trace_id}-{step}-01");
    let (sign_in_step, order_step, pay_step) = (random_hex(8), random_hex(8), random_hex(8));

    // 1. Mini-program sign-in (auth-service). Its traceparent says "not
    // sampled": a caller gives the trace its id, never its sampling decision
    // (else any client could keep its requests out of the traces).
    let code = sandbox_state.issue_js_code(wechat_sandbox::SANDBOX_MP_APPID, "u1");
    let res = http
        .get(format!("{base}/api/mp/getSession?code={code}"))
        .header("traceparent", format!("00-{trace_id}-{sign_in_step}-00"))
        .send()
        .await
        .unwrap();
    let sign_in_request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let session: serde_json::Value = res.json().await.unwrap();
    let token = session["data"]["token"]
        .as_str()
        .expect("a token")
        .to_owned();

    // 2. A v3 JSAPI order (pay-service → WeChat Pay, the sandbox).
    let res = http
        .get(format!("{base}/api/mp/v2Pay?money=0.01"))
        .bearer_auth(&token)
        .header("traceparent", parent(&order_step))
        .send()
        .await
        .unwrap();
    let order_request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let pay: serde_json::Value = res.json().await.unwrap();
    assert_eq!(pay["data"]["signType"], "RSA", "a v3 order: {pay}");
    let no = pay["data"]["outTradeNo"].as_str().unwrap().to_owned();

    // 3. WeChat takes the payment and notifies pay-service.
    let res = http
        .post(format!("{sandbox_base}/sandbox/orders/{no}/pay"))
        .header("traceparent", parent(&pay_step))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert!(
        sandbox_state
            .wait_acknowledged(&no, Duration::from_secs(20))
            .await,
        "the notification is acknowledged"
    );

    // 4. A malformed traceparent is ignored: that request starts a trace.
    let res = http
        .get(format!("{base}/api/pay/orders/{no}"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{trace_id}-zz-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let lookup_request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();

    // 5. Probes are not traced, whatever they carry.
    let res = http
        .get(format!("{base}/readyz"))
        .header("traceparent", parent(&random_hex(8)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let probe_request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();

    // The spans arrive when flushed; the notification's server span ends
    // just after its answer is written, so it may come with a later export
    // (the batch processor's own, within 5 s, at the latest).
    let arrived = collector.received.lock().unwrap().arrived.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    let tree = loop {
        let next_export = arrived.notified();
        traces.flush();
        let spans = collector.spans();
        let tree = Tree {
            spans: spans
                .iter()
                .filter(|s| s.trace_id == trace_id)
                .cloned()
                .collect(),
        };
        let lookup_seen = spans
            .iter()
            .any(|s| s.attributes.get("request_id") == Some(&lookup_request_id));
        let notify_seen = tree
            .spans
            .iter()
            .any(|s| s.name == "POST /api/pay/v3/notify");
        if (notify_seen && lookup_seen) || Instant::now() > deadline {
            break tree;
        }
        let _ = actix_web::rt::time::timeout(Duration::from_secs(6), next_export).await;
    };
    let all = collector.spans();

    step_every_export_is_protobuf_with_the_configured_headers(&collector);
    step_sign_in_is_a_server_span_with_its_cache_and_database(
        &tree,
        &sign_in_step,
        &sign_in_request_id,
    );
    step_the_order_reaches_wechat_in_the_same_trace(&tree, &order_step, &order_request_id);
    step_the_notification_continues_the_payment(&tree, &pay_step, &no);
    step_a_malformed_traceparent_starts_a_new_trace(&all, &trace_id, &lookup_request_id);
    assert!(
        !all.iter().any(
            |s| s.attributes.get("request_id") == Some(&probe_request_id)
                || s.name.contains("readyz")
        ),
        "a probe is not exported"
    );
    assert!(
        tree.spans.iter().all(|s| s.parent != probe_request_id),
        "nothing of the probe in the trace"
    );
    assert!(
        tree.spans.iter().all(|s| s.service == "wxpay-stack"),
        "service.name is the configured one"
    );
}

fn step_every_export_is_protobuf_with_the_configured_headers(collector: &Collector) {
    let received = collector.received.lock().unwrap();
    assert!(!received.keys.is_empty(), "something was exported");
    assert!(
        received.keys.iter().all(|k| k == "k-42"),
        "{:?}",
        received.keys
    );
    assert!(
        received
            .content_types
            .iter()
            .all(|c| c == "application/x-protobuf"),
        "{:?}",
        received.content_types
    );
}

fn step_sign_in_is_a_server_span_with_its_cache_and_database(
    tree: &Tree,
    step: &str,
    request_id: &str,
) {
    let server = tree.step(step).unwrap_or_else(|| {
        panic!(
            "no span under the sign-in's traceparent:\n{}",
            tree.describe()
        )
    });
    assert_eq!(server.name, "GET /api/mp/getSession", "{}", tree.describe());
    assert_eq!(server.kind, SpanKind::Server);
    assert_eq!(server.attributes["request_id"], request_id);
    assert_eq!(server.attributes["http.response.status_code"], "200");
    let below = tree.descendants(server);
    assert!(
        below
            .iter()
            .any(|s| s.name.starts_with("cache ") && s.kind == SpanKind::Client),
        "a cache span under the sign-in:\n{}",
        tree.describe()
    );
    let db = below
        .iter()
        .find(|s| s.name.starts_with("db ") && s.kind == SpanKind::Client)
        .unwrap_or_else(|| panic!("a db span under the sign-in:\n{}", tree.describe()));
    assert_eq!(db.attributes["db.system.name"], "sqlite");
    assert!(
        db.attributes["code.file.path"].starts_with("auth-service/"),
        "the db span names the query's place in auth-service: {db:?}"
    );
}

fn step_the_order_reaches_wechat_in_the_same_trace(tree: &Tree, step: &str, request_id: &str) {
    let server = tree.step(step).unwrap_or_else(|| {
        panic!(
            "no span under the order's traceparent:\n{}",
            tree.describe()
        )
    });
    assert_eq!(server.name, "GET /api/mp/v2Pay", "{}", tree.describe());
    assert_eq!(server.attributes["request_id"], request_id);
    let below = tree.descendants(server);
    assert!(
        below.iter().any(|s| s.name.starts_with("db ")),
        "the order is stored under its request:\n{}",
        tree.describe()
    );
    let wechat = below
        .iter()
        .find(|s| s.name == "wechat /v3/pay/transactions/jsapi")
        .unwrap_or_else(|| panic!("the WeChat call under the order:\n{}", tree.describe()));
    assert_eq!(wechat.kind, SpanKind::Client);
    assert_eq!(wechat.attributes["outcome"], "ok");
    // WeChat's side: the sandbox's server span, a child of the client span
    // through the traceparent it received over HTTP.
    let answered = tree.children(wechat);
    assert!(
        answered
            .iter()
            .any(|s| s.kind == SpanKind::Server
                && s.name == "sandbox POST /v3/pay/transactions/jsapi"),
        "the sandbox's span under the WeChat call:\n{}",
        tree.describe()
    );
}

fn step_the_notification_continues_the_payment(tree: &Tree, step: &str, no: &str) {
    let paid = tree.step(step).unwrap_or_else(|| {
        panic!(
            "no span under the payment's traceparent:\n{}",
            tree.describe()
        )
    });
    assert_eq!(paid.name, "sandbox POST /sandbox/orders/{out_trade_no}/pay");
    assert!(
        tree.spans.iter().all(|s| !s.name.contains(no)),
        "no order number in a span's name:\n{}",
        tree.describe()
    );
    let notify = tree
        .descendants(paid)
        .into_iter()
        .find(|s| s.name == "notify" && s.kind == SpanKind::Client)
        .unwrap_or_else(|| panic!("the notification's delivery:\n{}", tree.describe()));
    let received = tree
        .children(notify)
        .into_iter()
        .find(|s| s.name == "POST /api/pay/v3/notify")
        .unwrap_or_else(|| {
            panic!(
                "pay-service's span under the delivery:\n{}",
                tree.describe()
            )
        });
    assert_eq!(received.kind, SpanKind::Server);
    assert_eq!(received.attributes["http.response.status_code"], "204");
    assert!(!received.attributes["request_id"].is_empty());
    let db = tree
        .descendants(received)
        .into_iter()
        .filter(|s| s.name.starts_with("db "))
        .count();
    assert!(
        db >= 1,
        "the notification is applied in the database:\n{}",
        tree.describe()
    );
}

fn step_a_malformed_traceparent_starts_a_new_trace(all: &[Got], trace_id: &str, request_id: &str) {
    let lookup = all
        .iter()
        .find(|s| s.attributes.get("request_id").map(String::as_str) == Some(request_id))
        .expect("the order lookup's span");
    assert_ne!(
        lookup.trace_id, trace_id,
        "a malformed traceparent is not continued"
    );
    assert!(lookup.parent.is_empty(), "it is a root span: {lookup:?}");
    assert_eq!(lookup.name, "GET /api/pay/orders/{out_trade_no}");
}
