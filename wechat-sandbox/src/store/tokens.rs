//! App access tokens and JS-SDK tickets.

use std::collections::HashMap;
use std::time::Duration;

use crate::errors::{self, WxError};
use crate::ids;

pub(crate) const TOKEN_TTL: Duration = Duration::from_secs(7200);
pub(crate) const TICKET_TTL: Duration = Duration::from_secs(7200);
/// A replaced token keeps working this long, so callers mid-flight are not cut off.
const GRACE: Duration = Duration::from_secs(300);

pub(crate) struct AppToken {
    pub(crate) appid: String,
    pub(crate) expires: Duration,
    pub(crate) replaced_at: Option<Duration>,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TicketType {
    Jsapi,
    WxCard,
}

pub(crate) struct Ticket {
    pub(crate) ticket: String,
    pub(crate) expires: Duration,
}

#[derive(Default)]
pub(crate) struct TokenStore {
    pub(crate) tokens: HashMap<String, AppToken>,
    /// The newest `/cgi-bin/token` token per appid.
    pub(crate) latest: HashMap<String, String>,
    /// The current stable token per appid; WeChat keeps the two kinds apart.
    pub(crate) stable: HashMap<String, String>,
    pub(crate) tickets: HashMap<(String, TicketType), Ticket>,
}

impl TokenStore {
    pub(crate) fn issue(&mut self, appid: &str, now: Duration) -> String {
        let token = ids::token(136);
        self.tokens.insert(
            token.clone(),
            AppToken {
                appid: appid.to_owned(),
                expires: now + TOKEN_TTL,
                replaced_at: None,
            },
        );
        token
    }

    pub(crate) fn replace(&mut self, old: Option<String>, now: Duration) {
        if let Some(t) = old.and_then(|old| self.tokens.get_mut(&old)) {
            t.replaced_at.get_or_insert(now);
        }
    }

    /// Seconds left, or the error WeChat gives for this token.
    pub(crate) fn check(&self, token: &str, now: Duration) -> Result<(&AppToken, u64), WxError> {
        let t = self.tokens.get(token).ok_or(errors::INVALID_CREDENTIAL)?;
        if t.replaced_at.is_some_and(|at| now >= at + GRACE) {
            return Err(errors::INVALID_CREDENTIAL);
        }
        if now >= t.expires {
            return Err(errors::ACCESS_TOKEN_EXPIRED);
        }
        Ok((t, (t.expires - now).as_secs()))
    }
}
