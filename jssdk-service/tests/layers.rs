//! The crate's layers depend one way: `http` (actix) → the domain (`state`,
//! `signature`) → `tokens` (cache and WeChat). Read from the sources, so that
//! an import in the wrong direction fails here rather than in a review.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// Every `.rs` file under `dir`, as (path relative to `src/`, contents).
fn sources(dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path: PathBuf = entry.expect("directory entry").path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path
                .strip_prefix(SRC)
                .expect("under src/")
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&path).expect("source is readable");
            files.push((relative, text));
        }
    }
    files
}

/// The code of a file without its comments, so that a doc line naming a
/// crate is not taken for a use of it.
fn code(text: &str) -> String {
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Files (other than those `allowed` admits) whose code mentions `needle`.
fn offenders(needle: &str, allowed: impl Fn(&str) -> bool) -> Vec<String> {
    sources(Path::new(SRC))
        .into_iter()
        .filter(|(path, text)| !allowed(path) && code(text).contains(needle))
        .map(|(path, _)| path)
        .collect()
}

#[test]
fn actix_stays_in_the_http_layer_and_startup() {
    let found = offenders("actix_web", |path| {
        path.starts_with("http/") || path == "startup.rs" || path == "main.rs"
    });
    assert!(
        found.is_empty(),
        "actix_web outside http/ and startup: {found:?}"
    );
}

#[test]
fn only_startup_and_the_crate_root_reach_into_http() {
    let found = offenders("crate::http", |path| {
        path.starts_with("http/") || path == "startup.rs" || path == "lib.rs"
    });
    assert!(
        found.is_empty(),
        "the HTTP layer is used from below: {found:?}"
    );
}

#[test]
fn tokens_know_nothing_of_the_layers_above() {
    let found: Vec<String> = ["crate::state", "crate::JssdkState", "crate::signature"]
        .into_iter()
        .flat_map(|needle| offenders(needle, |path| !path.starts_with("tokens/")))
        .collect();
    assert!(found.is_empty(), "tokens/ depends on the domain: {found:?}");
}

#[test]
fn the_checks_see_the_sources() {
    // A check over no files passes whatever the imports: make sure it reads them.
    let files = sources(Path::new(SRC));
    assert!(files.iter().any(|(p, _)| p == "http/mod.rs"), "{files:?}");
    assert!(
        files.iter().any(|(p, _)| p == "tokens/manager.rs"),
        "{files:?}"
    );
}
