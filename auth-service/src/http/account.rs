//! The session's own routes: who am I (`/api/auth/me`,
//! `/api/wechat/getUserInfo`) and logout.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::error::{Envelope, ok};
use shared::session::{Session, SessionKind, token_of};

use super::Reply;
use super::cookies::CookiePolicy;
use crate::domain::AuthError;
use crate::domain::sessions::LogoutScope;
use crate::domain::users::User;
use crate::state::AuthState;

/// The seed's `getUserInfo` shape.
#[derive(Serialize)]
struct UserInfoReply {
    openid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    unionid: Option<String>,
    nickname: Option<String>,
    headimgurl: Option<String>,
    sex: Option<i32>,
    province: Option<String>,
    city: Option<String>,
    country: Option<String>,
}

/// The session's user, when the row still names the same app and openid.
async fn session_user(state: &AuthState, session: &Session) -> Result<User, AuthError> {
    state
        .users
        .find(session.0.uid)
        .await?
        .filter(|u| u.appid == session.0.appid && u.openid == session.0.openid)
        .ok_or(AuthError::UnknownUser)
}

pub(super) async fn get_user_info(state: web::Data<AuthState>, session: Session) -> Reply {
    let u = session_user(&state, &session).await?;
    Ok(ok(UserInfoReply {
        openid: u.openid,
        unionid: u.unionid,
        nickname: u.nickname,
        headimgurl: u.headimgurl,
        sex: u.sex,
        province: u.province,
        city: u.city,
        country: u.country,
    }))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MeReply {
    #[serde(flatten)]
    user: User,
    kind: SessionKind,
    /// When the session ends, Unix seconds.
    expires_at: i64,
}

pub(super) async fn me(state: web::Data<AuthState>, session: Session) -> Reply {
    let user = session_user(&state, &session).await?;
    Ok(ok(MeReply {
        user,
        kind: session.0.kind,
        expires_at: session.0.exp,
    }))
}

#[derive(Deserialize)]
pub(super) struct LogoutQuery {
    #[serde(default)]
    all: bool,
}

/// Ends the request's session (its token is revoked for every service until
/// it would have expired), or with `all=true` every session of its user, and
/// clears the cookies.
pub(super) async fn logout(
    state: web::Data<AuthState>,
    cookies: web::Data<CookiePolicy>,
    req: HttpRequest,
    q: web::Query<LogoutQuery>,
) -> Reply {
    let scope = if q.all {
        LogoutScope::Everywhere
    } else {
        LogoutScope::ThisSession
    };
    state
        .sessions
        .logout(token_of(&req).as_deref(), scope)
        .await?;
    let mut res = HttpResponse::Ok();
    for cookie in cookies.cleared() {
        res.cookie(cookie);
    }
    Ok(res.json(Envelope {
        code: 0,
        data: Value::Null,
        message: "ok".into(),
    }))
}
