//! Holding a service's OpenAPI document to what it serves:
//! [`mounted_routes`] lists what a route table really mounts (read from
//! actix's own resource map, methods found by asking each path), and
//! [`Document`] compares that with the document and validates real
//! responses against its schemas with an independent JSON Schema 2020-12
//! validator (the `jsonschema` crate).

use std::collections::BTreeSet;

use actix_web::http::{Method, StatusCode};
use actix_web::{App, HttpRequest, HttpResponse, test, web};
use serde_json::Value;

/// `(METHOD, /path/{})`: a route with its parameters' names erased, so that
/// actix's `{out_trade_no}` and the document's `{outTradeNo}` compare equal.
pub type Route = (String, String);

const PROBE: &str = "/__testkit/resource-map";
const UNMATCHED: &str = "x-testkit-unmatched";
const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// `{name}` → `{}`.
pub fn normalize(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '{' => {
                depth += 1;
                if depth == 1 {
                    out.push_str("{}");
                }
            }
            '}' => depth -= 1,
            _ if depth > 0 => {}
            _ => out.push(c),
        }
    }
    out
}

/// Every (method, path) that `routes` mounts. Paths come from actix's
/// resource map (its Debug form: the map has no public iterator); a
/// method counts as mounted at a path when a request with it reaches
/// something other than actix's 405 or the app's default service. Asking
/// runs the handlers with an empty request (no session, no body), which
/// every route must refuse cleanly anyway.
pub async fn mounted_routes<F>(routes: F) -> BTreeSet<Route>
where
    F: FnOnce(&mut web::ServiceConfig),
{
    let app = test::init_service(
        App::new()
            .configure(routes)
            .route(
                PROBE,
                web::get().to(|req: HttpRequest| async move {
                    HttpResponse::Ok().body(format!("{:?}", req.resource_map()))
                }),
            )
            .default_service(web::to(|| async {
                HttpResponse::NotFound()
                    .insert_header((UNMATCHED, "1"))
                    .finish()
            })),
    )
    .await;
    let map =
        test::call_and_read_body(&app, test::TestRequest::get().uri(PROBE).to_request()).await;
    let map = String::from_utf8_lossy(&map).into_owned();
    assert!(
        !map.contains("patterns: List("),
        "a resource with several patterns: teach testkit::openapi to read it\n{map}"
    );
    let patterns: BTreeSet<String> = map
        .split("patterns: Single(\"")
        .skip(1)
        .filter_map(|rest| rest.split_once("\")").map(|(p, _)| p.to_owned()))
        .filter(|p| !p.is_empty() && p != PROBE)
        .collect();
    assert!(
        !patterns.is_empty(),
        "no pattern found in actix's resource map: its Debug form changed\n{map}"
    );
    let mut mounted = BTreeSet::new();
    for pattern in &patterns {
        let concrete = concrete(pattern);
        for method in METHODS {
            let res = test::call_service(
                &app,
                test::TestRequest::default()
                    .method(method.clone())
                    .uri(&concrete)
                    .to_request(),
            )
            .await;
            let unmatched = res.headers().contains_key(UNMATCHED)
                || res.status() == StatusCode::METHOD_NOT_ALLOWED;
            if !unmatched {
                mounted.insert((method.to_string(), normalize(pattern)));
            }
        }
    }
    mounted
}

/// A pattern with each `{param}` filled in.
fn concrete(pattern: &str) -> String {
    normalize(pattern).replace("{}", "T2026120100000001")
}

/// A served OpenAPI document, as JSON.
pub struct Document {
    pub json: Value,
}

impl Document {
    pub fn new(json: Value) -> Self {
        assert_eq!(json["openapi"], "3.1.0", "an OpenAPI 3.1 document");
        Document { json }
    }

    /// Every (method, path) the document names.
    pub fn operations(&self) -> BTreeSet<Route> {
        let mut out = BTreeSet::new();
        if let Some(paths) = self.json["paths"].as_object() {
            for (path, item) in paths {
                for method in METHODS {
                    let key = method.as_str().to_ascii_lowercase();
                    if item.get(&key).is_some() {
                        out.insert((method.to_string(), normalize(path)));
                    }
                }
            }
        }
        out
    }

    /// Panics, listing both differences, unless the document names exactly
    /// the routes that are mounted.
    pub fn assert_matches(&self, mounted: &BTreeSet<Route>) {
        let documented = self.operations();
        let undocumented: Vec<_> = mounted.difference(&documented).collect();
        let unmounted: Vec<_> = documented.difference(mounted).collect();
        assert!(
            undocumented.is_empty() && unmounted.is_empty(),
            "the OpenAPI document and the route table differ:\n  \
             mounted but not in the document: {undocumented:?}\n  \
             in the document but not mounted: {unmounted:?}"
        );
    }

    /// Checks a real reply against the document: its status is documented
    /// for `method path` (`path` as the document writes it) and a JSON body
    /// matches the schema. Answers the status and the body (a body that is
    /// not JSON as a JSON string).
    pub async fn check_reply(
        &self,
        method: &str,
        path: &str,
        res: reqwest::Response,
    ) -> (u16, Value) {
        let status = res.status().as_u16();
        let json = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let text = res.text().await.expect("the reply's body reads");
        self.response(method, path, status);
        if !json {
            return (status, Value::String(text));
        }
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: a JSON reply that does not parse: {e}"));
        self.validate(method, path, status, "application/json", &body);
        (status, body)
    }

    /// The response object for `status` of `method path` (`path` as the
    /// document writes it), `$ref`s to `components.responses` followed.
    pub fn response(&self, method: &str, path: &str, status: u16) -> &Value {
        let op = &self.json["paths"][path][method.to_ascii_lowercase()];
        assert!(op.is_object(), "the document has no {method} {path}");
        let res = &op["responses"][status.to_string()];
        assert!(
            res.is_object(),
            "{method} {path} does not document status {status}: {}",
            op["responses"]
        );
        match res["$ref"].as_str() {
            Some(r) => {
                let name = r
                    .strip_prefix("#/components/responses/")
                    .unwrap_or_else(|| panic!("unexpected $ref {r}"));
                &self.json["components"]["responses"][name]
            }
            None => res,
        }
    }

    /// Every JSON example the document gives (request bodies and
    /// responses) checked against its own schema: the errors, empty when
    /// every example is a valid instance.
    pub fn invalid_examples(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let Some(paths) = self.json["paths"].as_object() else {
            return vec!["no paths".to_owned()];
        };
        let mut contents: Vec<(String, &Value)> = Vec::new();
        for (path, item) in paths {
            for method in METHODS {
                let op = &item[method.as_str().to_ascii_lowercase()];
                if !op.is_object() {
                    continue;
                }
                let at = format!("{method} {path}");
                if let Some(c) = op["requestBody"]["content"].as_object() {
                    contents.extend(c.iter().map(|(m, c)| (format!("{at} request {m}"), c)));
                }
                if let Some(responses) = op["responses"].as_object() {
                    for (status, res) in responses {
                        if let Some(c) = res["content"].as_object() {
                            contents
                                .extend(c.iter().map(|(m, c)| (format!("{at} {status} {m}"), c)));
                        }
                    }
                }
            }
        }
        if let Some(responses) = self.json["components"]["responses"].as_object() {
            for (name, res) in responses {
                if let Some(c) = res["content"].as_object() {
                    contents.extend(c.iter().map(|(m, c)| (format!("response {name} {m}"), c)));
                }
            }
        }
        for (at, content) in contents {
            let (Some(example), true) = (content.get("example"), content["schema"].is_object())
            else {
                continue;
            };
            let root = serde_json::json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "allOf": [content["schema"]],
                "components": self.json["components"],
            });
            match jsonschema::draft202012::new(&root) {
                Ok(v) => errors.extend(
                    v.iter_errors(example)
                        .map(|e| format!("{at}: {e} at {}", e.instance_path())),
                ),
                Err(e) => errors.push(format!("{at}: the schema does not compile: {e}")),
            }
        }
        errors
    }

    /// Panics unless `body` matches the `media_type` schema the document
    /// gives for `status` of `method path`.
    pub fn validate(&self, method: &str, path: &str, status: u16, media_type: &str, body: &Value) {
        let res = self.response(method, path, status);
        let schema = &res["content"][media_type]["schema"];
        assert!(
            schema.is_object(),
            "{method} {path} {status} has no {media_type} schema: {res}"
        );
        // `$ref: #/components/schemas/X` resolves against the root, so the
        // components travel with the schema.
        let root = serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "allOf": [schema],
            "components": self.json["components"],
        });
        let validator = jsonschema::draft202012::new(&root).unwrap_or_else(|e| {
            panic!("{method} {path} {status}: the schema does not compile: {e}")
        });
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {path} {status}: the response does not match the document:\n{}\nbody: {body}",
            errors.join("\n")
        );
    }
}
