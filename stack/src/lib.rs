//! `stack`: the three services' routes on one port plus the WeChat sandbox, in
//! one process, on embedded defaults (SQLite files under `./data`, the in-process
//! cache). The README's first command.

use std::net::SocketAddr;
use std::path::PathBuf;

use shared::cache::Cache;
use shared::config::Env;
use shared::startup::{Application, listen, server_settings};
use shared::telemetry::Readiness;
use wechat_sandbox::{Sandbox, SandboxConfig, TestPki};

pub mod docs;

pub struct Stack {
    addr: SocketAddr,
    public_url: String,
    sandbox: Option<Sandbox>,
    app: Application,
}

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// What the sandbox replaces. Someone who set one of these meant real WeChat:
/// replacing it silently would run a "production" stack against the sandbox.
/// (`PAY_API_VERSION` is not one: the sandbox serves both APIs, v3 by default.)
const SANDBOX_REPLACES: [&str; 15] = [
    "WX_APP_ID",
    "WX_APP_SECRET",
    "MP_APP_ID",
    "MP_APP_SECRET",
    "MCH_ID",
    "MCH_KEY",
    "MCH_API_V3_KEY",
    "MCH_CERT_SERIAL_NO",
    "MCH_KEY_PEM",
    "MCH_CERT_PEM",
    "WECHATPAY_PUBLIC_KEY_ID",
    "WECHATPAY_PUBLIC_KEY_PEM",
    "WECHAT_API_BASE",
    "WECHAT_OPEN_BASE",
    "WECHATPAY_API_BASE",
];

/// With the sandbox on, any WeChat credential or base in the environment is a
/// mistake worth stopping for: either unset it or set `WXPAY_SANDBOX=off`.
pub fn refuse_real_wechat_settings(env: &Env) -> anyhow::Result<()> {
    let set: Vec<&str> = SANDBOX_REPLACES
        .into_iter()
        .filter(|name| env.get(name).is_some())
        .collect();
    if set.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "WXPAY_SANDBOX is on (the default), but {} {} set: the sandbox would replace {}. \
         Set WXPAY_SANDBOX=off to use real WeChat, or unset {}.",
        set.join(", "),
        if set.len() == 1 { "is" } else { "are" },
        if set.len() == 1 { "it" } else { "them" },
        if set.len() == 1 { "it" } else { "them" },
    )
}
const DEFAULT_SANDBOX: &str = "127.0.0.1:8090";

impl Stack {
    /// Binds, starts the sandbox (unless `WXPAY_SANDBOX=off`), builds the three
    /// services on `env` and returns; `run_until_stopped` serves.
    pub async fn start(mut env: Env) -> anyhow::Result<Stack> {
        let sandbox_on = env.bool_or("WXPAY_SANDBOX", true)?;
        let listen_addr: SocketAddr = env.parse_or("LISTEN_ADDR", DEFAULT_LISTEN.parse()?)?;
        let listener = listen(listen_addr)?;
        let addr = listener.local_addr()?;
        env.set("LISTEN_ADDR", addr.to_string());
        env.set_default("PUBLIC_BASE_URL", format!("http://{}", browsable(addr)));

        if env.get("SESSION_SECRET").is_none() {
            // Only `stack` may run without one: sessions then end when it stops.
            env.set("SESSION_SECRET", shared::random::alphanumeric(48));
            tracing::info!("SESSION_SECRET not set: using a random one for this run");
        }

        if sandbox_on {
            refuse_real_wechat_settings(&env)?;
        }
        let sandbox = if sandbox_on {
            let sandbox_addr: SocketAddr =
                env.parse_or("SANDBOX_ADDR", DEFAULT_SANDBOX.parse()?)?;
            let mut cfg = SandboxConfig::for_tests();
            cfg.listen = sandbox_addr;
            cfg.time_scale = env.parse_or("SANDBOX_TIME_SCALE", 1.0)?;
            let pki = if admin_on(&env) {
                Some(refund_tls(&mut cfg).await?)
            } else {
                None
            };
            let sandbox = Sandbox::start(cfg).await?;
            // The sandbox replaces WeChat's three hosts and the credentials.
            for (var, value) in sandbox.service_env() {
                env.set(var, value);
            }
            if let Some(pki) = &pki {
                point_refunds_at(&sandbox, pki, &mut env)?;
            }
            Some(sandbox)
        } else {
            None
        };

        let cache = Cache::connect(env.get("REDIS_URL"), shared::startup::CACHE_PREFIX).await?;
        let auth_config = auth_service::AuthConfig::from_env(&env)?;
        let jssdk_config = jssdk_service::JssdkConfig::from_env(&env)?;
        let pay_config = pay_service::PayConfig::from_env(&env)?;
        let settings = server_settings(&auth_config.common);
        let public_url = auth_config.common.public_base_url.to_string();

        let auth = auth_service::AuthState::build(auth_config, Some(cache.clone())).await?;
        let jssdk = jssdk_service::JssdkState::build(jssdk_config, Some(cache.clone())).await?;
        let pay = pay_service::PayState::build(pay_config, Some(cache.clone())).await?;
        // Reconciliation and event dispatch, stopped with the server.
        let pay_workers = pay_service::Workers::start(&pay);

        let mut readiness = Readiness::default();
        for r in [auth.readiness(), jssdk.readiness(), pay.readiness()] {
            readiness.databases.extend(r.databases);
        }
        readiness.caches.push(cache);

        // The demo page loads the JS-SDK stand-in from its own origin.
        let sandbox_js = sandbox
            .as_ref()
            .map(|s| format!("{}/sandbox/jweixin.js", s.base_url()));
        let web_root = web_root();
        let (auth_routes, jssdk_routes, pay_routes) = (
            auth_service::configure(auth),
            jssdk_service::configure(jssdk),
            pay_service::configure(pay),
        );
        // The merged /openapi.json and the /docs page it renders.
        let docs_routes = docs::configure();
        let app = Application::serve(listener, settings, readiness, move |cfg| {
            docs_routes(cfg);
            auth_routes(cfg);
            jssdk_routes(cfg);
            pay_routes(cfg);
            if let Some(js) = sandbox_js.clone() {
                cfg.route(
                    "/sandbox/jweixin.js",
                    actix_web::web::get().to(move || {
                        let js = js.clone();
                        async move {
                            actix_web::HttpResponse::Found()
                                .insert_header((actix_web::http::header::LOCATION, js))
                                .finish()
                        }
                    }),
                );
            }
            if let Some(root) = &web_root {
                cfg.service(actix_files::Files::new("/", root).index_file("index.html"));
            }
        })?
        .keep_alive(pay_workers);
        Ok(Stack {
            addr,
            public_url,
            sandbox,
            app,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to open in a browser.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    pub fn sandbox(&self) -> Option<&Sandbox> {
        self.sandbox.as_ref()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.app.run_until_stopped().await;
        if let Some(sandbox) = self.sandbox {
            sandbox.stop().await;
        }
        result
    }
}

/// Whether pay-service's admin routes (refunds, the console) are on.
fn admin_on(env: &Env) -> bool {
    ["ADMIN_TOKEN", "ADMIN_TOKENS"]
        .into_iter()
        .any(|var| env.get(var).is_some_and(|t| !t.is_empty()))
}

/// Refunds go over mutual TLS (the merchant certificate in the handshake),
/// so with the admin routes on the sandbox gets a TLS listener and a made
/// PKI, whose client certificate is also its v3 merchant identity: the
/// `MCH_CERT_PEM` and `MCH_KEY_PEM` it hands out then serve both.
async fn refund_tls(cfg: &mut SandboxConfig) -> anyhow::Result<TestPki> {
    let mch_id = cfg
        .merchants
        .first()
        .map(|m| m.mch_id.clone())
        .unwrap_or_default();
    // Key generation is CPU work: off the async workers.
    let pki = tokio::task::spawn_blocking(move || TestPki::generate(&mch_id)).await??;
    cfg.tls = Some(pki.sandbox_tls(SocketAddr::new(cfg.listen.ip(), 0)));
    cfg.v3_merchant = Some(pki.merchant_identity());
    Ok(pki)
}

/// Points pay-service's refunds at the sandbox's TLS listener, trusting the
/// made CA (written beside the sandbox's merchant files, removed with them).
fn point_refunds_at(sandbox: &Sandbox, pki: &TestPki, env: &mut Env) -> anyhow::Result<()> {
    let base = sandbox
        .tls_base_url()
        .ok_or_else(|| anyhow::anyhow!("the sandbox started without its TLS listener"))?;
    let cert = env
        .get("MCH_CERT_PEM")
        .ok_or_else(|| anyhow::anyhow!("the sandbox wrote no MCH_CERT_PEM"))?;
    let ca = std::path::Path::new(cert).with_file_name("wechatpay_ca.pem");
    std::fs::write(&ca, &pki.ca_pem)?;
    env.set("WECHATPAY_CA_PEM", ca.display().to_string());
    env.set("WECHATPAY_REFUND_BASE", base);
    Ok(())
}

/// A wildcard listen address is reachable through loopback.
fn browsable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

/// The demo page's folder (`WEB_ROOT`, else `web/` of this checkout) when present.
fn web_root() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("WEB_ROOT").map(PathBuf::from),
        Some(PathBuf::from("web")),
        Some(PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../web"
        ))),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("index.html").is_file())
}
