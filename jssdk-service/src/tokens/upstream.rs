//! The WeChat calls that produce an access_token or a jsapi_ticket.

use serde::Deserialize;
use serde_json::json;
use shared::config::AppCredentials;
use shared::wechat::{WechatClient, WechatError};

use super::entry::Kind;
use crate::config::TokenEndpoint;
use crate::metrics::UPSTREAM_FETCHES;

pub(crate) struct Upstream {
    pub wechat: WechatClient,
    pub app: AppCredentials,
    pub endpoint: TokenEndpoint,
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: String,
    expires_in: i64,
}

#[derive(Deserialize)]
struct TicketReply {
    ticket: String,
    expires_in: i64,
}

/// What WeChat says when the access_token is not (or no longer) good.
pub(crate) fn token_rejected(e: &WechatError) -> bool {
    matches!(e.errcode(), Some(40001 | 40014 | 42001))
}

impl Upstream {
    /// `(access_token, expires_in seconds)`. `force_refresh` asks
    /// `stable_token` for a new token even though WeChat thinks the current one
    /// good: only after WeChat rejected it.
    pub async fn access_token(&self, force_refresh: bool) -> Result<(String, i64), WechatError> {
        let reply = match self.endpoint {
            TokenEndpoint::Stable => {
                let body = json!({
                    "grant_type": "client_credential",
                    "appid": self.app.app_id,
                    "secret": self.app.app_secret.expose(),
                    "force_refresh": force_refresh,
                });
                self.wechat
                    .post_json::<TokenReply, _>("/cgi-bin/stable_token", &[], &body)
                    .await
            }
            TokenEndpoint::Token => {
                self.wechat
                    .get_json::<TokenReply>(
                        "/cgi-bin/token",
                        &[
                            ("grant_type", "client_credential"),
                            ("appid", &self.app.app_id),
                            ("secret", self.app.app_secret.expose()),
                        ],
                    )
                    .await
            }
        }
        .and_then(|r| checked(r.access_token, r.expires_in));
        counted(Kind::AccessToken, reply)
    }

    pub async fn jsapi_ticket(&self, access_token: &str) -> Result<(String, i64), WechatError> {
        let reply = self
            .wechat
            .get_json::<TicketReply>(
                "/cgi-bin/ticket/getticket",
                &[("access_token", access_token), ("type", "jsapi")],
            )
            .await
            .and_then(|r| checked(r.ticket, r.expires_in));
        counted(Kind::JsapiTicket, reply)
    }
}

fn checked(value: String, expires_in: i64) -> Result<(String, i64), WechatError> {
    if value.is_empty() || expires_in < 0 {
        return Err(WechatError::BadResponse(
            "empty value or negative expires_in".into(),
        ));
    }
    Ok((value, expires_in))
}

fn counted<T>(kind: Kind, r: Result<T, WechatError>) -> Result<T, WechatError> {
    let outcome = shared::wechat::outcome_of(&r);
    UPSTREAM_FETCHES
        .with_label_values(&[kind.as_str(), outcome])
        .inc();
    r
}
