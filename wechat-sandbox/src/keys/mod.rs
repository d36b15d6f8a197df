//! The sandbox's key material, below everything that serves requests: the
//! APIv3 keys and what answers are signed with ([`SignMode`], [`V3State`]),
//! and the TLS listener's certificates ([`SandboxTls`], [`TestPki`]). The
//! configuration names these, so they cannot live with the handlers.

mod tls;
mod v3;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use shared::wechatpay_v3::{PrivateKey, PublicKey, Verifier};

pub(crate) use tls::from_lookup;
pub use tls::{SandboxTls, TestPki};
pub use v3::MerchantIdentity;
pub(crate) use v3::V3Keys;

/// What the sandbox signs its v3 answers and notifications with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SignMode {
    /// The platform certificate (`Wechatpay-Serial` = its serial).
    Platform,
    /// The WeChat Pay public key (`Wechatpay-Serial` = `PUB_KEY_ID_…`), what
    /// WeChat gives merchants since 2024.
    #[default]
    PublicKey,
    /// Each answer alternates between the two, as during WeChat's switch-over.
    Switch,
}

/// The sandbox's v3 keys and signing mode.
pub(crate) struct V3State {
    pub keys: V3Keys,
    mode: Mutex<SignMode>,
    /// In [`SignMode::Switch`], which key the next signature uses.
    flip: AtomicBool,
}

impl V3State {
    pub fn new(keys: V3Keys, mode: SignMode) -> Self {
        V3State {
            keys,
            mode: Mutex::new(mode),
            flip: AtomicBool::new(false),
        }
    }

    pub fn mode(&self) -> SignMode {
        *crate::clock::lock(&self.mode)
    }

    pub fn set_mode(&self, mode: SignMode) {
        *crate::clock::lock(&self.mode) = mode;
    }

    /// The key for the next signature and the `Wechatpay-Serial` naming it.
    pub fn signer(&self) -> (&str, &PrivateKey) {
        let platform = (self.keys.platform_cert.serial_no(), &self.keys.platform_key);
        let public = (
            self.keys.public_key_id.as_str(),
            &self.keys.public_key_signer,
        );
        match self.mode() {
            SignMode::Platform => platform,
            SignMode::PublicKey => public,
            SignMode::Switch if self.flip.fetch_xor(true, Ordering::Relaxed) => platform,
            SignMode::Switch => public,
        }
    }

    /// What a merchant configured with both keys verifies with.
    pub fn verifier(&self) -> Verifier {
        Verifier::new()
            .with_public_key(self.keys.public_key_id.clone(), self.keys.public_key())
            .with_certificate(self.keys.platform_cert.clone())
    }

    /// The merchant certificate's public key: checks request signatures and
    /// RSA `paySign`s.
    pub fn merchant_public_key(&self) -> &PublicKey {
        self.keys.merchant_cert.public_key()
    }
}

/// The public side of the sandbox's v3 keys, for tests and service_env.
#[derive(Debug, Clone)]
pub struct V3KeysInfo {
    pub merchant: MerchantIdentity,
    pub merchant_serial_no: String,
    pub platform_cert_pem: String,
    pub platform_serial_no: String,
    pub public_key_pem: String,
    pub public_key_id: String,
}

impl V3State {
    pub fn info(&self) -> V3KeysInfo {
        let k = &self.keys;
        V3KeysInfo {
            merchant: k.merchant.clone(),
            merchant_serial_no: k.merchant_cert.serial_no().to_owned(),
            platform_cert_pem: k.platform_cert.pem().to_owned(),
            platform_serial_no: k.platform_cert.serial_no().to_owned(),
            public_key_pem: k.public_key().to_pem(),
            public_key_id: k.public_key_id.clone(),
        }
    }
}
