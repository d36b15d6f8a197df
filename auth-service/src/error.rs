//! The one error type of auth-service's domain, and how each case reaches the
//! client (API.md §3).

use shared::cache::CacheError;
use shared::crypto::DecryptError;
use shared::db::DbError;
use shared::error::ApiError;
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
    #[error("too many login attempts, try again later")]
    RateLimited,
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

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidParam(m) => ApiError::BadRequest(m),
            e @ AuthError::NotConfigured(_) => ApiError::NotFound(e.to_string()),
            e @ AuthError::UnknownState => ApiError::BadRequest(e.to_string()),
            AuthError::RateLimited => ApiError::RateLimited,
            e @ (AuthError::UnknownUser | AuthError::SessionKeyExpired) => {
                ApiError::Unauthorized(e.to_string())
            }
            AuthError::Forbidden(m) => ApiError::Forbidden(m.to_owned()),
            AuthError::Decrypt(d) => ApiError::BadRequest(d.to_string()),
            AuthError::Wechat(w) => w.into(),
            AuthError::Db(d) => d.into(),
            AuthError::Cache(c) => c.into(),
        }
    }
}
