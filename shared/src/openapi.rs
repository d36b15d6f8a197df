//! The OpenAPI 3.1 documents the services serve at `/openapi.json` (and
//! `stack` merges for `/docs`), built from code with utoipa.
//!
//! What every service shares lives here: the envelope and the error responses
//! with their codes (API.md §3), the security schemes, the health routes, and
//! [`Op`], the small builder each service's `http::openapi` describes its
//! routes with. Text is bilingual, Chinese first: summaries read
//! `中文 · English`, descriptions have a Chinese and an English paragraph.
//!
//! The documents are kept honest by tests, not by annotations on the
//! handlers: each service's `tests/openapi.rs` fails when a mounted route is
//! missing from its document or the document names a route that is not
//! mounted, and validates real responses against the schemas
//! (`testkit::openapi`).

use std::sync::{Arc, OnceLock};

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ComponentsBuilder, KnownFormat, ObjectBuilder,
    SchemaFormat, Type,
};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    Components, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref, RefOr, Required, Schema,
};

/// Where every service serves its document.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// `中文 · English`.
fn both(zh: &str, en: &str) -> String {
    format!("{zh} · {en}")
}

/// A Chinese paragraph, then an English one.
fn paragraphs(zh: &str, en: &str) -> String {
    format!("{zh}\n\n{en}")
}

// ------------------------------------------------------------ schemas ----

pub fn string() -> Schema {
    ObjectBuilder::new().schema_type(Type::String).into()
}

pub fn integer() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .into()
}

pub fn boolean() -> Schema {
    ObjectBuilder::new().schema_type(Type::Boolean).into()
}

/// An absolute URL.
pub fn uri() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::Custom("uri".to_owned())))
        .into()
}

/// One of `values`.
pub fn one_of_strings(values: &[&str]) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .into()
}

/// Any JSON object.
pub fn any_object() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::FreeForm(true)))
        .into()
}

/// `#/components/schemas/<T>`; the caller registers `T` (see [`Op::ok`]).
pub fn reference<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

/// An array of `T`.
pub fn array_of<T: ToSchema>() -> Schema {
    ArrayBuilder::new().items(reference::<T>()).into()
}

/// The success envelope around `data`: `{"code":0,"data":…,"message":"ok"}`.
pub fn ok_envelope(data: RefOr<Schema>) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .title(Some("Envelope"))
        .property(
            "code",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .enum_values(Some([0]))
                .description(Some("0: 成功 · success")),
        )
        .required("code")
        .property("data", data)
        .required("data")
        .property(
            "message",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["ok"])),
        )
        .required("message")
        .into()
}

/// The failure envelope: `{"code":N,"data":null,"message":"…"}`.
fn error_envelope() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(paragraphs(
            "失败时的信封：`code` 非 0（见错误码表），`data` 为 null，`message` 说明原因（不含内部细节）。",
            "The failure envelope: `code` is not 0 (see the error codes), `data` is null, \
             `message` says why (never internal detail).",
        )))
        .property(
            "code",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .description(Some(
                    "1001–1006, 5000, 5003, 10009, 或微信的 errcode · or WeChat's errcode",
                )),
        )
        .required("code")
        .property("data", ObjectBuilder::new().schema_type(Type::Null))
        .required("data")
        .property("message", string())
        .required("message")
        .into()
}

pub const ERROR_ENVELOPE: &str = "ErrorEnvelope";

// --------------------------------------------------------- error codes ----

/// One row of API.md §3's table: the component response an operation names
/// with [`Op::errors`].
struct ErrorRow {
    status: u16,
    name: &'static str,
    code: i64,
    zh: &'static str,
    en: &'static str,
    example: &'static str,
}

const ERRORS: &[ErrorRow] = &[
    ErrorRow {
        status: 400,
        name: "BadRequest",
        code: 1001,
        zh: "参数缺失或无效（message 指出是哪个参数）",
        en: "missing or invalid parameter (the message names it)",
        example: "url is required",
    },
    ErrorRow {
        status: 401,
        name: "Unauthorized",
        code: 1002,
        zh: "没有会话，或令牌无效、已过期",
        en: "no session, or an invalid or expired token",
        example: "not logged in",
    },
    ErrorRow {
        status: 403,
        name: "Forbidden",
        code: 1003,
        zh: "该会话无权执行此操作",
        en: "the session may not do this",
        example: "userOpenid is not the session's user",
    },
    ErrorRow {
        status: 404,
        name: "NotFound",
        code: 1004,
        zh: "资源不存在（或该功能未配置）",
        en: "no such resource (or the feature is not configured)",
        example: "no such order",
    },
    ErrorRow {
        status: 409,
        name: "Conflict",
        code: 1005,
        zh: "与资源当前状态冲突",
        en: "conflicts with the resource's state",
        example: "the order is already paid",
    },
    ErrorRow {
        status: 429,
        name: "RateLimited",
        code: 1006,
        zh: "请求过于频繁",
        en: "rate limited",
        example: "too many requests, try again later",
    },
    ErrorRow {
        status: 500,
        name: "Internal",
        code: 5000,
        zh: "内部错误（细节只在日志中，按 x-request-id 查找）",
        en: "internal error (details only in the log, under the x-request-id)",
        example: "internal error",
    },
    ErrorRow {
        status: 502,
        name: "BadGateway",
        code: 40029,
        zh: "微信返回错误（code 为微信的 errcode，message 为 errmsg），或微信不可达、返回了无法解析的内容（code 10009）",
        en: "WeChat answered with an error (code is WeChat's errcode, message its errmsg), \
             or WeChat was unreachable or answered garbage (code 10009)",
        example: "invalid code",
    },
    ErrorRow {
        status: 503,
        name: "Unavailable",
        code: 5003,
        zh: "数据库或缓存不可用",
        en: "database or cache unavailable",
        example: "service unavailable, try again later",
    },
    ErrorRow {
        status: 504,
        name: "GatewayTimeout",
        code: 10009,
        zh: "调用微信超时",
        en: "WeChat timed out",
        example: "WeChat timed out",
    },
];

fn error_response(row: &ErrorRow) -> Response {
    ResponseBuilder::new()
        .description(both(row.zh, row.en))
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(ERROR_ENVELOPE)))
                .example(Some(
                    json!({"code": row.code, "data": null, "message": row.example}),
                ))
                .build(),
        )
        .header("x-request-id", request_id_header())
        .build()
}

fn request_id_header() -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(string()))
        .description(Some(both(
            "请求 ID（请求带来的值，否则新生成）",
            "the request id (the request's own when it sent one)",
        )))
        .build()
}

/// API.md §3 as a Markdown table, for the documents' description.
fn error_table() -> String {
    let mut t = String::from(
        "| code | HTTP | 含义 | meaning |\n| --- | --- | --- | --- |\n| 0 | 200 | 成功 | success |\n",
    );
    for r in ERRORS {
        let code = match r.status {
            502 => "微信 errcode · WeChat's errcode (e.g. 40029), 10009".to_owned(),
            _ => r.code.to_string(),
        };
        t.push_str(&format!(
            "| {code} | {} | {} | {} |\n",
            r.status, r.zh, r.en
        ));
    }
    t
}

// ------------------------------------------------------- security ----

/// How an operation proves who calls it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// The `wx_session` cookie, or the same token as `Authorization: Bearer`.
    Session,
    /// `Authorization: Bearer ADMIN_TOKEN` (pay-service's admin API).
    Admin,
    /// `Authorization: Bearer INTERNAL_TOKEN` (jssdk-service's internal route).
    Internal,
    /// A WeChat Pay signature in the body (v2) or headers (v3).
    WechatPaySignature,
}

fn security_schemes(c: ComponentsBuilder) -> ComponentsBuilder {
    let bearer = |zh: &str, en: &str| {
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(both(zh, en)))
                .build(),
        )
    };
    c.security_scheme(
        "session_cookie",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            "wx_session",
            "登录后设置的 HttpOnly 会话 cookie · the HttpOnly session cookie set at login",
        ))),
    )
    .security_scheme(
        "session_bearer",
        bearer(
            "会话令牌（小程序 getSession 返回的 token）",
            "the session token (the mini program's getSession token)",
        ),
    )
    .security_scheme(
        "admin_token",
        bearer(
            "ADMIN_TOKEN；未设置时管理接口返回 404",
            "ADMIN_TOKEN; with it unset the admin routes answer 404",
        ),
    )
    .security_scheme(
        "internal_token",
        bearer(
            "INTERNAL_TOKEN；未设置时返回 404，网关不暴露 /internal/",
            "INTERNAL_TOKEN; with it unset 404, and the gateway does not expose /internal/",
        ),
    )
}

fn requirements(auth: Auth) -> Vec<SecurityRequirement> {
    let none: [&str; 0] = [];
    match auth {
        Auth::Session => vec![
            SecurityRequirement::new("session_cookie", none),
            SecurityRequirement::new("session_bearer", none),
        ],
        Auth::Admin => vec![SecurityRequirement::new("admin_token", none)],
        Auth::Internal => vec![SecurityRequirement::new("internal_token", none)],
        // Verified in the body or headers, not an HTTP authentication scheme.
        Auth::WechatPaySignature => Vec::new(),
    }
}

// ------------------------------------------------------------- Op ----

/// One operation (method + path) of a service's document.
pub struct Op {
    pub method: HttpMethod,
    pub path: &'static str,
    op: OperationBuilder,
    schemas: Vec<(String, RefOr<Schema>)>,
}

impl Op {
    pub fn get(path: &'static str) -> Self {
        Op::new(HttpMethod::Get, path)
    }

    pub fn post(path: &'static str) -> Self {
        Op::new(HttpMethod::Post, path)
    }

    pub fn delete(path: &'static str) -> Self {
        Op::new(HttpMethod::Delete, path)
    }

    fn new(method: HttpMethod, path: &'static str) -> Self {
        Op {
            method,
            path,
            op: OperationBuilder::new(),
            schemas: Vec::new(),
        }
    }

    /// `中文 · English`; also the operation id's source.
    pub fn summary(mut self, zh: &str, en: &str) -> Self {
        self.op = self.op.summary(Some(both(zh, en)));
        self
    }

    pub fn describe(mut self, zh: &str, en: &str) -> Self {
        self.op = self.op.description(Some(paragraphs(zh, en)));
        self
    }

    fn param(
        mut self,
        place: ParameterIn,
        name: &str,
        required: bool,
        schema: Schema,
        (zh, en): (&str, &str),
        example: Value,
    ) -> Self {
        self.op = self.op.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(place)
                .required(if required {
                    Required::True
                } else {
                    Required::False
                })
                .schema(Some(schema))
                .description(Some(both(zh, en)))
                .example(Some(example)),
        );
        self
    }

    pub fn query(
        self,
        name: &str,
        required: bool,
        schema: Schema,
        zh: &str,
        en: &str,
        example: Value,
    ) -> Self {
        self.param(
            ParameterIn::Query,
            name,
            required,
            schema,
            (zh, en),
            example,
        )
    }

    /// A `{name}` segment of the path.
    pub fn path_param(self, name: &str, zh: &str, en: &str, example: &str) -> Self {
        self.param(
            ParameterIn::Path,
            name,
            true,
            string(),
            (zh, en),
            json!(example),
        )
    }

    pub fn header(self, name: &str, required: bool, zh: &str, en: &str, example: &str) -> Self {
        self.param(
            ParameterIn::Header,
            name,
            required,
            string(),
            (zh, en),
            json!(example),
        )
    }

    pub fn auth(mut self, auth: Auth) -> Self {
        self.op = self.op.securities(Some(requirements(auth)));
        self
    }

    fn register<T: ToSchema>(&mut self) {
        self.schemas.push((T::name().into_owned(), T::schema()));
        T::schemas(&mut self.schemas);
    }

    /// A JSON request body of type `T`.
    pub fn json_body<T: ToSchema>(
        mut self,
        required: bool,
        zh: &str,
        en: &str,
        example: Value,
    ) -> Self {
        self.register::<T>();
        self.op = self.op.request_body(Some(
            RequestBodyBuilder::new()
                .description(Some(both(zh, en)))
                .required(Some(if required {
                    Required::True
                } else {
                    Required::False
                }))
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(reference::<T>()))
                        .example(Some(example))
                        .build(),
                )
                .build(),
        ));
        self
    }

    /// A request body of another media type (XML notifications).
    pub fn raw_body(
        mut self,
        media_type: &str,
        schema: Schema,
        zh: &str,
        en: &str,
        example: Value,
    ) -> Self {
        self.op = self.op.request_body(Some(
            RequestBodyBuilder::new()
                .description(Some(both(zh, en)))
                .required(Some(Required::True))
                .content(
                    media_type,
                    ContentBuilder::new()
                        .schema(Some(schema))
                        .example(Some(example))
                        .build(),
                )
                .build(),
        ));
        self
    }

    /// 200 with `T` as the envelope's `data`.
    pub fn ok<T: ToSchema>(mut self, zh: &str, en: &str, data_example: Value) -> Self {
        self.register::<T>();
        self.ok_with(reference::<T>(), zh, en, data_example)
    }

    /// 200 with an array of `T` as `data`.
    pub fn ok_list<T: ToSchema>(mut self, zh: &str, en: &str, data_example: Value) -> Self {
        self.register::<T>();
        self.ok_with(array_of::<T>().into(), zh, en, data_example)
    }

    /// 200 with `data` of the given schema.
    pub fn ok_with(self, data: RefOr<Schema>, zh: &str, en: &str, data_example: Value) -> Self {
        let example = json!({"code": 0, "data": data_example, "message": "ok"});
        self.response(
            200,
            ResponseBuilder::new()
                .description(both(zh, en))
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(ok_envelope(data)))
                        .example(Some(example))
                        .build(),
                )
                .header("x-request-id", request_id_header())
                .build(),
        )
    }

    pub fn response(mut self, status: u16, response: Response) -> Self {
        self.op = self.op.response(status.to_string(), response);
        self
    }

    /// The error statuses the operation may answer, each described once in
    /// `components.responses` (API.md §3).
    pub fn errors(mut self, statuses: &[u16]) -> Self {
        for status in statuses {
            let name = ERRORS
                .iter()
                .find(|r| r.status == *status)
                .map_or("Internal", |r| r.name);
            self.op = self.op.response(
                status.to_string(),
                RefOr::Ref(Ref::new(format!("#/components/responses/{name}"))),
            );
        }
        self
    }
}

/// A 302 to `Location`.
pub fn redirect(zh: &str, en: &str, location_example: &str) -> Response {
    ResponseBuilder::new()
        .description(both(zh, en))
        .header(
            "Location",
            HeaderBuilder::new()
                .schema(Some(uri()))
                .example(Some(json!(location_example)))
                .build(),
        )
        .build()
}

/// A body of `media_type` (text, XML, SVG) with an example.
pub fn body(media_type: &str, schema: Schema, zh: &str, en: &str, example: Value) -> Response {
    ResponseBuilder::new()
        .description(both(zh, en))
        .content(
            media_type,
            ContentBuilder::new()
                .schema(Some(schema))
                .example(Some(example))
                .build(),
        )
        .build()
}

/// No body.
pub fn empty(zh: &str, en: &str) -> Response {
    ResponseBuilder::new().description(both(zh, en)).build()
}

// --------------------------------------------------------- documents ----

/// The routes `shared::telemetry::configure_health` mounts, and
/// `/openapi.json`: every service has them.
fn common_ops() -> Vec<Op> {
    vec![
        Op::get("/healthz")
            .summary("存活检查", "Liveness")
            .describe("进程在运行即返回 200。", "200 while the process runs.")
            .response(
                200,
                body("text/plain", string(), "存活", "alive", json!("ok")),
            ),
        Op::get("/readyz")
            .summary("就绪检查", "Readiness")
            .describe(
                "数据库与缓存都可用时返回 200，否则 503 并列出不可用的依赖。",
                "200 only when the database and cache answer, else 503 naming what does not.",
            )
            .response(
                200,
                body("text/plain", string(), "就绪", "ready", json!("ready")),
            )
            .response(
                503,
                body(
                    "text/plain",
                    string(),
                    "依赖不可用",
                    "a dependency does not answer",
                    json!("cache: timed out"),
                ),
            ),
        Op::get("/metrics")
            .summary("Prometheus 指标", "Prometheus metrics")
            .response(
                200,
                body(
                    "text/plain",
                    string(),
                    "Prometheus 文本格式",
                    "Prometheus text format",
                    json!("# TYPE http_requests_total counter\n"),
                ),
            ),
        Op::get(OPENAPI_PATH)
            .summary(
                "本服务的 OpenAPI 3.1 文档",
                "This service's OpenAPI 3.1 document",
            )
            .response(
                200,
                body(
                    "application/json",
                    any_object(),
                    "OpenAPI 文档",
                    "the OpenAPI document",
                    json!({"openapi": "3.1.0"}),
                ),
            ),
    ]
}

/// The tag of the routes every service has (health, metrics, the document).
pub const OPERATIONS_TAG: &str = "operations";

fn operations_tag() -> utoipa::openapi::tag::Tag {
    TagBuilder::new()
        .name(OPERATIONS_TAG)
        .description(Some(both(
            "每个服务都提供的运维路由：健康检查、指标与本文档",
            "The routes every service has: health, metrics and its document",
        )))
        .build()
}

/// What a document says about the envelope and the error codes.
fn about_responses() -> String {
    format!(
        "## 响应 · Responses\n\n\
         JSON 响应使用信封 `{{\"code\":0,\"data\":…,\"message\":\"ok\"}}`；失败时 \
         `{{\"code\":N,\"data\":null,\"message\":\"…\"}}`，并带相应的 HTTP 状态码。\
         每个响应都带 `x-request-id`。金额一律为整数\"分\"（`amountFen`），小程序的 `money` 参数除外（元）。\n\n\
         JSON bodies use the envelope `{{\"code\":0,\"data\":…,\"message\":\"ok\"}}`; failures are \
         `{{\"code\":N,\"data\":null,\"message\":\"…\"}}` with a fitting HTTP status. Every \
         response carries `x-request-id`. Money is integer fen (`amountFen`) except the mini \
         program's `money` parameter (yuan).\n\n{}",
        error_table()
    )
}

/// A service's document: its routes (`ops`) plus the common ones, the
/// envelope, the error responses and the security schemes.
pub fn document(
    service: &str,
    version: &str,
    about_zh: &str,
    about_en: &str,
    ops: Vec<Op>,
) -> OpenApi {
    let mut components =
        security_schemes(ComponentsBuilder::new()).schema(ERROR_ENVELOPE, error_envelope());
    for row in ERRORS {
        components = components.response(row.name, error_response(row));
    }
    let mut paths = Paths::new();
    let own = ops.into_iter().map(|op| (service, op));
    let common = common_ops().into_iter().map(|op| (OPERATIONS_TAG, op));
    for (tag, op) in own.chain(common) {
        for (name, schema) in op.schemas {
            components = components.schema(name, schema);
        }
        let operation = op
            .op
            .tag(tag)
            .operation_id(Some(operation_id(op.method.clone(), op.path)))
            .build();
        paths.add_path_operation(op.path, vec![op.method], operation);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title(format!("wxpay {service}"))
                .version(version)
                .description(Some(format!(
                    "{}\n\n{}",
                    paragraphs(about_zh, about_en),
                    about_responses()
                )))
                .build(),
        )
        .paths(paths)
        .components(Some(components.build()))
        .tags(Some([
            TagBuilder::new()
                .name(service)
                .description(Some(both(about_zh, about_en)))
                .build(),
            operations_tag(),
        ]))
        .build()
}

/// `get_api_pay_orders_out_trade_no`: unique per method and path.
fn operation_id(method: HttpMethod, path: &str) -> String {
    let m = match method {
        HttpMethod::Get => "get",
        HttpMethod::Post => "post",
        HttpMethod::Put => "put",
        HttpMethod::Delete => "delete",
        HttpMethod::Patch => "patch",
        HttpMethod::Options => "options",
        HttpMethod::Head => "head",
        HttpMethod::Trace => "trace",
    };
    let mut id = String::from(m);
    for c in path.chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c);
        } else if !id.ends_with('_') {
            id.push('_');
        }
    }
    id.trim_end_matches('_').to_owned()
}

/// The three services' documents as one (what `stack` serves): all paths,
/// components and tags, under `title`.
pub fn merge(title: &str, version: &str, docs: impl IntoIterator<Item = OpenApi>) -> OpenApi {
    let mut merged = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title(title)
                .version(version)
                .description(Some(paragraphs(
                    "auth-service、jssdk-service 与 pay-service 的全部路由（stack 在一个端口上提供它们；生产环境由网关按路径分发）。",
                    "Every route of auth-service, jssdk-service and pay-service (stack serves them on one \
                     port; in production the gateway routes each path to its service).",
                ) + "\n\n" + &about_responses()))
                .build(),
        )
        .components(Some(Components::new()))
        .build();
    for doc in docs {
        merged.merge(doc);
    }
    // The services in order, then the routes they all share.
    if let Some(tags) = &mut merged.tags {
        tags.sort_by_key(|t| t.name == OPERATIONS_TAG);
    }
    merged
}

/// Mounts `GET /openapi.json` answering the document `doc` builds, built and
/// serialized at the first request and kept. Not at start: pay-service's
/// document is ~130 KB of JSON, and building it runs code that an idle service
/// would otherwise keep resident (issue #16, goal 5).
pub fn serve(doc: fn() -> OpenApi) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    serve_made_once(OPENAPI_PATH, "application/json", move || {
        web::Bytes::from(to_json(&doc()))
    })
}

/// Mounts `GET path` answering the body `make` makes at the first request,
/// kept for every later one: a generated page (the OpenAPI document, `stack`'s
/// `/docs`) costs nothing until someone asks for it.
pub fn serve_made_once<F>(
    path: &'static str,
    content_type: &'static str,
    make: F,
) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static
where
    F: Fn() -> web::Bytes + Clone + Send + 'static,
{
    let body: Arc<OnceLock<web::Bytes>> = Arc::default();
    move |cfg: &mut web::ServiceConfig| {
        let (body, make) = (body.clone(), make.clone());
        cfg.route(
            path,
            web::get().to(move || {
                let body = body.get_or_init(&make).clone();
                async move { HttpResponse::Ok().content_type(content_type).body(body) }
            }),
        );
    }
}

/// The document as JSON (pretty, stable order).
pub fn to_json(doc: &OpenApi) -> String {
    // Serializing utoipa's model cannot fail (string keys, no non-finite
    // floats); an empty object would show at once in every test.
    doc.to_pretty_json().unwrap_or_else(|_| "{}".to_owned())
}
