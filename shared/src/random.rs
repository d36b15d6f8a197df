//! Random identifiers from the OS-seeded thread RNG.

use rand::{Rng, RngExt};

/// What [`alphanumeric`] picks from, uniformly.
const ALPHANUMERIC: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `[A-Za-z0-9]{len}`: nonces, OAuth states, out_trade_no suffixes.
///
/// Each random byte's top six bits pick a character, 62 and 63 are dropped,
/// so every character is equally likely: rand's `Alphanumeric` does the
/// same with a whole `u32` per character. Every jssdkConfig answer carries a
/// nonce, and drawing one byte per character (in one `fill_bytes`) instead
/// of one word was a measurable part of that route's own work (issue #16).
pub fn alphanumeric(len: usize) -> String {
    let mut rng = rand::rng();
    let mut out = String::with_capacity(len);
    let mut bytes = [0u8; 64];
    while out.len() < len {
        let missing = len - out.len();
        // A few spare bytes: one in 32 is dropped, so one fill nearly always does.
        let drawn = &mut bytes[..(missing + missing / 8 + 2).min(64)];
        rng.fill_bytes(drawn);
        out.extend(
            drawn
                .iter()
                .map(|b| usize::from(b >> 2))
                .filter_map(|i| ALPHANUMERIC.get(i))
                .map(|&c| char::from(c))
                .take(missing),
        );
    }
    out
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
    fn alphanumerics_have_the_length_asked_and_use_every_character() {
        for len in [0, 1, 31, 32, 100, 1000] {
            let s = alphanumeric(len);
            assert_eq!(s.len(), len);
            assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()), "{s}");
        }
        // 62 characters over 124,000 draws: each about 2,000 times, give or
        // take 45 (one standard deviation), so these bounds are 6.7 of them
        // away. A character never drawn is far below them; `% 62` of a byte
        // would draw the first eight a quarter more often (about 2,500).
        let mut counts = [0u32; 256];
        for _ in 0..124_000 / 32 {
            for b in nonce().bytes() {
                counts[usize::from(b)] += 1;
            }
        }
        for &c in ALPHANUMERIC {
            let n = counts[usize::from(c)];
            assert!((1700..2300).contains(&n), "{} drawn {n} times", c as char);
        }
        assert_ne!(nonce(), nonce());
    }

    #[test]
    fn uuids_are_version_4_and_differ() {
        let (a, b) = (uuid_v4(), uuid_v4());
        assert_eq!(a.get_version(), Some(uuid::Version::Random));
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
        assert_ne!(a, b);
    }
}
