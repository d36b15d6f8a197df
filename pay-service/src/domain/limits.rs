//! Per-minute budgets, counted in the shared cache so that every replica
//! spends the same one (fixed one-minute windows from the first use, as
//! auth-service's login limit). `who` is a user id or a client address's
//! `shared::http::rate_limit_key` (IPv6 per /64).

use std::time::Duration;

use super::state::PayState;
use crate::error::PayError;

const WINDOW: Duration = Duration::from_secs(60);

/// What a budget is for; part of its cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Orders created by one user (`ORDER_RATE_LIMIT`).
    Orders,
    /// `?sync=true` reads by one user (`ORDER_SYNC_RATE_LIMIT`).
    Syncs,
    /// Failed admin logins from one client address
    /// (`ADMIN_FAILED_LOGINS_PER_MINUTE`).
    AdminFailures,
}

impl Budget {
    fn key(self, who: &str) -> String {
        let what = match self {
            Budget::Orders => "orders",
            Budget::Syncs => "syncs",
            Budget::AdminFailures => "admin_failures",
        };
        format!("pay:rate:{what}:{who}")
    }

    fn per_minute(self, state: &PayState) -> u32 {
        let l = &state.config.limits;
        match self {
            Budget::Orders => l.orders_per_minute,
            Budget::Syncs => l.syncs_per_minute,
            Budget::AdminFailures => l.admin_failures_per_minute,
        }
    }
}

/// Spends one of `who`'s budget; false once the minute's budget is spent
/// (always true when the budget is 0, i.e. off).
pub async fn spend(state: &PayState, budget: Budget, who: &str) -> Result<bool, PayError> {
    let per_minute = budget.per_minute(state);
    if per_minute == 0 {
        return Ok(true);
    }
    let n = state.cache.incr(&budget.key(who), WINDOW).await?;
    Ok(n <= i64::from(per_minute))
}

/// Whether `who` has spent the minute's budget already, without spending.
pub async fn exhausted(state: &PayState, budget: Budget, who: &str) -> Result<bool, PayError> {
    let per_minute = budget.per_minute(state);
    if per_minute == 0 {
        return Ok(false);
    }
    let used = state
        .cache
        .get(&budget.key(who))
        .await?
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    Ok(used >= i64::from(per_minute))
}
