//! What `deploy_files.rs` and `gateway_nginx.rs` both read: the repository's
//! files, the gateway's routing table (parsed from deploy/nginx/gateway.conf),
//! the routes the contract (docs/openapi.json) names, and the environment variables a crate reads.
//!
//! A module directory, not a file beside the tests, so that cargo does not
//! build it as a test of its own.

#![allow(dead_code)] // each test file uses its own part

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The workspace root (stack's parent).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("stack sits inside the workspace")
        .to_path_buf()
}

pub fn read_repo(rel: &str) -> String {
    let path = repo_root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Skips a test for a missing tool on a developer's machine (reported by
/// `scripts/test` as skipped, with the reason); under CI=true the tool is
/// part of the contract and its absence fails the test.
pub use testkit::skip_or_fail;

// ---------------------------------------------------------------- gateway ----

/// The sandbox as the gateway reaches it: docker-compose.sandbox.yml runs it
/// in the gateway's network namespace (development only). It serves one path
/// through the gateway, the demo page's JS-SDK stand-in.
pub const SANDBOX_FROM_GATEWAY: (&str, u16) = ("127.0.0.1", 8090);
pub const SANDBOX_GATEWAY_PATHS: [&str; 1] = ["/sandbox/jweixin.js"];

/// What an nginx `location` does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `proxy_pass http://<upstream>`.
    Proxy(String),
    /// `return <status> …`.
    Return(u16),
    /// Neither: the web root (try_files).
    Static,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// `location = PATH` (true) or a prefix location (`^~ PATH` or `PATH`).
    pub exact: bool,
    pub path: String,
    pub target: Target,
    /// Carries a `limit_req` (the notification paths).
    pub rate_limited: bool,
    /// Answers only ADMIN_ALLOW_FROM (`$wxpay_admin_allowed`).
    pub admin_only: bool,
}

#[derive(Debug, Clone)]
pub struct GatewayConf {
    /// What a `proxy_pass http://NAME` names -> its `host:port` entries:
    /// `$wxpay_pay` from `set $wxpay_pay pay-service:8083;` (resolved at run
    /// time), or an `upstream` block's `server host:port` lines.
    pub upstreams: BTreeMap<String, Vec<(String, u16)>>,
    pub locations: Vec<Location>,
    /// The port of `listen PORT`.
    pub listen_port: u16,
    /// `root …` of the server.
    pub web_root: String,
}

impl GatewayConf {
    pub fn load() -> Self {
        Self::parse(&read_repo("deploy/nginx/gateway.conf"))
    }

    /// A deliberately small parser: it knows the shapes gateway.conf uses
    /// (one directive per statement, `location [=|^~] PATH { … }` blocks) and
    /// panics on anything it does not recognise, so a new shape gets a test
    /// update rather than silently escaping the checks.
    pub fn parse(text: &str) -> Self {
        let text: String = text
            .lines()
            .map(|l| l.split_once('#').map_or(l, |(code, _)| code))
            .collect::<Vec<_>>()
            .join("\n");
        let mut upstreams = BTreeMap::new();
        let mut locations = Vec::new();
        let mut listen_port = None;
        let mut web_root = None;
        let mut rest = text.as_str();
        while let Some(start) = next_word(rest) {
            rest = &rest[start..];
            if let Some(after) = rest.strip_prefix("upstream ") {
                let (header, body, tail) = block(after);
                let servers = statements(body)
                    .into_iter()
                    .filter_map(|s| s.strip_prefix("server ").map(str::to_owned))
                    .map(|s| {
                        let addr = s.split_whitespace().next().expect("server address");
                        let (host, port) = addr.rsplit_once(':').expect("server host:port");
                        (
                            host.to_owned(),
                            port.parse().expect("numeric upstream port"),
                        )
                    })
                    .collect();
                upstreams.insert(header.trim().to_owned(), servers);
                rest = tail;
            } else if let Some(after) = rest.strip_prefix("server ") {
                // The server block: walk its statements and locations.
                let (_, body, tail) = block(after);
                let mut inner = body;
                while let Some(start) = next_word(inner) {
                    inner = &inner[start..];
                    if let Some(after) = inner.strip_prefix("location ") {
                        let (header, lbody, ltail) = block(after);
                        inner = ltail;
                        let words: Vec<&str> = header.split_whitespace().collect();
                        let (exact, path) = match words.as_slice() {
                            ["=", p] => (true, *p),
                            ["^~", p] => (false, *p),
                            [p] if p.starts_with('@') => continue,
                            [p] if p.starts_with('/') => (false, *p),
                            other => panic!("unrecognised location {other:?}"),
                        };
                        let mut target = Target::Static;
                        let mut rate_limited = false;
                        for s in statements(lbody) {
                            rate_limited |= s.starts_with("limit_req ");
                            if let Some(up) = s.strip_prefix("proxy_pass http://") {
                                target = Target::Proxy(up.trim_end_matches('/').to_owned());
                            } else if let Some(ret) = s.strip_prefix("return ") {
                                let code = ret.split_whitespace().next().unwrap();
                                target = Target::Return(code.parse().expect("return status"));
                            }
                        }
                        locations.push(Location {
                            exact,
                            path: path.to_owned(),
                            target,
                            rate_limited,
                            admin_only: lbody.contains("$wxpay_admin_allowed"),
                        });
                    } else {
                        let end = inner.find(';').expect("statement ends with ;");
                        let stmt = inner[..end].trim();
                        if let Some(l) = stmt.strip_prefix("listen ") {
                            let port = l.split_whitespace().next().unwrap();
                            let port = port.rsplit(':').next().unwrap();
                            listen_port = Some(port.parse().expect("numeric listen port"));
                        } else if let Some(r) = stmt.strip_prefix("root ") {
                            web_root = Some(r.trim().to_owned());
                        } else if let Some(set) = stmt.strip_prefix("set $wxpay_") {
                            // A service by name, resolved at run time:
                            // `set $wxpay_pay pay-service:8083;`.
                            let mut words = set.split_whitespace();
                            let name = format!("$wxpay_{}", words.next().unwrap());
                            let addr = words.next().expect("set $wxpay_… host:port");
                            let (host, port) = addr.rsplit_once(':').expect("host:port");
                            upstreams.insert(
                                name,
                                vec![(host.to_owned(), port.parse().expect("numeric port"))],
                            );
                        }
                        inner = &inner[end + 1..];
                    }
                }
                rest = tail;
            } else {
                // map blocks and top-level statements
                let brace = rest.find('{');
                let semi = rest.find(';');
                match (brace, semi) {
                    (Some(b), Some(s)) if b < s => rest = block(&rest[b - 1..]).2,
                    (Some(b), None) => rest = block(&rest[b - 1..]).2,
                    (_, Some(s)) => rest = &rest[s + 1..],
                    (None, None) => panic!("trailing text in gateway.conf: {rest:?}"),
                }
            }
        }
        GatewayConf {
            upstreams,
            locations,
            listen_port: listen_port.expect("a listen directive"),
            web_root: web_root.expect("a root directive"),
        }
    }

    /// The location nginx picks for `path`: an exact match, else the longest
    /// matching prefix (gateway.conf uses no regex locations).
    pub fn location_for(&self, path: &str) -> Option<&Location> {
        self.locations
            .iter()
            .find(|l| l.exact && l.path == path)
            .or_else(|| {
                self.locations
                    .iter()
                    .filter(|l| !l.exact && path.starts_with(&l.path))
                    .max_by_key(|l| l.path.len())
            })
    }

    /// The compose/Kubernetes service (`host` of the upstream's server) that
    /// serves `path`, or None when the gateway does not proxy it.
    pub fn service_for(&self, path: &str) -> Option<(String, u16)> {
        match &self.location_for(path)?.target {
            Target::Proxy(up) => {
                let servers = &self.upstreams[up];
                assert_eq!(
                    servers.len(),
                    1,
                    "upstream {up}: one server (a service name)"
                );
                Some(servers[0].clone())
            }
            _ => None,
        }
    }

    /// (path, exact, service, port) of every proxied location.
    pub fn proxied(&self) -> BTreeSet<(String, bool, String, u16)> {
        self.locations
            .iter()
            .filter_map(|l| match &l.target {
                Target::Proxy(up) => {
                    let (host, port) = self.upstreams[up][0].clone();
                    Some((l.path.clone(), l.exact, host, port))
                }
                _ => None,
            })
            .collect()
    }

    /// The proxied locations that production has: all but the sandbox's.
    pub fn production_routes(&self) -> BTreeSet<(String, bool, String, u16)> {
        let (host, port) = SANDBOX_FROM_GATEWAY;
        self.proxied()
            .into_iter()
            .filter(|(_, _, h, p)| !(h == host && *p == port))
            .collect()
    }

    /// Paths of the locations proxied to the sandbox.
    pub fn sandbox_paths(&self) -> Vec<(bool, String)> {
        let (host, port) = SANDBOX_FROM_GATEWAY;
        self.proxied()
            .into_iter()
            .filter(|(_, _, h, p)| h == host && *p == port)
            .map(|(path, exact, _, _)| (exact, path))
            .collect()
    }
}

fn next_word(s: &str) -> Option<usize> {
    s.find(|c: char| !c.is_whitespace())
}

/// Splits `header { body } tail` (quotes may hold braces).
fn block(s: &str) -> (&str, &str, &str) {
    let open = s.find('{').expect("block opens with {");
    let mut depth = 0;
    let mut quote = None;
    for (i, c) in s.char_indices().skip(open) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '{') => depth += 1,
            (None, '}') => {
                depth -= 1;
                if depth == 0 {
                    return (&s[..open], &s[open + 1..i], &s[i + 1..]);
                }
            }
            _ => {}
        }
    }
    panic!("unclosed block: {s:?}")
}

/// The `;`-terminated statements of a block body (quotes may hold `;`).
/// Nested blocks (`if (…) { … }`) are conditional, so neither they nor their
/// statements count as the block's own.
fn statements(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut depth = 0;
    for c in body.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c)
            }
            (Some(_), _) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.push(c)
            }
            (None, '{') => {
                depth += 1;
                cur.clear();
            }
            (None, '}') => {
                depth -= 1;
                cur.clear();
            }
            (None, ';') => {
                if depth == 0 {
                    out.push(cur.trim().to_owned());
                }
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    out
}

// --------------------------------------------------------- the contract ----

/// A path the contract (docs/openapi.json) names, with the service that
/// serves it (its operations' tag).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiPath {
    pub section: String,
    /// A concrete path: `{param}` replaced by a sample value, no query.
    pub path: String,
}

/// The repository's contract: the OpenAPI document the services build,
/// committed as docs/openapi.json (stack/tests/openapi.rs keeps it current).
pub fn contract() -> String {
    read_repo("docs/openapi.json")
}

/// Every `/api/…` and `/internal/…` path of the contract, with its service.
pub fn api_paths(contract: &str) -> Vec<ApiPath> {
    let doc: serde_json::Value = serde_json::from_str(contract).expect("docs/openapi.json is JSON");
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("the contract has paths") {
        if !(path.starts_with("/api/") || path.starts_with("/internal/")) {
            continue; // health routes and /openapi.json: every service's
        }
        let section = item
            .as_object()
            .into_iter()
            .flat_map(|ops| ops.values())
            .find_map(|op| op["tags"][0].as_str())
            .unwrap_or_else(|| panic!("{path} has no service tag"))
            .to_owned();
        let mut concrete = String::new();
        let mut in_param = false;
        for c in path.chars() {
            match c {
                '{' => in_param = true,
                '}' => {
                    in_param = false;
                    concrete.push_str("T202611250001");
                }
                _ if in_param => {}
                _ => concrete.push(c),
            }
        }
        out.insert(ApiPath {
            section,
            path: concrete,
        });
    }
    out.into_iter().collect()
}

// --------------------------------------------------------- configuration ----

/// Every `"UPPER_CASE"` string literal in Rust sources under `path` (a file
/// or a directory): a superset of the environment variables that code reads
/// (all are read by literal name, through `Env::get/required/secret/parse_or/…`
/// or `std::env::var`).
pub fn literals_in(path: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut todo = vec![path.to_path_buf()];
    while let Some(p) = todo.pop() {
        if p.is_dir() {
            for entry in std::fs::read_dir(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())) {
                todo.push(entry.unwrap().path());
            }
        } else if p.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            for lit in string_literals(&text) {
                if lit.len() >= 2
                    && lit.starts_with(|c: char| c.is_ascii_uppercase())
                    && lit
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                {
                    out.insert(lit);
                }
            }
        }
    }
    out
}

/// The environment variables a crate's configuration code reads: the
/// `"UPPER_CASE"` literals of `{crate_dir}/src/config.rs` and of shared's
/// (the common configuration), outside their `#[cfg(test)]` modules. Narrower
/// than [`names_read_by`], which also holds every constant of the crate
/// (statuses, trade types), and exact for the services: they read their
/// variables in their config modules only.
pub fn config_vars(crate_dir: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for file in [
        format!("{crate_dir}/src/config.rs"),
        "shared/src/config.rs".to_owned(),
    ] {
        let text = read_repo(&file);
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        out.extend(string_literals(code).into_iter().filter(|lit| {
            lit.len() >= 2
                && lit.starts_with(|c: char| c.is_ascii_uppercase())
                && lit
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        }));
    }
    out
}

/// The contents of Rust string literals (plain and raw), skipping comments,
/// char literals (`'"'`) and lifetimes. Enough Rust lexing for the sources of
/// this workspace, not a general one.
fn string_literals(src: &str) -> Vec<String> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'\'' => {
                // 'x', '\n', '\'' … or a lifetime 'a
                if b.get(i + 1) == Some(&b'\\') {
                    i += 2;
                    while i < b.len() && b[i] != b'\'' {
                        i += 1;
                    }
                    i += 1;
                } else {
                    let ch_len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                    if b.get(i + 1 + ch_len) == Some(&b'\'') {
                        i += 2 + ch_len;
                    } else {
                        i += 1;
                    }
                }
            }
            b'r' if matches!(b.get(i + 1), Some(b'"' | b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                let mut j = i + 1;
                while b.get(j) == Some(&b'#') {
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let hashes = j - i - 1;
                let close = format!("\"{}", "#".repeat(hashes));
                let start = j + 1;
                let end = src[start..].find(&close).map_or(b.len(), |e| start + e);
                out.push(src[start..end].to_owned());
                i = end + close.len();
            }
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                out.push(src[start..i.min(b.len())].to_owned());
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// The variables a binary of this workspace may read: its crate's literals,
/// `shared`'s configuration (for the three services; the trace export's
/// `OTEL_*` for every binary), and `RUST_LOG` (read by
/// tracing-subscriber's `EnvFilter::try_from_default_env`, not by a literal).
pub fn names_read_by(crate_dir: &str) -> BTreeSet<String> {
    let root = repo_root();
    let mut names = literals_in(&root.join(crate_dir).join("src"));
    let shared_config = literals_in(&root.join("shared/src/config.rs"));
    if crate_dir == "wechat-sandbox" {
        // The sandbox reads shared's trace export settings only.
        names.extend(shared_config.into_iter().filter(|n| n.starts_with("OTEL_")));
    } else {
        names.extend(shared_config);
    }
    let main = "shared/src/telemetry.rs";
    assert!(
        read_repo(main).contains("try_from_default_env"),
        "{main} no longer reads RUST_LOG through EnvFilter::try_from_default_env"
    );
    names.insert("RUST_LOG".to_owned());
    names
}
