//! The cache: one interface over an in-process map (one replica) and Redis
//! (any number of replicas). Holds tokens, OAuth states, locks and rate counters,
//! and carries change notices between replicas ([`Cache::publish`],
//! [`Cache::subscribe`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{broadcast, mpsc};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache unavailable: {0}")]
    Unavailable(String),
}

impl From<redis::RedisError> for CacheError {
    fn from(e: redis::RedisError) -> Self {
        CacheError::Unavailable(e.to_string())
    }
}

impl From<CacheError> for crate::error::ApiError {
    fn from(e: CacheError) -> Self {
        crate::error::ApiError::Unavailable(e.to_string())
    }
}

#[derive(Clone)]
pub enum Cache {
    Memory(Arc<MemoryCache>),
    Redis(Arc<RedisCache>),
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cache::Memory(_) => "Cache::Memory",
            Cache::Redis(_) => "Cache::Redis",
        })
    }
}

/// Redis answers well under this; a dead Redis must fail fast, not hang requests.
const REDIS_TIMEOUT: Duration = Duration::from_millis(1500);

impl Cache {
    /// The in-process cache with the default `MemoryLimits`.
    pub fn memory() -> Self {
        Cache::memory_with(MemoryLimits::default())
    }

    pub fn memory_with(limits: MemoryLimits) -> Self {
        Cache::Memory(Arc::new(MemoryCache::with_limits(limits)))
    }

    /// Redis when a URL is given, else the in-process cache.
    pub async fn connect(redis_url: Option<&str>, prefix: &str) -> Result<Self, CacheError> {
        Self::connect_with(redis_url, prefix, MemoryLimits::default()).await
    }

    /// `connect`, with the in-process cache's bounds from the configuration.
    pub async fn connect_with(
        redis_url: Option<&str>,
        prefix: &str,
        limits: MemoryLimits,
    ) -> Result<Self, CacheError> {
        match redis_url {
            None => Ok(Cache::memory_with(limits)),
            Some(url) => Ok(Cache::Redis(Arc::new(
                RedisCache::connect(url, prefix).await?,
            ))),
        }
    }

    /// OpenTelemetry's `db.system.name` of the `cache` spans (shared::traces).
    fn system_name(&self) -> &'static str {
        match self {
            Cache::Memory(_) => "memory",
            Cache::Redis(_) => "redis",
        }
    }

    /// Whether the cache is shared between replicas.
    pub fn is_shared(&self) -> bool {
        matches!(self, Cache::Redis(_))
    }

    #[tracing::instrument(level = "debug", name = "cache", skip_all, fields(otel.kind = "client", otel.name = "cache get", db.system.name = self.system_name()))]
    pub async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        match self {
            Cache::Memory(m) => Ok(m.get(key)),
            Cache::Redis(r) => r.exec(r.conn().get(r.key(key))).await,
        }
    }

    #[tracing::instrument(level = "debug", name = "cache", skip_all, fields(otel.kind = "client", otel.name = "cache set", db.system.name = self.system_name()))]
    pub async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
        match self {
            Cache::Memory(m) => {
                m.set(key, value, ttl);
                Ok(())
            }
            Cache::Redis(r) => {
                r.exec(r.conn().pset_ex::<_, _, ()>(r.key(key), value, millis(ttl)))
                    .await
            }
        }
    }

    /// Sets the value only when the key is absent; true when it was set. The
    /// building block of locks (with a random owner value) and of dedup markers.
    #[tracing::instrument(level = "debug", name = "cache", skip_all, fields(otel.kind = "client", otel.name = "cache set_nx", db.system.name = self.system_name()))]
    pub async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, CacheError> {
        match self {
            Cache::Memory(m) => Ok(m.set_nx(key, value, ttl)),
            Cache::Redis(r) => {
                let mut set = redis::cmd("SET");
                set.arg(r.key(key))
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(ttl));
                let reply: Option<String> = r.exec(set.query_async(&mut r.conn())).await?;
                Ok(reply.is_some())
            }
        }
    }

    #[tracing::instrument(level = "debug", name = "cache", skip_all, fields(otel.kind = "client", otel.name = "cache delete", db.system.name = self.system_name()))]
    pub async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        match self {
            Cache::Memory(m) => Ok(m.take(key).is_some()),
            Cache::Redis(r) => {
                let n: i64 = r.exec(r.conn().del(r.key(key))).await?;
                Ok(n > 0)
            }
        }
    }

    /// Reads and deletes in one step, so that a value can be used once only
    /// (OAuth states), even by two replicas racing.
    #[tracing::instrument(level = "debug", name = "cache", skip_all, fields(otel.kind = "client", otel.name = "cache take", db.system.name = self.system_name()))]
    pub async fn take(&self, key: &str) -> Result<Option<String>, CacheError> {
        match self {
            Cache::Memory(m) => Ok(m.take(key)),
            Cache::Redis(r) => {
                r.exec(
                    redis::cmd("GETDEL")
                        .arg(r.key(key))
                        .query_async(&mut r.conn()),
                )
                .await
            }
        }
    }

    /// Deletes the key only while it still holds `expected`: releasing a lock
    /// that this owner holds, never one that expired and was taken by another.
    #[tracing::instrument(level = "debug", name = "cache", skip_all, fields(otel.kind = "client", otel.name = "cache compare_and_delete", db.system.name = self.system_name()))]
    pub async fn compare_and_delete(&self, key: &str, expected: &str) -> Result<bool, CacheError> {
        match self {
            Cache::Memory(m) => Ok(m.compare_and_delete(key, expected)),
            Cache::Redis(r) => {
                let script = redis::Script::new(
                    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end",
                );
                let n: i64 = r
                    .exec(
                        script
                            .key(r.key(key))
                            .arg(expected)
                            .invoke_async(&mut r.conn()),
                    )
                    .await?;
                Ok(n > 0)
            }
        }
    }

    /// Increments a counter that lives for `ttl` from its first increment.
    #[tracing::instrument(level = "debug", name = "cache", skip_all, fields(otel.kind = "client", otel.name = "cache incr", db.system.name = self.system_name()))]
    pub async fn incr(&self, key: &str, ttl: Duration) -> Result<i64, CacheError> {
        match self {
            Cache::Memory(m) => Ok(m.incr(key, ttl)),
            Cache::Redis(r) => {
                // A script, so that the expiry is set exactly once, atomically.
                let script = redis::Script::new(
                    "local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end return n",
                );
                r.exec(
                    script
                        .key(r.key(key))
                        .arg(millis(ttl))
                        .invoke_async(&mut r.conn()),
                )
                .await
            }
        }
    }

    /// Gives back one of a counter [`Self::incr`] made, while it lives (a
    /// counter that expired is not recreated: it would never expire). The
    /// new count, None when there was no counter.
    #[tracing::instrument(level = "debug", name = "cache", skip_all, fields(otel.kind = "client", otel.name = "cache decr", db.system.name = self.system_name()))]
    pub async fn decr(&self, key: &str) -> Result<Option<i64>, CacheError> {
        match self {
            Cache::Memory(m) => Ok(m.decr(key)),
            Cache::Redis(r) => {
                let script = redis::Script::new(
                    "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end return false",
                );
                r.exec(script.key(r.key(key)).invoke_async(&mut r.conn()))
                    .await
            }
        }
    }

    /// Remaining time to live, None when absent or without expiry.
    #[tracing::instrument(level = "debug", name = "cache", skip_all, fields(otel.kind = "client", otel.name = "cache ttl", db.system.name = self.system_name()))]
    pub async fn ttl(&self, key: &str) -> Result<Option<Duration>, CacheError> {
        match self {
            Cache::Memory(m) => Ok(m.ttl(key)),
            Cache::Redis(r) => {
                let ms: i64 = r.exec(r.conn().pttl(r.key(key))).await?;
                Ok((ms > 0).then(|| Duration::from_millis(ms as u64)))
            }
        }
    }

    /// Sends `message` to every current subscriber of `channel` (Redis
    /// `PUBLISH`; in process, the subscribers of this cache). Fire and forget:
    /// a subscriber that is not connected right now misses it, and learns so
    /// from its [`Notice::Lost`].
    #[tracing::instrument(level = "debug", name = "cache", skip_all, fields(otel.kind = "client", otel.name = "cache publish", db.system.name = self.system_name()))]
    pub async fn publish(&self, channel: &str, message: &str) -> Result<(), CacheError> {
        match self {
            Cache::Memory(m) => {
                m.publish(channel, message);
                Ok(())
            }
            Cache::Redis(r) => {
                r.exec(r.conn().publish::<_, _, i64>(r.key(channel), message))
                    .await?;
                Ok(())
            }
        }
    }

    /// Listens on `channel` until the [`Subscription`] is dropped. On Redis a
    /// task of its own holds a dedicated connection, reconnects after a drop
    /// and probes the connection every [`SUBSCRIPTION_PROBE`] (a half-open
    /// connection delivers nothing and says nothing); the subscription reports
    /// [`Notice::Live`] each time it is (re)established and [`Notice::Lost`]
    /// when it drops. Must be called inside a tokio runtime.
    pub fn subscribe(&self, channel: &str) -> Subscription {
        match self {
            Cache::Memory(m) => Subscription::Memory {
                rx: m.subscribe(channel),
                pending: Some(Notice::Live),
            },
            Cache::Redis(r) => {
                let (tx, rx) = mpsc::channel(64);
                let task = tokio::spawn(redis_subscriber(r.client.clone(), r.key(channel), tx));
                Subscription::Redis { rx, task }
            }
        }
    }

    pub async fn ping(&self) -> Result<(), CacheError> {
        match self {
            Cache::Memory(_) => Ok(()),
            Cache::Redis(r) => {
                let _: String = r
                    .exec(redis::cmd("PING").query_async(&mut r.conn()))
                    .await?;
                Ok(())
            }
        }
    }
}

fn millis(ttl: Duration) -> u64 {
    ttl.as_millis().max(1) as u64
}

/// What a [`Subscription`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Subscribed (again): every message published from now on arrives. After
    /// a [`Notice::Lost`], those published in between may have been missed.
    Live,
    /// The subscription dropped (connection lost or unresponsive, or this
    /// subscriber fell behind): messages may be missed until the next `Live`.
    Lost,
    Message(String),
}

/// A channel subscription ([`Cache::subscribe`]); dropping it unsubscribes.
pub enum Subscription {
    Memory {
        rx: broadcast::Receiver<String>,
        pending: Option<Notice>,
    },
    Redis {
        rx: mpsc::Receiver<Notice>,
        task: tokio::task::JoinHandle<()>,
    },
}

impl Subscription {
    /// The next notice; None once the cache behind it is gone.
    pub async fn next(&mut self) -> Option<Notice> {
        match self {
            Subscription::Memory { rx, pending } => {
                if let Some(n) = pending.take() {
                    return Some(n);
                }
                match rx.recv().await {
                    Ok(m) => Some(Notice::Message(m)),
                    // Fell behind: what was skipped is lost; the receiver goes
                    // on from the oldest message still held, so it is live again.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        *pending = Some(Notice::Live);
                        Some(Notice::Lost)
                    }
                    Err(broadcast::error::RecvError::Closed) => None,
                }
            }
            Subscription::Redis { rx, .. } => rx.recv().await,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Subscription::Redis { task, .. } = self {
            task.abort();
        }
    }
}

/// How often a Redis subscription checks that its connection still answers
/// (a `SUBSCRIBE` to the channel it holds, acknowledged within
/// `REDIS_TIMEOUT`). A connection that died without a reset is noticed
/// within this plus `REDIS_TIMEOUT`.
pub const SUBSCRIPTION_PROBE: Duration = Duration::from_secs(1);

/// The pause between two attempts to subscribe again.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(500);

/// The task behind a Redis [`Subscription`]: connect, subscribe, forward,
/// probe; on any failure report `Lost` and start over. Ends when the
/// subscription is dropped.
async fn redis_subscriber(client: redis::Client, channel: String, tx: mpsc::Sender<Notice>) {
    loop {
        let connected = tokio::time::timeout(REDIS_TIMEOUT, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        if let Ok(Ok(pubsub)) = connected {
            if tx.send(Notice::Live).await.is_err() {
                return;
            }
            let (mut sink, mut stream) = pubsub.split();
            let mut probe = tokio::time::interval(SUBSCRIPTION_PROBE);
            probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            probe.tick().await;
            loop {
                tokio::select! {
                    msg = stream.next() => match msg {
                        Some(msg) => {
                            let payload = msg.get_payload::<String>().unwrap_or_default();
                            if tx.send(Notice::Message(payload)).await.is_err() {
                                return;
                            }
                        }
                        None => break,
                    },
                    _ = probe.tick() => {
                        let answered = tokio::time::timeout(REDIS_TIMEOUT, sink.subscribe(&channel)).await;
                        if !matches!(answered, Ok(Ok(()))) {
                            break;
                        }
                    }
                    _ = tx.closed() => return,
                }
            }
            tracing::warn!("cache subscription lost; subscribing again");
            if tx.send(Notice::Lost).await.is_err() {
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RESUBSCRIBE_PAUSE) => {}
            _ = tx.closed() => return,
        }
    }
}

/// Redis through one `ConnectionManager` built at start and cloned per call; it
/// reconnects by itself when Redis comes back.
pub struct RedisCache {
    manager: ConnectionManager,
    /// For the dedicated connections of subscriptions.
    client: redis::Client,
    prefix: Arc<str>,
    started: Instant,
    /// Milliseconds after `started` before which calls fail at once: after a
    /// connection failure, every caller would otherwise wait out the client's
    /// reconnect attempts in turn, and a Redis outage would stall each request
    /// for seconds instead of letting it fall back (to a local copy, or 503).
    down_until_ms: AtomicU64,
}

/// How long a connection failure makes calls fail fast.
const FAIL_FAST: Duration = Duration::from_secs(1);

impl RedisCache {
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, CacheError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            // Two retries, 100 ms then 200 ms apart (redis' minimum delay,
            // doubling), never more than 1 s: a start-up or a reconnect
            // against a Redis that is down gives up quickly, and the caller
            // falls back instead of waiting.
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(2);
        let manager = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(RedisCache {
            manager,
            client,
            prefix: Arc::from(prefix),
            started: Instant::now(),
            down_until_ms: AtomicU64::new(0),
        })
    }

    /// Runs one command, or fails at once while a recent connection failure
    /// says Redis is down.
    async fn exec<T>(
        &self,
        command: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, CacheError> {
        let now_ms = self.started.elapsed().as_millis() as u64;
        if now_ms < self.down_until_ms.load(Ordering::Relaxed) {
            return Err(CacheError::Unavailable(
                "Redis failed moments ago; not tried again yet".to_owned(),
            ));
        }
        command.await.map_err(|e| {
            if e.is_io_error()
                || e.is_timeout()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
            {
                let until = self.started.elapsed() + FAIL_FAST;
                self.down_until_ms
                    .store(until.as_millis() as u64, Ordering::Relaxed);
            }
            e.into()
        })
    }

    fn conn(&self) -> ConnectionManager {
        self.manager.clone()
    }

    fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }
}

/// How much the in-process cache may hold (`CACHE_MAX_ENTRIES`,
/// `CACHE_MAX_BYTES`). Past either bound the entries closest to expiry go
/// first: they are the ones a caller is about to lose anyway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryLimits {
    pub max_entries: usize,
    /// Keys and values, in bytes, plus a fixed overhead per entry.
    pub max_bytes: usize,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        MemoryLimits {
            max_entries: 100_000,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What one entry costs besides its key and value: the map slot, the expiry
/// index node and the two `String` headers, roughly.
const ENTRY_OVERHEAD: usize = 96;

/// Entries evicted to stay within `MemoryLimits` (expired ones are not counted).
static EVICTIONS: std::sync::LazyLock<prometheus::IntCounter> = std::sync::LazyLock::new(|| {
    crate::metrics::counter(
        "cache_evictions_total",
        "In-process cache entries evicted to stay within CACHE_MAX_ENTRIES / CACHE_MAX_BYTES",
    )
});

/// The in-process cache: a map plus an index ordered by expiry, so that expired
/// entries are dropped from the front of the index as they come due and a full
/// cache evicts the soonest-to-expire entry, both in O(log n) per insert.
///
/// Hand-written rather than a caching crate (moka, quick_cache): the cache
/// contract needs atomic set-if-absent, take and compare-and-delete under one
/// lock, and eviction by expiry rather than by recency or frequency.
#[derive(Default)]
pub struct MemoryCache {
    inner: Mutex<MemoryInner>,
    /// Publish/subscribe channels; apart from the entries, and not counted
    /// against the limits (a handful of channels, each holding at most
    /// `CHANNEL_CAPACITY` undelivered messages).
    channels: Mutex<HashMap<String, broadcast::Sender<String>>>,
}

/// Messages a slow in-process subscriber may fall behind before it is told
/// [`Notice::Lost`].
const CHANNEL_CAPACITY: usize = 64;

#[derive(Default)]
struct MemoryInner {
    limits: MemoryLimits,
    entries: HashMap<String, MemoryEntry>,
    /// (expiry, insertion number) → key; the number keeps equal expiries apart.
    by_expiry: BTreeMap<(Instant, u64), String>,
    bytes: usize,
    next_seq: u64,
}

struct MemoryEntry {
    value: String,
    expires: Instant,
    seq: u64,
}

fn entry_size(key: &str, value: &str) -> usize {
    key.len() + value.len() + ENTRY_OVERHEAD
}

impl MemoryInner {
    fn remove(&mut self, key: &str) -> Option<MemoryEntry> {
        let entry = self.entries.remove(key)?;
        self.by_expiry.remove(&(entry.expires, entry.seq));
        self.bytes -= entry_size(key, &entry.value);
        Some(entry)
    }

    /// Drops every entry whose time has come, oldest first.
    fn purge_expired(&mut self, now: Instant) {
        while let Some((&(expires, _), _)) = self.by_expiry.first_key_value() {
            if expires > now {
                break;
            }
            if let Some((_, key)) = self.by_expiry.pop_first() {
                self.remove(&key);
            }
        }
    }

    /// Evicts the soonest-to-expire entries until one of `size` bytes fits.
    fn make_room(&mut self, size: usize) {
        while !self.entries.is_empty()
            && (self.entries.len() + 1 > self.limits.max_entries
                || self.bytes + size > self.limits.max_bytes)
        {
            let Some((_, key)) = self.by_expiry.pop_first() else {
                break;
            };
            self.remove(&key);
            EVICTIONS.inc();
        }
    }

    fn live(&mut self, key: &str) -> Option<&mut MemoryEntry> {
        let now = Instant::now();
        if self.entries.get(key).is_some_and(|e| e.expires <= now) {
            self.remove(key);
        }
        self.entries.get_mut(key)
    }

    fn insert(&mut self, key: &str, value: String, ttl: Duration) {
        let now = Instant::now();
        self.remove(key);
        self.purge_expired(now);
        let size = entry_size(key, &value);
        self.make_room(size);
        let seq = self.next_seq;
        self.next_seq += 1;
        let expires = now + ttl;
        self.by_expiry.insert((expires, seq), key.to_owned());
        self.bytes += size;
        self.entries.insert(
            key.to_owned(),
            MemoryEntry {
                value,
                expires,
                seq,
            },
        );
    }
}

impl MemoryCache {
    pub fn with_limits(limits: MemoryLimits) -> Self {
        MemoryCache {
            inner: Mutex::new(MemoryInner {
                limits,
                ..MemoryInner::default()
            }),
            channels: Mutex::default(),
        }
    }

    fn channel(&self, name: &str) -> broadcast::Sender<String> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        // Channels nobody listens to any more go, so that they cannot pile up.
        channels.retain(|_, tx| tx.receiver_count() > 0);
        channels
            .entry(name.to_owned())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .clone()
    }

    fn publish(&self, channel: &str, message: &str) {
        // No subscriber: nobody to tell, as with Redis.
        let _ = self.channel(channel).send(message.to_owned());
    }

    fn subscribe(&self, channel: &str) -> broadcast::Receiver<String> {
        self.channel(channel).subscribe()
    }

    /// How many entries it holds now (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes counted against `max_bytes`.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        // A panic while holding the lock cannot leave the map half-written.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, key: &str) -> Option<String> {
        self.lock().live(key).map(|e| e.value.clone())
    }

    fn set(&self, key: &str, value: &str, ttl: Duration) {
        self.lock().insert(key, value.to_owned(), ttl);
    }

    fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> bool {
        let mut inner = self.lock();
        if inner.live(key).is_some() {
            return false;
        }
        inner.insert(key, value.to_owned(), ttl);
        true
    }

    fn take(&self, key: &str) -> Option<String> {
        let mut inner = self.lock();
        inner.live(key)?;
        inner.remove(key).map(|e| e.value)
    }

    fn compare_and_delete(&self, key: &str, expected: &str) -> bool {
        let mut inner = self.lock();
        if inner.live(key).is_some_and(|e| e.value == expected) {
            inner.remove(key);
            return true;
        }
        false
    }

    fn incr(&self, key: &str, ttl: Duration) -> i64 {
        let mut inner = self.lock();
        if let Some(entry) = inner.live(key) {
            let n = entry.value.parse::<i64>().unwrap_or(0) + 1;
            let old_len = entry.value.len();
            entry.value = n.to_string();
            let new_len = entry.value.len();
            inner.bytes = inner.bytes + new_len - old_len;
            return n;
        }
        inner.insert(key, "1".to_owned(), ttl);
        1
    }

    fn decr(&self, key: &str) -> Option<i64> {
        let mut inner = self.lock();
        let entry = inner.live(key)?;
        let n = entry.value.parse::<i64>().unwrap_or(0) - 1;
        let old_len = entry.value.len();
        entry.value = n.to_string();
        let new_len = entry.value.len();
        inner.bytes = inner.bytes + new_len - old_len;
        Some(n)
    }

    fn ttl(&self, key: &str) -> Option<Duration> {
        self.lock()
            .live(key)
            .map(|e| e.expires.saturating_duration_since(Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(max_entries: usize, max_bytes: usize) -> MemoryCache {
        MemoryCache::with_limits(MemoryLimits {
            max_entries,
            max_bytes,
        })
    }

    #[test]
    fn a_full_cache_evicts_the_entries_closest_to_expiry() {
        let cache = small(3, usize::MAX);
        let before = EVICTIONS.get();
        cache.set("long", "v", Duration::from_secs(300));
        cache.set("soon", "v", Duration::from_secs(10));
        cache.set("mid", "v", Duration::from_secs(100));
        cache.set("new", "v", Duration::from_secs(200));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("soon"), None, "the soonest to expire goes first");
        for kept in ["long", "mid", "new"] {
            assert_eq!(cache.get(kept).as_deref(), Some("v"), "{kept}");
        }
        assert!(EVICTIONS.get() > before, "evictions are counted");
    }

    #[test]
    fn the_byte_bound_holds_whatever_the_number_of_inserts() {
        let value = "x".repeat(1000);
        let limit = 10 * entry_size("key-00000", &value);
        let cache = small(usize::MAX, limit);
        for i in 0..1000 {
            cache.set(&format!("key-{i:05}"), &value, Duration::from_secs(60 + i));
            assert!(cache.bytes() <= limit, "{} > {limit}", cache.bytes());
        }
        assert_eq!(cache.len(), 10);
        // The ten latest to expire are the ten last inserted.
        assert!(cache.get("key-00999").is_some());
        assert!(cache.get("key-00989").is_none());
    }

    #[test]
    fn expired_entries_leave_without_counting_as_evictions() {
        let cache = small(2, usize::MAX);
        cache.set("gone", "v", Duration::from_millis(0));
        cache.set("a", "v", Duration::from_secs(60));
        // The expired entry makes room; nothing live is evicted.
        cache.set("b", "v", Duration::from_secs(60));
        assert_eq!(cache.get("a").as_deref(), Some("v"));
        assert_eq!(cache.get("b").as_deref(), Some("v"));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn replacing_and_counting_keep_the_byte_total_exact() {
        let cache = small(10, usize::MAX);
        cache.set("k", "short", Duration::from_secs(60));
        cache.set("k", "a much longer value", Duration::from_secs(60));
        assert_eq!(cache.bytes(), entry_size("k", "a much longer value"));
        for _ in 0..12 {
            cache.incr("n", Duration::from_secs(60));
        }
        assert_eq!(cache.get("n").as_deref(), Some("12"));
        assert_eq!(
            cache.bytes(),
            entry_size("k", "a much longer value") + entry_size("n", "12")
        );
        assert_eq!(cache.take("k").as_deref(), Some("a much longer value"));
        assert!(cache.compare_and_delete("n", "12"));
        assert_eq!(cache.bytes(), 0);
        assert!(cache.is_empty());
    }
}
