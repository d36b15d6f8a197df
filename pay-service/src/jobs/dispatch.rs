//! The dispatcher of merchant events: claims what the outbox holds, POSTs it
//! ([`super::webhook`]) and marks it delivered, or failed and due again after
//! a backoff. Delivery is at least once and in order per order (the claim's
//! rule, `db::outbox`). Replicas claim disjoint rows on PostgreSQL; on SQLite
//! a cache lock serialises passes. A claim leases the row for
//! [`WebhookConfig::lease`]; a replica that dies mid-delivery leaves it to be
//! sent again after the lease.

use std::time::Duration;

use serde::Serialize;

use super::{webhook, worker};
use crate::config::WebhookConfig;
use crate::domain::{Event, PayState, events};
use crate::error::PayError;
use crate::metrics;

/// SQLite has no row locks to skip: passes are serialised by this cache lock.
const LOCK_KEY: &str = "pay:events:lock";
/// Claim rounds per pass: each round can release the next event of every
/// order whose previous one was just acknowledged.
const MAX_ROUNDS: usize = 32;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DispatchReport {
    /// Another replica held the pass lock (SQLite); nothing was done.
    pub skipped: bool,
    pub delivered: usize,
    pub failed: usize,
}

/// `retry_base × 2^(attempts − 1)`, at most `retry_max`; `attempts` counts the
/// one that just failed.
pub fn backoff(cfg: &WebhookConfig, attempts: i64) -> Duration {
    let doublings = (attempts.max(1) - 1).min(30) as u32;
    cfg.retry_base
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(cfg.retry_max)
}

/// One dispatch pass. Safe on many replicas at once.
pub async fn dispatch_once(state: &PayState) -> Result<DispatchReport, PayError> {
    let Some(webhook) = state.webhook.clone() else {
        return Ok(DispatchReport::default());
    };
    let pass = pass(state, &webhook.http, &webhook.config);
    let report = worker::exclusive(state, LOCK_KEY, "events", pass).await?;
    Ok(report.unwrap_or(DispatchReport {
        skipped: true,
        ..Default::default()
    }))
}

async fn pass(
    state: &PayState,
    http: &reqwest::Client,
    cfg: &WebhookConfig,
) -> Result<DispatchReport, PayError> {
    let mut report = DispatchReport::default();
    for _ in 0..MAX_ROUNDS {
        let claimed = events::claim(state, cfg.batch, cfg.lease()).await?;
        if claimed.is_empty() {
            break;
        }
        let mut progressed = false;
        for event in claimed {
            progressed |= deliver(state, http, cfg, &event, &mut report).await?;
        }
        if !progressed {
            break;
        }
    }
    Ok(report)
}

/// Sends one event and records the attempt; true when it was acknowledged.
async fn deliver(
    state: &PayState,
    http: &reqwest::Client,
    cfg: &WebhookConfig,
    event: &Event,
    report: &mut DispatchReport,
) -> Result<bool, PayError> {
    match webhook::post(http, cfg, event).await {
        Ok(()) => {
            events::delivered(state, event.id).await?;
            metrics::EVENTS.with_label_values(&["delivered"]).inc();
            report.delivered += 1;
            Ok(true)
        }
        Err(why) => {
            let attempts = event.attempts + 1;
            tracing::warn!(event_id = event.id, out_trade_no = %event.out_trade_no, attempts, error = %why, "merchant event not acknowledged; retried later");
            events::not_delivered(state, event, why, backoff(cfg, attempts)).await?;
            metrics::EVENTS.with_label_values(&["failed"]).inc();
            report.failed += 1;
            Ok(false)
        }
    }
}

/// Runs passes every `interval` until the task is aborted.
pub(super) async fn run(state: PayState, interval: Duration) {
    let trace = worker::PassTrace::WorkOnly;
    worker::every(
        state,
        interval,
        "event dispatch",
        trace,
        |state| async move { dispatch_once(&state).await },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let cfg = WebhookConfig {
            url: "http://127.0.0.1:9/hook".parse().unwrap(),
            secret: shared::config::Secret::new("s"),
            interval: Duration::from_millis(10),
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_millis(350),
            failed_after: 5,
            timeout: Duration::from_secs(1),
            batch: 10,
        };
        assert_eq!(backoff(&cfg, 1), Duration::from_millis(100));
        assert_eq!(backoff(&cfg, 2), Duration::from_millis(200));
        assert_eq!(backoff(&cfg, 3), Duration::from_millis(350));
        assert_eq!(backoff(&cfg, 60), Duration::from_millis(350));
    }
}
