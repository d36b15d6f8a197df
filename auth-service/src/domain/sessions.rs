//! Issuing and ending sessions. The tokens, their verification and the
//! revocation list are `shared::session`'s (every service checks them); what
//! auth-service decides is who gets one and what logout ends.

use std::time::Duration;

use shared::session::{SessionKeys, SessionKind};

use super::AuthError;
use super::users::User;

/// What `POST /api/auth/logout` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutScope {
    /// The token the request carries.
    ThisSession,
    /// Every session of the token's user, on every device (`all=true`).
    Everywhere,
}

#[derive(Clone, Debug)]
pub struct Sessions {
    keys: SessionKeys,
}

impl Sessions {
    pub fn new(keys: SessionKeys) -> Self {
        Sessions { keys }
    }

    /// What the session extractor verifies with.
    pub fn keys(&self) -> &SessionKeys {
        &self.keys
    }

    pub fn ttl(&self) -> Duration {
        self.keys.ttl()
    }

    /// A fresh token for the user who just logged in.
    pub fn issue(&self, user: &User, kind: SessionKind) -> String {
        self.keys.issue(user.id, &user.appid, &user.openid, kind).0
    }

    /// Ends the request's session, or all of its user's. Logging out without
    /// a (valid) token only clears the browser's cookies; ending every session
    /// needs a live one, to know whose.
    pub async fn logout(&self, token: Option<&str>, scope: LogoutScope) -> Result<(), AuthError> {
        match scope {
            LogoutScope::ThisSession => {
                // A token that does not verify ends nothing: there is nothing to revoke.
                if let Some(claims) = token.and_then(|t| self.keys.verify(t).ok()) {
                    self.keys.revoke(&claims).await?;
                }
            }
            LogoutScope::Everywhere => {
                let token = token.ok_or(AuthError::NotLoggedIn)?;
                let claims = self.keys.authenticate(token).await?;
                self.keys.revoke_all(claims.uid).await?;
            }
        }
        Ok(())
    }
}
