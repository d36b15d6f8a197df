//! Session tokens: `v1.<payload>.<mac>`, base64url, HMAC-SHA256 with
//! `SESSION_SECRET`. Every service verifies them locally with the same secret,
//! so no service calls auth-service to learn who is asking.
//!
//! A token can still be ended before its expiry: logout writes its id (`jti`)
//! to the shared cache until the token would have expired, and "log out
//! everywhere" writes a per-user not-before time. The request extractor
//! ([`Session`]) checks both, in the cache every service shares (Redis, or the
//! one in-process cache of `stack`), so pay-service refuses a token the moment
//! auth-service revoked it. While the cache does not answer the extractor
//! fails closed (503): a revocation list that cannot be read cannot vouch for
//! a token.
//!
//! `SESSION_SECRET_PREVIOUS` keeps tokens signed before a key rotation valid:
//! verification tries the current secret, then the previous one; new tokens
//! are always signed with the current one.

use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};

use crate::cache::{Cache, CacheError};
use crate::config::{CommonConfig, Secret};
use crate::error::ApiError;
use crate::sign::{constant_time_eq, hmac_sha256};

pub const SESSION_COOKIE: &str = "wx_session";
const VERSION: &str = "v1";
/// Random characters of a token id: unguessable and unique in practice.
const JTI_LEN: usize = 24;

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
    /// The token's id: what logout revokes.
    pub jti: String,
    /// Issued at in Unix microseconds: "log out everywhere" ends the sessions
    /// issued up to its moment, and a login in the same second after it must
    /// survive.
    pub iat_us: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    #[error("malformed session token")]
    Malformed,
    #[error("invalid session token")]
    BadSignature,
    #[error("session expired")]
    Expired,
    #[error("session ended by logout")]
    Revoked,
}

/// Why a request's session was refused: the token itself (401), or a cache
/// that could not say whether it was revoked (503).
#[derive(Debug, thiserror::Error)]
pub enum AuthenticateError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

impl From<AuthenticateError> for ApiError {
    fn from(e: AuthenticateError) -> Self {
        match e {
            AuthenticateError::Session(s) => ApiError::Unauthorized(s.to_string()),
            AuthenticateError::Cache(c) => c.into(),
        }
    }
}

/// Signs and verifies tokens, and keeps the revocation list. Registered as app
/// data in every service.
#[derive(Clone, Debug)]
pub struct SessionKeys {
    secret: Secret,
    /// `SESSION_SECRET_PREVIOUS`: verifies, never signs.
    previous: Option<Secret>,
    ttl: Duration,
    /// Where revocations live; `None` only for keys that sign and check
    /// signatures offline (tests, tools), which the extractor refuses to use.
    revocations: Option<Cache>,
}

impl SessionKeys {
    /// Keys without a revocation list: they sign and verify signatures, and
    /// cannot serve as a service's session check.
    pub fn new(secret: Secret, ttl: Duration) -> Self {
        SessionKeys {
            secret,
            previous: None,
            ttl,
            revocations: None,
        }
    }

    /// A service's keys: both secrets and the session lifetime from the
    /// configuration, revocations in `cache` (the one every service shares).
    pub fn for_service(common: &CommonConfig, cache: Cache) -> Self {
        SessionKeys::new(common.session_secret.clone(), common.session_ttl)
            .with_previous(common.session_secret_previous.clone())
            .with_revocations(cache)
    }

    /// Also accepts tokens signed with `previous` (a secret being rotated out).
    pub fn with_previous(mut self, previous: Option<Secret>) -> Self {
        self.previous = previous;
        self
    }

    pub fn with_revocations(mut self, cache: Cache) -> Self {
        self.revocations = Some(cache);
        self
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
        let now = chrono::Utc::now();
        let claims = Claims {
            uid,
            appid: appid.to_owned(),
            openid: openid.to_owned(),
            kind,
            iat: now.timestamp(),
            exp: now.timestamp() + self.ttl.as_secs() as i64,
            jti: crate::random::alphanumeric(JTI_LEN),
            iat_us: now.timestamp_micros(),
        };
        (self.encode(&claims), claims)
    }

    /// Signs `claims` with the current secret.
    pub fn encode(&self, claims: &Claims) -> String {
        #[allow(
            clippy::expect_used,
            reason = "Claims holds strings and integers only: serialising it cannot fail"
        )]
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialise"));
        let signed = format!("{VERSION}.{payload}");
        let mac = URL_SAFE_NO_PAD.encode(mac(&self.secret, &signed));
        format!("{signed}.{mac}")
    }

    /// The signature and expiry only: no revocation check (that needs the
    /// cache; see [`SessionKeys::authenticate`]).
    pub fn verify(&self, token: &str) -> Result<Claims, SessionError> {
        self.verify_at(token, chrono::Utc::now().timestamp())
    }

    fn verify_at(&self, token: &str, now: i64) -> Result<Claims, SessionError> {
        if token.len() > 4096 {
            return Err(SessionError::Malformed);
        }
        let (signed, given) = token.rsplit_once('.').ok_or(SessionError::Malformed)?;
        let (version, payload) = signed.split_once('.').ok_or(SessionError::Malformed)?;
        if version != VERSION {
            return Err(SessionError::Malformed);
        }
        let given = URL_SAFE_NO_PAD
            .decode(given)
            .map_err(|_| SessionError::Malformed)?;
        let signed_by = |secret: &Secret| constant_time_eq(&mac(secret, signed), &given);
        if !(signed_by(&self.secret) || self.previous.as_ref().is_some_and(signed_by)) {
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

    /// What the extractor does: signature, expiry, then the revocation list.
    pub async fn authenticate(&self, token: &str) -> Result<Claims, AuthenticateError> {
        let claims = self.verify(token)?;
        let cache = self.revocation_cache()?;
        // Both keys at once: on Redis the two GETs share the multiplexed
        // connection, so the check costs about one round trip.
        let (revoked, not_before) = futures_util::future::try_join(
            cache.get(&revoked_key(&claims.jti)),
            cache.get(&not_before_key(claims.uid)),
        )
        .await?;
        let ended_everywhere = not_before
            .and_then(|us| us.parse::<i64>().ok())
            .is_some_and(|us| claims.iat_us <= us);
        if revoked.is_some() || ended_everywhere {
            return Err(SessionError::Revoked.into());
        }
        Ok(claims)
    }

    /// Ends this token: its id stays on the revocation list until it would
    /// have expired anyway.
    pub async fn revoke(&self, claims: &Claims) -> Result<(), CacheError> {
        let left = claims.exp - chrono::Utc::now().timestamp();
        if left <= 0 {
            return Ok(());
        }
        self.revocation_cache()?
            .set(
                &revoked_key(&claims.jti),
                "1",
                Duration::from_secs(left as u64),
            )
            .await
    }

    /// Ends every session of `uid` issued until now. The mark lives one
    /// session lifetime: every token it ends has expired by then.
    pub async fn revoke_all(&self, uid: i64) -> Result<(), CacheError> {
        let now_us = chrono::Utc::now().timestamp_micros();
        self.revocation_cache()?
            .set(&not_before_key(uid), &now_us.to_string(), self.ttl)
            .await
    }

    fn revocation_cache(&self) -> Result<&Cache, CacheError> {
        self.revocations.as_ref().ok_or_else(|| {
            CacheError::Unavailable("session keys built without a revocation list".to_owned())
        })
    }
}

fn mac(secret: &Secret, signed: &str) -> Vec<u8> {
    hmac_sha256(secret.expose().as_bytes(), signed.as_bytes())
}

fn revoked_key(jti: &str) -> String {
    format!("session:revoked:{jti}")
}

fn not_before_key(uid: i64) -> String {
    format!("session:not_before:{uid}")
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

/// Extractor: the verified, unrevoked session of the request, or 401/1002
/// (503/5003 while the cache holding revocations does not answer).
#[derive(Debug, Clone)]
pub struct Session(pub Claims);

impl FromRequest for Session {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let keys = req.app_data::<web::Data<SessionKeys>>().cloned();
        let token = token_of(req);
        Box::pin(async move {
            let keys =
                keys.ok_or_else(|| ApiError::internal("SessionKeys not registered as app data"))?;
            let token = token.ok_or_else(|| ApiError::Unauthorized("not logged in".to_owned()))?;
            Ok(Session(keys.authenticate(&token).await?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "a-very-long-session-secret-for-tests-0001";
    const OLD_SECRET: &str = "the-secret-before-the-rotation-000000000";

    fn keys(secret: &str) -> SessionKeys {
        SessionKeys::new(Secret::new(secret), Duration::from_secs(3600))
    }

    /// The in-process cache, and Redis under a prefix of its own when
    /// `TEST_REDIS_URL` names one.
    async fn caches() -> Vec<Cache> {
        let mut caches = vec![Cache::memory()];
        if let Ok(url) = std::env::var("TEST_REDIS_URL") {
            let prefix = format!("wxpay_test_session_{}:", crate::random::alphanumeric(12));
            let redis = Cache::connect(Some(&url), &prefix).await;
            caches.push(redis.expect("TEST_REDIS_URL answers"));
        }
        caches
    }

    fn live_keys(cache: &Cache) -> SessionKeys {
        keys(SECRET).with_revocations(cache.clone())
    }

    #[test]
    fn round_trip() {
        let k = keys(SECRET);
        let (token, claims) = k.issue(7, "wxapp", "oOPENID", SessionKind::Mp);
        assert_eq!(k.verify(&token).unwrap(), claims);
        assert_eq!(claims.uid, 7);
        assert_eq!(claims.jti.len(), JTI_LEN);
        let (_, other) = k.issue(7, "wxapp", "oOPENID", SessionKind::Mp);
        assert_ne!(claims.jti, other.jti, "every token has its own id");
    }

    #[test]
    fn tampered_foreign_and_expired_tokens_fail() {
        let k = keys(SECRET);
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

    #[test]
    fn the_previous_secret_verifies_but_never_signs() {
        let (old_token, old_claims) = keys(OLD_SECRET).issue(7, "wx", "o", SessionKind::Mp);
        let rotated = keys(SECRET).with_previous(Some(Secret::new(OLD_SECRET)));
        assert_eq!(rotated.verify(&old_token), Ok(old_claims));
        assert_eq!(
            keys(SECRET).verify(&old_token),
            Err(SessionError::BadSignature),
            "without SESSION_SECRET_PREVIOUS the old token is refused"
        );
        // New tokens: the current secret, so the current secret alone verifies them.
        let (new_token, _) = rotated.issue(7, "wx", "o", SessionKind::Mp);
        assert!(keys(SECRET).verify(&new_token).is_ok());
        assert_eq!(
            keys(OLD_SECRET).verify(&new_token),
            Err(SessionError::BadSignature)
        );
    }

    #[tokio::test]
    async fn a_revoked_token_is_refused_and_others_are_not() {
        for cache in caches().await {
            let k = live_keys(&cache);
            let (a, a_claims) = k.issue(7, "wx", "o", SessionKind::Mp);
            let (b, _) = k.issue(7, "wx", "o", SessionKind::Mp);
            assert_eq!(k.authenticate(&a).await.unwrap(), a_claims);
            k.revoke(&a_claims).await.unwrap();
            assert!(matches!(
                k.authenticate(&a).await,
                Err(AuthenticateError::Session(SessionError::Revoked))
            ));
            assert!(k.authenticate(&b).await.is_ok(), "{cache:?}");
            // Signature-only verification knows nothing of revocations.
            assert!(k.verify(&a).is_ok());
            // Kept until the token's own expiry, not longer.
            let ttl = cache
                .ttl(&revoked_key(&a_claims.jti))
                .await
                .unwrap()
                .unwrap();
            assert!(ttl <= Duration::from_secs(3600) && ttl > Duration::from_secs(3500));
        }
    }

    #[tokio::test]
    async fn revoke_all_ends_earlier_sessions_of_that_user_only() {
        for cache in caches().await {
            let k = live_keys(&cache);
            // A uid of its own per run: Redis outlives the test.
            let uid = rand::random::<u32>() as i64 + 1_000;
            let (one, _) = k.issue(uid, "wx", "o", SessionKind::Mp);
            let (two, _) = k.issue(uid, "wx", "o", SessionKind::Oa);
            let (other, _) = k.issue(uid + 1, "wx", "p", SessionKind::Mp);
            k.revoke_all(uid).await.unwrap();
            for token in [&one, &two] {
                assert!(matches!(
                    k.authenticate(token).await,
                    Err(AuthenticateError::Session(SessionError::Revoked))
                ));
            }
            assert!(k.authenticate(&other).await.is_ok());
            // A login after the logout, even within the same second, lives on.
            let (again, _) = k.issue(uid, "wx", "o", SessionKind::Mp);
            assert!(k.authenticate(&again).await.is_ok());
        }
    }

    #[tokio::test]
    async fn without_a_revocation_list_nothing_authenticates() {
        let k = keys(SECRET);
        let (token, claims) = k.issue(7, "wx", "o", SessionKind::Mp);
        assert!(matches!(
            k.authenticate(&token).await,
            Err(AuthenticateError::Cache(_))
        ));
        assert!(k.revoke(&claims).await.is_err());
    }
}
