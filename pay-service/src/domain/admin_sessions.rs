//! The operator console's sign-in: an operator's token (`ADMIN_TOKENS`)
//! traded for a session that a browser keeps in an HttpOnly cookie, so the
//! token itself never sits in the page's reach. A session is the operator's
//! name, a CSRF token and an expiry, kept in the shared cache (Redis with
//! several replicas) under the SHA-256 of its id: a copy of the cache does
//! not hold ids that would sign anyone in. It also keeps a fingerprint of
//! the operator's token, so that rotating or removing a token ends that
//! operator's sessions at once.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::db::now_unix;
use shared::sign::constant_time_eq;

use super::state::PayState;
use crate::error::PayError;

/// How long a session lasts (the cookie's `Max-Age`): a working day.
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);

/// What the console learns of its session (`GET /api/pay/admin/session`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub operator: String,
    /// Sent back as `X-CSRF-Token` with every request that changes something.
    pub csrf_token: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// The cached record.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    operator: String,
    csrf_token: String,
    expires_at: i64,
    token_fingerprint: String,
}

/// The operator whose token `given` is. Every token is compared (in
/// constant time), so the time taken does not tell which one was close.
pub fn operator_of(state: &PayState, given: &str) -> Option<String> {
    let mut found = None;
    for op in &state.config.admins {
        let same =
            !given.is_empty() && constant_time_eq(given.as_bytes(), op.token.expose().as_bytes());
        if same && found.is_none() {
            found = Some(op.name.clone());
        }
    }
    found
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn cache_key(id: &str) -> String {
    format!("pay:admin_session:{}", sha256_hex(id))
}

/// The fingerprint of `operator`'s current token; None once the operator
/// is no longer configured.
fn fingerprint(state: &PayState, operator: &str) -> Option<String> {
    state
        .config
        .admins
        .iter()
        .find(|op| op.name == operator)
        .map(|op| sha256_hex(op.token.expose()))
}

/// A session id as [`open`] makes them: 64 lowercase hex digits. Anything
/// else is not looked up.
fn well_formed(id: &str) -> bool {
    id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Opens a session for `operator` (whose token was just checked): its id,
/// for the cookie, and its view.
pub async fn open(state: &PayState, operator: &str) -> Result<(String, SessionView), PayError> {
    let token_fingerprint = fingerprint(state, operator)
        .ok_or_else(|| PayError::Internal(format!("operator {operator} is not configured")))?;
    let id = random_hex();
    let stored = Stored {
        operator: operator.to_owned(),
        csrf_token: random_hex(),
        expires_at: now_unix() + LIFETIME.as_secs() as i64,
        token_fingerprint,
    };
    let json = serde_json::to_string(&stored).map_err(|e| PayError::Internal(e.to_string()))?;
    state.cache.set(&cache_key(&id), &json, LIFETIME).await?;
    Ok((id, view(stored)))
}

fn view(s: Stored) -> SessionView {
    SessionView {
        operator: s.operator,
        csrf_token: s.csrf_token,
        expires_at: s.expires_at,
    }
}

/// The live session `id` names: None when it is unknown, expired, or its
/// operator's token changed or went away since it was opened (then it is
/// deleted).
pub async fn find(state: &PayState, id: &str) -> Result<Option<SessionView>, PayError> {
    if !well_formed(id) {
        return Ok(None);
    }
    let key = cache_key(id);
    let Some(json) = state.cache.get(&key).await? else {
        return Ok(None);
    };
    let Ok(stored) = serde_json::from_str::<Stored>(&json) else {
        state.cache.delete(&key).await?;
        return Ok(None);
    };
    let current = fingerprint(state, &stored.operator).unwrap_or_default();
    let same_token = constant_time_eq(current.as_bytes(), stored.token_fingerprint.as_bytes());
    if !same_token || stored.expires_at <= now_unix() {
        state.cache.delete(&key).await?;
        return Ok(None);
    }
    Ok(Some(view(stored)))
}

/// Ends the session `id` names (nothing when there is none).
pub async fn close(state: &PayState, id: &str) -> Result<(), PayError> {
    if well_formed(id) {
        state.cache.delete(&cache_key(id)).await?;
    }
    Ok(())
}

/// Whether `given` is the session's CSRF token (constant time).
pub fn csrf_matches(session: &SessionView, given: &str) -> bool {
    !given.is_empty() && constant_time_eq(given.as_bytes(), session.csrf_token.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_digits_and_only_those_are_looked_up() {
        let id = random_hex();
        assert!(well_formed(&id), "{id}");
        assert_ne!(id, random_hex());
        assert!(!well_formed(&id[1..]));
        assert!(!well_formed(&id.to_uppercase()));
        assert!(!well_formed(&format!("{}g", &id[1..])));
        assert_ne!(cache_key(&id), format!("pay:admin_session:{id}"));
    }

    #[test]
    fn the_csrf_token_must_match_exactly() {
        let s = SessionView {
            operator: "alice".into(),
            csrf_token: "abc".into(),
            expires_at: 0,
        };
        assert!(csrf_matches(&s, "abc"));
        assert!(!csrf_matches(&s, "abd"));
        assert!(!csrf_matches(&s, ""));
    }
}
