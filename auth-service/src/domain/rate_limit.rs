//! A fixed-window limit on login attempts per client IP, counted in the shared
//! cache so that every replica enforces the same budget.

use std::net::IpAddr;
use std::time::Duration;

use shared::cache::Cache;

use super::AuthError;

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
        // IPv6 clients are counted per /64 (shared::http::rate_limit_key).
        let who = ip.map_or_else(|| "unknown".to_owned(), shared::http::rate_limit_key);
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

    #[tokio::test]
    async fn an_ipv6_client_has_one_budget_for_its_whole_64() {
        let limit = LoginRateLimit::new(Cache::memory(), 1);
        assert!(
            limit
                .check(Some("2001:db8:7:7::1".parse().unwrap()))
                .await
                .is_ok()
        );
        assert!(matches!(
            limit
                .check(Some("2001:db8:7:7:dead:beef::2".parse().unwrap()))
                .await,
            Err(AuthError::RateLimited)
        ));
        assert!(
            limit
                .check(Some("2001:db8:7:8::1".parse().unwrap()))
                .await
                .is_ok()
        );
    }
}
