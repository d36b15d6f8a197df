//! Starting the three services: as child processes from their release
//! binaries (what the figures are for: each process's own memory and start
//! time), or inside this process (the smoke test: nothing to build first).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shared::config::Env;

/// How the services are started.
#[derive(Debug, Clone)]
pub enum Launch {
    /// `auth-service`, `jssdk-service` and `pay-service` from this folder.
    Binaries(PathBuf),
    InProcess,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Auth,
    Jssdk,
    Pay,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Auth, Kind::Jssdk, Kind::Pay];

    pub fn binary(self) -> &'static str {
        match self {
            Kind::Auth => "auth-service",
            Kind::Jssdk => "jssdk-service",
            Kind::Pay => "pay-service",
        }
    }

    /// The database file stem, as the services' defaults name it.
    pub fn short(self) -> &'static str {
        self.binary().trim_end_matches("-service")
    }
}

/// A running service.
pub struct Service {
    pub kind: Kind,
    pub base: String,
    /// The process to measure (this one when in-process).
    pub pid: u32,
    /// From spawning to the first 200 on /readyz.
    pub ready_after: Duration,
    child: Option<Child>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Service {
    /// Starts `kind` with `vars` (LISTEN_ADDR and PUBLIC_BASE_URL are added)
    /// and waits for /readyz to answer 200.
    pub async fn start(
        kind: Kind,
        launch: &Launch,
        vars: &[(String, String)],
        client: &reqwest::Client,
    ) -> anyhow::Result<Service> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let base = format!("http://{addr}");
        let mut vars = vars.to_vec();
        vars.push(("LISTEN_ADDR".into(), addr.to_string()));
        vars.push(("PUBLIC_BASE_URL".into(), base.clone()));
        let started = Instant::now();
        let mut service = match launch {
            Launch::Binaries(dir) => {
                // A child binds the address itself: the port is released here
                // and taken again there, a small race accepted on loopback.
                drop(listener);
                let log = std::fs::File::create(
                    std::env::temp_dir().join(format!("wxpay-bench-{}.log", kind.binary())),
                )?;
                let child = Command::new(dir.join(kind.binary()))
                    .env_clear()
                    .envs(vars.iter().map(|(k, v)| (k, v)))
                    .stdin(Stdio::null())
                    .stdout(log.try_clone()?)
                    .stderr(log)
                    .spawn()
                    .map_err(|e| {
                        anyhow::anyhow!("cannot run {}: {e}", dir.join(kind.binary()).display())
                    })?;
                Service {
                    kind,
                    base,
                    pid: child.id(),
                    ready_after: Duration::ZERO,
                    child: Some(child),
                    task: None,
                }
            }
            Launch::InProcess => {
                let env = Env::from_pairs(vars);
                let task = match kind {
                    Kind::Auth => {
                        let cfg = auth_service::AuthConfig::from_env(&env)?;
                        let app = auth_service::with_listener(cfg, listener).await?;
                        tokio::spawn(app.run_until_stopped())
                    }
                    Kind::Jssdk => {
                        let cfg = jssdk_service::JssdkConfig::from_env(&env)?;
                        let app = jssdk_service::with_listener(cfg, listener).await?;
                        tokio::spawn(app.run_until_stopped())
                    }
                    Kind::Pay => {
                        let cfg = pay_service::PayConfig::from_env(&env)?;
                        let app = pay_service::with_listener(cfg, listener).await?;
                        tokio::spawn(app.run_until_stopped())
                    }
                };
                Service {
                    kind,
                    base,
                    pid: std::process::id(),
                    ready_after: Duration::ZERO,
                    child: None,
                    task: Some(task),
                }
            }
        };
        service.wait_ready(client, Duration::from_secs(60)).await?;
        service.ready_after = started.elapsed();
        Ok(service)
    }

    async fn wait_ready(
        &mut self,
        client: &reqwest::Client,
        within: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        let url = format!("{}/readyz", self.base);
        loop {
            if let Ok(res) = client.get(&url).send().await
                && res.status() == 200
            {
                return Ok(());
            }
            if let Some(child) = &mut self.child
                && let Some(status) = child.try_wait()?
            {
                anyhow::bail!(
                    "{} exited with {status} before it was ready (log: {})",
                    self.kind.binary(),
                    std::env::temp_dir()
                        .join(format!("wxpay-bench-{}.log", self.kind.binary()))
                        .display()
                );
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} not ready within {within:?}",
                self.kind.binary()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The address the service listens on.
    pub fn addr(&self) -> anyhow::Result<std::net::SocketAddr> {
        let addr = self.base.trim_start_matches("http://");
        addr.parse()
            .map_err(|e| anyhow::anyhow!("{} is not an address: {e}", self.base))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn is_child(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
