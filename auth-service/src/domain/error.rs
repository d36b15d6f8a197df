//! The one error type of auth-service's domain. How each case reaches the
//! client (API.md §3) is `http::error`'s business.

use shared::cache::CacheError;
use shared::crypto::DecryptError;
use shared::db::DbError;
use shared::session::{AuthenticateError, SessionError};
use shared::wechat::WechatError;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A missing or malformed parameter; the message names it.
    #[error("{0}")]
    InvalidParam(String),
    /// The route belongs to an app this deployment has no credentials for.
    #[error("{0} login is not configured on this server")]
    NotConfigured(&'static str),
    #[error("state is unknown, expired or already used")]
    UnknownState,
    /// A callback whose state was issued to another browser (login CSRF):
    /// its binding cookie is missing or different.
    #[error("state was issued to another browser")]
    OtherBrowser,
    #[error("too many login attempts, try again later")]
    RateLimited,
    #[error("not logged in")]
    NotLoggedIn,
    /// The token did not verify, expired or was revoked.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The session verified but names no user here (e.g. the row was removed).
    #[error("the session's user does not exist")]
    UnknownUser,
    #[error("{0}")]
    Forbidden(&'static str),
    /// The mini program must `wx.login` again: its session_key is gone.
    #[error("mini-program session_key expired, log in again")]
    SessionKeyExpired,
    #[error("{0}")]
    Decrypt(#[from] DecryptError),
    #[error(transparent)]
    Wechat(#[from] WechatError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

impl AuthError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        AuthError::InvalidParam(msg.into())
    }
}

impl From<AuthenticateError> for AuthError {
    fn from(e: AuthenticateError) -> Self {
        match e {
            AuthenticateError::Session(s) => AuthError::Session(s),
            AuthenticateError::Cache(c) => AuthError::Cache(c),
        }
    }
}
