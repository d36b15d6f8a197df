//! The sandbox's second listener: HTTPS that requires a client certificate
//! signed by a given CA, as `api.mch.weixin.qq.com/secapi/` does. It serves
//! every route of the plain listener plus `/secapi/pay/refund`.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::faults;
use crate::keys::SandboxTls;
use crate::pay::refund;
use crate::state::SandboxState;

fn invalid(what: &str, e: impl fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("sandbox TLS {what}: {e}"),
    )
}

pub(crate) fn server_config(tls: &SandboxTls) -> io::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| invalid("certificate", e))?;
    if certs.is_empty() {
        return Err(invalid("certificate", "no CERTIFICATE in the PEM"));
    }
    let key =
        PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()).map_err(|e| invalid("key", e))?;
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(tls.client_ca_pem.as_bytes()) {
        roots
            .add(ca.map_err(|e| invalid("client CA", e))?)
            .map_err(|e| invalid("client CA", e))?;
    }
    if roots.is_empty() {
        return Err(invalid("client CA", "no CERTIFICATE in the PEM"));
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| invalid("client verifier", e))?;
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("protocol versions", e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| invalid("certificate and key", e))
}

/// The running TLS listener.
pub(crate) struct TlsServer {
    pub addr: SocketAddr,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

impl TlsServer {
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.task.await;
    }
}

/// Binds `tls.listen` and serves `routes` (the plain listener's) plus the
/// certificate-only ones, on the current runtime.
pub(crate) fn start(
    tls: &SandboxTls,
    data: web::Data<SandboxState>,
    routes: fn(&mut web::ServiceConfig),
) -> io::Result<TlsServer> {
    let config = server_config(tls)?;
    let listener = std::net::TcpListener::bind(tls.listen)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap(from_fn(faults::count_and_inject))
            .wrap(from_fn(crate::traced::trace_request))
            .configure(refund::tls_routes)
            .configure(routes)
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(2)
    .listen_rustls_0_23(listener, config)?
    .run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    tracing::info!(%addr, "wechat-sandbox TLS listener (client certificate required)");
    Ok(TlsServer { addr, handle, task })
}
