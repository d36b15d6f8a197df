//! How each domain error reaches the client (API.md §3).

use shared::error::ApiError;

use crate::domain::AuthError;

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidParam(m) => ApiError::BadRequest(m),
            e @ AuthError::NotConfigured(_) => ApiError::NotFound(e.to_string()),
            e @ (AuthError::UnknownState | AuthError::OtherBrowser) => {
                ApiError::BadRequest(e.to_string())
            }
            AuthError::RateLimited => ApiError::RateLimited,
            e @ (AuthError::NotLoggedIn
            | AuthError::Session(_)
            | AuthError::UnknownUser
            | AuthError::SessionKeyExpired) => ApiError::Unauthorized(e.to_string()),
            AuthError::Forbidden(m) => ApiError::Forbidden(m.to_owned()),
            AuthError::Decrypt(d) => ApiError::BadRequest(d.to_string()),
            AuthError::Wechat(w) => w.into(),
            AuthError::Db(d) => d.into(),
            AuthError::Cache(c) => c.into(),
        }
    }
}
