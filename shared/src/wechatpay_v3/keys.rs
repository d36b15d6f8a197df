//! RSA keys as WeChat hands them out: the merchant's `apiclient_key.pem`
//! (PKCS#8; PKCS#1 also accepted) and WeChat Pay public keys (SPKI PEM).
//!
//! The `rsa` crate parses and writes keys, generates them and does OAEP;
//! signing and verifying, which every v3 request, answer and notification
//! pays for, are `ring`'s (already in the tree through rustls): its signing
//! is constant-time with blinding and it is 2-8x faster here (bench, "WeChat
//! Pay APIv3 beside v2"), while the `rsa` crate's plain `Signer::sign` runs
//! without blinding (RUSTSEC-2023-0071).

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, UnparsedPublicKey,
};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
// rsa 0.10 names its key types as ours are named: renamed here.
use rsa::{Oaep, PrivateKey as RsaPrivateKey, PublicKey as RsaPublicKey};
use sha1::Sha1;

use super::V3Error;

/// An RSA private key (the merchant's API key, or WeChat's in the sandbox).
#[derive(Clone)]
pub struct PrivateKey {
    rsa: RsaPrivateKey,
    /// The same key as `ring` holds it, for signing.
    signer: Arc<RsaKeyPair>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

impl PrivateKey {
    /// `-----BEGIN PRIVATE KEY-----` (PKCS#8, what WeChat's certificate tool
    /// writes), or `-----BEGIN RSA PRIVATE KEY-----` (PKCS#1). Keys below
    /// 2048 bits are refused (WeChat issues 2048).
    pub fn from_pem(pem: &str) -> Result<Self, V3Error> {
        RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|e| RsaPrivateKey::from_pkcs1_pem(pem).map_err(|_| e))
            .map_err(|e| V3Error::PrivateKey(e.to_string()))
            .and_then(Self::from_rsa)
    }

    /// A fresh 2048-bit key (the size WeChat issues), for tests and the sandbox.
    pub fn generate() -> Result<Self, V3Error> {
        RsaPrivateKey::new(&mut rand::rng(), 2048)
            .map_err(|e| V3Error::PrivateKey(e.to_string()))
            .and_then(Self::from_rsa)
    }

    fn from_rsa(rsa: RsaPrivateKey) -> Result<Self, V3Error> {
        let der = rsa
            .to_pkcs8_der()
            .map_err(|e| V3Error::PrivateKey(e.to_string()))?;
        let signer = RsaKeyPair::from_pkcs8(der.as_bytes())
            .map_err(|e| V3Error::PrivateKey(format!("unusable for signing: {e}")))?;
        Ok(PrivateKey {
            rsa,
            signer: Arc::new(signer),
        })
    }

    /// PKCS#8 PEM.
    pub fn to_pem(&self) -> String {
        self.rsa
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .unwrap_or_default()
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_rsa(self.rsa.to_public_key())
    }

    /// Base64 of SHA256withRSA (PKCS#1 v1.5) over `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        let mut signature = vec![0; self.signer.public().modulus_len()];
        let signed = self.signer.sign(
            &RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            message,
            &mut signature,
        );
        match signed {
            Ok(()) => STANDARD.encode(signature),
            // Only a failing system random source gets here; the rsa
            // crate's blinded signing gives the same PKCS#1 v1.5 bytes.
            Err(_) => self.sign_with_rsa_crate(message),
        }
    }

    fn sign_with_rsa_crate(&self, message: &[u8]) -> String {
        use rsa::pkcs1v15::SigningKey;
        use rsa::sha2::Sha256;
        use rsa::signature::{RandomizedSigner, SignatureEncoding};
        let key = SigningKey::<Sha256>::new(self.rsa.clone());
        STANDARD.encode(key.sign_with_rng(&mut rand::rng(), message).to_bytes())
    }

    /// Inverse of [`PublicKey::encrypt_oaep`].
    pub fn decrypt_oaep(&self, ciphertext_b64: &str) -> Result<Vec<u8>, V3Error> {
        let data = STANDARD
            .decode(ciphertext_b64)
            .map_err(|_| V3Error::Base64("ciphertext"))?;
        self.rsa
            .decrypt(Oaep::<Sha1>::new(), &data)
            .map_err(|e| V3Error::Oaep(e.to_string()))
    }
}

/// An RSA public key: a WeChat Pay public key, a platform certificate's, or a
/// merchant certificate's (in the sandbox).
#[derive(Clone)]
pub struct PublicKey {
    rsa: RsaPublicKey,
    /// PKCS#1 `RSAPublicKey` DER, the form `ring` verifies with.
    pkcs1: Arc<[u8]>,
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.rsa == other.rsa
    }
}

impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PublicKey")
    }
}

impl PublicKey {
    /// `-----BEGIN PUBLIC KEY-----` (SPKI), as WeChat's `pub_key.pem`.
    pub fn from_pem(pem: &str) -> Result<Self, V3Error> {
        RsaPublicKey::from_public_key_pem(pem)
            .map(Self::from_rsa)
            .map_err(|e| V3Error::PublicKey(e.to_string()))
    }

    pub(super) fn from_spki_der(der: &[u8]) -> Result<Self, V3Error> {
        RsaPublicKey::from_public_key_der(der)
            .map(Self::from_rsa)
            .map_err(|e| V3Error::PublicKey(e.to_string()))
    }

    fn from_rsa(rsa: RsaPublicKey) -> Self {
        // Encoding a parsed key cannot fail; an empty DER would only make
        // every verification fail, never pass.
        let pkcs1 = rsa
            .to_pkcs1_der()
            .map(|der| Arc::from(der.as_bytes()))
            .unwrap_or_else(|_| Arc::from(Vec::new()));
        PublicKey { rsa, pkcs1 }
    }

    /// SPKI PEM.
    pub fn to_pem(&self) -> String {
        self.rsa
            .to_public_key_pem(LineEnding::LF)
            .unwrap_or_default()
    }

    /// Checks a base64 SHA256withRSA (PKCS#1 v1.5) signature over `message`.
    pub fn verify(&self, message: &[u8], signature_b64: &str) -> Result<(), V3Error> {
        let raw = STANDARD
            .decode(signature_b64)
            .map_err(|_| V3Error::BadSignature)?;
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &*self.pkcs1)
            .verify(message, &raw)
            .map_err(|_| V3Error::BadSignature)
    }

    /// Base64 RSA-OAEP (SHA-1 and MGF1-SHA-1, as WeChat specifies for
    /// sensitive fields such as names and phone numbers).
    pub fn encrypt_oaep(&self, plaintext: &[u8]) -> Result<String, V3Error> {
        self.rsa
            .encrypt(&mut rand::rng(), Oaep::<Sha1>::new(), plaintext)
            .map(|c| STANDARD.encode(c))
            .map_err(|e| V3Error::Oaep(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fallback runs only when the system random source fails, so no
    /// request reaches it. PKCS#1 v1.5 is deterministic: whichever crate
    /// signs, the bytes must be the same.
    #[test]
    fn rsa_crate_fallback_signs_as_ring_does() {
        let key = PrivateKey::generate().unwrap();
        let message = b"GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n";
        let fallback = key.sign_with_rsa_crate(message);
        assert_eq!(fallback, key.sign(message));
        key.public_key().verify(message, &fallback).unwrap();
    }
}
