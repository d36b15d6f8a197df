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
use crate::v3::MerchantIdentity;
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
/// 127.0.0.1 and localhost, and a merchant client certificate (RSA 2048, as
/// WeChat's), all signed by that CA (WeChat issues merchants'
/// `apiclient_cert.pem` the same way).
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

        // RSA, as WeChat's apiclient_key.pem, and the key the sandbox's v3
        // merchant identity uses: one key serves v2 TLS and v3 signatures.
        let client_key_pem = crate::v3::merchant_key()
            .map_err(|_| rcgen::Error::KeyGenerationUnavailable)?
            .to_pem();
        let client_key =
            KeyPair::from_pkcs8_pem_and_sign_algo(&client_key_pem, &rcgen::PKCS_RSA_SHA256)?;
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
            client_key_pem,
        })
    }

    /// The merchant identity for v3 as well (`SandboxConfig::v3_merchant`):
    /// requests signed with the client key then verify against this
    /// certificate's serial.
    pub fn merchant_identity(&self) -> MerchantIdentity {
        MerchantIdentity {
            key_pem: self.client_key_pem.clone(),
            cert_pem: self.client_cert_pem.clone(),
        }
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

/// The TLS listener from the environment (the `wechat-sandbox` binary):
/// `SANDBOX_TLS_ADDR` turns it on. `SANDBOX_TLS_CERT`, `SANDBOX_TLS_KEY` and
/// `SANDBOX_TLS_CLIENT_CA` (PEM files) give its certificates; without them a
/// [`TestPki`] is made, and with `SANDBOX_TLS_DIR` written there as `ca.pem`,
/// `apiclient_cert.pem` and `apiclient_key.pem`, what pay-service takes as
/// `WECHATPAY_CA_PEM`, `MCH_CERT_PEM` and `MCH_KEY_PEM`. A made PKI's
/// merchant identity is returned too, for v3 to check requests against the
/// same certificate.
pub(crate) fn from_lookup(
    var: &impl Fn(&str) -> Option<String>,
    mch_id: &str,
) -> Result<Option<(SandboxTls, Option<MerchantIdentity>)>, String> {
    let Some(raw) = var("SANDBOX_TLS_ADDR") else {
        return Ok(None);
    };
    let listen = raw
        .parse::<SocketAddr>()
        .map_err(|e| format!("SANDBOX_TLS_ADDR: {e}: {raw}"))?;
    let read = |name: &str| -> Result<Option<String>, String> {
        var(name)
            .map(|path| std::fs::read_to_string(&path).map_err(|e| format!("{name}: {path}: {e}")))
            .transpose()
    };
    let given = (
        read("SANDBOX_TLS_CERT")?,
        read("SANDBOX_TLS_KEY")?,
        read("SANDBOX_TLS_CLIENT_CA")?,
    );
    if let (Some(cert_pem), Some(key_pem), Some(client_ca_pem)) = given {
        let tls = SandboxTls {
            listen,
            cert_pem,
            key_pem,
            client_ca_pem,
        };
        return Ok(Some((tls, None)));
    }
    if given.0.is_some() || given.1.is_some() || given.2.is_some() {
        return Err(
            "SANDBOX_TLS_CERT, SANDBOX_TLS_KEY and SANDBOX_TLS_CLIENT_CA go together".into(),
        );
    }
    let pki =
        TestPki::generate(mch_id).map_err(|e| format!("SANDBOX_TLS_ADDR: certificates: {e}"))?;
    if let Some(dir) = var("SANDBOX_TLS_DIR") {
        let dir = std::path::Path::new(&dir);
        std::fs::create_dir_all(dir).map_err(|e| format!("SANDBOX_TLS_DIR: {e}"))?;
        for (file, pem) in [
            ("ca.pem", &pki.ca_pem),
            ("apiclient_cert.pem", &pki.client_cert_pem),
            ("apiclient_key.pem", &pki.client_key_pem),
        ] {
            std::fs::write(dir.join(file), pem)
                .map_err(|e| format!("SANDBOX_TLS_DIR: {}: {e}", dir.join(file).display()))?;
        }
    }
    Ok(Some((
        pki.sandbox_tls(listen),
        Some(pki.merchant_identity()),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn off_unless_an_address_is_given() {
        assert!(from_lookup(&lookup(&[]), "1").unwrap().is_none());
        let e = from_lookup(&lookup(&[("SANDBOX_TLS_ADDR", "nope".into())]), "1").unwrap_err();
        assert!(e.starts_with("SANDBOX_TLS_ADDR"), "{e}");
    }

    #[test]
    fn generated_certificates_are_written_for_the_merchant() {
        let dir = std::env::temp_dir().join(format!("sandbox-tls-{}", ids_suffix()));
        let (tls, merchant) = from_lookup(
            &lookup(&[
                ("SANDBOX_TLS_ADDR", "127.0.0.1:0".into()),
                ("SANDBOX_TLS_DIR", dir.to_string_lossy().into_owned()),
            ]),
            "1900000109",
        )
        .unwrap()
        .unwrap();
        let ca = std::fs::read_to_string(dir.join("ca.pem")).unwrap();
        let merchant = merchant.expect("the made PKI's merchant identity");
        assert_eq!(
            std::fs::read_to_string(dir.join("apiclient_cert.pem")).unwrap(),
            merchant.cert_pem
        );
        assert_eq!(ca, tls.client_ca_pem);
        assert!(
            std::fs::read_to_string(dir.join("apiclient_key.pem"))
                .unwrap()
                .contains("PRIVATE KEY")
        );
        assert!(server_config(&tls).is_ok());
        let _ = std::fs::remove_dir_all(dir);
        let e = from_lookup(
            &lookup(&[
                ("SANDBOX_TLS_ADDR", "127.0.0.1:0".into()),
                ("SANDBOX_TLS_CERT", "/nonexistent/cert.pem".into()),
            ]),
            "1",
        )
        .unwrap_err();
        assert!(e.starts_with("SANDBOX_TLS_CERT"), "{e}");
    }

    fn ids_suffix() -> String {
        crate::ids::alnum(10)
    }
}
