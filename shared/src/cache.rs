//! The cache: one interface over an in-process map (one replica) and Redis
//! (any number of replicas). Holds tokens, OAuth states, locks and rate counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

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
    pub fn memory() -> Self {
        Cache::Memory(Arc::new(MemoryCache::default()))
    }

    /// Redis when a URL is given, else the in-process cache.
    pub async fn connect(redis_url: Option<&str>, prefix: &str) -> Result<Self, CacheError> {
        match redis_url {
            None => Ok(Cache::memory()),
            Some(url) => Ok(Cache::Redis(Arc::new(
                RedisCache::connect(url, prefix).await?,
            ))),
        }
    }

    /// Whether the cache is shared between replicas.
    pub fn is_shared(&self) -> bool {
        matches!(self, Cache::Redis(_))
    }

    pub async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        match self {
            Cache::Memory(m) => Ok(m.get(key)),
            Cache::Redis(r) => r.exec(r.conn().get(r.key(key))).await,
        }
    }

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

    /// Remaining time to live, None when absent or without expiry.
    pub async fn ttl(&self, key: &str) -> Result<Option<Duration>, CacheError> {
        match self {
            Cache::Memory(m) => Ok(m.ttl(key)),
            Cache::Redis(r) => {
                let ms: i64 = r.exec(r.conn().pttl(r.key(key))).await?;
                Ok((ms > 0).then(|| Duration::from_millis(ms as u64)))
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

/// Redis through one `ConnectionManager` built at start and cloned per call; it
/// reconnects by itself when Redis comes back.
pub struct RedisCache {
    manager: ConnectionManager,
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
            .set_connection_timeout(REDIS_TIMEOUT)
            .set_response_timeout(REDIS_TIMEOUT)
            // The retry delays are backon's 1 s base times `factor`; redis' default
            // factor of 100 would hold a start-up or a reconnect for minutes.
            .set_factor(1)
            .set_max_delay(1000)
            .set_number_of_retries(2);
        let manager = ConnectionManager::new_with_config(client, config).await?;
        Ok(RedisCache {
            manager,
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

/// The in-process cache: a map with expiry times, swept as it grows.
#[derive(Default)]
pub struct MemoryCache {
    entries: Mutex<HashMap<String, (String, Instant)>>,
}

const SWEEP_THRESHOLD: usize = 10_000;

impl MemoryCache {
    fn live<'a>(
        map: &'a mut HashMap<String, (String, Instant)>,
        key: &str,
    ) -> Option<&'a mut (String, Instant)> {
        let now = Instant::now();
        if map.get(key).is_some_and(|(_, exp)| *exp <= now) {
            map.remove(key);
        }
        map.get_mut(key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        // A panic while holding the lock cannot leave the map half-written.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(
        map: &mut HashMap<String, (String, Instant)>,
        key: &str,
        value: String,
        ttl: Duration,
    ) {
        if map.len() >= SWEEP_THRESHOLD {
            let now = Instant::now();
            map.retain(|_, (_, exp)| *exp > now);
        }
        map.insert(key.to_owned(), (value, Instant::now() + ttl));
    }

    fn get(&self, key: &str) -> Option<String> {
        Self::live(&mut self.lock(), key).map(|(v, _)| v.clone())
    }

    fn set(&self, key: &str, value: &str, ttl: Duration) {
        Self::insert(&mut self.lock(), key, value.to_owned(), ttl);
    }

    fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> bool {
        let mut map = self.lock();
        if Self::live(&mut map, key).is_some() {
            return false;
        }
        Self::insert(&mut map, key, value.to_owned(), ttl);
        true
    }

    fn take(&self, key: &str) -> Option<String> {
        let mut map = self.lock();
        Self::live(&mut map, key)?;
        map.remove(key).map(|(v, _)| v)
    }

    fn compare_and_delete(&self, key: &str, expected: &str) -> bool {
        let mut map = self.lock();
        if Self::live(&mut map, key).is_some_and(|(v, _)| v == expected) {
            map.remove(key);
            return true;
        }
        false
    }

    fn incr(&self, key: &str, ttl: Duration) -> i64 {
        let mut map = self.lock();
        if let Some((v, _)) = Self::live(&mut map, key) {
            let n = v.parse::<i64>().unwrap_or(0) + 1;
            *v = n.to_string();
            return n;
        }
        Self::insert(&mut map, key, "1".to_owned(), ttl);
        1
    }

    fn ttl(&self, key: &str) -> Option<Duration> {
        Self::live(&mut self.lock(), key)
            .map(|(_, exp)| exp.saturating_duration_since(Instant::now()))
    }
}
