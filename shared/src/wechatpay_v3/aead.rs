//! AES-256-GCM with the APIv3 key: how WeChat encrypts notification
//! `resource`s and the certificates `/v3/certificates` hands out.

use std::fmt;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::V3Error;

/// WeChat's nonces are 12 ASCII characters, used as the 96-bit GCM nonce.
const NONCE_LEN: usize = 12;

/// The merchant's APIv3 key (`MCH_API_V3_KEY`): 32 characters whose bytes
/// are the AES-256 key.
#[derive(Clone)]
pub struct ApiV3Key([u8; 32]);

impl fmt::Debug for ApiV3Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiV3Key(<redacted>)")
    }
}

impl ApiV3Key {
    pub fn new(key: &str) -> Result<Self, V3Error> {
        key.as_bytes()
            .try_into()
            .map(ApiV3Key)
            .map_err(|_| V3Error::ApiV3KeyLength)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.0.into())
    }

    /// Decrypts base64 `ciphertext` (the 16-byte tag at its end).
    pub fn decrypt(
        &self,
        nonce: &str,
        associated_data: &str,
        ciphertext_b64: &str,
    ) -> Result<Vec<u8>, V3Error> {
        let nonce = gcm_nonce(nonce)?;
        let data = STANDARD
            .decode(ciphertext_b64)
            .map_err(|_| V3Error::Base64("ciphertext"))?;
        self.cipher()
            .decrypt(
                nonce,
                Payload {
                    msg: &data,
                    aad: associated_data.as_bytes(),
                },
            )
            .map_err(|_| V3Error::Decrypt)
    }

    /// [`ApiV3Key::decrypt`] as UTF-8 text (JSON, PEM).
    pub fn decrypt_to_string(
        &self,
        nonce: &str,
        associated_data: &str,
        ciphertext_b64: &str,
    ) -> Result<String, V3Error> {
        String::from_utf8(self.decrypt(nonce, associated_data, ciphertext_b64)?)
            .map_err(|_| V3Error::NotUtf8)
    }

    /// Base64 ciphertext with the tag appended (WeChat's side, and tests).
    pub fn encrypt(
        &self,
        nonce: &str,
        associated_data: &str,
        plaintext: &[u8],
    ) -> Result<String, V3Error> {
        let nonce = gcm_nonce(nonce)?;
        self.cipher()
            .encrypt(
                nonce,
                Payload {
                    msg: plaintext,
                    aad: associated_data.as_bytes(),
                },
            )
            .map(|c| STANDARD.encode(c))
            .map_err(|_| V3Error::Decrypt)
    }
}

fn gcm_nonce(nonce: &str) -> Result<&Nonce<aes_gcm::aead::consts::U12>, V3Error> {
    if nonce.len() != NONCE_LEN {
        return Err(V3Error::NonceLength);
    }
    <&Nonce<aes_gcm::aead::consts::U12>>::try_from(nonce.as_bytes())
        .map_err(|_| V3Error::NonceLength)
}
