//! Properties of the signing, XML and money code over generated inputs
//! (proptest), beyond the examples in the unit tests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use shared::money::{MoneyError, fen_to_yuan, yuan_to_fen};
use shared::sign::{SignType, pay_sign, verify_pay_sign};
use shared::xml::{DEFAULT_MAX_XML_BYTES, map_to_xml, parse};

const KEY: &str = "192006250b4c09247ec02edce69f6a2d";

/// Field names as WeChat's are: ASCII, never `sign` (the signature itself)
/// or `sign_type` (set by the test to the type under test).
fn field_name() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,15}".prop_filter("reserved", |k| k != "sign" && k != "sign_type")
}

fn fields_of<V: Strategy<Value = String>>(
    values: V,
) -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(field_name(), values, 1..12)
}

fn signed(mut fields: BTreeMap<String, String>, sign_type: SignType) -> BTreeMap<String, String> {
    if sign_type == SignType::HmacSha256 {
        fields.insert("sign_type".into(), "HMAC-SHA256".into());
    }
    let sign = pay_sign(&fields, KEY, sign_type);
    fields.insert("sign".into(), sign);
    fields
}

fn sign_type() -> impl Strategy<Value = SignType> {
    prop_oneof![Just(SignType::Md5), Just(SignType::HmacSha256)]
}

proptest! {
    /// Any map of ASCII keys to arbitrary UTF-8 values verifies under the key
    /// it was signed with, and under no other.
    #[test]
    fn a_signed_map_verifies(fields in fields_of(any::<String>()), st in sign_type()) {
        let msg = signed(fields, st);
        prop_assert!(verify_pay_sign(&msg, KEY));
        prop_assert!(!verify_pay_sign(&msg, "192006250b4c09247ec02edce69f6a2e"));
    }

    /// Changing any one value (the signed fields, and `sign_type` too) breaks it.
    #[test]
    fn any_changed_value_breaks_the_sign(
        fields in fields_of(any::<String>()),
        st in sign_type(),
        pick in any::<prop::sample::Index>(),
        new_value in any::<String>(),
    ) {
        let mut msg = signed(fields, st);
        let names: Vec<String> = msg.keys().filter(|k| *k != "sign").cloned().collect();
        let name = pick.get(&names).clone();
        prop_assume!(msg[&name] != new_value);
        msg.insert(name, new_value);
        prop_assert!(!verify_pay_sign(&msg, KEY));
    }

    /// Adding a non-empty field breaks it (empty fields are not signed, as
    /// WeChat documents).
    #[test]
    fn an_added_field_breaks_the_sign(
        fields in fields_of(any::<String>()),
        st in sign_type(),
        extra in field_name(),
        value in ".+",
    ) {
        let mut msg = signed(fields, st);
        prop_assume!(!msg.contains_key(&extra));
        msg.insert(extra, value);
        prop_assert!(!verify_pay_sign(&msg, KEY));
    }
}

/// Characters XML 1.0 can carry (`Char` in the spec: tab, LF, CR and
/// U+0020 upwards, less the surrogates, U+FFFE and U+FFFF). The other control
/// characters cannot appear in an XML document at all, escaped or not, so a
/// WeChat message never holds them and the round trip is not defined for them.
fn xml_char() -> impl Strategy<Value = char> {
    prop_oneof![
        Just('\t'),
        Just('\n'),
        Just('\r'),
        prop::char::range('\u{20}', '\u{D7FF}'),
        prop::char::range('\u{E000}', '\u{FFFD}'),
        prop::char::range('\u{10000}', '\u{10FFFF}'),
    ]
}

/// Arbitrary XML text, with the pieces that need care mixed in often.
fn xml_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => prop::collection::vec(xml_char(), 0..8).prop_map(|c| c.into_iter().collect::<String>()),
        1 => prop::sample::select(vec![
            "]]>", "]]", "]", "<", ">", "&", "&amp;", "<![CDATA[", "</xml>", "<a>",
            "微信支付", "商品描述", "😀", "🧧", "\"", "'", " ", "0", "12",
        ]).prop_map(str::to_owned),
    ];
    prop::collection::vec(piece, 0..10).prop_map(|p| p.concat())
}

proptest! {
    /// `to_xml` then `parse` gives back exactly the map written.
    #[test]
    fn xml_round_trips(fields in prop::collection::btree_map(
        "[A-Za-z_][A-Za-z0-9_]{0,15}", xml_text(), 0..12)) {
        let xml = map_to_xml(&fields);
        let back = parse(xml.as_bytes(), DEFAULT_MAX_XML_BYTES);
        prop_assert_eq!(back.as_ref(), Ok(&fields), "{}", xml);
    }

    /// A signed message survives the trip: what WeChat signs, we verify.
    #[test]
    fn a_signed_message_verifies_after_the_xml_trip(
        fields in fields_of(xml_text()), st in sign_type()) {
        let msg = signed(fields, st);
        let back = parse(map_to_xml(&msg).as_bytes(), DEFAULT_MAX_XML_BYTES).unwrap();
        prop_assert!(verify_pay_sign(&back, KEY));
    }
}

/// The largest amount `yuan_to_fen` takes: twelve integer digits of yuan.
const MAX_FEN: i64 = 99_999_999_999_999;

#[test]
fn the_money_bounds() {
    assert_eq!(yuan_to_fen(&fen_to_yuan(MAX_FEN)), Ok(MAX_FEN));
    assert_eq!(yuan_to_fen(&fen_to_yuan(1)), Ok(1));
    // 10^14 fen has thirteen integer digits of yuan: refused, not wrapped.
    assert_eq!(
        yuan_to_fen(&fen_to_yuan(100_000_000_000_000)),
        Err(MoneyError::TooLarge)
    );
}

proptest! {
    /// fen → yuan → fen is the identity over every accepted amount.
    #[test]
    fn fen_yuan_fen_is_identity(fen in 1..=MAX_FEN) {
        prop_assert_eq!(yuan_to_fen(&fen_to_yuan(fen)), Ok(fen));
    }

    /// One decimal place means tens of fen.
    #[test]
    fn one_decimal_is_tens_of_fen(yuan in 0..1_000_000_000_000i64, tenth in 0..10i64) {
        prop_assume!(yuan + tenth > 0);
        prop_assert_eq!(yuan_to_fen(&format!("{yuan}.{tenth}")), Ok(yuan * 100 + tenth * 10));
    }

    /// Three or more decimals never parse, whatever they are.
    #[test]
    fn three_decimals_never_parse(yuan in 0..1_000_000u64, frac in "[0-9]{3,8}") {
        prop_assert_eq!(yuan_to_fen(&format!("{yuan}.{frac}")), Err(MoneyError::Format));
    }

    /// A sign, an exponent or surrounding space never parses.
    #[test]
    fn signs_exponents_and_spaces_never_parse(
        fen in 1..=MAX_FEN,
        sign in prop::sample::select(vec!["+", "-"]),
        exp in "[eE][+-]?[0-9]{1,3}",
        space in prop::sample::select(vec![" ", "\t", "\n"]),
    ) {
        let plain = fen_to_yuan(fen);
        for s in [
            format!("{sign}{plain}"),
            format!("{plain}{exp}"),
            format!("{}{exp}", fen / 100 + 1),
            format!("{space}{plain}"),
            format!("{plain}{space}"),
        ] {
            prop_assert!(yuan_to_fen(&s).is_err(), "{} parsed", s);
        }
    }

    /// Any string with a character other than digits and one dot is refused.
    #[test]
    fn only_digits_and_a_dot_parse(s in ".*") {
        if let Ok(fen) = yuan_to_fen(&s) {
            prop_assert!(s.bytes().all(|b| b.is_ascii_digit() || b == b'.'), "{}", s);
            prop_assert!(s.matches('.').count() <= 1);
            prop_assert!(fen > 0);
        }
    }
}
