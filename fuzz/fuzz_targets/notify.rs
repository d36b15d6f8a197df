//! A payment notification's path up to the database: parse the XML, then
//! verify its sign. Never panics; a message re-signed with the key under its
//! declared sign type verifies, and one signed with another key does not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::sign::{SignType, pay_sign, verify_pay_sign};
use shared::xml::{DEFAULT_MAX_XML_BYTES, parse};

/// The key of WeChat's documented examples.
const KEY: &str = "192006250b4c09247ec02edce69f6a2d";

fuzz_target!(|data: &[u8]| {
    let Ok(mut fields) = parse(data, DEFAULT_MAX_XML_BYTES) else {
        return;
    };
    let _ = verify_pay_sign(&fields, KEY);
    let declared = fields.get("sign_type").map(String::as_str).unwrap_or("");
    let Some(sign_type) = SignType::parse(declared) else {
        // An unknown sign type never verifies, whatever the sign.
        assert!(!verify_pay_sign(&fields, KEY));
        return;
    };
    let sign = pay_sign(&fields, KEY, sign_type);
    fields.insert("sign".into(), sign.to_ascii_lowercase());
    assert!(verify_pay_sign(&fields, KEY), "lowercase hex verifies too");
    fields.insert(
        "sign".into(),
        pay_sign(&fields, "another-key-0000000000000000000000", sign_type),
    );
    assert!(!verify_pay_sign(&fields, KEY));
});
