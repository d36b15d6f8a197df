//! `/api/wechat/redirect` and `/api/wechat/getOpenId`: official-account web OAuth.

use actix_web::{HttpRequest, web};
use serde::Deserialize;

use super::cookies::{CookiePolicy, OAUTH_COOKIE};
use super::{Reply, found, login_attempt};
use crate::domain::oauth::OaLogin;
use crate::domain::oauth_state::BrowserBinding;
use crate::metrics::record_login;
use crate::state::AuthState;

#[derive(Deserialize)]
pub(super) struct RedirectQuery {
    url: Option<String>,
    scope: Option<String>,
}

/// The binding the browser's OAuth cookie holds, if it holds one of ours.
fn browser_of(req: &HttpRequest) -> Option<BrowserBinding> {
    req.cookie(OAUTH_COOKIE)
        .and_then(|c| BrowserBinding::parse(c.value()))
}

pub(super) async fn redirect(
    state: web::Data<AuthState>,
    cookies: web::Data<CookiePolicy>,
    req: HttpRequest,
    q: web::Query<RedirectQuery>,
) -> Reply {
    login_attempt(&state, &req).await?;
    let oa = state.oa()?;
    let scope = OaLogin::scope(q.scope.as_deref())?;
    let started = oa
        .begin(q.url.as_deref().unwrap_or(""), scope, browser_of(&req))
        .await?;
    Ok(found(&started.authorize_url)
        .cookie(cookies.oauth_binding(&started.browser))
        .finish())
}

#[derive(Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
}

pub(super) async fn get_open_id(
    state: web::Data<AuthState>,
    cookies: web::Data<CookiePolicy>,
    req: HttpRequest,
    q: web::Query<CallbackQuery>,
) -> Reply {
    login_attempt(&state, &req).await?;
    let result = state
        .oa()?
        .complete(
            q.code.as_deref(),
            q.state.as_deref(),
            browser_of(&req).as_ref(),
        )
        .await;
    record_login("oa", &result);
    let done = result?;
    tracing::info!(user_id = done.user.id, "official-account login");
    let mut res = found(&done.return_url);
    for cookie in cookies.login(&done.token, &done.user.openid) {
        res.cookie(cookie);
    }
    Ok(res.cookie(cookies.oauth_binding_cleared()).finish())
}
