//! Session tokens: `v1.<payload>.<mac>`, base64url, HMAC-SHA256 with
//! `SESSION_SECRET`. Every service verifies them locally with the same secret,
//! so no service calls auth-service to learn who is asking.

use std::future::{Ready, ready};
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::config::Secret;
use crate::error::ApiError;
use crate::sign::{constant_time_eq, hmac_sha256};

pub const SESSION_COOKIE: &str = "wx_session";
const VERSION: &str = "v1";

/// Which kind of WeChat login made the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    /// Official-account web OAuth (H5 pages inside WeChat).
    Oa,
    /// Mini-program login.
    Mp,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Oa => "oa",
            SessionKind::Mp => "mp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id in auth-service's users table.
    pub uid: i64,
    pub appid: String,
    pub openid: String,
    pub kind: SessionKind,
    /// Issued at and expiry, Unix seconds.
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    #[error("malformed session token")]
    Malformed,
    #[error("invalid session token")]
    BadSignature,
    #[error("session expired")]
    Expired,
}

/// Signs and verifies tokens. Registered as app data in every service.
#[derive(Clone, Debug)]
pub struct SessionKeys {
    secret: Secret,
    ttl: Duration,
}

impl SessionKeys {
    pub fn new(secret: Secret, ttl: Duration) -> Self {
        SessionKeys { secret, ttl }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A token for the user, with its claims.
    pub fn issue(
        &self,
        uid: i64,
        appid: &str,
        openid: &str,
        kind: SessionKind,
    ) -> (String, Claims) {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            uid,
            appid: appid.to_owned(),
            openid: openid.to_owned(),
            kind,
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
        };
        (self.encode(&claims), claims)
    }

    pub fn encode(&self, claims: &Claims) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialise"));
        let signed = format!("{VERSION}.{payload}");
        let mac = URL_SAFE_NO_PAD.encode(hmac_sha256(
            self.secret.expose().as_bytes(),
            signed.as_bytes(),
        ));
        format!("{signed}.{mac}")
    }

    pub fn verify(&self, token: &str) -> Result<Claims, SessionError> {
        self.verify_at(token, chrono::Utc::now().timestamp())
    }

    fn verify_at(&self, token: &str, now: i64) -> Result<Claims, SessionError> {
        if token.len() > 4096 {
            return Err(SessionError::Malformed);
        }
        let (signed, mac) = token.rsplit_once('.').ok_or(SessionError::Malformed)?;
        let (version, payload) = signed.split_once('.').ok_or(SessionError::Malformed)?;
        if version != VERSION {
            return Err(SessionError::Malformed);
        }
        let given = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| SessionError::Malformed)?;
        let expected = hmac_sha256(self.secret.expose().as_bytes(), signed.as_bytes());
        if !constant_time_eq(&expected, &given) {
            return Err(SessionError::BadSignature);
        }
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| SessionError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| SessionError::Malformed)?;
        if claims.exp <= now {
            return Err(SessionError::Expired);
        }
        Ok(claims)
    }
}

/// The token a request carries: `Authorization: Bearer` first, else the cookie.
pub fn token_of(req: &HttpRequest) -> Option<String> {
    if let Some(auth) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        let value = auth.to_str().ok()?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))?;
        return Some(token.trim().to_owned());
    }
    req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned())
}

/// Extractor: the verified session of the request, or 401/1002.
#[derive(Debug, Clone)]
pub struct Session(pub Claims);

impl FromRequest for Session {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(session_of(req))
    }
}

fn session_of(req: &HttpRequest) -> Result<Session, ApiError> {
    let keys = req
        .app_data::<web::Data<SessionKeys>>()
        .ok_or_else(|| ApiError::internal("SessionKeys not registered as app data"))?;
    let token = token_of(req).ok_or_else(|| ApiError::Unauthorized("not logged in".to_owned()))?;
    keys.verify(&token)
        .map(Session)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> SessionKeys {
        SessionKeys::new(Secret::new(secret), Duration::from_secs(3600))
    }

    #[test]
    fn round_trip() {
        let k = keys("a-very-long-session-secret-for-tests-0001");
        let (token, claims) = k.issue(7, "wxapp", "oOPENID", SessionKind::Mp);
        assert_eq!(k.verify(&token).unwrap(), claims);
        assert_eq!(claims.uid, 7);
    }

    #[test]
    fn tampered_foreign_and_expired_tokens_fail() {
        let k = keys("a-very-long-session-secret-for-tests-0001");
        let (token, mut claims) = k.issue(7, "wxapp", "oOPENID", SessionKind::Oa);

        // Another user's id in the payload, old MAC kept.
        claims.uid = 8;
        let forged_payload = k.encode(&claims);
        let (_, payload_part) = forged_payload.split_once('.').unwrap();
        let (payload, _) = payload_part.split_once('.').unwrap();
        let mac = token.rsplit_once('.').unwrap().1;
        assert_eq!(
            k.verify(&format!("v1.{payload}.{mac}")),
            Err(SessionError::BadSignature)
        );

        let foreign = keys("another-services-secret-000000000000000");
        assert_eq!(foreign.verify(&token), Err(SessionError::BadSignature));

        let later = chrono::Utc::now().timestamp() + 3601;
        assert_eq!(k.verify_at(&token, later), Err(SessionError::Expired));

        for junk in ["", "v1", "v1.x", "v2.a.b", "v1.!!!.???", &"a".repeat(5000)] {
            assert!(k.verify(junk).is_err(), "{junk:?}");
        }
    }
}
