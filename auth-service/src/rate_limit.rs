//! A fixed-window limit on login attempts per client IP, counted in the shared
//! cache so that every replica enforces the same budget.

use std::net::IpAddr;
use std::time::Duration;

use shared::cache::Cache;

use crate::error::AuthError;

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct LoginRateLimit {
    cache: Cache,
    per_minute: u32,
}

impl LoginRateLimit {
    /// `per_minute` 0 turns the limit off.
    pub fn new(cache: Cache, per_minute: u32) -> Self {
        LoginRateLimit { cache, per_minute }
    }

    /// Counts one attempt from `ip`; `RateLimited` once the minute's budget is spent.
    pub async fn check(&self, ip: Option<IpAddr>) -> Result<(), AuthError> {
        if self.per_minute == 0 {
            return Ok(());
        }
        // Without a peer address (unusual: a Unix socket) all such clients share one budget.
        let who = ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let n = self
            .cache
            .incr(&format!("auth:login_rate:{who}"), WINDOW)
            .await?;
        if n > i64::from(self.per_minute) {
            return Err(AuthError::RateLimited);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_budget_is_per_ip() {
        let limit = LoginRateLimit::new(Cache::memory(), 2);
        let a = Some("10.0.0.1".parse().unwrap());
        let b = Some("10.0.0.2".parse().unwrap());
        assert!(limit.check(a).await.is_ok());
        assert!(limit.check(a).await.is_ok());
        assert!(matches!(limit.check(a).await, Err(AuthError::RateLimited)));
        assert!(limit.check(b).await.is_ok());
        let off = LoginRateLimit::new(Cache::memory(), 0);
        for _ in 0..10 {
            assert!(off.check(a).await.is_ok());
        }
    }
}
