//! HTTP handlers: parse, call the domain, map the result (API.md §4, auth-service).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::error::{ApiError, ok};
use shared::http::client_ip;
use shared::session::{Session, SessionKind};

use crate::error::AuthError;
use crate::metrics::record_login;
use crate::oauth::Scope;
use crate::state::AuthState;
use crate::users::User;

type Reply = Result<HttpResponse, ApiError>;

/// Mounts the routes by their full paths (`stack` shares `/api/wechat` and
/// `/api/mp` with the other services) and the app data they need.
pub fn mount(cfg: &mut web::ServiceConfig, state: AuthState) {
    cfg.app_data(web::Data::new(state.sessions.clone()))
        .app_data(web::Data::new(state))
        .route("/api/wechat/redirect", web::get().to(redirect))
        .route("/api/wechat/getOpenId", web::get().to(get_open_id))
        .route("/api/wechat/getUserInfo", web::get().to(get_user_info))
        .route("/api/mp/getSession", web::get().to(get_session))
        .service(
            web::resource("/api/mp/login")
                .route(web::get().to(mp_login))
                .route(web::post().to(mp_login)),
        )
        .route("/api/mp/decrypt", web::post().to(mp_decrypt))
        .route("/api/auth/me", web::get().to(me))
        .route("/api/auth/logout", web::post().to(logout));
}

async fn rate_limited(state: &AuthState, req: &HttpRequest) -> Result<(), AuthError> {
    state.limiter.check(client_ip(req)).await
}

fn found(location: &str) -> actix_web::HttpResponseBuilder {
    let mut res = HttpResponse::Found();
    res.insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    res
}

#[derive(Deserialize)]
struct RedirectQuery {
    url: Option<String>,
    scope: Option<String>,
}

async fn redirect(
    state: web::Data<AuthState>,
    req: HttpRequest,
    q: web::Query<RedirectQuery>,
) -> Reply {
    rate_limited(&state, &req).await?;
    let oa = state.oa()?;
    let scope = Scope::parse(q.scope.as_deref())?;
    let authorize = oa.begin(q.url.as_deref().unwrap_or(""), scope).await?;
    Ok(found(&authorize).finish())
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
}

async fn get_open_id(
    state: web::Data<AuthState>,
    req: HttpRequest,
    q: web::Query<CallbackQuery>,
) -> Reply {
    rate_limited(&state, &req).await?;
    let result = state
        .oa()?
        .complete(q.code.as_deref(), q.state.as_deref())
        .await;
    record_login("oa", &result);
    let done = result?;
    tracing::info!(user_id = done.user.id, "official-account login");
    let mut res = found(&done.return_url);
    for cookie in state.cookies.login(&done.token, &done.user.openid) {
        res.cookie(cookie);
    }
    Ok(res.finish())
}

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

async fn session_user(state: &AuthState, session: &Session) -> Result<User, AuthError> {
    state
        .users
        .find(session.0.uid)
        .await?
        .filter(|u| u.appid == session.0.appid && u.openid == session.0.openid)
        .ok_or(AuthError::UnknownUser)
}

async fn get_user_info(state: web::Data<AuthState>, session: Session) -> Reply {
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

#[derive(Deserialize)]
struct CodeQuery {
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

async fn get_session(
    state: web::Data<AuthState>,
    req: HttpRequest,
    q: web::Query<CodeQuery>,
) -> Reply {
    rate_limited(&state, &req).await?;
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
struct LoginQuery {
    user_info: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LoginReply {
    user_id: i64,
}

/// `userInfo` as the seed sends it (a JSON string in the query), or a JSON body:
/// either `{"userInfo": {…}}` or the profile object itself.
fn user_info_of(query: &LoginQuery, body: &[u8], max_body: usize) -> Result<Value, AuthError> {
    if !body.iter().all(u8::is_ascii_whitespace) {
        if body.len() > max_body {
            return Err(AuthError::invalid("request body is too large"));
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| AuthError::invalid(format!("invalid JSON body: {e}")))?;
        return Ok(match value {
            Value::Object(mut obj) if obj.contains_key("userInfo") => {
                match obj.remove("userInfo") {
                    // The seed's style, carried into a body: a JSON string.
                    Some(Value::String(s)) => serde_json::from_str(&s)
                        .map_err(|e| AuthError::invalid(format!("userInfo is not JSON: {e}")))?,
                    Some(v) => v,
                    None => Value::Null,
                }
            }
            other => other,
        });
    }
    let raw = query
        .user_info
        .as_deref()
        .ok_or_else(|| AuthError::invalid("userInfo is required"))?;
    serde_json::from_str(raw).map_err(|e| AuthError::invalid(format!("userInfo is not JSON: {e}")))
}

async fn mp_login(
    state: web::Data<AuthState>,
    req: HttpRequest,
    session: Session,
    q: web::Query<LoginQuery>,
    body: web::Bytes,
) -> Reply {
    rate_limited(&state, &req).await?;
    let mp = state.mp()?;
    let user_info = user_info_of(&q, &body, state.config.common.max_json_bytes)?;
    let user = mp.save_profile(&session.0, &user_info).await?;
    Ok(ok(LoginReply { user_id: user.id }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DecryptBody {
    encrypted_data: String,
    iv: String,
}

async fn mp_decrypt(
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MeReply {
    #[serde(flatten)]
    user: User,
    kind: SessionKind,
    /// When the session ends, Unix seconds.
    expires_at: i64,
}

async fn me(state: web::Data<AuthState>, session: Session) -> Reply {
    let user = session_user(&state, &session).await?;
    Ok(ok(MeReply {
        user,
        kind: session.0.kind,
        expires_at: session.0.exp,
    }))
}

/// Sessions are signed tokens that every service verifies on its own, so
/// logging out means forgetting the cookies; a token copied elsewhere lives on
/// until it expires.
async fn logout(state: web::Data<AuthState>) -> Reply {
    let mut res = HttpResponse::Ok();
    for cookie in state.cookies.cleared() {
        res.cookie(cookie);
    }
    Ok(res.json(shared::error::Envelope {
        code: 0,
        data: Value::Null,
        message: "ok".to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn query(s: Option<&str>) -> LoginQuery {
        LoginQuery {
            user_info: s.map(str::to_owned),
        }
    }

    #[test]
    fn user_info_from_query_or_body() {
        let want = json!({"nickName": "张三"});
        assert_eq!(
            user_info_of(&query(Some(r#"{"nickName":"张三"}"#)), b"", 1024).unwrap(),
            want
        );
        assert_eq!(
            user_info_of(
                &query(None),
                r#"{"userInfo":{"nickName":"张三"}}"#.as_bytes(),
                1024
            )
            .unwrap(),
            want
        );
        assert_eq!(
            user_info_of(
                &query(None),
                r#"{"userInfo":"{\"nickName\":\"张三\"}"}"#.as_bytes(),
                1024
            )
            .unwrap(),
            want
        );
        assert_eq!(
            user_info_of(&query(None), r#"{"nickName":"张三"}"#.as_bytes(), 1024).unwrap(),
            want
        );
        let err = |q, b: &[u8]| user_info_of(&query(q), b, 16).unwrap_err().to_string();
        assert_eq!(err(None, b""), "userInfo is required");
        assert!(err(Some("{nope"), b"").starts_with("userInfo is not JSON"));
        assert!(err(None, b"{nope").starts_with("invalid JSON body"));
        assert_eq!(err(None, &[b' '; 0][..]), "userInfo is required");
        assert_eq!(
            err(None, br#"{"nickName":"a long enough body"}"#),
            "request body is too large"
        );
    }
}
