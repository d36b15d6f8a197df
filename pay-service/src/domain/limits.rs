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

/// Takes one of `who`'s budget before the work it pays for: true when it was
/// within the minute's budget (always true when the budget is 0, i.e. off).
/// The take is one atomic increment in the shared cache, so concurrent
/// requests cannot all pass a check made before any of them spent. A take
/// beyond the budget is given back at once: refused requests cost nothing.
pub async fn take(state: &PayState, budget: Budget, who: &str) -> Result<bool, PayError> {
    let per_minute = budget.per_minute(state);
    if per_minute == 0 {
        return Ok(true);
    }
    let key = budget.key(who);
    let n = state.cache.incr(&key, WINDOW).await?;
    if n <= i64::from(per_minute) {
        return Ok(true);
    }
    state.cache.decr(&key).await?;
    Ok(false)
}

/// Gives back what [`take`] took, for work that turned out not to count
/// (a request refused for itself, an admin token that was right).
pub async fn give_back(state: &PayState, budget: Budget, who: &str) -> Result<(), PayError> {
    if budget.per_minute(state) == 0 {
        return Ok(());
    }
    state.cache.decr(&budget.key(who)).await?;
    Ok(())
}
