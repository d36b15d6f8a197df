/// Why a v3 operation failed. Messages name the input, never secret values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum V3Error {
    #[error("private key: {0}")]
    PrivateKey(String),
    #[error("public key: {0}")]
    PublicKey(String),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("the APIv3 key must be 32 bytes")]
    ApiV3KeyLength,
    #[error("the AES-GCM nonce must be 12 bytes")]
    NonceLength,
    #[error("{0} is not valid base64")]
    Base64(&'static str),
    #[error("unsupported algorithm {0}")]
    Algorithm(String),
    #[error("ciphertext does not decrypt with this key, nonce and associated data")]
    Decrypt,
    #[error("decrypted data is not UTF-8")]
    NotUtf8,
    #[error("RSA-OAEP: {0}")]
    Oaep(String),
    #[error("signature does not verify")]
    BadSignature,
    #[error("signature is a WECHATPAY/SIGNTEST/ probe")]
    SignTest,
    #[error("no key for Wechatpay-Serial {0}")]
    UnknownSerial(String),
    #[error("Authorization header: {0}")]
    Authorization(String),
}
