//! One query parameter, read straight from the query string.
//!
//! `web::Query<T>` is the way for a struct of parameters. For a hot route
//! that reads one (jssdkConfig's `url`, issue #16 goal 1) it costs more than
//! the value is worth: serde's deserializer around `form_urlencoded`, whose
//! decoding pushes each byte into a vector that starts from the iterator's
//! size hint and grows several times (callgrind: about 2,400 instructions of
//! a warm jssdkConfig for a 44-byte `url`, against one pre-sized pass here).
//! The meaning is `form_urlencoded`'s, which the tests use as the oracle:
//! pairs split on `&` and at the first `=`, `+` is a space, `%XX` a byte, a
//! `%` not followed by two hex digits stays itself, and what is not UTF-8
//! afterwards becomes U+FFFD.

use std::borrow::Cow;

/// Why a query parameter could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// The parameter came more than once; which one is meant is anybody's guess.
    Repeated(&'static str),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Repeated(name) => write!(f, "{name} is given more than once"),
        }
    }
}

impl std::error::Error for QueryError {}

/// The decoded value of `name` in `query` (without the `?`): `None` when it
/// is absent, an error when it is there twice (as `web::Query` says for a
/// struct field). Names are compared decoded, as `form_urlencoded` would.
pub fn param<'q>(query: &'q str, name: &'static str) -> Result<Option<Cow<'q, str>>, QueryError> {
    let mut found = None;
    for pair in split_on(query, b'&').filter(|p| !p.is_empty()) {
        let (key, value) = split_once_on(pair, b'=').unwrap_or((pair, ""));
        if decode(key) != name {
            continue;
        }
        if found.is_some() {
            return Err(QueryError::Repeated(name));
        }
        found = Some(decode(value));
    }
    Ok(found)
}

/// `application/x-www-form-urlencoded` decoding of one name or value, in one
/// pass into a buffer of the input's length (decoding never lengthens);
/// borrowed when there is nothing to decode.
pub fn decode(raw: &str) -> Cow<'_, str> {
    let bytes = raw.as_bytes();
    let Some(first) = bytes.iter().position(|&b| b == b'%' || b == b'+') else {
        return Cow::Borrowed(raw);
    };
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..first]);
    // Byte by byte from the first escape: a page URL's escapes come every few
    // bytes (`%3A%2F%2F`), so copying the runs between them whole cost more
    // in calls than it saved (callgrind, issue #16).
    let mut at = first;
    while let Some(&b) = bytes.get(at) {
        let (byte, used) = match b {
            b'+' => (b' ', 1),
            b'%' => match (bytes.get(at + 1), bytes.get(at + 2)) {
                (Some(&hi), Some(&lo)) => hex_pair(hi, lo).map_or((b'%', 1), |b| (b, 3)),
                _ => (b'%', 1),
            },
            other => (other, 1),
        };
        out.push(byte);
        at += used;
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

/// `s.split(b)` for an ASCII byte `b` (see [`split_once_on`]).
fn split_on(s: &str, b: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let s = rest?;
        let (piece, tail) = split_once_on(s, b).map_or((s, None), |(p, t)| (p, Some(t)));
        rest = tail;
        Some(piece)
    })
}

/// `s.split_once(b)` for an ASCII byte `b`, found by `memchr`. A `char`
/// pattern goes through `str`'s char searcher, whose set-up costs more than
/// the search on strings this short (callgrind: about 60 instructions a call,
/// four calls on every jssdkConfig; issue #16), and a plain byte loop looks
/// at one byte at a time. An ASCII byte is always a `char` boundary, so the
/// slicing cannot split a character; any other byte is a caller's mistake
/// and panics (the check costs nothing for the constant every caller passes).
pub fn split_once_on(s: &str, b: u8) -> Option<(&str, &str)> {
    assert!(b.is_ascii(), "split_once_on splits at ASCII bytes only");
    let at = memchr::memchr(b, s.as_bytes())?;
    Some((&s[..at], &s[at + 1..]))
}

/// The byte two hex digits spell, if they are two hex digits.
fn hex_pair(hi: u8, lo: u8) -> Option<u8> {
    Some(hex_digit(hi)? << 4 | hex_digit(lo)?)
}

fn hex_digit(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use url::form_urlencoded;

    /// What `form_urlencoded` (and so `web::Query`) reads for `name`.
    fn oracle(query: &str, name: &str) -> Vec<String> {
        form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .collect()
    }

    fn agrees(query: &str) {
        let want = oracle(query, "url");
        match param(query, "url") {
            Ok(None) => assert!(want.is_empty(), "{query:?}: {want:?}"),
            Ok(Some(v)) => assert_eq!(vec![v.into_owned()], want, "{query:?}"),
            Err(QueryError::Repeated(_)) => assert!(want.len() > 1, "{query:?}: {want:?}"),
        }
    }

    #[test]
    fn reads_what_form_urlencoded_reads() {
        for query in [
            "",
            "url",
            "url=",
            "&&url=a&&",
            "url=https%3A%2F%2Fshop.example%2Fpay%3Fid%3D1",
            "url=https://shop.example/p?x=1#f",
            "x=1&url=a%20b+c&y",
            "u%72l=renamed&other=1",
            "url+=not-it&url%3D=nor-this",
            "url=100%&a=%",
            "url=%2&b",
            "url=%zz%4",
            "url=%4g%g4",
            "url=%2B%2b+",
            "url=%E4%BD%A0%E5%A5%BD",
            "url=%FF%FE%E4%BD",
            "url=%C3%28x",
            "url=é&x=ü",
            "url=a=b=c",
            "URL=upper-is-another-name",
            "url=a&url=b",
            "url&url=",
        ] {
            agrees(query);
        }
    }

    /// Every string of up to three characters from the alphabet that matters
    /// (the escapes, the separators, hex digits of both cases, a non-hex
    /// letter and a two-byte character), as a value and as the whole query.
    #[test]
    fn agrees_on_every_short_string_of_the_tricky_characters() {
        let alphabet = ['%', '+', '&', '=', '2', 'b', 'B', 'f', 'g', 'é'];
        let mut strings = vec![String::new()];
        for _ in 0..3 {
            let longer: Vec<String> = strings
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            strings.extend(longer);
        }
        for s in &strings {
            agrees(&format!("url={s}"));
            agrees(&format!("{s}url={s}%41"));
            // As one value: `&` would end it.
            let value = s.replace('&', "%26");
            let want = form_urlencoded::parse(format!("k={value}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned());
            assert_eq!(Some(decode(&value).into_owned()), want, "{value:?}");
        }
        assert!(strings.len() > 1000);
    }

    /// The byte scans split where `str`'s own `split` and `split_once` do,
    /// next to multi-byte characters too.
    #[test]
    fn the_byte_splits_are_strs() {
        for s in [
            "", "&", "&&", "a", "a&b", "&a&", "é&ü&", "a=b=c", "=", "#é#", "x#", "€&=#",
        ] {
            for b in [b'&', b'=', b'#'] {
                let c = char::from(b);
                assert_eq!(
                    split_on(s, b).collect::<Vec<_>>(),
                    s.split(c).collect::<Vec<_>>(),
                    "{s:?} {c}"
                );
                assert_eq!(split_once_on(s, b), s.split_once(c), "{s:?} {c}");
            }
        }
    }

    /// A byte that could sit inside a character is refused rather than
    /// allowed to split one.
    #[test]
    #[should_panic(expected = "ASCII bytes only")]
    fn a_non_ascii_byte_is_refused() {
        let _ = split_once_on("é", 0xa9);
    }

    #[test]
    fn nothing_to_decode_is_borrowed() {
        assert!(matches!(decode("https://shop.example/"), Cow::Borrowed(_)));
        assert!(matches!(decode("a+b"), Cow::Owned(_)));
    }

    #[test]
    fn a_repeated_parameter_is_refused_by_name() {
        let err = param("url=a&url=b", "url").unwrap_err();
        assert_eq!(err.to_string(), "url is given more than once");
    }
}
