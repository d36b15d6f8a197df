//! The Pay APIv2 XML codec: a root `<xml>` holding flat `<key>value</key>` fields.
//!
//! quick-xml resolves no custom entities, but it has no size limit of its own and
//! happily reports a DOCTYPE, so both are enforced here before anything is trusted.

use std::collections::BTreeMap;

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesRef, Event};
use quick_xml::reader::Reader;

/// Default upper bound for a WeChat Pay message; real ones are a few KiB.
pub const DEFAULT_MAX_XML_BYTES: usize = 64 * 1024;
/// More fields than any APIv2 message has (coupon lists included).
const MAX_FIELDS: usize = 512;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    #[error("XML body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("XML body is not UTF-8")]
    NotUtf8,
    #[error("XML with a DOCTYPE or entity declaration is refused")]
    Doctype,
    #[error("XML root element must be <xml>")]
    BadRoot,
    #[error("XML field <{0}> must not contain elements")]
    Nested(String),
    #[error("XML field <{0}> appears twice")]
    Duplicate(String),
    #[error("XML has more than {MAX_FIELDS} fields")]
    TooManyFields,
    #[error("XML is malformed: {0}")]
    Malformed(String),
}

/// Parses a flat Pay message into its fields. Refuses oversized input, non-UTF-8,
/// DOCTYPE (and so every entity declaration), nested elements and duplicate keys.
pub fn parse(input: &[u8], max_bytes: usize) -> Result<BTreeMap<String, String>, XmlError> {
    if input.len() > max_bytes {
        return Err(XmlError::TooLarge(max_bytes));
    }
    let text = std::str::from_utf8(input).map_err(|_| XmlError::NotUtf8)?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;

    let mut fields = BTreeMap::new();
    let mut seen_root = false;
    let mut root_closed = false;
    // The field being read, with the text gathered so far.
    let mut current: Option<(String, String)> = None;

    loop {
        let event = reader
            .read_event()
            .map_err(|e| XmlError::Malformed(e.to_string()))?;
        match event {
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Start(start) => {
                let name = start.name().as_ref().to_owned();
                if root_closed {
                    return Err(XmlError::Malformed("content after </xml>".into()));
                }
                if !seen_root {
                    if name != "xml" {
                        return Err(XmlError::BadRoot);
                    }
                    seen_root = true;
                } else if let Some((field, _)) = &current {
                    return Err(XmlError::Nested(field.clone()));
                } else {
                    current = Some((name, String::new()));
                }
            }
            Event::Empty(empty) => {
                let name = empty.name().as_ref().to_owned();
                if !seen_root || root_closed {
                    return Err(XmlError::BadRoot);
                }
                if let Some((field, _)) = &current {
                    return Err(XmlError::Nested(field.clone()));
                }
                insert(&mut fields, name, String::new())?;
            }
            Event::End(_) => match current.take() {
                Some((name, value)) => insert(&mut fields, name, value)?,
                None => root_closed = true,
            },
            // Text is taken as written, every `&...;` reference split out as
            // its own event. Not xml_content(): it rewrites \r\n to \n, and a
            // signed value must keep the bytes it was signed over.
            Event::Text(t) => push_text(&mut current, &t)?,
            Event::GeneralRef(reference) => push_text(&mut current, &resolve(&reference)?)?,
            Event::CData(c) => match &mut current {
                Some((_, buf)) => buf.push_str(&c),
                None => return Err(XmlError::Malformed("CDATA outside a field".into())),
            },
            Event::Eof => break,
        }
    }
    if !seen_root || !root_closed {
        return Err(XmlError::Malformed("missing <xml> root".into()));
    }
    Ok(fields)
}

/// Appends text to the field being read; between fields only whitespace may stand.
fn push_text(current: &mut Option<(String, String)>, text: &str) -> Result<(), XmlError> {
    match current {
        Some((_, buf)) => buf.push_str(text),
        None if text.trim().is_empty() => {}
        None => return Err(XmlError::Malformed("text outside a field".into())),
    }
    Ok(())
}

/// A character reference (`&#20013;`) or one of XML's five predefined entities;
/// any other entity would need a DTD, which is refused, so it is malformed.
fn resolve(reference: &BytesRef<'_>) -> Result<String, XmlError> {
    if let Some(c) = reference
        .resolve_char_ref()
        .map_err(|e| XmlError::Malformed(e.to_string()))?
    {
        return Ok(c.to_string());
    }
    resolve_predefined_entity(reference)
        .map(str::to_owned)
        .ok_or_else(|| XmlError::Malformed(format!("undeclared entity &{};", &**reference)))
}

fn insert(
    fields: &mut BTreeMap<String, String>,
    name: String,
    value: String,
) -> Result<(), XmlError> {
    if fields.len() >= MAX_FIELDS {
        return Err(XmlError::TooManyFields);
    }
    if fields.contains_key(&name) {
        return Err(XmlError::Duplicate(name));
    }
    fields.insert(name, value);
    Ok(())
}

/// Writes `<xml>` with one element per field. Text goes in CDATA (a `]]>` inside
/// is split across two sections); purely numeric values are written bare, as
/// WeChat does. Keys must be XML names; the callers only use WeChat's field names.
pub fn to_xml<'a, I>(fields: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut out = String::with_capacity(512);
    out.push_str("<xml>");
    for (k, v) in fields {
        debug_assert!(is_xml_name(k), "not an XML name: {k}");
        out.push('<');
        out.push_str(k);
        out.push('>');
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(v);
        } else {
            out.push_str("<![CDATA[");
            out.push_str(&v.replace("]]>", "]]]]><![CDATA[>"));
            out.push_str("]]>");
        }
        out.push_str("</");
        out.push_str(k);
        out.push('>');
    }
    out.push_str("</xml>");
    out
}

/// [`to_xml`] over a map, the usual case.
pub fn map_to_xml(fields: &BTreeMap<String, String>) -> String {
    to_xml(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn is_xml_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// The reply a notification endpoint sends back to WeChat.
pub fn notify_reply(success: bool, msg: &str) -> String {
    let code = if success { "SUCCESS" } else { "FAIL" };
    to_xml([("return_code", code), ("return_msg", msg)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(s: &str) -> BTreeMap<String, String> {
        parse(s.as_bytes(), DEFAULT_MAX_XML_BYTES).unwrap()
    }

    /// The unifiedorder response example from WeChat Pay's APIv2 documentation.
    #[test]
    fn parses_wechat_documented_response() {
        let doc = r#"<xml>
   <return_code><![CDATA[SUCCESS]]></return_code>
   <return_msg><![CDATA[OK]]></return_msg>
   <appid><![CDATA[wx2421b1c4370ec43b]]></appid>
   <mch_id><![CDATA[10000100]]></mch_id>
   <nonce_str><![CDATA[IITRi8Iabbblz1Jc]]></nonce_str>
   <openid><![CDATA[oUpF8uMuAJO_M2pxb1Q9zNjWeS6o]]></openid>
   <sign><![CDATA[7921E432F65EB8ED0CE9755F0E86D72F]]></sign>
   <result_code><![CDATA[SUCCESS]]></result_code>
   <prepay_id><![CDATA[wx201411101639507cbf6ffd8b0779950874]]></prepay_id>
   <trade_type><![CDATA[JSAPI]]></trade_type>
</xml>"#;
        let m = parse_ok(doc);
        assert_eq!(m["prepay_id"], "wx201411101639507cbf6ffd8b0779950874");
        assert_eq!(m["openid"], "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o");
        assert_eq!(m.len(), 10);
    }

    /// The payment notification example from the documentation (bare numbers).
    #[test]
    fn parses_documented_notification_with_bare_numbers() {
        let doc = "<xml><appid><![CDATA[wx2421b1c4370ec43b]]></appid><attach><![CDATA[支付测试]]></attach>\
<bank_type><![CDATA[CFT]]></bank_type><fee_type><![CDATA[CNY]]></fee_type><is_subscribe><![CDATA[Y]]></is_subscribe>\
<mch_id><![CDATA[10000100]]></mch_id><nonce_str><![CDATA[5d2b6c2a8db53831f7eda20af46e531c]]></nonce_str>\
<openid><![CDATA[oUpF8uMEb4qRXf22hE3X68TekukE]]></openid><out_trade_no><![CDATA[1409811653]]></out_trade_no>\
<result_code><![CDATA[SUCCESS]]></result_code><return_code><![CDATA[SUCCESS]]></return_code>\
<sign><![CDATA[B552ED6B279343CB493C5DD0D78AB241]]></sign><time_end><![CDATA[20140903131540]]></time_end>\
<total_fee>1</total_fee><coupon_fee><![CDATA[10]]></coupon_fee><coupon_count><![CDATA[1]]></coupon_count>\
<coupon_type><![CDATA[CASH]]></coupon_type><coupon_id><![CDATA[10000]]></coupon_id>\
<trade_type><![CDATA[JSAPI]]></trade_type><transaction_id><![CDATA[1004400740201409030005092168]]></transaction_id></xml>";
        let m = parse_ok(doc);
        assert_eq!(m["total_fee"], "1");
        assert_eq!(m["attach"], "支付测试");
        assert_eq!(m["transaction_id"], "1004400740201409030005092168");
    }

    #[test]
    fn round_trips_awkward_text() {
        let values = [
            "a<b",
            "x & y",
            "]]>",
            "end]]",
            "]]>]]>",
            "中文 商品",
            "😀 emoji",
            "  padded  ",
            "&amp;",
            "\"quotes' and\ttabs\nnewlines",
            "",
        ];
        for v in values {
            let xml = to_xml([("body", v), ("total_fee", "29")]);
            let m = parse_ok(&xml);
            assert_eq!(m["body"], v, "value {v:?} via {xml}");
            assert_eq!(m["total_fee"], "29");
        }
    }

    #[test]
    fn unescapes_predefined_entities_in_plain_text() {
        let m = parse_ok("<xml><a>x &amp; &lt;y&gt; &#20013;</a></xml>");
        assert_eq!(m["a"], "x & <y> 中");
    }

    #[test]
    fn refuses_doctype_and_billion_laughs() {
        let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><xml><a>&lol2;</a></xml>"#;
        assert_eq!(parse(laughs.as_bytes(), 4096), Err(XmlError::Doctype));
        let xxe =
            r#"<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><a>&xxe;</a></xml>"#;
        assert_eq!(parse(xxe.as_bytes(), 4096), Err(XmlError::Doctype));
    }

    #[test]
    fn keeps_line_ends_as_written() {
        let m = parse_ok("<xml><a>x\r\ny</a><b><![CDATA[p\r\nq]]></b></xml>");
        assert_eq!(m["a"], "x\r\ny");
        assert_eq!(m["b"], "p\r\nq");
    }

    #[test]
    fn refuses_bad_references() {
        for doc in [
            "<xml><a>x & y</a></xml>",
            "<xml><a>&#0;</a></xml>",
            "<xml><a>&#xD800;</a></xml>",
            "<xml><a>&amp</a></xml>",
            "<xml>&amp;</xml>",
        ] {
            assert!(
                matches!(parse(doc.as_bytes(), 4096), Err(XmlError::Malformed(_))),
                "{doc}"
            );
        }
    }

    #[test]
    fn refuses_undeclared_entities() {
        assert!(matches!(
            parse(b"<xml><a>&lol;</a></xml>", 4096),
            Err(XmlError::Malformed(_))
        ));
    }

    #[test]
    fn refuses_nested_duplicate_and_bad_roots() {
        assert_eq!(
            parse(b"<xml><a><b>1</b></a></xml>", 4096),
            Err(XmlError::Nested("a".into()))
        );
        assert_eq!(
            parse(b"<xml><a>1</a><a>2</a></xml>", 4096),
            Err(XmlError::Duplicate("a".into()))
        );
        assert_eq!(
            parse(b"<root><a>1</a></root>", 4096),
            Err(XmlError::BadRoot)
        );
        assert!(parse(b"<xml><a>1</a>", 4096).is_err());
        assert!(parse(b"<xml><a>1</b></xml>", 4096).is_err());
        assert!(parse(b"", 4096).is_err());
        assert!(parse(b"not xml", 4096).is_err());
        assert!(parse(b"<xml>loose</xml>", 4096).is_err());
        assert!(parse(b"<xml></xml><xml></xml>", 4096).is_err());
    }

    #[test]
    fn refuses_oversized_and_non_utf8() {
        let big = format!("<xml><a>{}</a></xml>", "x".repeat(5000));
        assert_eq!(parse(big.as_bytes(), 4096), Err(XmlError::TooLarge(4096)));
        assert_eq!(
            parse(b"<xml><a>\xff\xfe</a></xml>", 4096),
            Err(XmlError::NotUtf8)
        );
    }

    #[test]
    fn empty_elements_are_empty_values() {
        let m = parse_ok("<xml><a/><b></b></xml>");
        assert_eq!(m["a"], "");
        assert_eq!(m["b"], "");
    }

    #[test]
    fn notify_reply_is_what_wechat_expects() {
        assert_eq!(
            notify_reply(true, "OK"),
            "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
        );
    }
}
