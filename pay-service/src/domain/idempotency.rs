//! `Idempotency-Key`: the one place it is validated. The same key from the
//! same user (orders) or on the same order (refunds) means the same request,
//! so a client retrying after a timeout never pays or refunds twice.

use sha2::{Digest, Sha256};

use crate::error::PayError;

const MAX_LEN: usize = 128;

/// A key that passed validation: 1 to 128 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks a key as the header carried it (already trimmed); None stays None.
    pub fn check(raw: Option<String>) -> Result<Option<Self>, PayError> {
        let Some(key) = raw else {
            return Ok(None);
        };
        if key.is_empty() || key.len() > MAX_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(PayError::invalid(
                "Idempotency-Key must be 1 to 128 printable ASCII characters",
            ));
        }
        Ok(Some(IdempotencyKey(key)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The refund number this key stands for on `out_trade_no`: 32
    /// characters, WeChat's maximum.
    pub fn refund_no(&self, out_trade_no: &str) -> String {
        let digest = hex::encode(Sha256::digest(
            format!("{out_trade_no}\n{}", self.0).as_bytes(),
        ));
        format!("K{}", &digest[..31])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_1_to_128_printable_ascii() {
        assert_eq!(IdempotencyKey::check(None).unwrap(), None);
        let ok = IdempotencyKey::check(Some("k-1".into())).unwrap().unwrap();
        assert_eq!(ok.as_str(), "k-1");
        assert!(IdempotencyKey::check(Some("x".repeat(128))).is_ok());
        for bad in [String::new(), "x".repeat(129), "a b".into(), "é".into()] {
            let e = IdempotencyKey::check(Some(bad.clone())).unwrap_err();
            assert_eq!(
                e.to_string(),
                "Idempotency-Key must be 1 to 128 printable ASCII characters",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn refund_numbers_are_per_order_and_32_characters() {
        let key = IdempotencyKey::check(Some("k".into())).unwrap().unwrap();
        let a = key.refund_no("N1");
        assert_eq!(a.len(), 32);
        assert!(a.starts_with('K'));
        assert_eq!(a, key.refund_no("N1"));
        assert_ne!(a, key.refund_no("N2"));
    }
}
