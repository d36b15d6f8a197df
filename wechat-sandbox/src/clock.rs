//! The sandbox clock: real elapsed time × scale + whatever tests advanced it by.
//! Every expiry and the notification schedule read it, so a test can skip two
//! hours without waiting for them.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

pub(crate) struct Clock {
    origin: Instant,
    origin_wall: DateTime<Utc>,
    scale: f64,
    offset: Mutex<Duration>,
    /// Bumped on every advance so sleepers re-check their deadline.
    advanced: watch::Sender<u64>,
}

impl Clock {
    pub fn new(scale: f64) -> Self {
        Clock {
            origin: Instant::now(),
            origin_wall: Utc::now(),
            scale,
            offset: Mutex::new(Duration::ZERO),
            advanced: watch::Sender::new(0),
        }
    }

    /// Sandbox time since the sandbox started; what deadlines are measured in.
    pub fn elapsed(&self) -> Duration {
        let real = self.origin.elapsed().as_secs_f64() * self.scale;
        let scaled = Duration::try_from_secs_f64(real).unwrap_or(Duration::MAX);
        scaled.saturating_add(*lock(&self.offset))
    }

    pub fn now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.elapsed()).unwrap_or(chrono::Duration::MAX);
        self.origin_wall
            .checked_add_signed(elapsed)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    pub fn advance(&self, by: Duration) {
        {
            let mut offset = lock(&self.offset);
            *offset = offset.saturating_add(by);
        }
        self.advanced.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Resolves once the sandbox clock reaches `deadline`, early if `advance`
    /// jumps past it.
    pub async fn sleep_until(&self, deadline: Duration) {
        let mut advanced = self.advanced.subscribe();
        loop {
            let now = self.elapsed();
            if now >= deadline {
                return;
            }
            let real_wait = (deadline - now).div_f64(self.scale);
            tokio::select! {
                _ = tokio::time::sleep(real_wait) => {}
                // The sender lives as long as the clock, so this never errs.
                _ = advanced.changed() => {}
            }
        }
    }
}

/// A poisoned lock only means another request panicked mid-update; the sandbox
/// keeps serving with whatever state is there.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_elapsed_and_now() {
        let c = Clock::new(1.0);
        let before = c.now();
        c.advance(Duration::from_secs(7200));
        assert!(c.elapsed() >= Duration::from_secs(7200));
        assert!(c.now() - before >= chrono::Duration::seconds(7200));
    }

    #[test]
    fn scale_multiplies_real_time() {
        let c = Clock::new(1000.0);
        std::thread::sleep(Duration::from_millis(20));
        assert!(c.elapsed() >= Duration::from_secs(20));
    }

    #[tokio::test]
    async fn advance_wakes_a_sleeper_early() {
        let c = std::sync::Arc::new(Clock::new(1.0));
        let sleeper = {
            let c = c.clone();
            tokio::spawn(async move { c.sleep_until(Duration::from_secs(3600)).await })
        };
        tokio::task::yield_now().await;
        c.advance(Duration::from_secs(3600));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("the sleeper woke up")
            .unwrap();
    }
}
