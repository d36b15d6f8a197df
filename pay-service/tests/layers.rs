//! The layers of `src/` keep their one-way dependencies (README, "Where
//! things are"): `http` → `domain` → `db` / `wechat`, `jobs` → `domain`.
//! Reads every source file and fails naming each offending `file:line`:
//!
//! - `actix_*` (actix_web, actix_rt, …) outside `http/`, `startup.rs` and
//!   `main.rs`;
//! - `diesel` (and `diesel_*`) outside `db/`;
//! - `crate::http` from anything but `http/`, `startup.rs` and `lib.rs`;
//! - `crate::jobs` from `domain/`, `db/`, `wechat/` or the shared leaves
//!   (`config`, `error`, `metrics`);
//! - `crate::domain` from `db/`, `wechat/` or the shared leaves.
//!
//! Paths are resolved whether written `crate::x`, `use crate::{x, …}` or
//! `super::…` climbing out of a layer; comments and string literals are
//! ignored.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Where a file sits: the top-level module it belongs to (`http`, `db`,
/// `startup`, …) and its module path (for resolving `super::`).
struct Place {
    top: String,
    module: Vec<String>,
}

fn place(rel: &Path) -> Place {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().unwrap_or_default();
    let stem = file.trim_end_matches(".rs").to_owned();
    let mut module = parts;
    if !matches!(stem.as_str(), "mod" | "lib" | "main") {
        module.push(stem.clone());
    }
    let top = module.first().cloned().unwrap_or(stem);
    Place { top, module }
}

/// `text` with comments and the contents of string and char literals blanked
/// out (newlines kept, so offsets keep their lines).
fn code_only(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |ch: char| if ch == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < c.len() {
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(c[i]));
                    i += 1;
                }
            }
        } else if c[i] == 'r' && matches!(c.get(i + 1), Some('"' | '#')) && !ident_before(&c, i) {
            // Raw string: r"…", r#"…"#, …
            let mut j = i + 1;
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                out.push(c[i]);
                i += 1;
                continue;
            }
            out.push_str(&" ".repeat(j + 1 - i));
            i = j + 1;
            while i < c.len() {
                if c[i] == '"' && (1..=hashes).all(|k| c.get(i + k) == Some(&'#')) {
                    out.push_str(&" ".repeat(hashes + 1));
                    i += hashes + 1;
                    break;
                }
                out.push(blank(c[i]));
                i += 1;
            }
        } else if c[i] == '"' {
            out.push(' ');
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < c.len() {
                    out.push(blank(c[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c[i] == '\'' && c.get(i + 1) == Some(&'\\') {
            // An escaped char literal: '\n', '\'', '\u{..}'.
            out.push_str("  ");
            i += 2;
            while i < c.len() && c[i] != '\'' {
                out.push(' ');
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else if c[i] == '\'' && c.get(i + 2) == Some(&'\'') {
            out.push_str("   ");
            i += 3;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

fn ident_before(c: &[char], i: usize) -> bool {
    i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_')
}

fn is_ident(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

/// Every identifier in `code` with its byte offset.
fn idents(code: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, ch) in code.char_indices() {
        match (start, is_ident(ch)) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                out.push((s, &code[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &code[s..]));
    }
    out
}

/// The top-level modules each `crate::…` / `super::…` path in `code` reaches,
/// with the path's offset.
fn crate_paths(code: &str, at: &Place) -> Vec<(usize, String)> {
    let ids = idents(code);
    let mut out = Vec::new();
    for (n, &(offset, id)) in ids.iter().enumerate() {
        if id != "crate" && id != "super" {
            continue;
        }
        // Only the start of a path: not `…::super` nor `foo::crate`.
        if code[..offset].trim_end().ends_with("::") {
            continue;
        }
        let mut module: Vec<String> = if id == "crate" {
            Vec::new()
        } else {
            let mut m = at.module.clone();
            m.pop();
            m
        };
        let mut end = offset + id.len();
        let mut k = n + 1;
        // Further `::super`s climb on.
        while let Some(&(o, next)) = ids.get(k) {
            if next == "super" && code[end..o].trim() == "::" {
                module.pop();
                end = o + next.len();
                k += 1;
            } else {
                break;
            }
        }
        let rest = code[end..].trim_start();
        let Some(rest) = rest.strip_prefix("::") else {
            // `use super::*;`-like paths that stay inside the layer, or
            // `pub(crate)`.
            if let Some(top) = module.first() {
                out.push((offset, top.clone()));
            }
            continue;
        };
        let rest = rest.trim_start();
        if !module.is_empty() {
            out.push((offset, module[0].clone()));
        } else if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c, …}`: the first segment of each item.
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let name: String = item.trim().chars().take_while(|c| is_ident(*c)).collect();
                if !name.is_empty() {
                    out.push((offset, name));
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
            if name == "*" || name.is_empty() {
                continue;
            }
            out.push((offset, name));
        }
    }
    out
}

const LEAVES: [&str; 3] = ["config", "error", "metrics"];

/// Why `from` may not reach the top-level module `to`, if it may not.
fn forbidden_path(from: &str, to: &str) -> Option<&'static str> {
    let lower = |layers: &[&str]| layers.contains(&from) || LEAVES.contains(&from);
    match to {
        "http" if !matches!(from, "http" | "startup" | "lib") => {
            Some("crate::http below the http layer")
        }
        "jobs" if lower(&["domain", "db", "wechat"]) => Some("crate::jobs from below jobs"),
        "domain" if lower(&["db", "wechat"]) => Some("crate::domain from below the domain"),
        _ => None,
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

/// Every violation in `files` (paths relative to `src/`), as `file:line: why`.
fn violations(files: &[(PathBuf, String)]) -> Vec<String> {
    let mut found = BTreeSet::new();
    for (rel, text) in files {
        let at = place(rel);
        let code = code_only(text);
        let file = rel.to_string_lossy().replace('\\', "/");
        let mut report = |offset: usize, why: String| {
            found.insert((file.clone(), line_of(&code, offset), why));
        };
        for (offset, id) in idents(&code) {
            let actix = id.starts_with("actix_");
            let diesel = id == "diesel" || id.starts_with("diesel_");
            if actix && !matches!(at.top.as_str(), "http" | "startup" | "main") {
                report(offset, format!("{id} outside http/ and the startup module"));
            }
            if diesel && at.top != "db" {
                report(offset, format!("{id} outside db/"));
            }
        }
        for (offset, to) in crate_paths(&code, &at) {
            if to != at.top
                && let Some(why) = forbidden_path(&at.top, &to)
            {
                report(offset, format!("{why} ({} → {to})", at.top));
            }
        }
    }
    found
        .into_iter()
        .map(|(file, line, why)| format!("src/{file}:{line}: {why}"))
        .collect()
}

fn sources(dir: &Path, root: &Path, out: &mut Vec<(PathBuf, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("src/ is readable")
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((path.strip_prefix(root).unwrap().to_path_buf(), text));
        }
    }
}

#[test]
fn imports_follow_the_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    assert!(
        files.iter().any(|(p, _)| p == Path::new("domain/mod.rs")),
        "the layers exist"
    );
    let found = violations(&files);
    assert!(
        found.is_empty(),
        "imports against the layers:\n{}",
        found.join("\n")
    );
}

/// The checker itself: each kind of violation is found and named by line,
/// whatever way the path is written; comments, strings and allowed
/// directions are not.
#[test]
fn the_checker_finds_each_kind_of_violation() {
    let file = |path: &str, text: &str| (PathBuf::from(path), text.to_owned());
    let files = vec![
        file(
            "domain/orders.rs",
            "use actix_web::HttpRequest;\nuse crate::{db, http::x};\n\
             fn f() { crate::jobs::run(); }\n// crate::http in a comment\n\
             const S: &str = \"diesel crate::http\";\nuse crate::db::orders;\n",
        ),
        file(
            "db/orders.rs",
            "use diesel::prelude::*;\nuse super::super::domain::Status;\nuse super::schema;\n",
        ),
        file(
            "wechat/mod.rs",
            "use crate::jobs;\nuse crate::error::PayError;\n",
        ),
        file(
            "http/notify.rs",
            "use actix_web::web;\nuse diesel_migrations::x;\nuse crate::domain::PayState;\n",
        ),
        file(
            "jobs/worker.rs",
            "use crate::domain::PayState;\nuse crate::http::x;\n",
        ),
        file(
            "startup.rs",
            "use crate::http::configure;\nuse crate::jobs::Workers;\nuse actix_web::dev::Server;\n",
        ),
        file(
            "config.rs",
            "use crate::domain::x;\nfn f<'a>(c: char) -> bool { c == '\"' }\n",
        ),
    ];
    let found = violations(&files);
    assert_eq!(
        found,
        [
            "src/config.rs:1: crate::domain from below the domain (config → domain)",
            "src/db/orders.rs:2: crate::domain from below the domain (db → domain)",
            "src/domain/orders.rs:1: actix_web outside http/ and the startup module",
            "src/domain/orders.rs:2: crate::http below the http layer (domain → http)",
            "src/domain/orders.rs:3: crate::jobs from below jobs (domain → jobs)",
            "src/http/notify.rs:2: diesel_migrations outside db/",
            "src/jobs/worker.rs:2: crate::http below the http layer (jobs → http)",
            "src/wechat/mod.rs:1: crate::jobs from below jobs (wechat → jobs)",
        ]
        .map(str::to_owned),
        "{found:#?}"
    );
}
