//! A `redis-server` of our own on a unix socket: nothing shared with other
//! runs (the services use a fixed key prefix), no port to collide on, and it
//! can be killed and started again mid-run (the fault tests do).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shared::cache::Cache;

pub struct RedisServer {
    socket: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Whether `redis-server` can be run here.
    pub fn installed() -> bool {
        Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts one with its socket in `dir` and waits until it answers PING.
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        let socket = dir.join(format!("redis-{}.sock", shared::random::alphanumeric(8)));
        let mut server = RedisServer {
            socket,
            child: None,
        };
        server.restart().await?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    /// Starts the server (again, after `kill`) and waits until it answers.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "redis-server is already running");
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&self.socket)
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start redis-server: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(cache) = Cache::connect(Some(&self.url()), "probe:").await
                && cache.ping().await.is_ok()
            {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "redis-server did not answer");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.socket);
    }
}
