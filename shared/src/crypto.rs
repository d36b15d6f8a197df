//! Decryption of a mini program's `encryptedData` (WeChat's open-data scheme):
//! AES-128-CBC, PKCS#7 padding, key and iv base64, and a watermark whose appid
//! must be ours (otherwise the data was encrypted for another app).

use aes::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

type Aes128CbcDec = cbc::Decryptor<aes::Aes128>;

/// Base64 ciphertext larger than this is refused (real payloads are ~1 KiB).
const MAX_ENCRYPTED_LEN: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecryptError {
    #[error("{0} is not valid base64")]
    Base64(&'static str),
    #[error("session_key must be 16 bytes")]
    KeyLength,
    #[error("iv must be 16 bytes")]
    IvLength,
    #[error("encryptedData is too large")]
    TooLarge,
    #[error("encryptedData does not decrypt with this session")]
    Decrypt,
    #[error("decrypted data is not JSON")]
    NotJson,
    #[error("decrypted data belongs to another app")]
    Watermark,
}

pub fn decrypt_open_data(
    session_key_b64: &str,
    encrypted_b64: &str,
    iv_b64: &str,
    expected_appid: &str,
) -> Result<serde_json::Value, DecryptError> {
    if encrypted_b64.len() > MAX_ENCRYPTED_LEN {
        return Err(DecryptError::TooLarge);
    }
    let key = STANDARD
        .decode(session_key_b64)
        .map_err(|_| DecryptError::Base64("session_key"))?;
    let iv = STANDARD
        .decode(iv_b64)
        .map_err(|_| DecryptError::Base64("iv"))?;
    let mut data = STANDARD
        .decode(encrypted_b64)
        .map_err(|_| DecryptError::Base64("encryptedData"))?;
    let key: [u8; 16] = key.try_into().map_err(|_| DecryptError::KeyLength)?;
    let iv: [u8; 16] = iv.try_into().map_err(|_| DecryptError::IvLength)?;
    let plain = Aes128CbcDec::new(&key.into(), &iv.into())
        .decrypt_padded::<Pkcs7>(&mut data)
        .map_err(|_| DecryptError::Decrypt)?;
    let value: serde_json::Value =
        serde_json::from_slice(plain).map_err(|_| DecryptError::NotJson)?;
    let watermark_appid = value.pointer("/watermark/appid").and_then(|v| v.as_str());
    if watermark_appid != Some(expected_appid) {
        return Err(DecryptError::Watermark);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WeChat's open-data decryption example (小程序 "开放数据校验与解密").
    const APPID: &str = "wx4f4bc4dec97d474b";
    const SESSION_KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
    const IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
    const ENCRYPTED: &str = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";

    #[test]
    fn published_example_decrypts() {
        let data = decrypt_open_data(SESSION_KEY, ENCRYPTED, IV, APPID).unwrap();
        assert_eq!(data["openId"], "oGZUI0egBJY1zhBYw2KhdUfwVJJE");
        assert_eq!(data["nickName"], "Band");
        assert_eq!(data["watermark"]["appid"], APPID);
    }

    #[test]
    fn another_apps_data_is_refused() {
        assert_eq!(
            decrypt_open_data(SESSION_KEY, ENCRYPTED, IV, "wx0000000000000000"),
            Err(DecryptError::Watermark)
        );
    }

    #[test]
    fn wrong_key_iv_and_garbage_are_refused() {
        let other_key = "AAAAAAAAAAAAAAAAAAAAAA==";
        assert!(decrypt_open_data(other_key, ENCRYPTED, IV, APPID).is_err());
        assert_eq!(
            decrypt_open_data("abc", ENCRYPTED, IV, APPID),
            Err(DecryptError::Base64("session_key"))
        );
        assert_eq!(
            decrypt_open_data("YWJj", ENCRYPTED, IV, APPID),
            Err(DecryptError::KeyLength)
        );
        assert_eq!(
            decrypt_open_data(SESSION_KEY, ENCRYPTED, "YWJj", APPID),
            Err(DecryptError::IvLength)
        );
        assert_eq!(
            decrypt_open_data(SESSION_KEY, "YWJj", IV, APPID),
            Err(DecryptError::Decrypt)
        );
        assert_eq!(
            decrypt_open_data(SESSION_KEY, &"A".repeat(70_000), IV, APPID),
            Err(DecryptError::TooLarge)
        );
    }
}
