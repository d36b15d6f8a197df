//! The crate's error type and how it reaches the client (API.md §3).

use shared::error::ApiError;
use shared::wechat::WechatError;

/// Why a token or ticket could not be had. Clone, because one fetch's outcome
/// is handed to every request that waited for it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Wechat(#[from] WechatError),
    /// The shared cache does not answer and no local copy is still valid.
    #[error("cache unavailable: {0}")]
    Cache(String),
    /// Another replica holds the fetch lock and did not finish in time.
    #[error("timed out waiting for the {0} fetch of another replica")]
    Busy(&'static str),
    #[error("{0}")]
    Internal(String),
}

impl From<shared::cache::CacheError> for TokenError {
    fn from(e: shared::cache::CacheError) -> Self {
        TokenError::Cache(e.to_string())
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Wechat(w) => w.into(),
            TokenError::Cache(detail) => ApiError::Unavailable(detail),
            TokenError::Busy(kind) => ApiError::Upstream {
                timed_out: true,
                what: format!("timed out: waiting for the {kind}"),
            },
            TokenError::Internal(detail) => ApiError::Internal(detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_contract() {
        let quota: ApiError = TokenError::Wechat(WechatError::Api {
            errcode: 45009,
            errmsg: "reach max api daily quota limit".into(),
        })
        .into();
        assert_eq!(quota.code(), 45009);
        assert_eq!(
            ApiError::from(TokenError::Cache("down".into())).code(),
            5003
        );
        assert_eq!(
            ApiError::from(TokenError::Busy("jsapi_ticket")).code(),
            10009
        );
    }
}
