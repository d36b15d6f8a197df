//! Checking WeChat's signatures on answers and notifications.

use std::collections::BTreeMap;

use super::{PlatformCertificate, PublicKey, SIGNTEST_PREFIX, V3Error, response_message};

/// A signed answer or notification: its four `Wechatpay-*` headers and body.
#[derive(Debug, Clone, Copy)]
pub struct SignedMessage<'a> {
    /// `Wechatpay-Serial`: a public key ID (`PUB_KEY_ID_…`) or a platform
    /// certificate serial.
    pub serial: &'a str,
    pub timestamp: &'a str,
    pub nonce: &'a str,
    pub signature: &'a str,
    pub body: &'a [u8],
}

/// The keys WeChat may sign with: a WeChat Pay public key with its ID,
/// and platform certificates by serial (both during WeChat's switch-over).
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    public_key: Option<(String, PublicKey)>,
    certificates: BTreeMap<String, PlatformCertificate>,
}

impl Verifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Public key mode: `id` is `WECHATPAY_PUBLIC_KEY_ID`.
    pub fn with_public_key(mut self, id: impl Into<String>, key: PublicKey) -> Self {
        self.public_key = Some((id.into(), key));
        self
    }

    /// Adds (or replaces, by serial) a platform certificate.
    pub fn add_certificate(&mut self, cert: PlatformCertificate) {
        self.certificates.insert(cert.serial_no().to_owned(), cert);
    }

    pub fn with_certificate(mut self, cert: PlatformCertificate) -> Self {
        self.add_certificate(cert);
        self
    }

    pub fn public_key_id(&self) -> Option<&str> {
        self.public_key.as_ref().map(|(id, _)| id.as_str())
    }

    pub fn certificate(&self, serial: &str) -> Option<&PlatformCertificate> {
        self.certificates.get(serial)
    }

    pub fn certificates(&self) -> impl Iterator<Item = &PlatformCertificate> {
        self.certificates.values()
    }

    /// Whether `serial` names a key this verifier holds (an unknown serial
    /// is the cue to download platform certificates again).
    pub fn knows(&self, serial: &str) -> bool {
        self.key_for(serial).is_some()
    }

    fn key_for(&self, serial: &str) -> Option<&PublicKey> {
        match &self.public_key {
            Some((id, key)) if id == serial => Some(key),
            _ => self.certificates.get(serial).map(|c| c.public_key()),
        }
    }

    /// Checks `Wechatpay-Signature` over `TIMESTAMP\nNONCE\nBODY\n` with the
    /// key `Wechatpay-Serial` names. Probe signatures (`WECHATPAY/SIGNTEST/…`)
    /// are refused as such. The timestamp's freshness is the caller's check.
    pub fn verify(&self, msg: &SignedMessage<'_>) -> Result<(), V3Error> {
        if msg.signature.starts_with(SIGNTEST_PREFIX) {
            return Err(V3Error::SignTest);
        }
        let key = self
            .key_for(msg.serial)
            .ok_or_else(|| V3Error::UnknownSerial(msg.serial.to_owned()))?;
        key.verify(
            &response_message(msg.timestamp, msg.nonce, msg.body),
            msg.signature,
        )
    }
}
