//! Identifiers shaped like WeChat's: derived ones (openid, unionid) are stable
//! across runs so fixtures can be written down; issued ones are random.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, FixedOffset, Utc};
use rand::RngExt;
use rand::distr::{Alphanumeric, SampleString};
use sha1::{Digest, Sha1};

/// `o` plus 27 URL-safe base64 characters, 28 in all, like WeChat's openids.
fn derived(label: &str, parts: &[&str]) -> String {
    let mut h = Sha1::new();
    h.update(label.as_bytes());
    for p in parts {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    let b64 = URL_SAFE_NO_PAD.encode(h.finalize());
    format!("o{}", &b64[..27])
}

/// Differs per app for the same user, as WeChat's openids do.
pub fn openid(appid: &str, user_key: &str) -> String {
    derived("openid", &[appid, user_key])
}

/// The same for one user in every app.
pub fn unionid(user_key: &str) -> String {
    derived("unionid", &[user_key])
}

pub fn alnum(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), len)
}

/// `len` characters drawn uniformly from `chars` (ASCII).
fn random_of(chars: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(chars[rng.random_range(0..chars.len())]))
        .collect()
}

pub fn digits(len: usize) -> String {
    random_of(b"0123456789", len)
}

/// Access tokens and tickets use `-` and `_` besides letters and digits.
pub fn token(len: usize) -> String {
    random_of(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
        len,
    )
}

pub fn lower_hex(len: usize) -> String {
    random_of(b"0123456789abcdef", len)
}

/// UTC+8, checked when compiling rather than on every call.
const BEIJING: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+8 is a valid offset"),
};

pub fn beijing() -> FixedOffset {
    BEIJING
}

/// WeChat Pay's `yyyyMMddHHmmss`, always Beijing time.
pub fn pay_time(at: DateTime<Utc>) -> String {
    at.with_timezone(&beijing())
        .format("%Y%m%d%H%M%S")
        .to_string()
}

/// `wx` + Beijing timestamp + 20 hex characters: `wx201410272009395522657a690389285100`.
pub fn prepay_id(at: DateTime<Utc>) -> String {
    format!("wx{}{}", pay_time(at), lower_hex(20))
}

/// 28 digits, `4200` + date + random, like WeChat's transaction ids.
pub fn transaction_id(at: DateTime<Utc>) -> String {
    let date = at.with_timezone(&beijing()).format("%Y%m%d");
    format!("4200{date}{}", digits(16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openids_are_per_app_and_stable() {
        let a = openid("wxA", "u1");
        assert_eq!(a.len(), 28);
        assert!(a.starts_with('o'));
        assert_eq!(a, openid("wxA", "u1"));
        assert_ne!(a, openid("wxB", "u1"));
        assert_ne!(a, openid("wxA", "u2"));
        // The separator keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(openid("ab", "c"), openid("a", "bc"));
        assert_ne!(unionid("u1"), openid("u1", ""));
    }

    #[test]
    fn pay_identifiers_have_wechat_shapes() {
        let at = DateTime::parse_from_rfc3339("2024-03-01T16:30:05Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(pay_time(at), "20240302003005");
        let p = prepay_id(at);
        assert_eq!(p.len(), 36);
        assert!(p.starts_with("wx20240302003005"));
        let t = transaction_id(at);
        assert_eq!(t.len(), 28);
        assert!(t.starts_with("420020240302"));
        assert!(t.bytes().all(|b| b.is_ascii_digit()));
    }
}
