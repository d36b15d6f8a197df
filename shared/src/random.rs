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

/// A random (version 4) UUID from the thread RNG. uuid's own `new_v4` asks
/// the kernel for each one: a `getrandom` syscall on every request, for its
/// request id (issue #16; seen with `strace -c` under load).
pub fn uuid_v4() -> uuid::Uuid {
    let bytes: [u8; 16] = rand::rng().random();
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4_and_differ() {
        let (a, b) = (uuid_v4(), uuid_v4());
        assert_eq!(a.get_version(), Some(uuid::Version::Random));
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
        assert_ne!(a, b);
    }
}
