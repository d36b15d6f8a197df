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

use crate::state::SandboxState;
use crate::{faults, refund};

/// Where and with what the TLS listener serves. PEM text, not paths: tests
/// generate certificates in memory.
#[derive(Clone)]
pub struct SandboxTls {
    /// Port 0 picks a free port; [`crate::Sandbox::tls_base_url`] tells which.
    pub listen: SocketAddr,
    /// The server's certificate chain (leaf first), valid for the host the
    /// clients use (e.g. 127.0.0.1).
    pub cert_pem: String,
    pub key_pem: String,
    /// CA(s) whose client certificates are accepted; a handshake without one fails.
    pub client_ca_pem: String,
}

impl fmt::Debug for SandboxTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxTls")
            .field("listen", &self.listen)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

fn invalid(what: &str, e: impl fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("sandbox TLS {what}: {e}"),
    )
}

fn server_config(tls: &SandboxTls) -> io::Result<rustls::ServerConfig> {
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

/// A throwaway PKI for tests and local runs: a CA, a server certificate for
/// 127.0.0.1 and localhost, and a merchant client certificate, all signed by
/// that CA (WeChat issues merchants' `apiclient_cert.pem` the same way).
#[derive(Clone)]
pub struct TestPki {
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

impl fmt::Debug for TestPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestPki").finish_non_exhaustive()
    }
}

impl TestPki {
    /// `mch_id` becomes the client certificate's common name.
    pub fn generate(mch_id: &str) -> Result<Self, rcgen::Error> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "wechat-sandbox test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params.self_signed(&ca_key)?;

        let server_key = KeyPair::generate()?;
        let mut server_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, "wechat-sandbox");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = server_params.signed_by(&server_key, &ca, &ca_key)?;

        let client_key = KeyPair::generate()?;
        let mut client_params = CertificateParams::new(Vec::<String>::new())?;
        client_params
            .distinguished_name
            .push(DnType::CommonName, mch_id);
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = client_params.signed_by(&client_key, &ca, &ca_key)?;

        Ok(TestPki {
            ca_pem: ca.pem(),
            server_cert_pem: server.pem(),
            server_key_pem: server_key.serialize_pem(),
            client_cert_pem: client.pem(),
            client_key_pem: client_key.serialize_pem(),
        })
    }

    /// The sandbox side: serve with the server certificate on `listen`,
    /// accept clients signed by the CA.
    pub fn sandbox_tls(&self, listen: SocketAddr) -> SandboxTls {
        SandboxTls {
            listen,
            cert_pem: self.server_cert_pem.clone(),
            key_pem: self.server_key_pem.clone(),
            client_ca_pem: self.ca_pem.clone(),
        }
    }
}
