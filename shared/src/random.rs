//! Random identifiers from the OS-seeded thread RNG.

use rand::RngExt;
use rand::distr::Alphanumeric;

/// `[A-Za-z0-9]{len}`: nonces, OAuth states, out_trade_no suffixes.
pub fn alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// 32 random alphanumerics, WeChat's usual nonce_str length.
pub fn nonce() -> String {
    alphanumeric(32)
}
