//! auth-service's layers depend one way, read from the sources so that an
//! import in the wrong direction fails here rather than in a review:
//!
//! `http` (actix) → `state` (wiring) → `domain` (the rules) → `db` (diesel)
//! and `wechat` (WeChat's calls). `lib.rs` and `main.rs` are the start-up
//! code, which may use everything; `config` and `metrics` sit beside the
//! layers and import none of them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// The crate's modules that each module may import (`crate::NAME`). Modules
/// not listed here may import none of these.
const MAY_IMPORT: &[(&str, &[&str])] = &[
    ("http", &["state", "domain", "metrics", "config"]),
    ("state", &["domain", "db", "config"]),
    ("domain", &["db", "wechat"]),
    ("db", &[]),
    ("wechat", &[]),
    ("config", &[]),
    ("metrics", &[]),
];
const LAYERS: &[&str] = &["http", "state", "domain", "db", "wechat"];
/// Start-up code: may use every layer, and actix to serve.
const STARTUP: &[&str] = &["lib.rs", "main.rs"];

/// Every `.rs` file under `root`, as (path relative to `root`, contents).
fn sources(root: &Path) -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).expect("readable directory") {
            let path: PathBuf = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(root, &path, files);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(root).expect("under root");
                let relative = relative.to_string_lossy().replace('\\', "/");
                files.push((relative, std::fs::read_to_string(&path).expect("readable")));
            }
        }
    }
    let mut files = Vec::new();
    walk(root, root, &mut files);
    files.sort();
    files
}

/// The code without `//` comments (doc comments included), so that prose
/// naming a crate is not taken for a use of it.
fn code(text: &str) -> String {
    text.lines()
        .map(|line| line.find("//").map_or(line, |i| &line[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level module a file belongs to: `http/oauth.rs` → `http`.
fn module_of(path: &str) -> &str {
    let first = path.split('/').next().unwrap_or(path);
    first.strip_suffix(".rs").unwrap_or(first)
}

/// Whether `code` names the path root `name` (`name::…`, `use name;`), not
/// merely a longer identifier that starts or ends with it.
fn names_root(code: &str, name: &str) -> bool {
    code.match_indices(name).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = &code[i + name.len()..];
        let starts = !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
        starts && (after.starts_with("::") || after.starts_with(';') || after.starts_with(" as "))
    })
}

/// The crate modules `code` imports: `crate::NAME` and `use crate::{NAME, …}`.
fn crate_imports(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let name = item.trim().split("::").next().unwrap_or("").trim();
                found.push(name.to_owned());
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            found.push(rest[..end].to_owned());
        }
    }
    found.retain(|name| MAY_IMPORT.iter().any(|(m, _)| m == name));
    found
}

/// Every broken rule in the tree under `root`, one line each.
fn violations(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in sources(root) {
        let code = code(&text);
        let module = module_of(&path);
        let startup = STARTUP.contains(&path.as_str());
        if names_root(&code, "actix_web") && module != "http" && !startup {
            found.push(format!("{path}: actix_web outside http/ and start-up"));
        }
        if (names_root(&code, "diesel") || names_root(&code, "diesel_migrations")) && module != "db"
        {
            found.push(format!("{path}: diesel outside db/"));
        }
        if startup {
            continue;
        }
        let allowed = MAY_IMPORT
            .iter()
            .find(|(m, _)| *m == module)
            .map_or(&[][..], |(_, a)| *a);
        for import in crate_imports(&code) {
            if import != module && !allowed.contains(&import.as_str()) {
                found.push(format!("{path}: imports crate::{import}"));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn the_layers_of_src_depend_one_way() {
    let found = violations(Path::new(SRC));
    assert!(
        found.is_empty(),
        "layer rules broken:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checks_read_every_layer() {
    // A check over no files passes whatever the imports: it must see them all.
    let files = sources(Path::new(SRC));
    for layer in LAYERS {
        assert!(
            files.iter().any(|(p, _)| module_of(p) == *layer),
            "no file of {layer} under src/"
        );
    }
    assert!(
        files
            .iter()
            .any(|(p, t)| p.starts_with("http/") && code(t).contains("actix_web"))
    );
    assert!(
        files
            .iter()
            .any(|(p, t)| p.starts_with("db/") && code(t).contains("diesel"))
    );
}

/// The checker finds each kind of mistake in a tree planted with them.
#[test]
fn planted_bad_imports_are_reported() {
    let root = std::env::temp_dir().join(format!("auth-layers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let write = |path: &str, text: &str| {
        let file = root.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    };
    write(
        "lib.rs",
        "use actix_web::web;\nuse crate::http::configure;\n",
    );
    write(
        "http/mod.rs",
        "use actix_web::HttpResponse;\nuse crate::domain::AuthError;\n",
    );
    write(
        "domain/mod.rs",
        "// actix_web and diesel in a comment are fine\nuse actix_web::web;\n",
    );
    write(
        "domain/users.rs",
        "use diesel::prelude::*;\nuse crate::{db, http::cookies};\n",
    );
    write("db/users.rs", "use crate::domain::users::User;\n");
    write(
        "wechat.rs",
        "fn f() -> crate::state::AuthState { todo!() }\n",
    );
    write(
        "state.rs",
        "use crate::http;\nuse crate::domain::sessions::Sessions;\n",
    );
    let found = violations(&root);
    std::fs::remove_dir_all(&root).unwrap();
    assert_eq!(
        found,
        [
            "db/users.rs: imports crate::domain",
            "domain/mod.rs: actix_web outside http/ and start-up",
            "domain/users.rs: diesel outside db/",
            "domain/users.rs: imports crate::http",
            "state.rs: imports crate::http",
            "wechat.rs: imports crate::state",
        ]
    );
}
