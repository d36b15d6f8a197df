//! The binary reads `.env` from its working directory (so that
//! `cp .env.example .env` works for `cargo run` as for docker compose), and
//! the environment wins over it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_auth-service");

/// A fresh working directory holding a `.env` that configures the service
/// completely (port 0, a SQLite file in the directory).
fn workdir() -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("wxpay-dotenv-{}", shared::random::alphanumeric(12)));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(".env"),
        format!(
            "# as in .env.example\n\
             SESSION_SECRET=\"dotenv-session-secret-0123456789abcdef\"\n\
             WX_APP_ID=wxdotenv0000000001\n\
             WX_APP_SECRET=dotenv-app-secret\n\
             LISTEN_ADDR=127.0.0.1:0\n\
             DATABASE_URL=sqlite://{}/auth.db\n",
            dir.display()
        ),
    )
    .unwrap();
    dir
}

/// Runs the binary in `dir` with only `vars` in its environment; answers
/// whether it got to listening within the deadline, and what it printed.
fn run(dir: &PathBuf, vars: &[(&str, &str)]) -> (bool, String) {
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .env_clear()
        .envs(vars.iter().copied())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let mut out = String::new();
    let mut listening = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                out.push_str(&line);
                out.push('\n');
                if line.contains("auth-service listening") {
                    listening = true;
                    break;
                }
            }
            // Both streams closed: the process ended.
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    (listening, out)
}

#[test]
fn the_binary_starts_on_dotenv_alone() {
    let dir = workdir();
    let (listening, out) = run(&dir, &[]);
    assert!(listening, "did not start on .env alone:\n{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_environment_wins_over_dotenv() {
    let dir = workdir();
    // Too short a key in the environment: refused, though .env's is good.
    let (listening, out) = run(&dir, &[("SESSION_SECRET", "short")]);
    assert!(
        !listening,
        "started with the environment's bad SESSION_SECRET:\n{out}"
    );
    assert!(out.contains("SESSION_SECRET"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_dotenv_the_missing_variable_is_named() {
    let dir = workdir();
    std::fs::remove_file(dir.join(".env")).unwrap();
    let (listening, out) = run(&dir, &[]);
    assert!(!listening, "{out}");
    assert!(out.contains("SESSION_SECRET"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
