//! `shared::xml::parse` on any bytes: never panics, and whatever it accepts
//! is written back by `map_to_xml` and read again unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::xml::{DEFAULT_MAX_XML_BYTES, map_to_xml, parse};

/// The names `to_xml` is documented to write (WeChat's field names are all such).
fn is_simple_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

fuzz_target!(|data: &[u8]| {
    let Ok(fields) = parse(data, DEFAULT_MAX_XML_BYTES) else {
        return;
    };
    if fields.keys().all(|k| is_simple_name(k)) {
        let again = parse(map_to_xml(&fields).as_bytes(), usize::MAX)
            .expect("what parse accepted, written back, parses");
        assert_eq!(again, fields);
    }
});
