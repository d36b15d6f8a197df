//! deploy/nginx/gateway.conf in real nginx (Debian's `/usr/sbin/nginx`), on
//! loopback, in front of:
//! - three recording upstreams, to check that every path API.md §4 names goes
//!   to the right service with the forwarding headers, that connections are
//!   reused, and that what the gateway answers itself is an API envelope;
//! - the real auth-, jssdk- and pay-service with the WeChat sandbox, walking
//!   the seed's journeys through the gateway: OAuth through the consent page,
//!   mini-program login, wx.config, v2Pay, WeChat's payment notification, the
//!   order's status.
//!
//! The config is used as shipped; only its `server host:port` lines, its
//! `listen` line and its web root are rewritten to loopback and a temporary
//! folder. Without nginx the tests are skipped with a message, except under
//! CI=true, where they fail.

mod deploy_support;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use deploy_support::{
    GatewayConf, SANDBOX_FROM_GATEWAY, api_md, api_paths, read_repo, skip_or_fail,
};
use serde_json::{Value, json};
use shared::config::Env;
use wechat_sandbox::{
    PayOptions, SANDBOX_MCH_ID, SANDBOX_MP_APPID, SANDBOX_OA_APPID, Sandbox, SandboxConfig,
};

// ------------------------------------------------------------------ nginx ----

fn nginx_binary() -> Option<PathBuf> {
    let debian = PathBuf::from("/usr/sbin/nginx");
    if debian.is_file() {
        return Some(debian);
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join("nginx"))
        .find(|p| p.is_file())
}

/// A port that was free a moment ago. nginx binds it itself, so the listener
/// is dropped first: another process could take the port in between. That
/// race is tiny on a test machine and accepted; nginx then fails to start and
/// the test says so with nginx's own error.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn temp_dir(label: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "wxpay-{label}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// nginx as a child process; killed, and its folder removed, on drop.
struct Nginx {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Nginx {
    /// Starts gateway.conf with each upstream server (`auth-service:8081`, …)
    /// replaced by the loopback port `upstream(host, port)` gives and
    /// `web_root` as the web root, and waits until it accepts connections.
    async fn start(bin: &Path, upstream: impl Fn(&str, u16) -> u16, web_root: &Path) -> Nginx {
        let conf = GatewayConf::load();
        let mut text = read_repo("deploy/nginx/gateway.conf");
        for servers in conf.upstreams.values() {
            for (host, port) in servers {
                let to = upstream(host, *port);
                text = replace_once(
                    &text,
                    &format!("server {host}:{port}"),
                    &format!("server 127.0.0.1:{to}"),
                );
            }
        }
        let port = free_port();
        text = replace_once(
            &text,
            &format!("listen {} default_server", conf.listen_port),
            &format!("listen 127.0.0.1:{port} default_server"),
        );
        text = replace_once(
            &text,
            &format!("root {};", conf.web_root),
            &format!("root {};", web_root.display()),
        );

        let dir = temp_dir("nginx");
        std::fs::write(dir.join("gateway.conf"), text).unwrap();
        let d = dir.display();
        // One process (`master_process off`), so that killing the child on drop
        // leaves no orphaned worker behind. As root, nginx would switch to
        // `nobody`, who may not enter the temporary folders; the test's own
        // user is the right one.
        let user = if std::fs::metadata(&dir).unwrap().uid() == 0 {
            "user root;"
        } else {
            ""
        };
        let main = format!(
            "daemon off;\nmaster_process off;\n{user}\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/client_body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
             scgi_temp_path {d}/scgi;\n  types {{ text/html html; application/javascript js; }}\n  \
             default_type application/octet-stream;\n  include {d}/gateway.conf;\n}}\n"
        );
        let main_path = dir.join("nginx.conf");
        std::fs::write(&main_path, main).unwrap();
        let prefix = format!("{d}/");
        let error_log = format!("{d}/error.log");

        // A config error is reported as such, not as a start-up timeout.
        let check = Command::new(bin)
            .args(["-t", "-q", "-p", &prefix, "-e", &error_log, "-c"])
            .arg(&main_path)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "nginx -t refuses gateway.conf:\n{}",
            String::from_utf8_lossy(&check.stderr)
        );

        let child = Command::new(bin)
            .args(["-p", &prefix, "-e", &error_log, "-c"])
            .arg(&main_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .expect("spawn nginx");
        let mut nginx = Nginx { child, dir, port };
        nginx.wait_until_accepting().await;
        nginx
    }

    async fn wait_until_accepting(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("nginx exited ({status}):\n{}", self.logs());
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen within 10 s:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn logs(&self) -> String {
        ["stderr.log", "error.log"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "gateway.conf should contain `{from}` exactly once (the test rewrites it)"
    );
    text.replacen(from, to, 1)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn json_of(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let body =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("HTTP {status}, not JSON: {text}"));
    (status, body)
}

fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// The gateway's own 404 for what it does not route: envelope and request id.
async fn assert_no_route(res: reqwest::Response) {
    let id = header(&res, "x-request-id").expect("the gateway's 404 names a request id");
    assert!(!id.is_empty());
    assert_eq!(
        header(&res, "content-type").as_deref(),
        Some("application/json")
    );
    let (status, body) = json_of(res).await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"code": 1004, "data": null, "message": "no such route"})
        )
    );
}

// -------------------------------------------------- recording upstreams ----

#[derive(Debug, Clone)]
struct Seen {
    uri: String,
    peer_port: u16,
}

/// An HTTP server that answers every request with what it received, as JSON,
/// and remembers it. `?echo_status=N` makes it answer status N.
struct Recorder {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    handle: actix_web::dev::ServerHandle,
}

#[derive(Clone)]
struct RecorderState {
    name: &'static str,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn record(req: HttpRequest, body: web::Bytes, st: web::Data<RecorderState>) -> HttpResponse {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in req.headers() {
        let v = v.to_str().unwrap_or("<binary>").to_owned();
        headers
            .entry(k.as_str().to_owned())
            .and_modify(|e| {
                e.push_str(", ");
                e.push_str(&v)
            })
            .or_insert(v);
    }
    let peer_port = req.peer_addr().map_or(0, |a| a.port());
    st.seen.lock().unwrap().push(Seen {
        uri: req.uri().to_string(),
        peer_port,
    });
    let status = req
        .query_string()
        .split('&')
        .find_map(|kv| kv.strip_prefix("echo_status="))
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).json(json!({
        "upstream": st.name,
        "method": req.method().as_str(),
        "uri": req.uri().to_string(),
        "version": format!("{:?}", req.version()),
        "headers": headers,
        "bodyLen": body.len(),
        "peerPort": peer_port,
    }))
}

impl Recorder {
    async fn start(name: &'static str) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = web::Data::new(RecorderState {
            name,
            seen: seen.clone(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .default_service(web::to(record))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Recorder { port, seen, handle }
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request arrived")
    }
}

struct Recorders {
    by_service: BTreeMap<String, Recorder>,
}

impl Recorders {
    async fn start() -> Recorders {
        let mut by_service = BTreeMap::new();
        for name in [
            "auth-service",
            "jssdk-service",
            "pay-service",
            "wechat-sandbox",
        ] {
            by_service.insert(name.to_owned(), Recorder::start(name).await);
        }
        Recorders { by_service }
    }

    /// The recorder standing in for a gateway upstream server.
    fn port_for(&self, host: &str, port: u16) -> u16 {
        let name = if (host, port) == SANDBOX_FROM_GATEWAY {
            "wechat-sandbox"
        } else {
            host
        };
        self.by_service
            .get(name)
            .unwrap_or_else(|| panic!("no recorder for upstream {host}:{port}"))
            .port
    }

    fn total(&self) -> usize {
        self.by_service.values().map(Recorder::count).sum()
    }

    async fn stop(self) {
        for r in self.by_service.into_values() {
            r.handle.stop(false).await;
        }
    }
}

fn web_root_with_demo_page() -> PathBuf {
    let dir = temp_dir("web");
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><title>wxpay demo</title>\n",
    )
    .unwrap();
    std::fs::write(dir.join("app.js"), "console.log('wxpay');\n").unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/page.html"), "<p>sub</p>\n").unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_path_reaches_its_service_with_the_forwarding_headers() {
    let Some(bin) = nginx_binary() else {
        return skip_or_fail("nginx is not installed (apt-get install nginx)");
    };
    let Some(api) = api_md() else {
        return skip_or_fail("../shared/API.md is not beside the repository");
    };
    let recorders = Recorders::start().await;
    let web = web_root_with_demo_page();
    let nginx = Nginx::start(&bin, |h, p| recorders.port_for(h, p), &web).await;
    let base = nginx.base();
    let http = client();

    let paths = api_paths(&api);
    assert!(paths.len() >= 20, "{paths:?}");
    for p in &paths {
        let res = http
            .get(format!("{base}{}?a=1&b=%E4%B8%AD", p.path))
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
        // Keep-alive to the upstream: HTTP/1.1 and no `Connection: close`.
        assert_eq!(echo["version"], "HTTP/1.1");
        assert!(echo["headers"].get("connection").is_none(), "{echo}");
    }
    // `/internal/access-token` never reached jssdk-service.
    let internal_seen = recorders.by_service["jssdk-service"]
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.uri.starts_with("/internal/"))
        .count();
    assert_eq!(internal_seen, 0);

    // The one sandbox path (development only) goes to the sandbox.
    let (status, echo) = json_of(
        http.get(format!("{base}/sandbox/jweixin.js"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, echo["upstream"].as_str()),
        (200, Some("wechat-sandbox"))
    );

    // Forwarding headers, as a bare client sends nothing of the sort.
    let res = http
        .get(format!("{base}/api/pay/orders/T1"))
        .send()
        .await
        .unwrap();
    let (_, echo) = json_of(res).await;
    let h = &echo["headers"];
    let generated = h["x-request-id"].as_str().unwrap();
    assert_eq!(generated.len(), 32, "nginx's $request_id: {generated}");
    assert!(generated.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(h["x-real-ip"], "127.0.0.1");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["host"], "127.0.0.1");
    // A second request gets another id.
    let (_, again) = json_of(
        http.get(format!("{base}/api/pay/orders/T1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_ne!(again["headers"]["x-request-id"], generated);

    // Behind a TLS terminator: its request id, its X-Forwarded-* are kept and
    // extended; a client's X-Real-IP is never believed.
    let res = http
        .get(format!("{base}/api/wechat/jssdkConfig?url=x"))
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

    // Bodies pass; POST is proxied as POST.
    let xml = "<xml><return_code><![CDATA[SUCCESS]]></return_code></xml>";
    let res = http
        .post(format!("{base}/api/mp/payCallback"))
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

    // Upstream connections are reused: one worker, sequential requests, the
    // same connection (same client port at the upstream).
    let pay = &recorders.by_service["pay-service"];
    let mut ports = Vec::new();
    for _ in 0..3 {
        http.get(format!("{base}/api/pay/orders/T2"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        ports.push(pay.last().peer_port);
    }
    assert!(
        ports.windows(2).all(|w| w[0] == w[1]),
        "upstream keepalive: client ports {ports:?}"
    );

    // A service's own error statuses pass through untouched (WeChat errors
    // are 502 with WeChat's code; the gateway must not mask them).
    let res = http
        .get(format!("{base}/api/mp/getSession?echo_status=502"))
        .send()
        .await
        .unwrap();
    let (status, echo) = json_of(res).await;
    assert_eq!(
        (status, echo["upstream"].as_str()),
        (502, Some("auth-service"))
    );

    // Too large a body is refused by the gateway, in the envelope, and never
    // reaches the service.
    let before = recorders.total();
    let res = http
        .post(format!("{base}/api/pay/orders"))
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
    assert_eq!(recorders.total(), before);

    // What the gateway does not route: 404 in the envelope, nothing proxied.
    let before = recorders.total();
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
        let res = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
        assert_no_route(res).await;
    }
    assert_eq!(recorders.total(), before, "nothing unrouted was proxied");

    // The demo page's files.
    let res = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-type").as_deref(), Some("text/html"));
    assert_eq!(
        res.text().await.unwrap(),
        "<!doctype html><title>wxpay demo</title>\n"
    );
    let res = http.get(format!("{base}/app.js")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "console.log('wxpay');\n");
    let res = http
        .get(format!("{base}/sub/page.html"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "<p>sub</p>\n");

    drop(nginx);
    recorders.stop().await;
    let _ = std::fs::remove_dir_all(web);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_is_down_is_a_503_envelope_and_no_page_is_a_404() {
    let Some(bin) = nginx_binary() else {
        return skip_or_fail("nginx is not installed (apt-get install nginx)");
    };
    // Nothing listens on these ports; the web root does not exist.
    let missing = std::env::temp_dir().join("wxpay-no-such-web-root");
    let nginx = Nginx::start(&bin, |_, _| free_port(), &missing).await;
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
    // No demo page installed: `/` is simply not a route.
    assert_no_route(http.get(format!("{}/", nginx.base())).send().await.unwrap()).await;
}

// ------------------------------------------------- the real services ----

const SESSION_SECRET: &str = "gateway-walk-through-session-secret-0123456789";
const INTERNAL_TOKEN: &str = "gateway-walk-internal-token-0123";

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Binds 127.0.0.1:0 and builds a service's environment: WeChat is the
/// sandbox, PUBLIC_BASE_URL is the gateway.
fn service_env(public: &str, sandbox: &str, extra: &[(&str, &str)]) -> Env {
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
    Env::from_pairs(pairs)
}

fn loopback_listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_journeys_work_through_the_gateway() {
    let Some(bin) = nginx_binary() else {
        return skip_or_fail("nginx is not installed (apt-get install nginx)");
    };
    // One database for auth- and pay-service, as in docker-compose.yml:
    // PostgreSQL when TEST_DATABASE_URL is set (always in CI), else SQLite.
    let db = shared::testing::postgres_db(pay_service::migrations())
        .unwrap_or_else(|| shared::testing::sqlite_db(pay_service::migrations()));

    let sandbox = Sandbox::start(SandboxConfig::for_tests()).await.unwrap();
    let sb = sandbox.base_url();
    let state = sandbox.state();

    // The gateway's port must be known before the services start: it is their
    // PUBLIC_BASE_URL (redirect_uri, notify_url).
    let web = web_root_with_demo_page();
    let (auth_l, auth_port) = loopback_listener();
    let (jssdk_l, jssdk_port) = loopback_listener();
    let (pay_l, pay_port) = loopback_listener();
    let sandbox_port = sandbox.addr().port();
    let nginx = Nginx::start(
        &bin,
        |host, port| match host {
            "auth-service" => auth_port,
            "jssdk-service" => jssdk_port,
            "pay-service" => pay_port,
            _ if (host, port) == SANDBOX_FROM_GATEWAY => sandbox_port,
            other => panic!("unexpected upstream {other}"),
        },
        &web,
    )
    .await;
    let public = nginx.base();

    let auth = auth_service::config::AuthConfig::from_env(&service_env(
        &public,
        &sb,
        &[("DATABASE_URL", &db.url)],
    ))
    .expect("auth config");
    let jssdk = jssdk_service::config::JssdkConfig::from_env(&service_env(
        &public,
        &sb,
        &[
            ("INTERNAL_TOKEN", INTERNAL_TOKEN),
            ("JSSDK_BACKGROUND_REFRESH", "off"),
        ],
    ))
    .expect("jssdk config");
    let pay = pay_service::config::PayConfig::from_env(&service_env(
        &public,
        &sb,
        &[("DATABASE_URL", &db.url)],
    ))
    .expect("pay config");
    let auth = auth_service::Application::with_listener(auth, auth_l)
        .await
        .expect("auth starts");
    let jssdk = jssdk_service::Application::with_listener(jssdk, jssdk_l)
        .await
        .expect("jssdk starts");
    let pay = pay_service::Application::with_listener(pay, pay_l)
        .await
        .expect("pay starts");
    tokio::spawn(auth.run_until_stopped());
    tokio::spawn(jssdk.run_until_stopped());
    tokio::spawn(pay.run_until_stopped());

    let http = client();
    // Health is the services' own, never the gateway's.
    for port in [auth_port, jssdk_port, pay_port] {
        for path in ["/healthz", "/readyz"] {
            let res = http
                .get(format!("http://127.0.0.1:{port}{path}"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{port}{path}");
        }
    }
    assert_no_route(http.get(format!("{public}/readyz")).send().await.unwrap()).await;

    // ---- official-account OAuth, snsapi_userinfo, through the consent page
    let page = format!("{public}/index.html?from=menu#/me");
    let res = http
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
    let consent = http.get(&authorize).send().await.unwrap();
    assert_eq!(consent.status(), 200);
    let html = consent.text().await.unwrap();
    let start = html
        .find("href=\"/sandbox/oauth/allow?")
        .expect("an allow link")
        + "href=\"".len();
    let allow = html[start..start + html[start..].find('"').unwrap()].replace("&amp;", "&");
    let res = http.get(format!("{sb}{allow}")).send().await.unwrap();
    assert_eq!(res.status(), 302);
    let callback = header(&res, "location").unwrap();
    assert!(
        callback.starts_with(&format!("{public}/api/wechat/getOpenId?code=")),
        "{callback}"
    );
    let res = http.get(&callback).send().await.unwrap();
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
    let (status, body) = json_of(http.get(&callback).send().await.unwrap()).await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(1001)), "{body}");

    let oa_openid = state.openid(SANDBOX_OA_APPID, "u1");
    let (status, body) = json_of(
        http.get(format!("{public}/api/wechat/getUserInfo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["openid"], oa_openid.as_str());
    assert_eq!(body["data"]["nickname"], "张三");
    let (status, body) = json_of(
        http.get(format!("{public}/api/auth/me"))
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

    // ---- wx.config for the page (without its fragment)
    let (status, body) = json_of(
        http.get(format!(
            "{public}/api/wechat/jssdkConfig?url={}",
            enc(&page)
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let cfg = &body["data"];
    assert_eq!(cfg["appId"], SANDBOX_OA_APPID);
    let ticket = state
        .current_jsapi_ticket(SANDBOX_OA_APPID)
        .expect("a ticket was issued");
    let expected = shared::sign::jssdk_signature(
        &ticket,
        cfg["nonceStr"].as_str().unwrap(),
        cfg["timestamp"].as_i64().unwrap(),
        &format!("{public}/index.html?from=menu"),
    );
    assert_eq!(cfg["signature"].as_str(), Some(expected.as_str()));

    // ---- mini program: session, profile, open data
    let code = state.issue_js_code(SANDBOX_MP_APPID, "u2");
    let (status, body) = json_of(
        http.get(format!("{public}/api/mp/getSession?code={code}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mp_openid = state.openid(SANDBOX_MP_APPID, "u2");
    assert_eq!(body["data"]["openid"], mp_openid.as_str());
    let token = body["data"]["token"].as_str().unwrap().to_owned();
    let res = http
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
    let (encrypted, iv) = state.encrypt_open_data(
        SANDBOX_MP_APPID,
        "u2",
        json!({"phoneNumber": "13800138000"}),
    );
    let res = http
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

    // ---- v2Pay, WeChat's notification through the gateway, the order's status
    let res = http
        .get(format!("{public}/api/mp/v2Pay?money=0.01"))
        .bearer_auth(&token)
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
    let order = state.order(&no).expect("unifiedorder reached the sandbox");
    assert_eq!(order.total_fee, 1);
    assert_eq!(order.openid.as_deref(), Some(mp_openid.as_str()));
    assert_eq!(order.notify_url, format!("{public}/api/pay/notify"));
    assert_eq!(
        order.spbill_create_ip, "127.0.0.1",
        "X-Real-IP is the gateway's, not the client's"
    );

    state.pay_order(&no, PayOptions::default()).unwrap();
    assert!(
        state.wait_acknowledged(&no, Duration::from_secs(15)).await,
        "the notification through the gateway was acknowledged: {:?}",
        state.deliveries(&no)
    );
    assert_eq!(state.deliveries(&no)[0].http_status, Some(200));
    let res = http
        .get(format!("{public}/api/pay/orders/{no}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "PAID");
    assert_eq!(body["data"]["amountFen"].as_i64(), Some(1));

    // The seed's notification path, with a notification nobody signed: the
    // gateway delivers it to pay-service, which refuses it.
    let forged = format!(
        "<xml><return_code>SUCCESS</return_code><result_code>SUCCESS</result_code>\
         <appid>{SANDBOX_MP_APPID}</appid><mch_id>{SANDBOX_MCH_ID}</mch_id><out_trade_no>{no}</out_trade_no>\
         <total_fee>1</total_fee><sign>00000000000000000000000000000000</sign></xml>"
    );
    let res = http
        .post(format!("{public}/api/mp/payCallback"))
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

    // ---- a NATIVE order: QR code, close
    let res = http
        .post(format!("{public}/api/pay/orders"))
        .bearer_auth(&token)
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
    let res = http
        .get(format!("{public}/api/pay/orders/{native}/qrcode.svg"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        header(&res, "content-type")
            .unwrap()
            .starts_with("image/svg+xml")
    );
    let res = http
        .post(format!("{public}/api/pay/orders/{native}/close"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let res = http
        .get(format!("{public}/api/pay/orders/{native}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(res).await.1["data"]["status"], "CLOSED");

    // ---- /internal/ is for the shop's own services only
    let direct = http
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
    let via_gateway = http
        .get(format!("{public}/internal/access-token"))
        .bearer_auth(INTERNAL_TOKEN)
        .send()
        .await
        .unwrap();
    assert_no_route(via_gateway).await;

    // ---- the demo page's JS-SDK stand-in (development), and nothing else of
    // the sandbox
    let res = http
        .get(format!("{public}/sandbox/jweixin.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(header(&res, "content-type").unwrap().contains("javascript"));
    assert_no_route(
        http.get(format!("{public}/sandbox/users"))
            .send()
            .await
            .unwrap(),
    )
    .await;

    // ---- unknown paths, and logout
    assert_no_route(
        http.get(format!("{public}/api/wechat/nope"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let res = http
        .post(format!("{public}/api/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (status, body) = json_of(
        http.get(format!("{public}/api/auth/me"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["code"].as_i64()), (401, Some(1002)), "{body}");

    drop(nginx);
    sandbox.stop().await;
    let _ = std::fs::remove_dir_all(web);
}
