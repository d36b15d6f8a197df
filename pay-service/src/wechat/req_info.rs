//! Decrypting a refund notification's `req_info` (WeChat Pay APIv2):
//! base64 → AES-256-ECB with PKCS#7 padding, the key being the 32 ASCII
//! characters of the lowercase hex MD5 of the merchant key → a `<root>` XML
//! document, read into a [`ReqInfo`]. (The decryption is a candidate for
//! `shared::crypto`.)

use std::collections::BTreeMap;

use aes::Aes256;
use aes::cipher::{BlockModeDecrypt, KeyInit, block_padding::Pkcs7};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use md5::{Digest, Md5};

use super::RefundState;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReqInfoError {
    #[error("req_info is not base64")]
    NotBase64,
    /// Wrong key, or bytes that were never encrypted with one.
    #[error("req_info does not decrypt with our key")]
    Undecryptable,
    #[error("decrypted req_info is not valid XML: {0}")]
    BadXml(String),
}

fn key(mch_key: &str) -> [u8; 32] {
    let hex = hex::encode(Md5::digest(mch_key.as_bytes()));
    let mut k = [0u8; 32];
    k.copy_from_slice(hex.as_bytes());
    k
}

/// A refund notification's `req_info`, decrypted: which refund, and what
/// WeChat reports of it ([`ReqInfo::state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReqInfo {
    /// Empty when absent.
    pub out_trade_no: String,
    /// Empty when absent ([`ReqInfo::state`] refuses that).
    pub out_refund_no: String,
    refund_status: String,
    refund_id: String,
    refund_fee: Option<i64>,
    success_time: Option<String>,
}

impl ReqInfo {
    /// Decrypts `req_info` with the key derived from `mch_key`.
    pub fn decrypt(
        mch_key: &str,
        req_info_b64: &str,
        max_bytes: usize,
    ) -> Result<Self, ReqInfoError> {
        let fields = decrypt(mch_key, req_info_b64, max_bytes)?;
        let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
        Ok(ReqInfo {
            out_trade_no: get("out_trade_no"),
            out_refund_no: get("out_refund_no"),
            refund_status: get("refund_status"),
            refund_id: get("refund_id"),
            refund_fee: get("refund_fee").parse().ok(),
            success_time: fields.get("success_time").cloned(),
        })
    }

    /// What WeChat reports of the refund, or why the report is unusable.
    pub fn state(&self) -> Result<RefundState, String> {
        if self.out_refund_no.is_empty() {
            return Err("out_refund_no is missing".into());
        }
        RefundState::from_fields(
            &self.refund_status,
            &self.refund_id,
            self.refund_fee,
            self.success_time.as_deref(),
        )
    }
}

/// The fields of a `req_info`, or why it cannot be read.
fn decrypt(
    mch_key: &str,
    req_info_b64: &str,
    max_bytes: usize,
) -> Result<BTreeMap<String, String>, ReqInfoError> {
    let data = STANDARD
        .decode(req_info_b64.trim())
        .map_err(|_| ReqInfoError::NotBase64)?;
    if data.is_empty() || data.len() % 16 != 0 {
        return Err(ReqInfoError::Undecryptable);
    }
    let plain = ecb::Decryptor::<Aes256>::new(&key(mch_key).into())
        .decrypt_padded_vec::<Pkcs7>(&data)
        .map_err(|_| ReqInfoError::Undecryptable)?;
    let text = String::from_utf8(plain).map_err(|_| ReqInfoError::Undecryptable)?;
    // shared::xml reads `<xml>` documents; WeChat names this one `<root>`.
    let text = text.trim();
    let text = match text
        .strip_prefix("<root>")
        .and_then(|t| t.strip_suffix("</root>"))
    {
        Some(inner) => format!("<xml>{inner}</xml>"),
        None => text.to_owned(),
    };
    shared::xml::parse(text.as_bytes(), max_bytes).map_err(|e| ReqInfoError::BadXml(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::BlockModeEncrypt;

    fn encrypt(mch_key: &str, plain: &str) -> String {
        let c = ecb::Encryptor::<Aes256>::new(&key(mch_key).into());
        STANDARD.encode(c.encrypt_padded_vec::<Pkcs7>(plain.as_bytes()))
    }

    #[test]
    fn decrypts_what_wechat_encrypts() {
        let enc = encrypt(
            "k",
            "<root><out_refund_no><![CDATA[R1]]></out_refund_no><refund_fee>100</refund_fee></root>",
        );
        let f = decrypt("k", &enc, 4096).unwrap();
        assert_eq!(f["out_refund_no"], "R1");
        assert_eq!(f["refund_fee"], "100");
    }

    #[test]
    fn refuses_other_keys_garbage_and_doctype() {
        let enc = encrypt("k", "<root><a>1</a></root>");
        assert!(decrypt("other", &enc, 4096).is_err());
        assert_eq!(decrypt("k", "%%%", 4096), Err(ReqInfoError::NotBase64));
        assert_eq!(
            decrypt("k", &STANDARD.encode([1u8; 15]), 4096),
            Err(ReqInfoError::Undecryptable)
        );
        let evil = encrypt("k", "<!DOCTYPE x [<!ENTITY e \"e\">]><xml><a>&e;</a></xml>");
        assert!(matches!(
            decrypt("k", &evil, 4096),
            Err(ReqInfoError::BadXml(_))
        ));
    }

    #[test]
    fn reads_the_refund_and_its_state() {
        let enc = encrypt(
            "k",
            "<root><out_trade_no>N1</out_trade_no><out_refund_no>R1</out_refund_no>\
             <refund_id>50000</refund_id><refund_fee>100</refund_fee>\
             <refund_status>SUCCESS</refund_status>\
             <success_time>2024-03-02 00:30:05</success_time></root>",
        );
        let info = ReqInfo::decrypt("k", &enc, 4096).unwrap();
        assert_eq!(
            (info.out_trade_no.as_str(), info.out_refund_no.as_str()),
            ("N1", "R1")
        );
        assert_eq!(
            info.state(),
            Ok(RefundState::Success {
                refund_id: "50000".into(),
                refund_fee: 100,
                succeeded_at: Some(1_709_310_605),
            })
        );
        let enc = encrypt("k", "<root><refund_status>SUCCESS</refund_status></root>");
        let info = ReqInfo::decrypt("k", &enc, 4096).unwrap();
        assert_eq!(info.state(), Err("out_refund_no is missing".into()));
    }

    #[test]
    fn key_is_the_ascii_of_the_md5_hex() {
        assert_eq!(&key("abc"), b"900150983cd24fb0d6963f7d28e17f72");
    }
}
