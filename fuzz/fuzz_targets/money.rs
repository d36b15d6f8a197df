//! `shared::money::yuan_to_fen` on any string: never panics; what it accepts
//! is a positive amount that `fen_to_yuan` writes back to the same fen, and
//! the input was plain digits with at most one dot and two decimals.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::money::{fen_to_yuan, yuan_to_fen};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(fen) = yuan_to_fen(s) else {
        return;
    };
    assert!(fen > 0);
    assert!(s.bytes().all(|b| b.is_ascii_digit() || b == b'.'), "{s:?}");
    if let Some((_, decimals)) = s.split_once('.') {
        assert!(decimals.len() <= 2 && !decimals.contains('.'), "{s:?}");
    }
    assert_eq!(yuan_to_fen(&fen_to_yuan(fen)), Ok(fen), "{s:?}");
});
