//! WeChat Pay APIv3 cryptography and wire types, shared by pay-service (the
//! merchant side) and the sandbox (WeChat's side).
//!
//! - [`MerchantSigner`]: the `Authorization: WECHATPAY2-SHA256-RSA2048 …`
//!   header, SHA256withRSA (PKCS#1 v1.5) over
//!   `METHOD\nPATH_AND_QUERY\nTIMESTAMP\nNONCE\nBODY\n` with the merchant's
//!   PKCS#8 key, and the JSAPI `paySign` (`appId\ntimeStamp\nnonceStr\npackage\n`).
//! - [`Verifier`]: WeChat's `Wechatpay-Signature` over
//!   `TIMESTAMP\nNONCE\nBODY\n`, checked with the WeChat Pay public key when
//!   `Wechatpay-Serial` is its ID, else with the platform certificate of that
//!   serial; `WECHATPAY/SIGNTEST/` probes never verify.
//! - [`ApiV3Key`]: AES-256-GCM for notification `resource`s and downloaded
//!   platform certificates.
//! - [`PublicKey::encrypt_oaep`]: RSA-OAEP (SHA-1, as WeChat specifies) for
//!   sensitive request fields.
//! - [`PlatformCertificate`]: a platform certificate PEM's serial (uppercase
//!   hex), validity and public key.
//! - [`Notification`], [`EncryptedResource`], [`CertificatesResponse`],
//!   [`ErrorBody`]: WeChat's JSON shapes.
//!
//! Every primitive comes from RustCrypto (`rsa`, `aes-gcm`, `x509-cert`);
//! this module only fixes WeChat's message formats around them.

mod aead;
mod cert;
mod error;
mod keys;
mod sign;
mod types;
mod verify;

pub use aead::ApiV3Key;
pub use cert::PlatformCertificate;
pub use error::V3Error;
pub use keys::{PrivateKey, PublicKey};
pub use sign::{
    Authorization, MerchantSigner, authorization_header, jsapi_pay_message, request_message,
    response_message,
};
pub use types::{
    CertificateEntry, CertificatesResponse, EncryptedResource, ErrorBody, Notification,
};
pub use verify::{SignedMessage, Verifier};

/// The `Authorization` scheme of merchant requests.
pub const AUTH_SCHEMA: &str = "WECHATPAY2-SHA256-RSA2048";
/// Response and notification headers WeChat signs with.
pub const HEADER_SIGNATURE: &str = "Wechatpay-Signature";
pub const HEADER_TIMESTAMP: &str = "Wechatpay-Timestamp";
pub const HEADER_NONCE: &str = "Wechatpay-Nonce";
pub const HEADER_SERIAL: &str = "Wechatpay-Serial";
/// Signatures of WeChat's probe notifications begin with this; a merchant
/// that accepts one would accept anything.
pub const SIGNTEST_PREFIX: &str = "WECHATPAY/SIGNTEST/";
/// `signType` of JSAPI pay parameters signed with [`MerchantSigner::jsapi_pay_sign`].
pub const JSAPI_SIGN_TYPE: &str = "RSA";
/// Algorithm name of encrypted resources and certificates.
pub const AEAD_AES_256_GCM: &str = "AEAD_AES_256_GCM";
