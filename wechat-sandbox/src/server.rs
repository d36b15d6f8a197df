//! Binding, routing, starting and stopping the sandbox's HTTP server.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use actix_cors::Cors;
use actix_web::dev::ServerHandle;
use actix_web::http::header;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpRequest, HttpServer, Route, web};

use crate::config::SandboxConfig;
use crate::errors::{WxError, json_response};
use crate::keys::{V3Keys, V3State};
use crate::params::Params;
use crate::pay::v3::V3Files;
use crate::pay::{bills, orders, refund, v3};
use crate::state::SandboxState;
use crate::{control, faults, jssdk, oauth, scan, tls, tokens};

/// A running sandbox. Dropping it leaves the server running until the
/// runtime ends; call [`Sandbox::stop`] to end it and its pending deliveries.
pub struct Sandbox {
    addr: SocketAddr,
    state: Arc<SandboxState>,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<io::Result<()>>,
    /// The HTTPS listener for `/secapi/`, when configured.
    tls: Option<tls::TlsServer>,
    /// The v3 key and certificate files service_env names.
    v3_files: V3Files,
}

impl Sandbox {
    /// Binds `cfg.listen` and serves on the current tokio (or actix) runtime;
    /// returns as soon as the port is bound.
    pub async fn start(cfg: SandboxConfig) -> io::Result<Sandbox> {
        cfg.validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listener = std::net::TcpListener::bind(cfg.listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let base_url = cfg
            .public_base_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", reachable(addr)));
        let tls_cfg = cfg.tls.clone();
        let (v3, v3_files) = v3_state(&cfg).await?;
        let state = SandboxState::new(cfg, base_url, tokio::runtime::Handle::current(), v3);
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .wrap(from_fn(faults::count_and_inject))
                .wrap(from_fn(crate::traced::trace_request))
                .configure(routes)
                .configure(refund::plain_routes)
        })
        .workers(2)
        // The embedding program decides what Ctrl-C means.
        .disable_signals()
        .shutdown_timeout(2)
        .listen(listener)?
        .run();
        let handle = server.handle();
        let task = tokio::spawn(server);
        tracing::info!(%addr, base_url = state.public_base_url(), "wechat-sandbox listening");
        let tls = match &tls_cfg {
            Some(t) => match tls::start(t, web::Data::from(state.clone()), routes) {
                Ok(server) => Some(server),
                Err(e) => {
                    handle.stop(false).await;
                    return Err(e);
                }
            },
            None => None,
        };
        Ok(Sandbox {
            addr,
            state,
            handle,
            task,
            tls,
            v3_files,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: where a client on this machine reaches it
    /// (a wildcard listen address is given as loopback).
    pub fn base_url(&self) -> String {
        format!("http://{}", reachable(self.addr))
    }

    /// The variables that point a wxpay service at this sandbox
    /// ([`crate::service_env`]), plus its APIv3 credentials:
    /// `MCH_API_V3_KEY`, `MCH_CERT_SERIAL_NO`, `WECHATPAY_PUBLIC_KEY_ID`, and
    /// the files `MCH_KEY_PEM`, `MCH_CERT_PEM`, `WECHATPAY_PUBLIC_KEY_PEM`
    /// (written at start; see `SandboxConfig::v3_dir`).
    pub fn service_env(&self) -> Vec<(&'static str, String)> {
        let mut env = crate::service_env(&self.base_url());
        env.extend(self.v3_files.env().iter().cloned());
        env
    }

    /// `https://127.0.0.1:PORT` of the TLS listener (client certificate
    /// required), when `SandboxConfig::tls` was set.
    pub fn tls_base_url(&self) -> Option<String> {
        self.tls
            .as_ref()
            .map(|t| format!("https://{}", reachable(t.addr)))
    }

    pub fn state(&self) -> Arc<SandboxState> {
        self.state.clone()
    }

    /// Stops accepting, finishes in-flight requests and cancels pending
    /// notification retries.
    pub async fn stop(self) {
        self.state.shutdown.send_replace(true);
        if let Some(tls) = self.tls {
            tls.stop().await;
        }
        self.handle.stop(true).await;
        let _ = self.task.await;
    }
}

/// The v3 keys (generated off the async workers: RSA key generation is
/// slow) and their files.
async fn v3_state(cfg: &SandboxConfig) -> io::Result<(V3State, V3Files)> {
    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, format!("v3: {e}"));
    let merchant = cfg.merchants.first();
    let mch_id = merchant.map(|m| m.mch_id.clone()).unwrap_or_default();
    let api_v3_key = merchant.map(|m| m.api_v3_key.clone()).unwrap_or_default();
    let given = cfg.v3_merchant.clone();
    let keys = tokio::task::spawn_blocking(move || V3Keys::generate(&mch_id, given))
        .await
        .map_err(|e| invalid(e.to_string()))?
        .map_err(invalid)?;
    let v3 = V3State::new(keys, cfg.v3_sign_mode);
    let files = V3Files::write(&v3.info(), &api_v3_key, cfg.v3_dir.as_deref()).map_err(invalid)?;
    Ok((v3, files))
}

fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/connect/oauth2/authorize", web::get().to(oauth::authorize))
        .route(
            "/sns/oauth2/access_token",
            query_api(SandboxState::exchange_oauth_code),
        )
        .route(
            "/sns/oauth2/refresh_token",
            query_api(SandboxState::refresh_user_token),
        )
        .route("/sns/userinfo", query_api(SandboxState::oauth_userinfo))
        .route("/sns/auth", web::get().to(oauth::check_token))
        .route(
            "/sns/jscode2session",
            query_api(SandboxState::jscode2session),
        )
        .route(
            "/cgi-bin/token",
            query_api(SandboxState::client_credential_token),
        )
        .route(
            "/cgi-bin/stable_token",
            web::post().to(tokens::stable_token),
        )
        .route(
            "/cgi-bin/ticket/getticket",
            query_api(SandboxState::get_ticket),
        )
        .service(orders::api(
            "/pay/unifiedorder",
            SandboxState::unified_order,
        ))
        .service(orders::api("/pay/orderquery", SandboxState::order_query))
        .service(orders::api("/pay/closeorder", SandboxState::close_order))
        .route("/sandbox", web::get().to(control::index))
        .route("/sandbox/", web::get().to(control::index))
        .route("/sandbox/users", web::get().to(control::users))
        .route(
            "/sandbox/orders/{out_trade_no}",
            web::get().to(control::order),
        )
        .route(
            "/sandbox/orders/{out_trade_no}/pay",
            web::post().to(control::pay),
        )
        .route(
            "/sandbox/orders/{out_trade_no}/deliveries",
            web::get().to(control::deliveries),
        )
        .route("/sandbox/faults", web::post().to(control::inject_fault))
        .route("/sandbox/calls", web::get().to(control::calls))
        .route("/sandbox/reset", web::post().to(control::reset))
        .route("/sandbox/time/advance", web::post().to(control::advance))
        .route("/sandbox/oauth/code", web::post().to(control::oauth_code))
        .route("/sandbox/oauth/allow", web::get().to(oauth::allow))
        .route("/sandbox/oauth/deny", web::get().to(oauth::deny))
        .route("/sandbox/mp/code", web::post().to(control::mp_code))
        .route("/sandbox/mp/encrypt", web::post().to(control::mp_encrypt))
        .route("/sandbox/mweb", web::get().to(control::mweb))
        .route("/sandbox/mweb/pay", web::post().to(control::mweb_pay))
        .route("/sandbox/native", web::get().to(scan::scan))
        .route("/sandbox/native/pay", web::post().to(scan::pay))
        .route("/sandbox/avatar/{file}", web::get().to(control::avatar))
        .route("/sandbox/jweixin.js", web::get().to(jssdk::script))
        .service(
            web::resource("/sandbox/jssdk/verify")
                .wrap(page_cors())
                .route(web::post().to(jssdk::verify)),
        )
        .service(
            web::resource("/sandbox/jssdk/pay")
                .wrap(page_cors())
                .route(web::post().to(jssdk::pay)),
        )
        .route("/sandbox/jsapi/cashier", web::get().to(jssdk::cashier))
        .route(
            "/sandbox/jsapi/cashier/confirm",
            web::post().to(jssdk::confirm),
        )
        .route(
            "/sandbox/jsapi/cashier/cancel",
            web::post().to(jssdk::cancel),
        )
        .configure(bills::routes)
        .configure(v3::routes);
}

/// A WeChat GET API: `api` reads the query (leniently, as WeChat does) and
/// its JSON or errcode is the answer.
fn query_api(api: fn(&SandboxState, &Params) -> Result<serde_json::Value, WxError>) -> Route {
    web::get().to(
        move |sandbox: web::Data<SandboxState>, req: HttpRequest| async move {
            api(&sandbox, &Params::from_query(&req)).map(|body| json_response(&body))
        },
    )
}

/// The JS-SDK stand-in calls these from the merchant's page, whatever its
/// origin (WeChat's JS-SDK works on any page with a valid signature). No
/// cookies go with them and they answer nothing secret.
fn page_cors() -> Cors {
    Cors::default()
        .allow_any_origin()
        .allowed_methods(["POST"])
        .allowed_header(header::CONTENT_TYPE)
        .max_age(600)
}
