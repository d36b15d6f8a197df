//! Web OAuth's codes and user tokens, and the one-time codes `wx.login` shares.

use std::collections::HashMap;
use std::time::Duration;

use crate::errors::{self, WxError};
use crate::ids;

/// Codes live 5 minutes, as WeChat documents.
pub(crate) const CODE_TTL: Duration = Duration::from_secs(300);
/// Redeemed and expired codes are kept this long so reuse reads 40163, not 40029.
const CODE_MEMORY: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Base,
    UserInfo,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "snsapi_base" => Some(Scope::Base),
            "snsapi_userinfo" => Some(Scope::UserInfo),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Base => "snsapi_base",
            Scope::UserInfo => "snsapi_userinfo",
        }
    }
}

pub(crate) struct Grant {
    pub(crate) appid: String,
    pub(crate) user_key: String,
    pub(crate) scope: Scope,
}

/// One-time login codes (web OAuth's and `wx.login`'s): each for one app,
/// redeemable once within [`CODE_TTL`]. `G` is what redeeming gives.
pub(crate) struct Codes<G> {
    codes: HashMap<String, IssuedCode<G>>,
}

struct IssuedCode<G> {
    appid: String,
    grant: G,
    issued: Duration,
    used: bool,
}

impl<G> Default for Codes<G> {
    fn default() -> Self {
        Codes {
            codes: HashMap::new(),
        }
    }
}

impl<G> Codes<G> {
    pub fn issue(&mut self, appid: &str, grant: G, now: Duration) -> String {
        let code = ids::alnum(32);
        self.codes
            .retain(|_, c| now.saturating_sub(c.issued) < CODE_MEMORY);
        self.codes.insert(
            code.clone(),
            IssuedCode {
                appid: appid.to_owned(),
                grant,
                issued: now,
                used: false,
            },
        );
        code
    }

    /// What `code` was issued for, once: 40029 for an unknown, another app's
    /// or expired code, 40163 for one already redeemed.
    pub fn redeem(&mut self, code: &str, appid: &str, now: Duration) -> Result<&G, WxError> {
        let entry = self
            .codes
            .get_mut(code)
            .filter(|c| c.appid == appid)
            .ok_or(errors::INVALID_CODE)?;
        if entry.used {
            return Err(errors::CODE_BEEN_USED);
        }
        if now >= entry.issued + CODE_TTL {
            return Err(errors::INVALID_CODE);
        }
        entry.used = true;
        Ok(&entry.grant)
    }
}

pub(crate) struct UserToken {
    pub(crate) grant: Grant,
    pub(crate) expires: Duration,
}

#[derive(Default)]
pub(crate) struct OauthStore {
    /// A code gives the user key and scope the user agreed to.
    pub(crate) codes: Codes<(String, Scope)>,
    pub(crate) access_tokens: HashMap<String, UserToken>,
    pub(crate) refresh_tokens: HashMap<String, UserToken>,
}
