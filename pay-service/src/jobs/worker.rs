//! What the background passes (reconciliation, merchant event dispatch)
//! share: the timer loop, and the lock that keeps a SQLite pass on one replica.

use std::time::Duration;

use shared::db::Backend;
use tracing::Instrument;

use crate::domain::PayState;
use crate::error::PayError;

/// Longer than any pass takes; a replica that dies holding the lock frees it
/// by expiry.
const LOCK_TTL: Duration = Duration::from_secs(300);

/// Runs `pass` unless another replica is running a pass of the same `name`;
/// `None` when one was, and nothing was done. PostgreSQL passes claim their
/// rows with `SKIP LOCKED` and need no lock; SQLite has no row locks to skip,
/// so its passes are serialised by the cache lock `key`.
pub(crate) async fn exclusive<T>(
    state: &PayState,
    key: &'static str,
    name: &'static str,
    pass: impl Future<Output = Result<T, PayError>>,
) -> Result<Option<T>, PayError> {
    let lock = match state.db.backend() {
        Backend::Postgres => None,
        Backend::Sqlite => {
            let token = shared::random::nonce();
            if !state.cache.set_nx(key, &token, LOCK_TTL).await? {
                return Ok(None);
            }
            Some(token)
        }
    };
    let result = pass.await;
    if let Some(token) = lock
        && let Err(e) = state.cache.compare_and_delete(key, &token).await
    {
        tracing::warn!(error = %e, "{name} lock not released; it expires by itself");
    }
    result.map(Some)
}

/// What a pass leaves in the exported traces (shared::traces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PassTrace {
    /// A trace per pass, named `job NAME`: passes a minute or more apart.
    EachPass,
    /// Nothing for the pass itself, which polls often and mostly finds
    /// nothing; the work it does starts traces of its own.
    WorkOnly,
}

/// Runs `pass` every `interval` until the task is aborted; a failed pass is
/// logged and the next one comes on time.
pub(crate) async fn every<T, F>(
    state: PayState,
    interval: Duration,
    name: &'static str,
    trace: PassTrace,
    pass: impl Fn(PayState) -> F,
) where
    F: Future<Output = Result<T, PayError>>,
{
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let span = tracing::debug_span!("job", otel.name = tracing::field::Empty);
        if !span.is_disabled() {
            span.record("otel.name", format!("job {name}"));
            if trace == PassTrace::WorkOnly {
                shared::traces::quiet(&span);
            }
        }
        if let Err(e) = pass(state.clone()).instrument(span).await {
            tracing::warn!(error = %e, "{name} pass failed");
        }
    }
}
