//! WeChat signatures: the JS-SDK `wx.config` SHA-1 and the Pay APIv2 sign
//! (MD5 or HMAC-SHA256 over the ASCII-sorted parameters with `&key=` appended).

use std::collections::BTreeMap;

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The two APIv2 sign types. WeChat names them `MD5` and `HMAC-SHA256`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignType {
    #[default]
    Md5,
    HmacSha256,
}

impl SignType {
    pub fn as_str(self) -> &'static str {
        match self {
            SignType::Md5 => "MD5",
            SignType::HmacSha256 => "HMAC-SHA256",
        }
    }

    /// Parses WeChat's spelling; an absent `sign_type` means MD5.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "MD5" => Some(SignType::Md5),
            "HMAC-SHA256" => Some(SignType::HmacSha256),
            _ => None,
        }
    }
}

impl std::fmt::Display for SignType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `sha1("jsapi_ticket=T&noncestr=N&timestamp=TS&url=U")`, lowercase hex. The
/// caller passes the page URL without its `#fragment` (see [`strip_fragment`]).
pub fn jssdk_signature(ticket: &str, nonce_str: &str, timestamp: i64, url: &str) -> String {
    // Fed to SHA-1 piece by piece: neither the joined string nor the
    // timestamp's digits are allocated.
    let mut digits = itoa::Buffer::new();
    let timestamp = digits.format(timestamp);
    let mut sha = Sha1::new();
    for part in [
        "jsapi_ticket=",
        ticket,
        "&noncestr=",
        nonce_str,
        "&timestamp=",
        timestamp,
        "&url=",
        url,
    ] {
        sha.update(part.as_bytes());
    }
    lower_hex(&sha.finalize())
}

/// Lowercase hex of `bytes`. `hex::encode` collects through an iterator
/// that yields one `char` at a time from a small state machine, a visible
/// part of a warm jssdkConfig in a profile (issue #16); this is a table and
/// a reserved string.
fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // Two bytes at a time into a reserved buffer rather than a `char` at a
    // time (issue #16); the digits are ASCII, so the UTF-8 check cannot fail.
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.extend_from_slice(&[DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0xf)]]);
    }
    String::from_utf8(out).unwrap_or_default()
}

/// WeChat signs the page URL without its fragment.
pub fn strip_fragment(url: &str) -> &str {
    crate::query::split_once_on(url, b'#').map_or(url, |(before, _)| before)
}

/// The string WeChat signs: `k1=v1&k2=v2…&key=KEY`, keys in ASCII order, empty
/// values and `sign` itself left out.
fn sign_string<'a, I>(params: I, key: &str) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut pairs: Vec<(&str, &str)> = params
        .into_iter()
        .filter(|(k, v)| !v.is_empty() && *k != "sign")
        .collect();
    pairs.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut s = String::with_capacity(256);
    for (k, v) in pairs {
        s.push_str(k);
        s.push('=');
        s.push_str(v);
        s.push('&');
    }
    s.push_str("key=");
    s.push_str(key);
    s
}

/// The APIv2 sign (uppercase hex) of any set of string pairs.
pub fn pay_sign_pairs<'a, I>(params: I, key: &str, sign_type: SignType) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let plain = sign_string(params, key);
    match sign_type {
        SignType::Md5 => hex::encode_upper(Md5::digest(plain.as_bytes())),
        SignType::HmacSha256 => {
            #[allow(
                clippy::expect_used,
                reason = "HMAC takes keys of any length: new_from_slice never fails for it"
            )]
            let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes())
                .expect("HMAC accepts keys of any length");
            mac.update(plain.as_bytes());
            hex::encode_upper(mac.finalize().into_bytes())
        }
    }
}

/// The APIv2 sign (uppercase hex) of a parsed XML message or a request being built.
pub fn pay_sign(params: &BTreeMap<String, String>, key: &str, sign_type: SignType) -> String {
    pay_sign_pairs(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        key,
        sign_type,
    )
}

/// Checks `params["sign"]` in constant time. The sign type is the one the message
/// declares in `sign_type` (absent means MD5); an unknown one never verifies.
pub fn verify_pay_sign(params: &BTreeMap<String, String>, key: &str) -> bool {
    let Some(given) = params.get("sign") else {
        return false;
    };
    let declared = params.get("sign_type").map(String::as_str).unwrap_or("");
    let Some(sign_type) = SignType::parse(declared) else {
        return false;
    };
    let expected = pay_sign(params, key, sign_type);
    constant_time_eq(expected.as_bytes(), given.to_ascii_uppercase().as_bytes())
}

/// Byte comparison whose time does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Lowercase hex HMAC-SHA256, used for merchant webhooks and session tokens.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    #[allow(
        clippy::expect_used,
        reason = "HMAC takes keys of any length: new_from_slice never fails for it"
    )]
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// WeChat's JS-SDK documentation, appendix 1 (signature algorithm).
    #[test]
    fn jssdk_published_example() {
        let sig = jssdk_signature(
            "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg",
            "Wm3WZYTPz0wzccnW",
            1414587457,
            "http://mp.weixin.qq.com?params=value",
        );
        assert_eq!(sig, "0f9de62fce790f9a083d5c99e95740ceb90c27ed");
    }

    /// Every byte value, against the hex crate.
    #[test]
    fn lower_hex_is_the_hex_crates() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(lower_hex(&all), hex::encode(&all));
        assert_eq!(lower_hex(&[]), "");
    }

    #[test]
    fn fragment_is_stripped() {
        assert_eq!(
            strip_fragment("https://a.example/p?x=1#/route"),
            "https://a.example/p?x=1"
        );
        assert_eq!(strip_fragment("https://a.example/p"), "https://a.example/p");
    }

    /// WeChat Pay APIv2 "安全规范" (security specification) worked example.
    fn published_pay_params() -> BTreeMap<String, String> {
        map(&[
            ("appid", "wxd930ea5d5a258f4f"),
            ("mch_id", "10000100"),
            ("device_info", "1000"),
            ("body", "test"),
            ("nonce_str", "ibuaiVcKdpRxkhJA"),
        ])
    }
    const PUBLISHED_KEY: &str = "192006250b4c09247ec02edce69f6a2d";

    #[test]
    fn pay_md5_published_example() {
        assert_eq!(
            pay_sign(&published_pay_params(), PUBLISHED_KEY, SignType::Md5),
            "9A0A8659F005D6984697E2CA0A9CF3B7"
        );
    }

    #[test]
    fn pay_hmac_published_example() {
        assert_eq!(
            pay_sign(&published_pay_params(), PUBLISHED_KEY, SignType::HmacSha256),
            "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
        );
    }

    #[test]
    fn empty_values_and_sign_are_left_out() {
        let mut p = published_pay_params();
        p.insert("attach".into(), String::new());
        p.insert("sign".into(), "whatever".into());
        assert_eq!(
            pay_sign(&p, PUBLISHED_KEY, SignType::Md5),
            "9A0A8659F005D6984697E2CA0A9CF3B7"
        );
    }

    #[test]
    fn verify_honours_sign_type_and_rejects_forgeries() {
        let mut p = published_pay_params();
        p.insert("sign".into(), "9A0A8659F005D6984697E2CA0A9CF3B7".into());
        assert!(verify_pay_sign(&p, PUBLISHED_KEY));
        assert!(!verify_pay_sign(&p, "another-key"));

        p.insert("sign_type".into(), "HMAC-SHA256".into());
        assert!(
            !verify_pay_sign(&p, PUBLISHED_KEY),
            "MD5 sign under an HMAC claim"
        );
        let hmac = pay_sign(&p, PUBLISHED_KEY, SignType::HmacSha256);
        p.insert("sign".into(), hmac);
        assert!(verify_pay_sign(&p, PUBLISHED_KEY));

        p.insert("sign_type".into(), "SHA1".into());
        assert!(!verify_pay_sign(&p, PUBLISHED_KEY));
        p.remove("sign");
        assert!(!verify_pay_sign(&p, PUBLISHED_KEY));
    }

    #[test]
    fn tampered_value_fails() {
        let mut p = published_pay_params();
        p.insert("sign".into(), pay_sign(&p, PUBLISHED_KEY, SignType::Md5));
        p.insert("body".into(), "test2".into());
        assert!(!verify_pay_sign(&p, PUBLISHED_KEY));
    }
}
