//! `wx.config` parameters for a page: which URLs may be signed and the signature.

use serde::Serialize;
use shared::error::ApiError;
use shared::sign::{jssdk_signature, strip_fragment};

/// The JS-SDK interfaces pages may use: sharing (the current and the legacy
/// names), payment, and the usual media, location and window helpers.
pub const JS_API_LIST: &[&str] = &[
    "updateAppMessageShareData",
    "updateTimelineShareData",
    "onMenuShareAppMessage",
    "onMenuShareTimeline",
    "chooseWXPay",
    "chooseImage",
    "previewImage",
    "uploadImage",
    "getLocation",
    "openLocation",
    "scanQRCode",
    "getNetworkType",
    "hideMenuItems",
    "showMenuItems",
    "closeWindow",
];

/// A `wx.config` nonce's length: WeChat sets none and its own example has
/// 16 characters. 16 alphanumerics are 95 random bits, more than a signature
/// that anyone loading the page may see needs; 32 would cost a fourth SHA-1
/// block and twice the drawing on every answer (issue #16).
pub const NONCE_LEN: usize = 16;

/// Longer page URLs are refused; browsers and WeChat cope badly beyond this.
pub const MAX_URL_LEN: usize = 4096;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WxConfig<'a> {
    /// Borrowed from the configuration: an answer need not copy it.
    pub app_id: &'a str,
    pub timestamp: i64,
    pub nonce_str: String,
    pub signature: String,
    #[serde(serialize_with = "api_list_json")]
    pub js_api_list: &'static [&'static str],
}

/// The list as JSON: [`JS_API_LIST`]'s made once, since every answer
/// carries it and escaping its fifteen names each time was the largest part
/// of the handler's own work in a profile (issue #16); any other list is
/// serialised as it is.
fn api_list_json<S: serde::Serializer>(
    list: &&'static [&'static str],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match api_list_made() {
        Some(json) if *list == JS_API_LIST => json.serialize(serializer),
        _ => list.serialize(serializer),
    }
}

/// [`JS_API_LIST`] as JSON, made on first use.
fn api_list_made() -> Option<&'static serde_json::value::RawValue> {
    static MADE: std::sync::LazyLock<Option<Box<serde_json::value::RawValue>>> =
        std::sync::LazyLock::new(|| serde_json::value::to_raw_value(JS_API_LIST).ok());
    MADE.as_deref()
}

impl WxConfig<'_> {
    /// Appends the JSON `serde_json` writes for this value, byte for byte
    /// (the tests hold it to that), without going through serde: the keys
    /// are fixed text, a string with nothing to escape (the nonce and
    /// signature are alphanumerics, app ids are too) is copied between
    /// quotes, and only one with something to escape goes to `serde_json`.
    /// serde_json's escaping of every key and value was the largest part of
    /// jssdkConfig's own work left in a profile (callgrind: 1,837
    /// instructions a request, against about 680 for this; issue #16).
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(br#"{"appId":"#);
        json_str(out, self.app_id)?;
        out.extend_from_slice(br#","timestamp":"#);
        out.extend_from_slice(itoa::Buffer::new().format(self.timestamp).as_bytes());
        out.extend_from_slice(br#","nonceStr":"#);
        json_str(out, &self.nonce_str)?;
        out.extend_from_slice(br#","signature":"#);
        json_str(out, &self.signature)?;
        out.extend_from_slice(br#","jsApiList":"#);
        match api_list_made() {
            Some(json) if self.js_api_list == JS_API_LIST => {
                out.extend_from_slice(json.get().as_bytes())
            }
            _ => serde_json::to_writer(&mut *out, self.js_api_list)?,
        }
        out.push(b'}');
        Ok(())
    }
}

/// `s` as a JSON string: between quotes as it is when it has nothing JSON
/// escapes (`"`, `\\`, control characters; serde_json leaves the rest of
/// UTF-8 as it is), else as `serde_json` writes it.
fn json_str(out: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
    // Every byte is looked at, without stopping early, so that the compiler
    // can check many at once (callgrind: 343 instructions a request for the
    // three strings; 789 for an early-stopping `all` over alphanumerics).
    let plain = s.bytes().fold(true, |plain, b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(out, s)
    }
}

/// The page URL to sign: absolute http(s), without its `#fragment`, otherwise
/// exactly as the page has it (WeChat compares it with `location.href`).
pub fn page_url(raw: Option<&str>) -> Result<&str, ApiError> {
    let raw = raw
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::bad_request("url is required"))?;
    if raw.len() > MAX_URL_LEN {
        return Err(ApiError::bad_request(format!(
            "url is longer than {MAX_URL_LEN} characters"
        )));
    }
    // url::Url would quietly drop tabs and newlines; the page's own URL has none.
    if has_whitespace_or_control(raw) {
        return Err(ApiError::bad_request("url must not contain whitespace"));
    }
    let page = strip_fragment(raw);
    if plainly_absolute_http(page) || parses_as_absolute_http(page) {
        Ok(page)
    } else {
        Err(ApiError::bad_request("url must be an absolute http(s) URL"))
    }
}

/// The judge: WHATWG URL parsing (`url`), which is what the page's
/// `location.href` came from.
fn parses_as_absolute_http(page: &str) -> bool {
    matches!(url::Url::parse(page), Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

/// A shortcut that only ever says yes, and only to the shape nearly every
/// shop page has, which [`parses_as_absolute_http`] always accepts:
/// `http(s)://` in lowercase, a host of lowercase letters, digits, `-` and
/// `.` in non-empty labels whose last begins with a letter (so not an IPv4
/// address) and none begins `xn--` (punycode, which `url` checks), no port
/// or user, then nothing, or `/` or `?` and printable ASCII. Anything else is
/// left to the judge. Parsing costs more than the rest of the URL check
/// together, allocates the URL's serialisation, and is thrown away: the
/// shortcut took about 2,100 instructions off a warm jssdkConfig (callgrind,
/// issue #16). The tests hold it to the judge's answer on generated URLs.
fn plainly_absolute_http(page: &str) -> bool {
    let Some(rest) = page
        .strip_prefix("https://")
        .or_else(|| page.strip_prefix("http://"))
    else {
        return false;
    };
    // Bytes, not `str` patterns: `str`'s searchers cost several times as
    // much on strings this short (callgrind, issue #16).
    let host_end = rest
        .bytes()
        .position(|b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let (host, tail) = rest.as_bytes().split_at(host_end);
    // Every byte, without stopping early, so that many are checked at once.
    plain_host(host) && tail.iter().fold(true, |ok, b| ok & b.is_ascii_graphic())
}

/// A host the shortcut accepts; see [`plainly_absolute_http`].
fn plain_host(host: &[u8]) -> bool {
    let label_ok = |label: &[u8]| {
        !label.is_empty()
            && !label.starts_with(b"xn--")
            && label
                .iter()
                .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    let last_starts_with_a_letter = host
        .rsplit(|&b| b == b'.')
        .next()
        .and_then(|last| last.first())
        .is_some_and(u8::is_ascii_lowercase);
    host.split(|&b| b == b'.').all(label_ok) && last_starts_with_a_letter
}

/// Whether any character is whitespace or a control character. A page's URL
/// is ASCII (`location.href` percent-encodes the rest), so bytes are checked
/// first and characters only when there is more than ASCII.
fn has_whitespace_or_control(s: &str) -> bool {
    if s.is_ascii() {
        // Every byte, without stopping early: many are checked at once.
        s.bytes()
            .fold(false, |seen, b| seen | (b <= b' ') | (b == 0x7f))
    } else {
        s.chars().any(|c| c.is_whitespace() || c.is_control())
    }
}

pub fn wx_config<'a>(
    app_id: &'a str,
    ticket: &str,
    page_url: &str,
    timestamp: i64,
    nonce: String,
) -> WxConfig<'a> {
    WxConfig {
        app_id,
        timestamp,
        signature: jssdk_signature(ticket, &nonce, timestamp, page_url),
        nonce_str: nonce,
        js_api_list: JS_API_LIST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list made once reads as the list serialised each time would.
    #[test]
    fn the_api_list_is_the_same_json_either_way() {
        let config = wx_config("wxA", "T", "https://shop.example/", 1, "n".into());
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json["jsApiList"], serde_json::json!(JS_API_LIST));
        let other = WxConfig {
            js_api_list: &["chooseWXPay"],
            ..config
        };
        let json = serde_json::to_value(&other).unwrap();
        assert_eq!(json["jsApiList"], serde_json::json!(["chooseWXPay"]));
    }

    /// The hand-written JSON is serde_json's, byte for byte, for plain
    /// values and for values with something to escape in every string.
    #[test]
    fn the_written_json_is_serde_jsons() {
        let plain = wx_config(
            "wx5a1d0b0c0a000001",
            "T",
            "https://shop.example/",
            1_700_000_000,
            "Wm3WZYTPz0wzccnW".into(),
        );
        let odd = WxConfig {
            app_id: "wx\"1\\é\u{1}",
            timestamp: -5,
            nonce_str: "a b\n".into(),
            signature: "</script>".into(),
            js_api_list: &["choose\"WXPay", ""],
        };
        // Nothing serde_json escapes, though not alphanumeric: copied as it is.
        let unescaped = WxConfig {
            app_id: "wx é\u{7f}/<>'",
            nonce_str: "~".into(),
            ..odd.clone()
        };
        let empty = WxConfig {
            app_id: "",
            timestamp: i64::MIN,
            nonce_str: String::new(),
            signature: String::new(),
            js_api_list: &[],
        };
        // Each character on either side of what JSON escapes, alone in a
        // value, so that every part of the check is needed.
        let edges = [
            '"', '\\', '\u{0}', '\u{1f}', ' ', '!', '#', '[', ']', '\u{7f}', 'é',
        ];
        let mut configs = vec![plain, odd, unescaped, empty];
        for c in edges {
            configs.push(WxConfig {
                app_id: "wx",
                timestamp: 1,
                nonce_str: format!("n{c}n"),
                signature: c.to_string(),
                js_api_list: JS_API_LIST,
            });
        }
        for config in configs {
            let mut written = Vec::new();
            config.write_json(&mut written).unwrap();
            assert_eq!(
                String::from_utf8(written).unwrap(),
                serde_json::to_string(&config).unwrap()
            );
        }
    }

    #[test]
    fn accepts_absolute_http_urls_and_drops_the_fragment() {
        assert_eq!(
            page_url(Some("https://shop.example/p?id=1#/cart")).unwrap(),
            "https://shop.example/p?id=1"
        );
        assert_eq!(
            page_url(Some("http://127.0.0.1:8080/")).unwrap(),
            "http://127.0.0.1:8080/"
        );
    }

    /// The byte check for ASCII says what the character check would.
    #[test]
    fn the_ascii_check_agrees_with_the_character_check() {
        for c in (0u8..=127).map(char::from) {
            let page = format!("https://shop.example/{c}x");
            assert_eq!(
                has_whitespace_or_control(&page),
                c.is_whitespace() || c.is_control(),
                "{c:?}"
            );
        }
    }

    /// The shortcut says yes only where the judge does, over every
    /// combination of schemes, hosts and rests chosen to sit on its edges
    /// (numbers, punycode, ports, users, empty labels, odd characters), and
    /// page_url answers as the judge alone would.
    #[test]
    fn the_shortcut_never_accepts_what_url_refuses() {
        let schemes = [
            "http://", "https://", "HTTP://", "ftp://", "http:/", "http:///", "",
        ];
        let hosts = [
            "shop.example",
            "a",
            "a-",
            "-a",
            "a--b",
            "a..b",
            "a.",
            ".a",
            "1.2.3.4",
            "1.2.3.256",
            "0x7f.1",
            "a.0x1",
            "1.2.3.a",
            "99999999999",
            "a.1",
            "xn--a",
            "xn--nxasmq6b",
            "a.xn--zz",
            "ab--cd.example",
            "shop.example:8080",
            "shop.example:99999",
            "u@shop.example",
            "sHop.example",
            "shop_example",
            "a%41",
            "[::1]",
            "",
            "shop.example\\p",
        ];
        let rests = [
            "", "/", "?", "/p?id=1", "/a\\b", "?q=%zz", "/%", "/{}|^`", "/\"<>", "//x", "/..",
            ":80/", "@x", "/é",
        ];
        let mut shortcut_said_yes = 0;
        for scheme in schemes {
            for host in hosts {
                for rest in rests {
                    let page = format!("{scheme}{host}{rest}");
                    let judged = parses_as_absolute_http(&page);
                    if plainly_absolute_http(&page) {
                        assert!(judged, "{page}");
                        shortcut_said_yes += 1;
                    }
                    let whitespace = has_whitespace_or_control(&page);
                    assert_eq!(
                        page_url(Some(&page)).is_ok(),
                        judged && !whitespace && !page.is_empty(),
                        "{page}"
                    );
                }
            }
        }
        // Two schemes, the plain hosts, the printable rests.
        assert!(shortcut_said_yes >= 100, "{shortcut_said_yes}");
        assert!(plainly_absolute_http("https://shop.example/pay?id=1"));
        assert!(plainly_absolute_http("http://m.shop-1.example.com"));
    }

    #[test]
    fn refuses_what_cannot_be_a_page() {
        for bad in [
            None,
            Some(""),
            Some("/relative/path"),
            Some("shop.example/p"),
            Some("ftp://shop.example/p"),
            Some("javascript:alert(1)"),
            Some("https://shop.example/a b"),
            Some("https://shop.example/\n"),
            Some("https://shop.example/\u{b}"),
            Some("https://shop.example/\u{7f}"),
            Some("https://shop.example/\u{85}"),
            Some("https://shop.example/\u{3000}é"),
            Some("#only-a-fragment"),
        ] {
            let err = page_url(bad).unwrap_err();
            assert_eq!(err.code(), 1001, "{bad:?}");
            assert!(err.to_string().contains("url"), "{bad:?}");
        }
        let long = format!("https://shop.example/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(page_url(Some(&long)).unwrap_err().code(), 1001);
    }

    #[test]
    fn signs_wechats_published_example() {
        // The example of WeChat's JS-SDK documentation, appendix 1.
        let cfg = wx_config(
            "wx1",
            "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg",
            "http://mp.weixin.qq.com?params=value",
            1414587457,
            "Wm3WZYTPz0wzccnW".into(),
        );
        assert_eq!(cfg.signature, "0f9de62fce790f9a083d5c99e95740ceb90c27ed");
        let json = serde_json::to_value(&cfg).unwrap();
        assert_eq!(json["timestamp"], 1414587457);
        assert_eq!(json["nonceStr"], "Wm3WZYTPz0wzccnW");
        let apis = json["jsApiList"].as_array().unwrap();
        for needed in [
            "updateAppMessageShareData",
            "updateTimelineShareData",
            "chooseWXPay",
        ] {
            assert!(apis.iter().any(|a| a == needed), "{needed}");
        }
    }
}
