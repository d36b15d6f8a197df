//! The merged contract `stack` serves: `/openapi.json` is the three
//! services' documents as one, `/docs` renders every operation of it with
//! nothing fetched from elsewhere, the repository's `docs/openapi.json` is
//! that document (regenerate with `UPDATE_OPENAPI=1 cargo test -p stack
//! --test openapi`), and the document is valid OpenAPI 3.1 by an independent
//! validator (Python's openapi-spec-validator).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use shared::config::Env;
use stack::Stack;
use testkit::openapi::Document;
use testkit::skip_or_fail;

fn merged() -> Value {
    serde_json::to_value(stack::docs::openapi()).unwrap()
}

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

#[test]
fn the_merged_document_is_the_three_services_documents() {
    let merged = Document::new(merged());
    let mut union = BTreeSet::new();
    for doc in [
        auth_service::openapi(),
        jssdk_service::openapi(),
        pay_service::openapi(),
    ] {
        union.extend(Document::new(serde_json::to_value(doc).unwrap()).operations());
    }
    assert_eq!(merged.operations(), union);
    let tags: Vec<&str> = merged.json["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        tags,
        ["auth-service", "jssdk-service", "pay-service", "operations"]
    );
}

/// The examples a reader copies are valid instances of their schemas.
#[test]
fn every_example_matches_its_schema() {
    let doc = Document::new(merged());
    let errors = doc.invalid_examples();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    // And the check can fail: a wrong example is caught.
    let mut broken = merged();
    broken["paths"]["/api/pay/orders"]["post"]["requestBody"]["content"]["application/json"]["example"]
        ["amountFen"] = Value::from("1");
    assert!(!Document::new(broken).invalid_examples().is_empty());
}

/// docs/api.md's route tables list exactly the document's routes (the
/// health routes and /openapi.json aside, which it names in prose).
#[test]
fn docs_api_md_lists_every_route() {
    let text = std::fs::read_to_string(repo_file("docs/api.md")).unwrap();
    let listed: BTreeSet<(String, String)> = text
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let method = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let path = cells.get(2)?.strip_prefix('`')?.strip_suffix('`')?;
            (method.chars().all(|c| c.is_ascii_uppercase()) && path.starts_with('/'))
                .then(|| (method.to_owned(), testkit::openapi::normalize(path)))
        })
        .collect();
    let documented: BTreeSet<(String, String)> = Document::new(merged())
        .operations()
        .into_iter()
        .filter(|(_, p)| {
            !["/healthz", "/readyz", "/metrics", "/openapi.json"].contains(&p.as_str())
        })
        .collect();
    let missing: Vec<_> = documented.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&documented).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/api.md and the document differ: missing {missing:?}, not in the document {extra:?}"
    );
}

#[test]
fn docs_openapi_json_is_the_generated_document() {
    let path = repo_file("docs/openapi.json");
    let generated = shared::openapi::to_json(&stack::docs::openapi()) + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is not the document the code builds: \
         run UPDATE_OPENAPI=1 cargo test -p stack --test openapi, and review the diff"
    );
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let check = std::process::Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .output();
    if !check.is_ok_and(|o| o.status.success()) {
        return skip_or_fail(
            "python3 with openapi-spec-validator is not installed (scripts/setup installs it)",
        );
    }
    let path = std::env::temp_dir().join(format!("wxpay-openapi-{}.json", std::process::id()));
    std::fs::write(&path, shared::openapi::to_json(&stack::docs::openapi())).unwrap();
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys\n\
             from openapi_spec_validator import validate\n\
             from openapi_spec_validator.validation.validators import OpenAPIV31SpecValidator\n\
             validate(json.load(open(sys.argv[1])), cls=OpenAPIV31SpecValidator)\n\
             print('valid')",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "openapi-spec-validator refuses the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The check above fails on a broken document (so that it can fail at all).
#[test]
fn the_validator_refuses_a_broken_document() {
    let check = std::process::Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .output();
    if !check.is_ok_and(|o| o.status.success()) {
        return skip_or_fail("python3 with openapi-spec-validator is not installed");
    }
    let mut broken = merged();
    // A response without its required description.
    broken["paths"]["/healthz"]["get"]["responses"]["200"]
        .as_object_mut()
        .unwrap()
        .remove("description");
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys\n\
             from openapi_spec_validator import validate\n\
             validate(json.loads(sys.argv[1]))",
        ])
        .arg(broken.to_string())
        .output()
        .unwrap();
    assert!(!out.status.success(), "a broken document passed");
}

#[tokio::test]
async fn stack_serves_the_merged_document_and_a_self_contained_reference_page() {
    let dir = std::env::temp_dir().join(format!(
        "wxpay-stack-openapi-{}",
        shared::random::alphanumeric(12)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let env = Env::from_pairs([
        ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("SANDBOX_ADDR", "127.0.0.1:0".to_owned()),
        (
            "DATABASE_URL",
            format!("sqlite://{}/stack.db", dir.display()),
        ),
    ]);
    let stack = Stack::start(env).await.expect("stack starts");
    let base = format!("http://{}", stack.addr());
    tokio::spawn(stack.run_until_stopped());
    let http = shared::http_client::builder().no_proxy().build().unwrap();

    let served: Value = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, merged());

    let res = http.get(format!("{base}/docs")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = res.text().await.unwrap();
    // Nothing to load from elsewhere: no script, stylesheet link or image.
    for tag in ["<script", "<link", "<img", "<iframe", "@import"] {
        assert!(!page.contains(tag), "the page contains {tag}");
    }
    // Every operation is on the page, with its summary, in both languages.
    let doc = Document::new(served.clone());
    for (method, path) in doc.operations() {
        let item = served["paths"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(p, _)| testkit::openapi::normalize(p) == path)
            .unwrap()
            .1;
        let op = &item[method.to_ascii_lowercase()];
        let id = op["operationId"].as_str().unwrap();
        assert!(
            page.contains(&format!("id=\"{id}\"")),
            "{method} {path} is not on the page"
        );
    }
    for text in [
        "创建订单",
        "Create an order",
        "参数缺失",
        "ErrorEnvelope",
        "MpPayResult",
    ] {
        assert!(page.contains(text), "{text} is not on the page");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
