//! What the fault tests share: the sandbox and services on port 0, polling
//! with a deadline, and a TCP proxy that can cut a connection path.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use shared::config::Env;
use testkit::eventually;
use wechat_sandbox::{SANDBOX_MP_APPID, Sandbox, SandboxConfig};

pub const SESSION_SECRET: &str = "bench-faults-session-secret-0123456789abc";

pub async fn start_sandbox(time_scale: f64) -> Sandbox {
    let mut cfg = SandboxConfig::for_tests();
    cfg.time_scale = time_scale;
    Sandbox::start(cfg).await.expect("sandbox starts")
}

pub fn client() -> reqwest::Client {
    shared::http_client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The variables a service needs to talk to `sb`, plus `extra` (which wins).
pub fn env_for(sb: &Sandbox, base: &str, extra: &[(&str, &str)]) -> Env {
    let mut env = Env::from_pairs(sb.service_env());
    env.extend([
        ("SESSION_SECRET", SESSION_SECRET),
        ("PUBLIC_BASE_URL", base),
        ("WECHAT_RETRY_BACKOFF_MS", "10"),
        ("RECONCILE_INTERVAL_SECONDS", "0"),
        ("LOGIN_RATE_LIMIT", "0"),
    ]);
    env.extend(extra.iter().copied());
    env
}

pub fn bind() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let base = format!("http://{}", listener.local_addr().unwrap());
    (listener, base)
}

pub async fn status_of(client: &reqwest::Client, url: &str) -> u16 {
    client
        .get(url)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Waits for `url` to answer `status`.
pub async fn wait_status(client: &reqwest::Client, url: &str, status: u16, within: Duration) {
    let what = format!("{url} answers {status}");
    eventually(&what, within, || async {
        status_of(client, url).await == status
    })
    .await;
}

/// GET; the status and the JSON body.
pub async fn get_json(req: reqwest::RequestBuilder) -> (u16, Value) {
    let res = req.send().await.expect("request sent");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let body =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, body)
}

/// A TCP proxy on 127.0.0.1:0 in front of `upstream` that can be cut (every
/// open connection dropped, new ones closed at once, as when the network
/// to the database goes) and restored.
pub struct CuttableProxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl CuttableProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let live: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (c, l) = (cut.clone(), live.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if c.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                let mut live = l.lock().unwrap();
                live.retain(|t| !t.is_finished());
                live.push(task);
            }
        });
        CuttableProxy {
            addr,
            cut,
            live,
            accept,
        }
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for task in self.live.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for task in self.live.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

/// The all-in-one `stack` (three services on one port, its own sandbox) on
/// port 0 over a fresh SQLite file: where "the other routes keep answering"
/// is one process, as behind the gateway.
pub struct StackUnderTest {
    pub base: String,
    pub sandbox: Arc<wechat_sandbox::SandboxState>,
    db_file: std::path::PathBuf,
}

impl Drop for StackUnderTest {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.db_file.display()));
        }
    }
}

pub async fn start_stack(extra: &[(&str, &str)]) -> StackUnderTest {
    let db_file = std::env::temp_dir().join(format!(
        "wxpay-bench-stack-{}.db",
        shared::random::alphanumeric(12)
    ));
    let db_url = format!("sqlite://{}", db_file.display());
    let mut env = Env::from_pairs([
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("SANDBOX_ADDR", "127.0.0.1:0"),
        ("SESSION_SECRET", SESSION_SECRET),
        ("DATABASE_URL", db_url.as_str()),
        ("WECHAT_RETRY_BACKOFF_MS", "10"),
        ("RECONCILE_INTERVAL_SECONDS", "0"),
        ("LOGIN_RATE_LIMIT", "0"),
    ]);
    env.extend(extra.iter().copied());
    let stack = stack::Stack::start(env).await.expect("stack starts");
    let base = format!("http://{}", stack.addr());
    let sandbox = stack.sandbox().expect("the stack's sandbox").state();
    tokio::spawn(stack.run_until_stopped());
    wait_status(
        &client(),
        &format!("{base}/readyz"),
        200,
        Duration::from_secs(20),
    )
    .await;
    StackUnderTest {
        base,
        sandbox,
        db_file,
    }
}

/// `GET /api/mp/getSession` with a fresh code of sandbox user u1.
pub fn get_session(client: &reqwest::Client, app: &StackUnderTest) -> reqwest::RequestBuilder {
    let code = app.sandbox.issue_js_code(SANDBOX_MP_APPID, "u1");
    client
        .get(format!("{}/api/mp/getSession", app.base))
        .query(&[("code", code)])
}
