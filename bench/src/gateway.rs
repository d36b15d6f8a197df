//! The real gateway in front of the services: `deploy/nginx/gateway.conf` as
//! shipped, in nginx, with only what must point elsewhere rewritten (the
//! services' `set $wxpay_… host:port;` lines, the `listen` line, the web root,
//! the access log's path and the folder of the lists
//! `deploy/nginx/wxpay-gateway-env.sh` renders, which runs as the image runs
//! it). As in the image, nginx runs a master and one worker per CPU; it is
//! stopped (SIGTERM to its master, which takes its workers down) on drop.
//!
//! `TRUSTED_PROXIES=127.0.0.1`: the bench plays the load balancer in front,
//! so that notifications can name their senders in `X-Forwarded-For`. WeChat
//! sends from many addresses; from one, the gateway's notification limit
//! (50/s per address, burst 100) would answer 429 past that, by design.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// nginx, where Debian puts it or on PATH.
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

pub struct Gateway {
    child: Option<Child>,
    dir: PathBuf,
    pub base: String,
}

/// The services' addresses (`host:port`) for the gateway's `set` lines.
pub struct Upstreams<'a> {
    pub auth: &'a str,
    pub jssdk: &'a str,
    pub pay: &'a str,
}

fn repo_root() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).to_path_buf()
}

/// Replaces the one line whose trimmed text starts with `prefix`.
fn replace_line(text: &str, prefix: &str, with: &str) -> anyhow::Result<String> {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with(prefix))
        .collect();
    anyhow::ensure!(
        lines.len() == 1,
        "gateway.conf: expected one line starting with {prefix:?}, found {}",
        lines.len()
    );
    Ok(text.replacen(lines[0], with, 1))
}

/// gateway.conf pointed at this run's services, port and folder.
pub fn rewrite_conf(conf: &str, up: &Upstreams, port: u16, dir: &Path) -> anyhow::Result<String> {
    let d = dir.display();
    let mut text = conf.to_owned();
    for (name, addr) in [
        ("$wxpay_auth", up.auth),
        ("$wxpay_jssdk", up.jssdk),
        ("$wxpay_pay", up.pay),
    ] {
        text = replace_line(
            &text,
            &format!("set {name} "),
            &format!("    set {name} {addr};"),
        )?;
    }
    text = replace_line(
        &text,
        "listen ",
        &format!("    listen 127.0.0.1:{port} default_server;"),
    )?;
    text = replace_line(&text, "root ", &format!("    root {d}/web;"))?;
    anyhow::ensure!(
        text.contains("/var/log/nginx/access.log") && text.contains("/etc/nginx/wxpay/"),
        "gateway.conf: the access log or the rendered lists moved"
    );
    Ok(text
        .replace("/var/log/nginx/access.log", &format!("{d}/access.log"))
        .replace("/etc/nginx/wxpay/", &format!("{d}/wxpay/")))
}

impl Gateway {
    pub async fn start(nginx: &Path, up: &Upstreams<'_>) -> anyhow::Result<Gateway> {
        let dir = std::env::temp_dir().join(format!(
            "wxpay-bench-nginx-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(dir.join("web"))?;
        let resolv = dir.join("resolv.conf");
        std::fs::write(&resolv, "nameserver 127.0.0.1\n")?;
        let rendered = Command::new("sh")
            .arg(repo_root().join("deploy/nginx/wxpay-gateway-env.sh"))
            .env("WXPAY_NGINX_DIR", dir.join("wxpay"))
            .env("WXPAY_RESOLV_CONF", &resolv)
            .env("TRUSTED_PROXIES", "127.0.0.1")
            .env_remove("ADMIN_ALLOW_FROM")
            .output()?;
        anyhow::ensure!(
            rendered.status.success(),
            "wxpay-gateway-env.sh: {}",
            String::from_utf8_lossy(&rendered.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let conf = std::fs::read_to_string(repo_root().join("deploy/nginx/gateway.conf"))?;
        std::fs::write(
            dir.join("gateway.conf"),
            rewrite_conf(&conf, up, port, &dir)?,
        )?;
        let d = dir.display();
        // As root, nginx's workers would switch to `nobody`, who may not
        // enter the temporary folder.
        let user = if nix_uid_is_root() { "user root;" } else { "" };
        let main = format!(
            "daemon off;\n{user}\nworker_processes auto;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/client_body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
             scgi_temp_path {d}/scgi;\n  default_type application/octet-stream;\n  \
             include {d}/gateway.conf;\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), main)?;
        let child = Command::new(nginx)
            .arg("-p")
            .arg(format!("{d}/"))
            .arg("-e")
            .arg(format!("{d}/error.log"))
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log"))?)
            .spawn()?;
        let mut gateway = Gateway {
            child: Some(child),
            dir,
            base: format!("http://127.0.0.1:{port}"),
        };
        gateway.wait_until_accepting(port).await?;
        Ok(gateway)
    }

    async fn wait_until_accepting(&mut self, port: u16) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(child) = &mut self.child
                && let Some(status) = child.try_wait()?
            {
                anyhow::bail!("nginx exited ({status}): {}", self.logs());
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "nginx did not listen within 10 s: {}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn logs(&self) -> String {
        ["stderr.log", "error.log"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn nix_uid_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM to the master: it stops its workers and exits. A
            // SIGKILL would leave the workers behind.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_conf_is_pointed_at_the_run() {
        let conf = std::fs::read_to_string(repo_root().join("deploy/nginx/gateway.conf")).unwrap();
        let up = Upstreams {
            auth: "127.0.0.1:1",
            jssdk: "127.0.0.1:2",
            pay: "127.0.0.1:3",
        };
        let text = rewrite_conf(&conf, &up, 9, Path::new("/tmp/x")).unwrap();
        for line in [
            "set $wxpay_auth 127.0.0.1:1;",
            "set $wxpay_jssdk 127.0.0.1:2;",
            "set $wxpay_pay 127.0.0.1:3;",
            "listen 127.0.0.1:9 default_server;",
            "root /tmp/x/web;",
            "/tmp/x/access.log",
            "include /tmp/x/wxpay/",
        ] {
            assert!(text.contains(line), "{line}");
        }
        assert!(!text.contains("auth-service:8081") && !text.contains("/etc/nginx/wxpay/"));
    }
}
