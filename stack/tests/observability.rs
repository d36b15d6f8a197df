//! `deploy/observability/`: the alert rules pass `promtool check rules` and
//! their unit tests (`promtool test rules alerts.test.yml`), the Prometheus
//! config passes `promtool check config`, and every query of the Grafana
//! dashboard parses (each becomes a recording rule in a temporary rule file
//! that promtool checks). Without promtool (Debian's `prometheus` package)
//! those are skipped with the reason, unless CI=true.
//!
//! Without promtool still: every alert has a unit test where it fires and one
//! where it stays silent, and every metric the rules and the dashboard read is
//! one the services export (except the `wxpay-needs-metrics` group, whose
//! metrics README.md proposes).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_yaml::Value as Yaml;

/// The group of alerts whose metrics do not exist yet.
const NEEDS_METRICS_GROUP: &str = "wxpay-needs-metrics";

/// Grafana's variables, as promtool may see them: the values only need to
/// make the query parse.
const GRAFANA_VARIABLES: &[(&str, &str)] = &[
    ("$__rate_interval", "5m"),
    ("$__interval", "1m"),
    ("$__range", "1h"),
    ("$job", "pay-service"),
];

/// Metrics Prometheus itself adds to every target.
const SCRAPE_METRICS: &[&str] = &["up"];

/// Metrics of the prometheus crate's process collector (its `process`
/// feature), which every service's `/metrics` carries; shared's
/// `metrics_carry_the_process_figures` test checks they are served.
const PROCESS_METRICS: &[&str] = &[
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_virtual_memory_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_threads",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("stack/ sits in the workspace")
        .to_path_buf()
}

fn observability_dir() -> PathBuf {
    workspace_root().join("deploy/observability")
}

/// Whether promtool runs here; when it does not, the caller returns early
/// (a failure under CI=true).
fn promtool_available(what: &str) -> bool {
    let ok = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let reason = "promtool is not installed (apt-get install prometheus)";
        testkit::skip_or_fail(&format!("{what}: {reason}"));
    }
    ok
}

/// Runs promtool in deploy/observability and fails with its output.
fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(observability_dir())
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {}:\n{text}", args.join(" "));
    println!("promtool {}:\n{text}", args.join(" "));
}

fn read_yaml(name: &str) -> Yaml {
    let text = std::fs::read_to_string(observability_dir().join(name)).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn str_of<'a>(v: &'a Yaml, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Yaml::as_str)
}

/// (group name, rule) for every rule in alerts.yml.
fn rules() -> Vec<(String, Yaml)> {
    let doc = read_yaml("alerts.yml");
    let groups = doc["groups"].as_sequence().expect("groups").clone();
    groups
        .iter()
        .flat_map(|g| {
            let name = str_of(g, "name").expect("group name").to_owned();
            g["rules"]
                .as_sequence()
                .expect("rules")
                .iter()
                .map(move |r| (name.clone(), r.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn dashboard() -> serde_json::Value {
    let text = std::fs::read_to_string(observability_dir().join("grafana-dashboard.json")).unwrap();
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every `targets[].expr` of the dashboard's panels (rows included).
fn dashboard_exprs(dashboard: &serde_json::Value) -> Vec<String> {
    fn walk(panels: &serde_json::Value, out: &mut Vec<String>) {
        for panel in panels.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                out.push(
                    target["expr"]
                        .as_str()
                        .expect("every target has an expr")
                        .to_owned(),
                );
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// The query as promtool can parse it: Grafana's variables replaced.
fn without_grafana_variables(expr: &str) -> String {
    let mut e = expr.to_owned();
    for (var, value) in GRAFANA_VARIABLES {
        e = e.replace(var, value);
    }
    assert!(
        !e.contains('$'),
        "a Grafana variable this test does not know: {expr}"
    );
    e
}

/// The metric names a PromQL expression reads: identifiers outside label
/// matchers, strings, ranges and grouping lists, that are not functions or
/// keywords.
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Aggregations are listed too: `sum by (job) (…)` puts a word between
    // the name and its parenthesis.
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "inf",
        "nan",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    // Blank out strings, label matchers and ranges, keeping positions.
    let mut bare = String::new();
    let (mut braces, mut brackets) = (0, 0);
    let (mut in_string, mut escaped) = (false, false);
    for c in expr.chars() {
        let keep = !in_string && braces == 0 && brackets == 0;
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else {
            match c {
                '"' => in_string = true,
                '{' => braces += 1,
                '}' => braces -= 1,
                '[' => brackets += 1,
                ']' => brackets -= 1,
                _ => {}
            }
        }
        let still = !in_string && braces == 0 && brackets == 0;
        bare.push(if keep && still { c } else { ' ' });
    }
    let chars: Vec<char> = bare.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut after_grouping = false;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            let is_call = next == Some(&'(');
            if matches!(
                word.as_str(),
                "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
            ) {
                // Its parenthesised list names labels, not metrics.
                after_grouping = true;
            } else if !is_call && !KEYWORDS.contains(&word.as_str()) && !after_grouping {
                names.insert(word);
            }
        } else {
            if c == ')' {
                after_grouping = false;
            }
            if c.is_ascii_digit() || c == '.' {
                // A number (or a duration's digits): skip the whole token.
                while i + 1 < chars.len()
                    && (chars[i + 1].is_ascii_alphanumeric() || chars[i + 1] == '.')
                {
                    i += 1;
                }
            }
            i += 1;
        }
    }
    names
}

/// Every `"…"` string literal in the services' Rust sources.
fn exported_metric_literals() -> String {
    fn collect(dir: &Path, out: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                collect(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut all = String::new();
    for krate in ["shared", "auth-service", "jssdk-service", "pay-service"] {
        collect(&workspace_root().join(krate).join("src"), &mut all);
    }
    all
}

fn is_exported(name: &str, sources: &str) -> bool {
    if SCRAPE_METRICS.contains(&name) || PROCESS_METRICS.contains(&name) {
        return true;
    }
    let base = ["_bucket", "_count", "_sum"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name);
    sources.contains(&format!("\"{name}\"")) || sources.contains(&format!("\"{base}\""))
}

#[test]
fn promtool_checks_the_rules_and_the_prometheus_config() {
    if !promtool_available("promtool check rules / config") {
        return;
    }
    promtool(&["check", "rules", "alerts.yml"]);
    promtool(&["check", "config", "prometheus.yml"]);
}

#[test]
fn the_alert_unit_tests_pass() {
    if !promtool_available("promtool test rules") {
        return;
    }
    promtool(&["test", "rules", "alerts.test.yml"]);
}

#[test]
fn every_dashboard_query_parses() {
    if !promtool_available("the dashboard's queries") {
        return;
    }
    let exprs = dashboard_exprs(&dashboard());
    assert!(
        exprs.len() >= 20,
        "the dashboard has {} queries",
        exprs.len()
    );
    let rules: Vec<Yaml> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut rule = serde_yaml::Mapping::new();
            rule.insert(
                "record".into(),
                format!("dashboard:query_{i}:parsed").into(),
            );
            rule.insert("expr".into(), without_grafana_variables(e).into());
            Yaml::Mapping(rule)
        })
        .collect();
    let mut group = serde_yaml::Mapping::new();
    group.insert("name".into(), "grafana-dashboard".into());
    group.insert("rules".into(), Yaml::Sequence(rules));
    let mut doc = serde_yaml::Mapping::new();
    doc.insert("groups".into(), Yaml::Sequence(vec![Yaml::Mapping(group)]));

    let dir = std::env::temp_dir().join(format!(
        "wxpay-dashboard-{}-{}",
        std::process::id(),
        shared::random::alphanumeric(8)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("dashboard-queries.yml");
    std::fs::write(&file, serde_yaml::to_string(&doc).unwrap()).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("promtool runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "a dashboard query does not parse:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_alert_has_a_test_where_it_fires_and_one_where_it_is_silent() {
    let names: BTreeSet<String> = rules()
        .iter()
        .filter_map(|(_, r)| str_of(r, "alert").map(str::to_owned))
        .collect();
    assert!(names.len() >= 20, "alerts.yml has {} alerts", names.len());
    // alert → (fires somewhere, silent somewhere)
    let mut seen: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    let tests = read_yaml("alerts.test.yml");
    for test in tests["tests"].as_sequence().expect("tests") {
        for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = str_of(case, "alertname").expect("alertname").to_owned();
            let fires = case["exp_alerts"]
                .as_sequence()
                .is_some_and(|a| !a.is_empty());
            let entry = seen.entry(name).or_default();
            if fires {
                entry.0 = true;
            } else {
                entry.1 = true;
            }
        }
    }
    for name in &names {
        let (fires, silent) = seen.get(name).copied().unwrap_or_default();
        assert!(fires, "{name}: no test where it fires");
        assert!(silent, "{name}: no test where it stays silent");
    }
    let unknown: Vec<_> = seen.keys().filter(|n| !names.contains(*n)).collect();
    assert!(
        unknown.is_empty(),
        "tests for alerts that do not exist: {unknown:?}"
    );
}

#[test]
fn rules_and_dashboard_read_only_metrics_the_services_export() {
    let sources = exported_metric_literals();
    let readme = std::fs::read_to_string(observability_dir().join("README.md")).unwrap();
    let mut missing = Vec::new();
    for (group, rule) in rules() {
        let expr = str_of(&rule, "expr").expect("every rule has an expr");
        let what = str_of(&rule, "alert").unwrap_or("a recording rule");
        for name in metric_names(expr) {
            let exported = is_exported(&name, &sources);
            if group == NEEDS_METRICS_GROUP {
                assert!(
                    !exported,
                    "{name} is exported now: move {what} out of {NEEDS_METRICS_GROUP} and off README's list"
                );
                assert!(
                    readme.contains(&format!("`{name}`")),
                    "README.md does not propose {name} ({what})"
                );
            } else if !exported {
                missing.push(format!("{name} ({what})"));
            }
        }
    }
    for expr in dashboard_exprs(&dashboard()) {
        for name in metric_names(&without_grafana_variables(&expr)) {
            if !is_exported(&name, &sources) {
                missing.push(format!("{name} (dashboard: {expr})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "metrics no service exports: {missing:#?}"
    );
}

#[test]
fn metric_names_are_read_from_promql() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (job, le) (rate(wechat_call_duration_seconds_bucket{path!~"a|b", x="{y}"}[5m]))) > 3
           unless on (job) sum without (instance) (up offset 1h) * 2 and time() - pay_orders == bool 1e3"#,
    );
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(
        names,
        ["pay_orders", "up", "wechat_call_duration_seconds_bucket"]
    );
}
