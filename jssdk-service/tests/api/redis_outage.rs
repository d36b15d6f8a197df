use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use shared::cache::Cache;

use crate::common::*;

/// A redis-server of this test's own on a unix socket: no port to collide on,
/// and it can be killed and restarted mid-test.
struct OwnRedis {
    socket: PathBuf,
    child: Option<Child>,
}

impl OwnRedis {
    /// None (outside CI) when no redis-server is installed.
    fn start() -> Option<Self> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("redis-server must be installed when CI=true");
            }
            eprintln!("skipping: redis-server is not installed");
            return None;
        }
        let socket = std::env::temp_dir().join(format!(
            "jssdk-test-{}.sock",
            shared::random::alphanumeric(12)
        ));
        let mut redis = OwnRedis {
            socket,
            child: None,
        };
        redis.spawn();
        Some(redis)
    }

    fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&self.socket)
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
    }

    /// Polls PING until it answers, with a deadline.
    async fn wait_ready(&self) {
        let url = self.url();
        eventually("redis-server answers PING", Duration::from_secs(15), || {
            let url = url.clone();
            async move {
                match Cache::connect(Some(&url), "probe:").await {
                    Ok(c) => c.ping().await.is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await;
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill our redis-server");
            child.wait().expect("reap our redis-server");
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.socket);
    }
}

async fn readyz(client: &reqwest::Client, base: &str) -> u16 {
    client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn redis_stopped_at_runtime_serves_the_local_copy_then_503_then_recovers() {
    let Some(mut redis) = OwnRedis::start() else {
        return;
    };
    redis.wait_ready().await;
    let sb = start_sandbox().await;
    let app = spawn_instance(&sb, &[("REDIS_URL", &redis.url())], None).await;
    let client = client();
    let page = "https://shop.example/p";
    assert_eq!(readyz(&client, &app.base).await, 200);

    let (status, body) = get_json(&client, &config_url(&app.base, page)).await;
    assert_eq!(status, 200, "{body}");
    let first = current_ticket(&sb);
    assert_signed_with(&body, &first, page);

    redis.kill();
    let base = app.base.clone();
    eventually(
        "readyz reports the cache down",
        Duration::from_secs(15),
        || {
            let (client, base) = (client.clone(), base.clone());
            async move { readyz(&client, &base).await == 503 }
        },
    )
    .await;
    // Still valid in the process: served, and correctly signed.
    for _ in 0..3 {
        let (status, body) = get_json(&client, &config_url(&app.base, page)).await;
        assert_eq!(status, 200, "{body}");
        assert_signed_with(&body, &first, page);
    }

    // Once the local copy has expired: 503/5003, never a signature over a dead
    // ticket, and no fetch without the lock.
    sb.state().advance(Duration::from_secs(7201));
    let (status, body) = get_json(&client, &config_url(&app.base, page)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], 5003);
    assert_eq!(sb.state().calls(STABLE_TOKEN_PATH), 1);
    assert_eq!(sb.state().calls(TICKET_PATH), 1);

    // Redis back: ready again, and a new ticket is fetched once.
    redis.spawn();
    redis.wait_ready().await;
    eventually("readyz recovers", Duration::from_secs(20), || {
        let (client, base) = (client.clone(), base.clone());
        async move { readyz(&client, &base).await == 200 }
    })
    .await;
    let (status, body) = get_json(&client, &config_url(&app.base, page)).await;
    assert_eq!(status, 200, "{body}");
    let second = current_ticket(&sb);
    assert_ne!(second, first);
    assert_signed_with(&body, &second, page);
    assert_eq!(sb.state().calls(STABLE_TOKEN_PATH), 2);
    assert_eq!(sb.state().calls(TICKET_PATH), 2);
}
