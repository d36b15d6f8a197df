//! The sample mini program (`clients/miniprogram/`): runs its node tests
//! (`node --test clients/miniprogram/test/*.test.js`), which start this
//! package's `stack` binary themselves (ports 0, a temporary SQLite file) and
//! drive the mini program's logic through a stand-in `wx` backed by the
//! sandbox: sign-in, profile, payments confirmed and cancelled, server errors.
//!
//! Needs `node` (20 or later); without it the test is skipped with the
//! reason, unless CI=true.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Per node test; each takes well under a second, so this only bounds a hang.
const TEST_TIMEOUT_MS: &str = "60000";

fn miniprogram_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("stack/ sits in the workspace")
        .join("clients/miniprogram")
}

/// node's major version, if node runs here.
fn node_major() -> Option<u32> {
    let out = Command::new("node")
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let version = String::from_utf8_lossy(&out.stdout);
    version
        .trim()
        .strip_prefix('v')?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// The `*.test.js` files, named one by one: given a folder, node 20 would also
/// run `test/support/*.js` as test files.
fn test_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("test"))
        .expect("clients/miniprogram/test exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".test.js"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_mini_program_signs_in_saves_the_profile_and_pays_against_stack() {
    let node_ok = node_major().is_some_and(|v| v >= 20);
    if !node_ok {
        let reason = "node 20 or later is not installed (apt-get install nodejs)";
        testkit::skip_or_fail(reason);
        return;
    }

    let dir = miniprogram_dir();
    let files = test_files(&dir);
    assert!(files.len() >= 2, "the node tests are where they should be");
    let output = Command::new("node")
        .arg("--test")
        .arg(format!("--test-timeout={TEST_TIMEOUT_MS}"))
        .args(&files)
        .current_dir(&dir)
        .env("WXPAY_STACK_BIN", env!("CARGO_BIN_EXE_stack"))
        .stdin(Stdio::null())
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("--- node --test stdout\n{stdout}");
    eprintln!(
        "--- node --test stderr\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "node --test failed ({})",
        output.status
    );
    // A run that found no tests also exits 0.
    let passed: u32 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("# pass "))
        .and_then(|n| n.trim().parse().ok())
        .expect("node reports how many tests passed");
    assert!(passed >= 10, "only {passed} node tests passed");
}
