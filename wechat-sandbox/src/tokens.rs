//! App access tokens (`/cgi-bin/token`, `/cgi-bin/stable_token`) and JS-SDK
//! tickets (`/cgi-bin/ticket/getticket`).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::clock::lock;
use crate::config::SandboxApp;
use crate::errors::{self, WxError, json_response};
use crate::ids;
use crate::params::Params;
use crate::state::SandboxState;
use crate::store::{TICKET_TTL, TOKEN_TTL, Ticket, TicketType};

#[derive(Deserialize)]
struct StableTokenRequest {
    #[serde(default)]
    grant_type: String,
    #[serde(default)]
    appid: String,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    force_refresh: bool,
}

impl SandboxState {
    fn check_app_secret(&self, appid: &str, secret: &str) -> Result<&SandboxApp, WxError> {
        if appid.is_empty() {
            return Err(errors::APPID_MISSING);
        }
        let app = self.app(appid).ok_or(errors::INVALID_APPID)?;
        if secret.is_empty() {
            return Err(errors::APPSECRET_MISSING);
        }
        if !shared::sign::constant_time_eq(secret.as_bytes(), app.secret.as_bytes()) {
            return Err(errors::INVALID_APPSECRET);
        }
        Ok(app)
    }

    /// Each call issues a new token; the previous one lives 5 more minutes.
    pub(crate) fn client_credential_token(&self, q: &Params) -> Result<serde_json::Value, WxError> {
        if q.str("grant_type") != "client_credential" {
            return Err(errors::INVALID_GRANT_TYPE);
        }
        let app = self.check_app_secret(q.str("appid"), q.str("secret"))?;
        let now = self.clock.elapsed();
        let mut store = lock(&self.tokens);
        let token = store.issue(&app.appid, now);
        let old = store.latest.insert(app.appid.clone(), token.clone());
        store.replace(old, now);
        Ok(json!({ "access_token": token, "expires_in": TOKEN_TTL.as_secs() }))
    }

    /// The same token until it expires, unless `force_refresh`.
    fn stable_token(&self, body: &[u8]) -> Result<serde_json::Value, WxError> {
        let req: StableTokenRequest =
            serde_json::from_slice(body).map_err(|_| errors::DATA_FORMAT_ERROR)?;
        if req.grant_type != "client_credential" {
            return Err(errors::INVALID_GRANT_TYPE);
        }
        let app = self.check_app_secret(&req.appid, &req.secret)?;
        let now = self.clock.elapsed();
        let mut store = lock(&self.tokens);
        let current = store.stable.get(&app.appid).cloned();
        if !req.force_refresh
            && let Some(token) = &current
            && let Ok((_, left)) = store.check(token, now)
            && left > 0
        {
            return Ok(json!({ "access_token": token, "expires_in": left }));
        }
        let token = store.issue(&app.appid, now);
        store.stable.insert(app.appid.clone(), token.clone());
        store.replace(current, now);
        Ok(json!({ "access_token": token, "expires_in": TOKEN_TTL.as_secs() }))
    }

    pub(crate) fn get_ticket(&self, q: &Params) -> Result<serde_json::Value, WxError> {
        let now = self.clock.elapsed();
        let mut store = lock(&self.tokens);
        let (token, _) = store.check(q.str("access_token"), now)?;
        let appid = token.appid.clone();
        let kind = match q.str("type") {
            "jsapi" => TicketType::Jsapi,
            "wx_card" => TicketType::WxCard,
            _ => return Err(errors::INVALID_ARGS),
        };
        let ticket = store
            .tickets
            .entry((appid, kind))
            .and_modify(|t| {
                if now >= t.expires {
                    *t = new_ticket(now);
                }
            })
            .or_insert_with(|| new_ticket(now));
        Ok(json!({
            "errcode": 0,
            "errmsg": "ok",
            "ticket": ticket.ticket,
            "expires_in": (ticket.expires - now).as_secs(),
        }))
    }

    /// The app's jsapi ticket if one was issued and has not expired.
    pub fn current_jsapi_ticket(&self, appid: &str) -> Option<String> {
        let now = self.clock.elapsed();
        lock(&self.tokens)
            .tickets
            .get(&(appid.to_owned(), TicketType::Jsapi))
            .filter(|t| now < t.expires)
            .map(|t| t.ticket.clone())
    }
}

fn new_ticket(now: Duration) -> Ticket {
    Ticket {
        ticket: ids::token(86),
        expires: now + TICKET_TTL,
    }
}

pub(crate) async fn stable_token(
    sandbox: web::Data<SandboxState>,
    body: web::Bytes,
) -> Result<HttpResponse, WxError> {
    let body = sandbox.stable_token(&body)?;
    Ok(json_response(&body))
}
