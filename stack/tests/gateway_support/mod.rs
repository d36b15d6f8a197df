//! The harness of `gateway_nginx.rs`: deploy/nginx/gateway.conf in real nginx
//! (one process, on loopback, with a TLS terminator's stand-in in front), the
//! recording upstreams that stand in for the services, and the HTTP client
//! helpers the steps share.
//!
//! A module directory, not a file beside the tests, so that cargo does not
//! build it as a test of its own.

#![allow(dead_code)] // not every test uses every helper

use std::collections::BTreeMap;
use std::net::{IpAddr, TcpListener};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::deploy_support::{GatewayConf, SANDBOX_FROM_GATEWAY, read_repo, repo_root};

// ------------------------------------------------------------------ nginx ----

pub fn nginx_binary() -> Option<PathBuf> {
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
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn temp_dir(label: &str) -> PathBuf {
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

/// The gateway's environment (API.md §2), as compose gives it to the
/// container; None leaves a variable unset.
#[derive(Debug, Clone, Default)]
pub struct GatewayEnv {
    pub trusted_proxies: Option<String>,
    pub admin_allow_from: Option<String>,
}

/// Where gateway.conf expects the lists wxpay-gateway-env.sh renders.
const RENDERED_DIR: &str = "/etc/nginx/wxpay/";
/// The access log gateway.conf writes (the image's stdout).
const ACCESS_LOG: &str = "/var/log/nginx/access.log";

/// Runs deploy/nginx/wxpay-gateway-env.sh, as the nginx image's entrypoint
/// does, writing into `out`; the test's own environment does not leak in.
/// Its resolv.conf names 127.0.0.1, as Docker's names 127.0.0.11; the test
/// gives the rendered resolver line the port of its own DNS stand-in.
pub fn render_env(env: &GatewayEnv, out: &Path) -> std::process::Output {
    let resolv = out.with_extension("resolv.conf");
    std::fs::create_dir_all(resolv.parent().unwrap()).unwrap();
    std::fs::write(&resolv, "# the test's\nnameserver 127.0.0.1\n").unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg(repo_root().join("deploy/nginx/wxpay-gateway-env.sh"))
        .env("WXPAY_NGINX_DIR", out)
        .env("WXPAY_RESOLV_CONF", &resolv)
        .env_remove("TRUSTED_PROXIES")
        .env_remove("ADMIN_ALLOW_FROM");
    if let Some(v) = &env.trusted_proxies {
        cmd.env("TRUSTED_PROXIES", v);
    }
    if let Some(v) = &env.admin_allow_from {
        cmd.env("ADMIN_ALLOW_FROM", v);
    }
    cmd.output().expect("run sh")
}

/// nginx as a child process; killed, and its folder removed, on drop. Besides
/// the gateway it serves a stand-in for the TLS terminator in front of it (a
/// server block on its own port that proxies everything to the gateway,
/// appending the client's address to X-Forwarded-For, as a load balancer
/// does); its connections to the gateway come from 127.0.0.1.
pub struct Nginx {
    child: Child,
    dir: PathBuf,
    pub port: u16,
    pub terminator_port: u16,
}

impl Nginx {
    /// Starts gateway.conf with each upstream server (`auth-service:8081`, …)
    /// replaced by the loopback port `upstream(host, port)` gives, `web_root`
    /// as the web root and `env` rendered by the gateway's own script, and
    /// waits until it accepts connections.
    pub async fn start(
        bin: &Path,
        upstream: impl Fn(&str, u16) -> u16,
        web_root: &Path,
        env: &GatewayEnv,
    ) -> Nginx {
        let to_loopback = |host: &str, port: u16| format!("127.0.0.1:{}", upstream(host, port));
        Self::start_with(bin, to_loopback, web_root, env, NginxOptions::default()).await
    }

    /// As [`Nginx::start`], but each service's `host:port` is replaced by
    /// whatever `upstream` gives (a name, for the run-time resolution test),
    /// with `opts`.
    pub async fn start_with(
        bin: &Path,
        upstream: impl Fn(&str, u16) -> String,
        web_root: &Path,
        env: &GatewayEnv,
        opts: NginxOptions,
    ) -> Nginx {
        let dns_port = opts.dns_port;
        let dir = temp_dir("nginx");
        let rendered = render_env(env, &dir.join("wxpay"));
        assert!(
            rendered.status.success(),
            "wxpay-gateway-env.sh failed: {}",
            String::from_utf8_lossy(&rendered.stderr)
        );
        if let Some(dns) = dns_port {
            let resolver = dir.join("wxpay/resolver.conf");
            let text = std::fs::read_to_string(&resolver).unwrap();
            let text = replace_once(
                &text,
                "resolver 127.0.0.1 ",
                &format!("resolver 127.0.0.1:{dns} "),
            );
            std::fs::write(&resolver, text).unwrap();
        }
        let port = free_port();
        let terminator_port = free_port();
        let mut text = gateway_conf_for_test(&upstream, port, web_root, &dir);
        if let Some(secs) = opts.read_timeout_secs {
            text = replace_once(
                &text,
                "proxy_read_timeout 30s;",
                &format!("proxy_read_timeout {secs}s;"),
            );
        }
        std::fs::write(dir.join("gateway.conf"), text).unwrap();
        let main_path = write_main_conf(&dir, port, terminator_port);
        check_config(bin, &dir, &main_path);
        let d = dir.display();
        let child = Command::new(bin)
            .args([
                "-p",
                &format!("{d}/"),
                "-e",
                &format!("{d}/error.log"),
                "-c",
            ])
            .arg(&main_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .expect("spawn nginx");
        let mut nginx = Nginx {
            child,
            dir,
            port,
            terminator_port,
        };
        nginx.wait_until_accepting(port).await;
        nginx.wait_until_accepting(terminator_port).await;
        nginx
    }

    async fn wait_until_accepting(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("nginx exited ({status}):\n{}", self.logs());
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
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

    /// The gateway, reached directly.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The gateway behind its TLS terminator's stand-in.
    pub fn terminator_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.terminator_port)
    }

    /// What the gateway's access log holds so far (nginx writes each line
    /// when the request completes, before the next one is read).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gateway-access.log")).unwrap_or_default()
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

/// What a test changes beyond the addresses.
#[derive(Debug, Clone, Copy, Default)]
pub struct NginxOptions {
    /// The resolver nginx asks is the DNS stand-in on this port of
    /// 127.0.0.1 (without one, nothing that needs resolving is configured).
    pub dns_port: Option<u16>,
    /// `proxy_read_timeout` in place of the shipped 30 s, to time out fast.
    pub read_timeout_secs: Option<u32>,
}

/// gateway.conf as shipped, but for the lines the test must point elsewhere:
/// upstream servers, the listen port, the web root, the access log and the
/// folder of the rendered lists.
fn gateway_conf_for_test(
    upstream: &impl Fn(&str, u16) -> String,
    port: u16,
    web_root: &Path,
    dir: &Path,
) -> String {
    let conf = GatewayConf::load();
    let mut text = read_repo("deploy/nginx/gateway.conf");
    for (name, servers) in &conf.upstreams {
        for (host, port) in servers {
            let to = upstream(host, *port);
            let from = format!(" {host}:{port};");
            let line = text
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("set {name} ")) && l.ends_with(&from))
                .unwrap_or_else(|| panic!("gateway.conf has no `set {name} {host}:{port};`"))
                .to_owned();
            text = replace_once(&text, &line, &line.replace(&from, &format!(" {to};")));
        }
    }
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
    text = replace_once(
        &text,
        &format!("access_log {ACCESS_LOG} "),
        &format!("access_log {}/gateway-access.log ", dir.display()),
    );
    let includes = text.matches(&format!("include {RENDERED_DIR}")).count();
    assert_eq!(
        includes, 3,
        "gateway.conf includes the two rendered lists and the resolver from {RENDERED_DIR}"
    );
    text.replace(RENDERED_DIR, &format!("{}/wxpay/", dir.display()))
}

/// The main nginx.conf around gateway.conf: one process (`master_process
/// off`), so that killing the child on drop leaves no orphaned worker behind,
/// logs and temporary files in `dir`, and the terminator's server block.
fn write_main_conf(dir: &Path, port: u16, terminator_port: u16) -> PathBuf {
    let d = dir.display();
    // As root, nginx would switch to `nobody`, who may not enter the
    // temporary folders; the test's own user is the right one.
    let user = if std::fs::metadata(dir).unwrap().uid() == 0 {
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
         default_type application/octet-stream;\n  include {d}/gateway.conf;\n\
         \n  # The TLS terminator's stand-in.\n  server {{\n    listen 127.0.0.1:{terminator_port};\n    \
         location / {{\n      proxy_pass http://127.0.0.1:{port};\n      proxy_set_header Host $host;\n      \
         proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n      \
         proxy_set_header X-Forwarded-Proto https;\n    }}\n  }}\n}}\n"
    );
    let main_path = dir.join("nginx.conf");
    std::fs::write(&main_path, main).unwrap();
    main_path
}

/// A config error is reported as such, not as a start-up timeout.
fn check_config(bin: &Path, dir: &Path, main_path: &Path) {
    let d = dir.display();
    let check = Command::new(bin)
        .args([
            "-t",
            "-q",
            "-p",
            &format!("{d}/"),
            "-e",
            &format!("{d}/error.log"),
            "-c",
        ])
        .arg(main_path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "nginx -t refuses gateway.conf:\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "gateway.conf should contain `{from}` exactly once (the test rewrites it)"
    );
    text.replacen(from, to, 1)
}

// ----------------------------------------------------------------- client ----

fn client_builder() -> reqwest::ClientBuilder {
    shared::http_client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .no_proxy()
        .timeout(Duration::from_secs(30))
}

pub fn client() -> reqwest::Client {
    client_builder().build().unwrap()
}

/// A client whose connections come from `ip` (any 127.x address is on
/// Linux's loopback interface), to play one of several clients.
pub fn client_from(ip: &str) -> reqwest::Client {
    client_builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

pub async fn json_of(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let body =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("HTTP {status}, not JSON: {text}"));
    (status, body)
}

pub fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// An answer the gateway makes itself: the envelope (API.md §3), as JSON,
/// with a request id.
pub async fn assert_gateway_envelope(res: reqwest::Response, status: u16, envelope: Value) {
    let id = header(&res, "x-request-id").expect("the gateway's answer names a request id");
    assert!(!id.is_empty());
    assert_eq!(
        header(&res, "content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(json_of(res).await, (status, envelope));
}

/// The gateway's own 404 for what it does not route: envelope and request id.
pub async fn assert_no_route(res: reqwest::Response) {
    assert_gateway_envelope(
        res,
        404,
        json!({"code": 1004, "data": null, "message": "no such route"}),
    )
    .await;
}

// -------------------------------------------------- recording upstreams ----

#[derive(Debug, Clone)]
pub struct Seen {
    pub uri: String,
    pub peer_port: u16,
    pub headers: BTreeMap<String, String>,
}

/// An HTTP server that answers every request with what it received, as JSON,
/// and remembers it. `?echo_status=N` makes it answer status N.
pub struct Recorder {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
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
        headers: headers.clone(),
    });
    let status = req
        .query_string()
        .split('&')
        .find_map(|kv| kv.strip_prefix("echo_status="))
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    // `?echo_delay_ms=N`: a service slower than the gateway will wait for.
    if let Some(ms) = req
        .query_string()
        .split('&')
        .find_map(|kv| kv.strip_prefix("echo_delay_ms="))
        .and_then(|s| s.parse().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
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
        Self::start_on(name, TcpListener::bind("127.0.0.1:0").unwrap())
    }

    /// A recorder answering as `name` on `listener` (a service's container
    /// at an address of its own).
    pub fn start_on(name: &'static str, listener: TcpListener) -> Recorder {
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

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }

    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request arrived")
    }
}

/// One recorder per service the gateway proxies to, and the sandbox's.
pub struct Recorders {
    pub by_service: BTreeMap<String, Recorder>,
}

impl Recorders {
    pub async fn start() -> Recorders {
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
    pub fn port_for(&self, host: &str, port: u16) -> u16 {
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

    pub fn total(&self) -> usize {
        self.by_service.values().map(Recorder::count).sum()
    }

    pub async fn stop(self) {
        for r in self.by_service.into_values() {
            r.handle.stop(false).await;
        }
    }
}

/// A gateway in front of recorders, with the demo page as its web root.
pub struct RecordedGateway {
    pub recorders: Recorders,
    pub nginx: Nginx,
    pub http: reqwest::Client,
    pub base: String,
    web: PathBuf,
}

impl RecordedGateway {
    pub async fn start(bin: &Path, env: &GatewayEnv) -> RecordedGateway {
        let recorders = Recorders::start().await;
        let web = web_root_with_demo_page();
        let nginx = Nginx::start(bin, |h, p| recorders.port_for(h, p), &web, env).await;
        let base = nginx.base();
        RecordedGateway {
            recorders,
            nginx,
            http: client(),
            base,
            web,
        }
    }

    pub fn recorder(&self, service: &str) -> &Recorder {
        &self.recorders.by_service[service]
    }

    pub async fn stop(self) {
        drop(self.nginx);
        self.recorders.stop().await;
        let _ = std::fs::remove_dir_all(self.web);
    }
}

pub fn web_root_with_demo_page() -> PathBuf {
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

// ------------------------------------------------------------------- DNS ----

/// A DNS server on 127.0.0.1 (UDP, a port of its own) that answers A
/// queries from a table the test edits, as Docker's embedded DNS answers
/// for the containers that exist: a name not in the table is NXDOMAIN, every
/// answer carries Docker's TTL of 600 s (gateway.conf's `valid` must
/// override it). Enough DNS for nginx's resolver, not a general server.
pub struct Dns {
    pub port: u16,
    pub names: Arc<Mutex<BTreeMap<String, std::net::Ipv4Addr>>>,
    pub queries: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Dns {
    pub async fn start() -> Dns {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        let names = Arc::new(Mutex::new(BTreeMap::new()));
        let queries = Arc::new(AtomicUsize::new(0));
        let (table, count) = (names.clone(), queries.clone());
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let reply = dns_reply(&buf[..n], &table.lock().unwrap());
                if let Some(reply) = reply {
                    let _ = socket.send_to(&reply, from).await;
                }
            }
        });
        Dns {
            port,
            names,
            queries,
            task,
        }
    }

    pub fn set(&self, name: &str, ip: std::net::Ipv4Addr) {
        self.names.lock().unwrap().insert(name.to_owned(), ip);
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The reply to one query (RFC 1035 4.1): the question echoed, one A record
/// for a known name asked for A, no record for another type of a known name,
/// NXDOMAIN for an unknown one.
fn dns_reply(q: &[u8], names: &BTreeMap<String, std::net::Ipv4Addr>) -> Option<Vec<u8>> {
    if q.len() < 12 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    let mut labels = Vec::new();
    let mut i = 12;
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let question_end = i + 4;
    let name = labels.join(".");
    let answer = names.get(&name).copied();
    let mut r = Vec::with_capacity(question_end + 16);
    r.extend_from_slice(&q[0..2]); // id
    let rd = q[2] & 0x01;
    r.push(0x84 | rd); // QR, authoritative, RD copied
    r.push(if answer.is_some() { 0x00 } else { 0x03 }); // NOERROR / NXDOMAIN
    let with_a = answer.filter(|_| qtype == 1);
    r.extend_from_slice(&[0, 1, 0, u8::from(with_a.is_some()), 0, 0, 0, 0]);
    r.extend_from_slice(&q[12..question_end]);
    if let Some(ip) = with_a {
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]); // name pointer, A, IN
        r.extend_from_slice(&600u32.to_be_bytes());
        r.extend_from_slice(&[0, 4]);
        r.extend_from_slice(&ip.octets());
    }
    Some(r)
}
