//! Lenient query-string reading: WeChat answers a malformed query with an
//! errcode, never with a framework 400, so nothing here can fail.

use std::collections::HashMap;

use actix_web::HttpRequest;

pub(crate) struct Params(HashMap<String, String>);

impl Params {
    pub fn from_query(req: &HttpRequest) -> Self {
        Self::parse(req.query_string().as_bytes())
    }

    /// `application/x-www-form-urlencoded`, for the sandbox's own forms.
    pub fn parse(raw: &[u8]) -> Self {
        let mut map = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(raw) {
            // The first occurrence wins, as most servers do.
            map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
        Params(map)
    }

    /// The value, or `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Absent and empty both read as "".
    pub fn str(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }
}
