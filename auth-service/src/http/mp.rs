//! `/api/mp/*`: mini-program login, profile and open-data decryption.

use actix_web::{HttpRequest, web};
use serde::{Deserialize, Serialize};
use shared::error::ok;
use shared::session::Session;

use super::{Reply, login_attempt};
use crate::domain::profile::user_info_of;
use crate::metrics::record_login;
use crate::state::AuthState;

#[derive(Deserialize)]
pub(super) struct CodeQuery {
    code: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MpSessionReply {
    openid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    unionid: Option<String>,
    token: String,
    expires_in: u64,
}

pub(super) async fn get_session(
    state: web::Data<AuthState>,
    req: HttpRequest,
    q: web::Query<CodeQuery>,
) -> Reply {
    login_attempt(&state, &req).await?;
    let result = state.mp()?.login(q.code.as_deref()).await;
    record_login("mp", &result);
    let s = result?;
    tracing::info!(user_id = s.user.id, "mini-program login");
    Ok(ok(MpSessionReply {
        openid: s.user.openid,
        unionid: s.user.unionid,
        token: s.token,
        expires_in: state.sessions.ttl().as_secs(),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LoginQuery {
    user_info: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LoginReply {
    user_id: i64,
}

pub(super) async fn login(
    state: web::Data<AuthState>,
    req: HttpRequest,
    session: Session,
    q: web::Query<LoginQuery>,
    body: web::Bytes,
) -> Reply {
    login_attempt(&state, &req).await?;
    let mp = state.mp()?;
    let max_body = state.config.common.max_json_bytes;
    let user_info = user_info_of(q.user_info.as_deref(), &body, max_body)?;
    let user = mp.save_profile(&session.0, &user_info).await?;
    Ok(ok(LoginReply { user_id: user.id }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DecryptBody {
    encrypted_data: String,
    iv: String,
}

pub(super) async fn decrypt(
    state: web::Data<AuthState>,
    session: Session,
    body: web::Json<DecryptBody>,
) -> Reply {
    let data = state
        .mp()?
        .decrypt(&session.0, &body.encrypted_data, &body.iv)
        .await?;
    Ok(ok(data))
}
