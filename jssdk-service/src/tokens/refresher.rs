//! The background task that renews the token and ticket before they expire, so
//! that in steady state no request waits on WeChat.

use std::sync::Arc;

use super::manager::TokenManager;

impl TokenManager {
    /// Starts the refresher: a first pass at once (warming the cache), then one
    /// every `refresh_check`. It holds the manager weakly and ends once the
    /// service that owns it is gone.
    pub fn spawn_refresher(&self) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        let every = self.inner.policy.refresh_check;
        tokio::spawn(async move {
            loop {
                match weak.upgrade() {
                    Some(inner) => inner.refresh_due().await,
                    None => break,
                }
                tokio::time::sleep(every).await;
            }
        })
    }
}
