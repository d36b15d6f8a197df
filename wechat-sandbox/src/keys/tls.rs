//! The TLS listener's certificates: what it serves with ([`SandboxTls`]),
//! a throwaway PKI for tests and local runs ([`TestPki`]), and reading both
//! from the environment. The listener itself is the top-level `tls` module.

use std::fmt;
use std::net::SocketAddr;

use super::v3::{MerchantIdentity, merchant_key};

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
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose,
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
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;

        let server_key = KeyPair::generate()?;
        let mut server_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, "wechat-sandbox");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = server_params.signed_by(&server_key, &ca)?;

        // RSA, as WeChat's apiclient_key.pem, and the key the sandbox's v3
        // merchant identity uses: one key serves v2 TLS and v3 signatures.
        let client_key_pem = merchant_key()
            .map_err(|_| rcgen::Error::KeyGenerationUnavailable)?
            .to_pem();
        let client_key =
            KeyPair::from_pkcs8_pem_and_sign_algo(&client_key_pem, &rcgen::PKCS_RSA_SHA256)?;
        let mut client_params = CertificateParams::new(Vec::<String>::new())?;
        client_params
            .distinguished_name
            .push(DnType::CommonName, mch_id);
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = client_params.signed_by(&client_key, &ca)?;

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
        assert!(crate::tls::server_config(&tls).is_ok());
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
