//! What the two headless-Chromium tests (`e2e_browser`, the demo page;
//! `console_browser`, the operator console) share: the browser's path, a
//! temporary folder for the stack's SQLite file, and the check of what this
//! machine lacks to run them.

#![allow(
    clippy::expect_used,
    reason = "test support: a panic is how it reports a failure"
)]

use std::path::{Path, PathBuf};
use std::process::Stdio;

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// A folder removed on drop, for the stack's SQLite file.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `wxpay-<what>-<random>` under the system's temporary folder.
    pub fn new(what: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("wxpay-{what}-{}", shared::random::alphanumeric(12)));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("stack/ sits in the workspace")
        .to_path_buf()
}

/// What this machine lacks to run the browser, with how to get it.
pub fn missing_tools(root: &Path) -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).is_file() {
        missing.push("/usr/bin/chromium (apt-get install chromium)");
    }
    let node = std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        missing.push("node (apt-get install nodejs npm)");
    }
    if !root
        .join("e2e/node_modules/playwright-core/package.json")
        .is_file()
    {
        missing.push("e2e/node_modules (cd e2e && npm ci)");
    }
    missing
}

/// Runs `node <script> <url>` from the workspace root with `E2E_OUT=out` and
/// `vars`, its output captured; a run past `timeout` is killed (its browser
/// with it) and fails the test.
pub async fn run_node(
    root: &Path,
    script: &str,
    url: &str,
    out: &Path,
    vars: &[(&str, String)],
    timeout: std::time::Duration,
) -> std::process::Output {
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(script)
        .arg(url)
        .current_dir(root)
        .env("E2E_OUT", out)
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().expect("node starts");
    tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{script} finishes within {timeout:?}"))
        .expect("node runs")
}
