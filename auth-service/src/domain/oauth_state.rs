//! The OAuth `state`: what it remembers until the browser comes back, its
//! shape, and the browser it belongs to.
//!
//! A state kept only in the cache would let a callback URL made in an
//! attacker's browser (`…/getOpenId?code=C&state=S`, not yet opened) log a
//! victim who opens it in as the attacker (login CSRF). So `/redirect` also
//! hands the browser a random binding in an HttpOnly cookie, and the state
//! keeps only a MAC of it: the callback must come with the same binding.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use shared::sign::{constant_time_eq, hmac_sha256};

use crate::wechat::Scope;

/// How long a browser has to come back from WeChat's consent page.
pub const STATE_TTL: Duration = Duration::from_secs(600);
/// WeChat allows 1 to 128 characters of `[A-Za-z0-9]`; 32 random ones cannot be guessed.
const STATE_LEN: usize = 32;
/// The browser binding: as unguessable as the state.
const BINDING_LEN: usize = 32;

/// A fresh, random state.
pub fn new_state() -> String {
    shared::random::alphanumeric(STATE_LEN)
}

/// The shape WeChat allows: anything else cannot be one of ours.
pub fn is_state(s: &str) -> bool {
    (16..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

pub fn state_key(state: &str) -> String {
    format!("auth:oauth_state:{state}")
}

/// The secret a browser holds (in its OAuth cookie) to prove a state is its own.
#[derive(Clone, PartialEq, Eq)]
pub struct BrowserBinding(String);

impl std::fmt::Debug for BrowserBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BrowserBinding(***)")
    }
}

impl BrowserBinding {
    pub fn random() -> Self {
        BrowserBinding(shared::random::alphanumeric(BINDING_LEN))
    }

    /// The cookie's value, when it has the shape of one we made.
    pub fn parse(value: &str) -> Option<Self> {
        (value.len() == BINDING_LEN && value.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| BrowserBinding(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the cache keeps: a MAC of the binding under this state, so that
    /// neither the binding nor a value valid for another state is stored.
    fn seal(&self, state: &str) -> String {
        hmac_sha256(self.0.as_bytes(), state.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// What a state remembers until the browser comes back.
#[derive(Serialize, Deserialize)]
pub struct Pending {
    pub return_url: String,
    pub scope: Scope,
    /// [`BrowserBinding::seal`] of the browser that asked.
    browser: String,
}

impl Pending {
    pub fn new(return_url: String, scope: Scope, state: &str, browser: &BrowserBinding) -> Self {
        Pending {
            return_url,
            scope,
            browser: browser.seal(state),
        }
    }

    /// Whether `browser` is the one this state was issued to, compared in
    /// constant time.
    pub fn belongs_to(&self, state: &str, browser: Option<&BrowserBinding>) -> bool {
        browser.is_some_and(|b| constant_time_eq(b.seal(state).as_bytes(), self.browser.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_shape() {
        assert!(is_state(&"a".repeat(16)));
        assert!(is_state(&"Z9".repeat(64)));
        assert!(is_state(&new_state()));
        assert!(!is_state(&"a".repeat(15)));
        assert!(!is_state(&"a".repeat(129)));
        assert!(!is_state("abcdefghijklmnop:"));
        assert!(!is_state("abcdefgh-ijklmnop"));
    }

    #[test]
    fn a_state_belongs_to_the_browser_it_was_issued_to() {
        let (a, b) = (BrowserBinding::random(), BrowserBinding::random());
        let state = new_state();
        let pending = Pending::new("https://x/".into(), Scope::Base, &state, &a);
        assert!(pending.belongs_to(&state, Some(&a)));
        assert!(!pending.belongs_to(&state, Some(&b)));
        assert!(!pending.belongs_to(&state, None));
        // The seal is per state: the same browser's seal for another state differs.
        assert!(!pending.belongs_to(&new_state(), Some(&a)));
        // Only the MAC is stored, never the binding itself.
        let json = serde_json::to_string(&pending).unwrap();
        assert!(!json.contains(a.as_str()), "{json}");
    }

    #[test]
    fn binding_cookie_shape() {
        let b = BrowserBinding::random();
        assert_eq!(BrowserBinding::parse(b.as_str()), Some(b));
        assert!(BrowserBinding::parse("short").is_none());
        assert!(BrowserBinding::parse(&"a-".repeat(16)).is_none());
        assert_eq!(
            format!("{:?}", BrowserBinding::random()),
            "BrowserBinding(***)"
        );
    }
}
