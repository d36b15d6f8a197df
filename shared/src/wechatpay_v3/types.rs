//! WeChat's v3 JSON shapes that both sides read and write.

use serde::{Deserialize, Serialize};

use super::{AEAD_AES_256_GCM, ApiV3Key, V3Error};

/// An AES-256-GCM encrypted object: a notification's `resource`, or a
/// downloaded certificate's `encrypt_certificate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedResource {
    pub algorithm: String,
    pub ciphertext: String,
    pub nonce: String,
    /// Absent and empty mean the same: no associated data.
    #[serde(default)]
    pub associated_data: String,
    /// `transaction`, `refund` (notifications); absent on certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_type: Option<String>,
}

impl EncryptedResource {
    /// Encrypts `plaintext` (WeChat's side; the sandbox).
    pub fn seal(
        key: &ApiV3Key,
        nonce: &str,
        associated_data: &str,
        original_type: Option<&str>,
        plaintext: &[u8],
    ) -> Result<Self, V3Error> {
        Ok(EncryptedResource {
            algorithm: AEAD_AES_256_GCM.to_owned(),
            ciphertext: key.encrypt(nonce, associated_data, plaintext)?,
            nonce: nonce.to_owned(),
            associated_data: associated_data.to_owned(),
            original_type: original_type.map(str::to_owned),
        })
    }

    /// The plaintext; refuses any algorithm but `AEAD_AES_256_GCM`.
    pub fn decrypt(&self, key: &ApiV3Key) -> Result<String, V3Error> {
        if self.algorithm != AEAD_AES_256_GCM {
            return Err(V3Error::Algorithm(self.algorithm.clone()));
        }
        key.decrypt_to_string(&self.nonce, &self.associated_data, &self.ciphertext)
    }
}

/// A v3 notification (payments: `TRANSACTION.SUCCESS`; refunds:
/// `REFUND.SUCCESS`, `REFUND.ABNORMAL`, `REFUND.CLOSED`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: String,
    /// RFC 3339 with offset, e.g. `2015-05-20T13:29:35+08:00`.
    pub create_time: String,
    pub event_type: String,
    /// `encrypt-resource`.
    pub resource_type: String,
    pub resource: EncryptedResource,
    #[serde(default)]
    pub summary: String,
}

/// `GET /v3/certificates`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificatesResponse {
    pub data: Vec<CertificateEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateEntry {
    pub serial_no: String,
    pub effective_time: String,
    pub expire_time: String,
    /// The certificate's PEM, encrypted with the APIv3 key.
    pub encrypt_certificate: EncryptedResource,
}

/// WeChat's v3 error body: `{"code":"PARAM_ERROR","message":"…"}` with a
/// 4xx/5xx status, sometimes with a `detail` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}
