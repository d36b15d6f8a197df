//! The API reference `stack` serves: `/openapi.json`, the three services'
//! documents merged into one, and `/docs`, that document rendered as one
//! HTML page here, on the server — no script, no CDN, nothing to fetch — so
//! the reference reads the same offline, in any browser.

use actix_web::web;
use serde_json::Value;
use utoipa::openapi::OpenApi;

pub const DOCS_PATH: &str = "/docs";

/// The three services' documents as one.
pub fn openapi() -> OpenApi {
    shared::openapi::merge(
        "wxpay",
        env!("CARGO_PKG_VERSION"),
        [
            auth_service::openapi(),
            jssdk_service::openapi(),
            pay_service::openapi(),
        ],
    )
}

/// Mounts `/openapi.json` (merged) and `/docs`. `stack` mounts it before
/// the services' route tables, which do not serve a document of their own.
/// Both are made at their first request, as `shared::openapi::serve` makes
/// each service's.
pub fn configure() -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    let json = shared::openapi::serve(openapi);
    let page = shared::openapi::serve_made_once(DOCS_PATH, "text/html; charset=utf-8", render_page);
    move |cfg: &mut web::ServiceConfig| {
        json(cfg);
        page(cfg);
    }
}

// ----------------------------------------------------------- rendering ----

/// `/docs`: the merged document as one HTML page.
fn render_page() -> web::Bytes {
    let doc = serde_json::to_value(openapi()).unwrap_or(Value::Null);
    web::Bytes::from(render(&doc))
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `code` spans of one line of text, escaped.
fn inline(s: &str) -> String {
    s.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{}</code>", esc(part))
            } else {
                esc(part)
            }
        })
        .collect()
}

/// The little Markdown the documents use: `## ` headings, tables and
/// paragraphs with code spans.
fn markdown(text: &str) -> String {
    let mut html = String::new();
    for block in text.split("\n\n") {
        let block = block.trim();
        if block.is_empty() {
            continue;
        }
        if let Some(h) = block.strip_prefix("## ") {
            html.push_str(&format!("<h3>{}</h3>", inline(h)));
        } else if block.starts_with('|') {
            html.push_str("<table>");
            for (i, row) in block.lines().enumerate() {
                if i == 1 {
                    continue; // | --- | --- |
                }
                let tag = if i == 0 { "th" } else { "td" };
                html.push_str("<tr>");
                for cell in row.trim().trim_matches('|').split('|') {
                    html.push_str(&format!("<{tag}>{}</{tag}>", inline(cell.trim())));
                }
                html.push_str("</tr>");
            }
            html.push_str("</table>");
        } else {
            html.push_str(&format!("<p>{}</p>", inline(block)));
        }
    }
    html
}

fn ref_name(r: &str) -> &str {
    r.rsplit('/').next().unwrap_or(r)
}

/// A schema's type in a few words, linking to named schemas.
fn type_of(schema: &Value) -> String {
    if let Some(r) = schema["$ref"].as_str() {
        let name = ref_name(r);
        return format!("<a href=\"#schema-{0}\">{0}</a>", esc(name));
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(list) = schema[key].as_array() {
            let parts: Vec<String> = list.iter().map(type_of).collect();
            return parts.join(" | ");
        }
    }
    let mut t = match &schema["type"] {
        Value::String(s) => esc(s),
        Value::Array(list) => list
            .iter()
            .filter_map(Value::as_str)
            .map(esc)
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "any".to_owned(),
    };
    if let Some(items) = schema.get("items") {
        t = format!("array of {}", type_of(items));
    }
    if let Some(values) = schema["enum"].as_array() {
        let values: Vec<String> = values
            .iter()
            .map(|v| format!("<code>{}</code>", esc(&v.to_string())))
            .collect();
        t = format!("{t}: {}", values.join(", "));
    }
    if let Some(f) = schema["format"].as_str() {
        t = format!("{t} ({})", esc(f));
    }
    t
}

/// An object schema's properties as a table; other schemas as their type.
fn schema_html(schema: &Value) -> String {
    let Some(props) = schema["properties"].as_object() else {
        return format!("<p class=\"type\">{}</p>", type_of(schema));
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut html = String::from(
        "<table class=\"schema\"><tr><th>field</th><th>type</th><th>required</th><th>说明 · description</th></tr>",
    );
    for (name, prop) in props {
        html.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            type_of(prop),
            if required.contains(&name.as_str()) {
                "yes"
            } else {
                ""
            },
            inline(prop["description"].as_str().unwrap_or("")),
        ));
    }
    html.push_str("</table>");
    if schema["additionalProperties"] == Value::Bool(false) {
        html.push_str("<p class=\"note\">no other fields · 不含其他字段</p>");
    }
    html
}

fn example_html(example: &Value) -> String {
    let text = match example {
        Value::String(s) => s.clone(),
        Value::Null => return String::new(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    };
    format!("<pre>{}</pre>", esc(&text))
}

fn content_html(content: &Value) -> String {
    let mut html = String::new();
    if let Some(map) = content.as_object() {
        for (media, c) in map {
            html.push_str(&format!("<p class=\"media\">{}</p>", esc(media)));
            html.push_str(&schema_html(&c["schema"]));
            html.push_str(&example_html(&c["example"]));
        }
    }
    html
}

fn operation_html(doc: &Value, method: &str, path: &str, op: &Value) -> String {
    let id = op["operationId"].as_str().unwrap_or("");
    let mut html = format!(
        "<section class=\"op\" id=\"{}\"><h3><span class=\"method {m}\">{M}</span> <code>{}</code></h3><p class=\"summary\">{}</p>",
        esc(id),
        esc(path),
        inline(op["summary"].as_str().unwrap_or("")),
        m = method,
        M = method.to_ascii_uppercase(),
    );
    html.push_str(&markdown(op["description"].as_str().unwrap_or("")));
    if let Some(security) = op["security"].as_array() {
        let names: Vec<String> = security
            .iter()
            .filter_map(|s| s.as_object())
            .flat_map(|s| s.keys().map(|k| format!("<code>{}</code>", esc(k))))
            .collect();
        if !names.is_empty() {
            html.push_str(&format!(
                "<p class=\"auth\">认证 · auth: {}</p>",
                names.join(" or ")
            ));
        }
    }
    if let Some(params) = op["parameters"].as_array() {
        html.push_str("<h4>参数 · Parameters</h4><table><tr><th>name</th><th>in</th><th>type</th><th>required</th><th>说明 · description</th><th>example</th></tr>");
        for p in params {
            html.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                esc(p["name"].as_str().unwrap_or("")),
                esc(p["in"].as_str().unwrap_or("")),
                type_of(&p["schema"]),
                if p["required"] == Value::Bool(true) { "yes" } else { "" },
                inline(p["description"].as_str().unwrap_or("")),
                esc(&match &p["example"] {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    v => v.to_string(),
                }),
            ));
        }
        html.push_str("</table>");
    }
    if op["requestBody"].is_object() {
        html.push_str("<h4>请求体 · Request body</h4>");
        html.push_str(&content_html(&op["requestBody"]["content"]));
    }
    html.push_str("<h4>响应 · Responses</h4>");
    if let Some(responses) = op["responses"].as_object() {
        for (status, res) in responses {
            let (res, shared) = match res["$ref"].as_str() {
                Some(r) => (&doc["components"]["responses"][ref_name(r)], true),
                None => (res, false),
            };
            html.push_str(&format!(
                "<div class=\"response\"><p><span class=\"status s{}\">{}</span> {}</p>",
                esc(&status[..1]),
                esc(status),
                inline(res["description"].as_str().unwrap_or("")),
            ));
            // The shared error responses are described once, below.
            if !shared {
                html.push_str(&content_html(&res["content"]));
                if let Some(headers) = res["headers"].as_object() {
                    for (name, h) in headers {
                        if name != "x-request-id" {
                            html.push_str(&format!(
                                "<p class=\"media\">header <code>{}</code></p>{}",
                                esc(name),
                                example_html(&h["example"])
                            ));
                        }
                    }
                }
            }
            html.push_str("</div>");
        }
    }
    html.push_str("</section>");
    html
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The whole reference page.
pub fn render(doc: &Value) -> String {
    let title = doc["info"]["title"].as_str().unwrap_or("API");
    let mut nav = String::new();
    let mut body = String::new();
    let tags: Vec<&str> = doc["tags"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    let paths = doc["paths"].as_object();
    for tag in &tags {
        nav.push_str(&format!("<li><a href=\"#tag-{0}\">{0}</a><ul>", esc(tag)));
        body.push_str(&format!("<h2 id=\"tag-{0}\">{0}</h2>", esc(tag)));
        if let Some(t) = doc["tags"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["name"] == *tag))
        {
            body.push_str(&markdown(t["description"].as_str().unwrap_or("")));
        }
        for (path, item) in paths.into_iter().flatten() {
            for method in METHODS {
                let op = &item[method];
                let in_tag = op["tags"]
                    .as_array()
                    .is_some_and(|ts| ts.iter().any(|t| t == *tag));
                if !op.is_object() || !in_tag {
                    continue;
                }
                nav.push_str(&format!(
                    "<li><a href=\"#{}\"><span class=\"method {method}\">{}</span> {}</a></li>",
                    esc(op["operationId"].as_str().unwrap_or("")),
                    method.to_ascii_uppercase(),
                    esc(path)
                ));
                body.push_str(&operation_html(doc, method, path, op));
            }
        }
        nav.push_str("</ul></li>");
    }
    body.push_str("<h2 id=\"errors\">错误响应 · Error responses</h2>");
    if let Some(responses) = doc["components"]["responses"].as_object() {
        for (name, res) in responses {
            body.push_str(&format!(
                "<section class=\"op\" id=\"response-{0}\"><h3>{0}</h3><p>{1}</p>{2}</section>",
                esc(name),
                inline(res["description"].as_str().unwrap_or("")),
                content_html(&res["content"]),
            ));
        }
    }
    body.push_str("<h2 id=\"schemas\">数据结构 · Schemas</h2>");
    if let Some(schemas) = doc["components"]["schemas"].as_object() {
        for (name, schema) in schemas {
            body.push_str(&format!(
                "<section class=\"op\" id=\"schema-{0}\"><h3>{0}</h3>{1}{2}</section>",
                esc(name),
                markdown(schema["description"].as_str().unwrap_or("")),
                schema_html(schema),
            ));
        }
    }
    format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} API</title><style>{STYLE}</style></head><body>\
         <nav><p class=\"brand\">{t}</p><p><a href=\"/openapi.json\">openapi.json</a></p>\
         <ul>{nav}<li><a href=\"#errors\">错误响应 · Errors</a></li>\
         <li><a href=\"#schemas\">数据结构 · Schemas</a></li></ul></nav>\
         <main><h1>{t} API <small>{v}</small></h1>{desc}{body}</main></body></html>",
        t = esc(title),
        v = esc(doc["info"]["version"].as_str().unwrap_or("")),
        desc = markdown(doc["info"]["description"].as_str().unwrap_or("")),
    )
}

const STYLE: &str = "\
body{margin:0;font:15px/1.55 -apple-system,'PingFang SC','Microsoft YaHei','Noto Sans CJK SC',sans-serif;color:#1f2328;display:flex}\
nav{position:sticky;top:0;height:100vh;overflow:auto;width:340px;flex:none;background:#f6f8fa;border-right:1px solid #d0d7de;padding:12px;box-sizing:border-box;font-size:13px}\
nav ul{list-style:none;padding-left:8px;margin:4px 0}nav a{color:#1f2328;text-decoration:none}nav ul ul a{display:block;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}nav a:hover{text-decoration:underline}\
.brand{font-weight:600;font-size:16px;margin:0 0 8px}\
main{padding:16px 32px;max-width:1000px;min-width:0;overflow-x:auto}\
h2{border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:40px}\
.op{border:1px solid #d0d7de;border-radius:6px;padding:4px 16px 12px;margin:16px 0}\
.op h3 code{font-size:15px}.summary{font-weight:600}\
.method{display:inline-block;min-width:44px;text-align:center;border-radius:4px;color:#fff;font-size:11px;font-weight:700;padding:1px 4px}\
.get{background:#0969da}.post{background:#1a7f37}.put,.patch{background:#9a6700}.delete{background:#cf222e}\
.status{display:inline-block;border-radius:4px;padding:0 6px;font-weight:700;background:#eee}.s2{background:#dafbe1}.s3{background:#ddf4ff}.s4{background:#fff8c5}.s5{background:#ffebe9}\
table{border-collapse:collapse;margin:8px 0;font-size:13px}td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f6f8fa}\
pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:8px;overflow:auto;font-size:12px;white-space:pre-wrap;word-break:break-all}\
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:90%}\
.media,.auth,.note,.type{color:#57606a;font-size:13px}";
