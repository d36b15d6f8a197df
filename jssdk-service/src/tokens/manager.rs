//! The token manager: the one way the service gets an access_token or a
//! jsapi_ticket.
//!
//! A lookup is served from the process's own copy while that copy is trusted
//! ([`super::local`]: checked against the shared cache, with no change notice
//! from another replica since, [`super::sync`]), so that a warm request touches
//! no shared cache at all. Otherwise it reads the shared cache. On a miss, one fetch runs per process and
//! kind (a single-flight: every concurrent caller awaits the same spawned task),
//! and across replicas the cache lock `…:lock` (`set_nx` with a random owner,
//! released with `compare_and_delete`) lets exactly one replica call WeChat
//! while the others poll the cache for its result, for at most `lock_wait`.
//! A failed fetch leaves a short-lived `…:failure` marker, so that the waiting
//! callers and replicas report that error instead of calling WeChat in turn.
//! The last value seen is also served while the shared cache is down; no fetch
//! happens without the lock, so no replica can replace a value behind another's
//! back. Every write or drop is followed by a change notice to the others.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use serde::{Deserialize, Serialize};
use shared::cache::{Cache, CacheError};
use shared::metrics::HotCounter;
use shared::wechat::{WechatClient, WechatError};

use super::entry::{Entry, Keys, Kind};
use super::local::ProcessCopies;
use super::sync;
use super::upstream::{Upstream, token_rejected};
use crate::clock::Clock;
use crate::config::{JssdkConfig, TokenPolicy};
use crate::error::TokenError;
use crate::metrics::{CACHE_LOOKUPS, TOKEN_REJECTIONS};

/// What a fetch must produce for its callers to be content.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Want {
    /// Any value that has not expired.
    Valid,
    /// A valid value other than this one, which WeChat rejected.
    Replacing(Arc<str>),
    /// A value not due for renewal (the background refresher).
    Renewal,
}

impl Want {
    fn satisfied_by(&self, e: &Entry, now_ms: i64, policy: &TokenPolicy) -> bool {
        match self {
            Want::Valid => e.is_valid(now_ms),
            Want::Replacing(rejected) => e.value != *rejected && e.is_valid(now_ms),
            Want::Renewal => e.is_valid(now_ms) && !e.renewal_due(now_ms, policy),
        }
    }
}

type Flight = Shared<BoxFuture<'static, Result<Entry, TokenError>>>;

/// Lookups served from a trusted copy (by `Kind::index`): resolved once, as
/// the warm path is too hot for a label lookup per request, and counted per
/// thread ([`HotCounter`]).
static PROCESS_HITS: LazyLock<[HotCounter; 2]> = LazyLock::new(|| {
    Kind::ALL.map(|k| HotCounter::new(CACHE_LOOKUPS.with_label_values(&[k.as_str(), "process"])))
});

/// Cheap to clone; every clone shares the same state.
#[derive(Clone)]
pub struct TokenManager {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    upstream: Upstream,
    keys: Keys,
    pub(super) policy: TokenPolicy,
    cache: Cache,
    clock: Arc<dyn Clock>,
    /// The newest value seen per kind, and whether it may be served as is.
    pub(super) copies: ProcessCopies,
    /// Names this process in its change notices, so that it skips its own.
    replica: Arc<str>,
    /// Dropped with the manager: stops the change listener.
    _stop_listener: Mutex<tokio::sync::oneshot::Sender<()>>,
    flights: Mutex<HashMap<(Kind, Want), (u64, Flight)>>,
    flight_ids: AtomicU64,
}

/// How a failed fetch is remembered for its cool-down.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StoredFailure {
    Api { errcode: i64, errmsg: String },
    Timeout { detail: String },
    Unreachable { detail: String },
    BadResponse { detail: String },
}

impl From<&WechatError> for StoredFailure {
    fn from(e: &WechatError) -> Self {
        match e.clone() {
            WechatError::Api { errcode, errmsg } => StoredFailure::Api { errcode, errmsg },
            WechatError::Timeout(detail) => StoredFailure::Timeout { detail },
            WechatError::Unreachable(detail) => StoredFailure::Unreachable { detail },
            WechatError::BadResponse(detail) => StoredFailure::BadResponse { detail },
        }
    }
}

impl From<StoredFailure> for WechatError {
    fn from(f: StoredFailure) -> Self {
        match f {
            StoredFailure::Api { errcode, errmsg } => WechatError::Api { errcode, errmsg },
            StoredFailure::Timeout { detail } => WechatError::Timeout(detail),
            StoredFailure::Unreachable { detail } => WechatError::Unreachable(detail),
            StoredFailure::BadResponse { detail } => WechatError::BadResponse(detail),
        }
    }
}

/// WeChat's "daily quota reached": calling again cannot help until tomorrow.
const QUOTA_EXCEEDED: i64 = 45009;

/// Polling for another replica's result starts fast and backs off to this.
const MAX_POLL_PAUSE: Duration = Duration::from_millis(100);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave these maps half-written.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl TokenManager {
    pub fn new(
        config: &JssdkConfig,
        cache: Cache,
        wechat: WechatClient,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let keys = Keys::new(&config.app.app_id);
        let channel = keys.changes();
        let replica: Arc<str> = Arc::from(shared::random::nonce());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let listen_on = cache.clone();
        let manager = TokenManager {
            inner: Arc::new(Inner {
                upstream: Upstream {
                    wechat,
                    app: config.app.clone(),
                    endpoint: config.token_endpoint,
                },
                keys,
                policy: config.policy.clone(),
                cache,
                clock,
                copies: ProcessCopies::default(),
                replica: replica.clone(),
                _stop_listener: Mutex::new(stop),
                flights: Mutex::default(),
                flight_ids: AtomicU64::new(0),
            }),
        };
        sync::spawn_listener(
            &listen_on,
            &channel,
            Arc::downgrade(&manager.inner),
            replica,
            stopped,
        );
        manager
    }

    /// Whether change notices from other replicas are arriving (tests, and
    /// what `/readyz` could report).
    pub fn notices_live(&self) -> bool {
        self.inner.copies.is_live()
    }

    /// A valid access_token, fetched only when no replica holds one.
    pub async fn access_token(&self) -> Result<Entry, TokenError> {
        self.inner.get(Kind::AccessToken).await
    }

    /// A jsapi_ticket valid at `now_ms` (read from [`TokenManager::now_ms`],
    /// so that a caller that needs the time as well reads the clock once;
    /// issue #16), fetched only when no replica holds one.
    pub async fn jsapi_ticket_at(&self, now_ms: i64) -> Result<Entry, TokenError> {
        self.inner.get_at(Kind::JsapiTicket, now_ms).await
    }

    /// Renews whatever is missing or inside its refresh window; what the
    /// background refresher does on every check.
    pub async fn refresh_due(&self) {
        self.inner.refresh_due().await
    }

    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }
}

impl Inner {
    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    pub(super) async fn get(self: &Arc<Self>, kind: Kind) -> Result<Entry, TokenError> {
        self.get_at(kind, self.now()).await
    }

    /// A valid value of `kind` at `now` (ms on the service's clock).
    async fn get_at(self: &Arc<Self>, kind: Kind, now: i64) -> Result<Entry, TokenError> {
        if let Some(e) = self.copies.trusted(kind, now, Instant::now()) {
            PROCESS_HITS[kind.index()].inc();
            return Ok(e);
        }
        match self.read(kind).await {
            Ok(Some(e)) if e.is_valid(now) => {
                count_lookup(kind, "hit");
                Ok(e)
            }
            Ok(_) => {
                count_lookup(kind, "miss");
                self.obtain(kind, Want::Valid).await
            }
            Err(err) => match self.copies.any(kind) {
                Some(e) if e.is_valid(now) => {
                    count_lookup(kind, "local");
                    Ok(e)
                }
                _ => {
                    count_lookup(kind, "unavailable");
                    Err(err.into())
                }
            },
        }
    }

    /// The shared cache's entry; one that does not parse counts as absent and is
    /// replaced by the next fetch. What it finds checks the process copy.
    async fn read(&self, kind: Kind) -> Result<Option<Entry>, CacheError> {
        // Taken before the read: a notice that arrives while it is on the wire
        // leaves what it brings back unchecked.
        let (generation, started) = (self.copies.generation(), Instant::now());
        let raw = self.cache.get(&self.keys.value(kind)).await?;
        let entry = raw.and_then(|r| serde_json::from_str::<Entry>(&r).ok());
        self.copies
            .checked(kind, entry.as_ref(), generation, started);
        Ok(entry)
    }

    /// Tells the other replicas that `kind` changed in the shared cache. A
    /// notice that cannot be sent leaves them on their once-a-second check
    /// (their subscription is down too, then) or their trust window.
    async fn announce(&self, kind: Kind) {
        let notice = sync::notice(kind, &self.replica);
        if let Err(e) = self.cache.publish(&self.keys.changes(), &notice).await {
            tracing::warn!(kind = kind.as_str(), error = %e, "could not announce the change");
        }
    }

    /// Joins this process's fetch for (kind, want), or starts it. The fetch runs
    /// as its own task, so that a caller going away cannot abandon the lock.
    fn obtain(
        self: &Arc<Self>,
        kind: Kind,
        want: Want,
    ) -> BoxFuture<'static, Result<Entry, TokenError>> {
        let mut flights = lock(&self.flights);
        if let Some((_, flight)) = flights.get(&(kind, want.clone())) {
            return flight.clone().boxed();
        }
        let id = self.flight_ids.fetch_add(1, Ordering::Relaxed);
        let me = self.clone();
        let key = (kind, want.clone());
        let slot = key.clone();
        let task = tokio::spawn(async move {
            let result = me.clone().coordinated_fetch(kind, want).await;
            let mut flights = lock(&me.flights);
            if flights.get(&key).is_some_and(|(fid, _)| *fid == id) {
                flights.remove(&key);
            }
            result
        });
        let flight: Flight = async move {
            task.await
                .unwrap_or_else(|e| Err(TokenError::Internal(format!("fetch task failed: {e}"))))
        }
        .boxed()
        .shared();
        flights.insert(slot, (id, flight.clone()));
        flight.boxed()
    }

    /// Across replicas: wait for a satisfying value, a recent failure, or the
    /// lock; with the lock, fetch.
    async fn coordinated_fetch(
        self: Arc<Self>,
        kind: Kind,
        want: Want,
    ) -> Result<Entry, TokenError> {
        let started = Instant::now();
        let owner = shared::random::nonce();
        let lock_key = self.keys.lock(kind);
        let mut pause = Duration::from_millis(5);
        loop {
            if let Some(e) = self.read(kind).await?
                && want.satisfied_by(&e, self.now(), &self.policy)
            {
                return Ok(e);
            }
            if let Some(failure) = self.recent_failure(kind).await? {
                return Err(failure.into());
            }
            if self
                .cache
                .set_nx(&lock_key, &owner, self.policy.lock_ttl)
                .await?
            {
                let result = self.fetch_locked(kind, &want).await;
                if let Err(e) = self.cache.compare_and_delete(&lock_key, &owner).await {
                    // It expires by itself after lock_ttl.
                    tracing::warn!(kind = kind.as_str(), error = %e, "could not release the fetch lock");
                }
                return result;
            }
            if started.elapsed() >= self.policy.lock_wait {
                tracing::warn!(
                    kind = kind.as_str(),
                    "gave up waiting for another replica's fetch"
                );
                return Err(TokenError::Busy(kind.as_str()));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL_PAUSE);
        }
    }

    /// Holding the lock: look once more (another replica may have finished, or
    /// failed, between our look and the lock), then call WeChat and publish the
    /// result.
    async fn fetch_locked(self: &Arc<Self>, kind: Kind, want: &Want) -> Result<Entry, TokenError> {
        if let Some(e) = self.read(kind).await?
            && want.satisfied_by(&e, self.now(), &self.policy)
        {
            return Ok(e);
        }
        if let Some(failure) = self.recent_failure(kind).await? {
            return Err(failure.into());
        }
        let fetched = match kind {
            Kind::AccessToken => {
                let force = matches!(want, Want::Replacing(_));
                self.fetch_access_token(force).await
            }
            Kind::JsapiTicket => self.fetch_jsapi_ticket().await,
        };
        match fetched {
            Ok(e) => {
                self.store(kind, &e).await;
                Ok(e)
            }
            Err(err) => {
                self.record_failure(kind, &err).await;
                Err(err)
            }
        }
    }

    async fn fetch_access_token(&self, force_refresh: bool) -> Result<Entry, TokenError> {
        let sent = self.now();
        let (value, expires_in) = self.upstream.access_token(force_refresh).await?;
        tracing::info!(expires_in, force_refresh, "fetched an access_token");
        Ok(Entry::from_reply(value, sent, expires_in))
    }

    /// getticket with the current access_token; when WeChat rejects the token,
    /// drop it, fetch a new one once and try once more.
    async fn fetch_jsapi_ticket(self: &Arc<Self>) -> Result<Entry, TokenError> {
        let token = self.get(Kind::AccessToken).await?;
        let sent = self.now();
        let reply = match self.upstream.jsapi_ticket(&token.value).await {
            Err(e) if token_rejected(&e) => {
                TOKEN_REJECTIONS.inc();
                tracing::warn!(errcode = ?e.errcode(), "WeChat rejected the access_token; fetching a new one");
                self.drop_value(Kind::AccessToken, &token).await;
                let fresh = self
                    .obtain(Kind::AccessToken, Want::Replacing(token.value.clone()))
                    .await?;
                let sent = self.now();
                return self
                    .upstream
                    .jsapi_ticket(&fresh.value)
                    .await
                    .map(|(v, exp)| Entry::from_reply(v, sent, exp))
                    .map_err(Into::into);
            }
            other => other?,
        };
        tracing::info!(expires_in = reply.1, "fetched a jsapi_ticket");
        Ok(Entry::from_reply(reply.0, sent, reply.1))
    }

    /// Removes a rejected value from the cache and the process, unless it was
    /// already replaced.
    async fn drop_value(&self, kind: Kind, rejected: &Entry) {
        self.copies.forget(kind, &rejected.value);
        let key = self.keys.value(kind);
        if let Ok(Some(raw)) = self.cache.get(&key).await
            && serde_json::from_str::<Entry>(&raw).is_ok_and(|e| e.value == rejected.value)
            && self
                .cache
                .compare_and_delete(&key, &raw)
                .await
                .unwrap_or(false)
        {
            self.announce(kind).await;
        }
    }

    /// Publishes a fetched value. A cache that fails here does not make the value
    /// wrong: the callers still get it, and the process keeps it.
    async fn store(&self, kind: Kind, e: &Entry) {
        self.copies.fetched(kind, e, Instant::now());
        let ttl = Duration::from_millis(e.remaining_ms(self.now()).max(1) as u64);
        let json = match serde_json::to_string(e) {
            Ok(json) => json,
            Err(err) => {
                tracing::warn!(kind = kind.as_str(), error = %err, "could not encode the fetched value");
                return;
            }
        };
        match self.cache.set(&self.keys.value(kind), &json, ttl).await {
            Ok(()) => self.announce(kind).await,
            Err(err) => {
                tracing::warn!(kind = kind.as_str(), error = %err, "could not publish the fetched value")
            }
        }
    }

    async fn record_failure(&self, kind: Kind, err: &TokenError) {
        let TokenError::Wechat(w) = err else {
            return;
        };
        let cooldown = if w.errcode() == Some(QUOTA_EXCEEDED) {
            self.policy.quota_cooldown
        } else {
            self.policy.failure_cooldown
        };
        if cooldown.is_zero() {
            return;
        }
        let json = match serde_json::to_string(&StoredFailure::from(w)) {
            Ok(json) => json,
            Err(e) => {
                tracing::warn!(kind = kind.as_str(), error = %e, "could not encode the failed fetch");
                return;
            }
        };
        if let Err(e) = self
            .cache
            .set(&self.keys.failure(kind), &json, cooldown)
            .await
        {
            tracing::warn!(kind = kind.as_str(), error = %e, "could not record the failed fetch");
        }
    }

    async fn recent_failure(&self, kind: Kind) -> Result<Option<WechatError>, CacheError> {
        let raw = self.cache.get(&self.keys.failure(kind)).await?;
        Ok(raw
            .and_then(|r| serde_json::from_str::<StoredFailure>(&r).ok())
            .map(WechatError::from))
    }

    /// One pass of the background refresher: the token first, since the ticket
    /// is fetched with it.
    pub(super) async fn refresh_due(self: &Arc<Self>) {
        for kind in Kind::ALL {
            let now = self.now();
            match self.read(kind).await {
                Ok(Some(e)) if e.is_valid(now) && !e.renewal_due(now, &self.policy) => continue,
                Ok(_) => {}
                Err(e) => {
                    // No fetch without the lock; the copy in the process serves meanwhile.
                    tracing::debug!(error = %e, "cache unavailable, refresh skipped");
                    return;
                }
            }
            match self.obtain(kind, Want::Renewal).await {
                Ok(e) => tracing::debug!(
                    kind = kind.as_str(),
                    remaining_s = e.remaining_ms(self.now()) / 1000,
                    "renewed ahead of expiry"
                ),
                Err(e) => tracing::warn!(kind = kind.as_str(), error = %e, "renewal failed"),
            }
        }
    }
}

fn count_lookup(kind: Kind, result: &str) {
    CACHE_LOOKUPS
        .with_label_values(&[kind.as_str(), result])
        .inc();
}
