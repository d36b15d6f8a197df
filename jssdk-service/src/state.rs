//! The domain: what the service does for a request, whatever carried it. Signs
//! `wx.config` for a page and hands the access_token to internal callers, both
//! over the token manager ([`crate::tokens`]).

use std::sync::Arc;

use serde::Serialize;
use shared::cache::Cache;
use shared::error::ApiError;
use shared::sign::constant_time_eq;
use shared::startup::{Infra, StartupError};
use shared::telemetry::Readiness;

use crate::clock::{Clock, SystemClock};
use crate::config::JssdkConfig;
use crate::metrics::SIGNATURES;
use crate::signature::{WxConfig, page_url, wx_config};
use crate::tokens::TokenManager;

/// Everything the handlers need; cheap to clone.
#[derive(Clone)]
pub struct JssdkState {
    pub config: Arc<JssdkConfig>,
    pub tokens: TokenManager,
    readiness: Readiness,
}

/// The reply of `/internal/access-token`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessToken {
    pub access_token: String,
    /// Unix seconds.
    pub expires_at: i64,
}

impl JssdkState {
    /// Connects the cache (`cache` when given, as `stack` does; else
    /// `REDIS_URL` or the in-process cache) and starts the background refresher
    /// unless it is switched off.
    pub async fn build(config: JssdkConfig, cache: Option<Cache>) -> Result<Self, StartupError> {
        Self::build_with_clock(config, cache, Arc::new(SystemClock)).await
    }

    /// As [`JssdkState::build`], on another clock (tests follow the sandbox's).
    pub async fn build_with_clock(
        config: JssdkConfig,
        cache: Option<Cache>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        // No tables: readiness then checks the cache only.
        let infra = Infra::build(&config.common, cache).await?;
        let tokens = TokenManager::new(&config, infra.cache.clone(), infra.wechat.clone(), clock);
        if config.policy.background_refresh {
            // The task holds the manager weakly: it ends with the last state.
            tokens.spawn_refresher();
        }
        Ok(JssdkState {
            config: Arc::new(config),
            tokens,
            readiness: infra.readiness(),
        })
    }

    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// `wx.config` for the page at `url` (without its `#fragment`), signed with
    /// the current jsapi_ticket and a fresh nonce.
    pub async fn wx_config(&self, url: Option<&str>) -> Result<WxConfig<'_>, ApiError> {
        let url = page_url(url)?;
        // One reading for both: the ticket is valid at the time it signs.
        let now_ms = self.tokens.now_ms();
        let ticket = self.tokens.jsapi_ticket_at(now_ms).await?;
        let config = wx_config(
            &self.config.app.app_id,
            &ticket.value,
            url,
            now_ms.div_euclid(1000),
            shared::random::alphanumeric(crate::signature::NONCE_LEN),
        );
        SIGNATURES.inc();
        Ok(config)
    }

    /// The access_token, for a caller presenting `INTERNAL_TOKEN`. Unset, the
    /// route does not exist as far as anyone can tell (404); a missing or
    /// wrong token is 401, compared in constant time.
    pub async fn internal_access_token(
        &self,
        presented: Option<&str>,
    ) -> Result<AccessToken, ApiError> {
        let Some(expected) = &self.config.internal_token else {
            return Err(ApiError::NotFound("no such route".into()));
        };
        let given =
            presented.ok_or_else(|| ApiError::Unauthorized("missing internal token".into()))?;
        if !constant_time_eq(given.as_bytes(), expected.expose().as_bytes()) {
            return Err(ApiError::Unauthorized("invalid internal token".into()));
        }
        let token = self.tokens.access_token().await?;
        Ok(AccessToken {
            access_token: token.value.to_string(),
            expires_at: token.expires_at_ms.div_euclid(1000),
        })
    }
}
