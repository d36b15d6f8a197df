//! RSA keys as WeChat hands them out: the merchant's `apiclient_key.pem`
//! (PKCS#8; PKCS#1 also accepted) and WeChat Pay public keys (SPKI PEM).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use rsa::sha2::Sha256;
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use sha1::Sha1;

use super::V3Error;

/// An RSA private key (the merchant's API key, or WeChat's in the sandbox).
#[derive(Clone)]
pub struct PrivateKey(RsaPrivateKey);

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

impl PrivateKey {
    /// `-----BEGIN PRIVATE KEY-----` (PKCS#8, what WeChat's certificate tool
    /// writes), or `-----BEGIN RSA PRIVATE KEY-----` (PKCS#1).
    pub fn from_pem(pem: &str) -> Result<Self, V3Error> {
        RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|e| RsaPrivateKey::from_pkcs1_pem(pem).map_err(|_| e))
            .map(PrivateKey)
            .map_err(|e| V3Error::PrivateKey(e.to_string()))
    }

    /// A fresh 2048-bit key (the size WeChat issues), for tests and the sandbox.
    pub fn generate() -> Result<Self, V3Error> {
        RsaPrivateKey::new(&mut rand::thread_rng(), 2048)
            .map(PrivateKey)
            .map_err(|e| V3Error::PrivateKey(e.to_string()))
    }

    /// PKCS#8 PEM.
    pub fn to_pem(&self) -> String {
        use rsa::pkcs8::EncodePrivateKey;
        self.0
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .unwrap_or_default()
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.to_public_key())
    }

    /// Base64 of SHA256withRSA (PKCS#1 v1.5) over `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        let signature = SigningKey::<Sha256>::new(self.0.clone()).sign(message);
        STANDARD.encode(signature.to_bytes())
    }

    /// Inverse of [`PublicKey::encrypt_oaep`].
    pub fn decrypt_oaep(&self, ciphertext_b64: &str) -> Result<Vec<u8>, V3Error> {
        let data = STANDARD
            .decode(ciphertext_b64)
            .map_err(|_| V3Error::Base64("ciphertext"))?;
        self.0
            .decrypt(Oaep::new::<Sha1>(), &data)
            .map_err(|e| V3Error::Oaep(e.to_string()))
    }
}

/// An RSA public key: a WeChat Pay public key, a platform certificate's, or a
/// merchant certificate's (in the sandbox).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(pub(super) RsaPublicKey);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PublicKey")
    }
}

impl PublicKey {
    /// `-----BEGIN PUBLIC KEY-----` (SPKI), as WeChat's `pub_key.pem`.
    pub fn from_pem(pem: &str) -> Result<Self, V3Error> {
        RsaPublicKey::from_public_key_pem(pem)
            .map(PublicKey)
            .map_err(|e| V3Error::PublicKey(e.to_string()))
    }

    pub(super) fn from_spki_der(der: &[u8]) -> Result<Self, V3Error> {
        RsaPublicKey::from_public_key_der(der)
            .map(PublicKey)
            .map_err(|e| V3Error::PublicKey(e.to_string()))
    }

    /// SPKI PEM.
    pub fn to_pem(&self) -> String {
        self.0.to_public_key_pem(LineEnding::LF).unwrap_or_default()
    }

    /// Checks a base64 SHA256withRSA (PKCS#1 v1.5) signature over `message`.
    pub fn verify(&self, message: &[u8], signature_b64: &str) -> Result<(), V3Error> {
        let raw = STANDARD
            .decode(signature_b64)
            .map_err(|_| V3Error::BadSignature)?;
        let signature = Signature::try_from(raw.as_slice()).map_err(|_| V3Error::BadSignature)?;
        VerifyingKey::<Sha256>::new(self.0.clone())
            .verify(message, &signature)
            .map_err(|_| V3Error::BadSignature)
    }

    /// Base64 RSA-OAEP (SHA-1 and MGF1-SHA-1, as WeChat specifies for
    /// sensitive fields such as names and phone numbers).
    pub fn encrypt_oaep(&self, plaintext: &[u8]) -> Result<String, V3Error> {
        self.0
            .encrypt(&mut rand::thread_rng(), Oaep::new::<Sha1>(), plaintext)
            .map(|c| STANDARD.encode(c))
            .map_err(|e| V3Error::Oaep(e.to_string()))
    }
}
