//! Where OAuth may send a browser back to. Anything that is not an absolute
//! http(s) URL on an allowed origin is refused, spelled however it is: an open
//! redirect here would hand a WeChat login to whoever wrote the link.

use url::Url;

use super::AuthError;

/// Longer return URLs are refused; they travel in the OAuth state's cache entry.
const MAX_LEN: usize = 2048;

/// The return URL, normalised, when `raw` is safe to redirect to.
pub fn validate(raw: &str, allowed_origins: &[String]) -> Result<String, AuthError> {
    let refuse = |why: &str| AuthError::invalid(format!("url {why}"));
    if raw.is_empty() {
        return Err(refuse("is required"));
    }
    if raw.len() > MAX_LEN {
        return Err(refuse("is too long"));
    }
    // Browsers and URL parsers strip or reinterpret these (tabs and newlines are
    // dropped, `\` becomes `/`), so the URL a check sees could differ from the one
    // the browser follows.
    if raw
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return Err(refuse(
            "contains whitespace, control characters or backslashes",
        ));
    }
    // The scheme written out, in lower case, with both slashes: excludes
    // `//host`, `/\host`, `https:host`, `javascript:` and percent-encoded forms.
    let lower = raw.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return Err(refuse("must be an absolute http(s) URL"));
    }
    let url = Url::parse(raw).map_err(|_| refuse("is not a valid URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(refuse("must be an absolute http(s) URL"));
    }
    // `https://allowed.example@evil.example` is evil.example with a user name.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("must not contain credentials"));
    }
    let origin = url.origin().ascii_serialization();
    if !allowed_origins.contains(&origin) {
        return Err(refuse("is not on an allowed origin"));
    }
    Ok(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec![
            "https://allowed.example".to_owned(),
            "http://127.0.0.1:3000".to_owned(),
        ]
    }

    #[test]
    fn urls_on_allowed_origins_pass_normalised() {
        let ok = |u: &str| validate(u, &allowed()).unwrap();
        assert_eq!(ok("https://allowed.example"), "https://allowed.example/");
        assert_eq!(
            ok("https://allowed.example/shop/?a=1#/cart"),
            "https://allowed.example/shop/?a=1#/cart"
        );
        assert_eq!(
            ok("HTTPS://Allowed.Example:443/x"),
            "https://allowed.example/x"
        );
        assert_eq!(ok("http://127.0.0.1:3000/#/"), "http://127.0.0.1:3000/#/");
    }

    #[test]
    fn open_redirects_are_refused() {
        for bad in [
            "",
            "/local/path",
            "//evil.example",
            "//allowed.example",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https:\\\\evil.example",
            "https:/\\evil.example",
            "https://allowed.example\\@evil.example",
            "https:evil.example",
            "https:/evil.example",
            "javascript:alert(1)",
            "JavaScript://allowed.example/%0aalert(1)",
            "data:text/html,hi",
            "https://allowed.example@evil.example",
            "https://allowed.example:x@evil.example/",
            "https://evil.example/https://allowed.example",
            "https://allowed.example.evil.example/",
            "https://evil.example?https://allowed.example",
            "http://allowed.example/",
            "https://allowed.example:8443/",
            "%2F%2Fevil.example",
            "https:%2F%2Fevil.example",
            "https%3A%2F%2Fevil.example",
            "https://allowed.example%40evil.example/",
            "https://allowed.example%2F@evil.example/",
            " https://allowed.example/",
            "https://allowed.example/\n",
            "https://allo\twed.example/",
            "ftp://allowed.example/",
        ] {
            assert!(validate(bad, &allowed()).is_err(), "{bad:?} was accepted");
        }
        assert!(
            validate(
                &format!("https://allowed.example/{}", "a".repeat(3000)),
                &allowed()
            )
            .is_err()
        );
    }
}
