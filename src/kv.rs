//! Expiring keys shared by every replica: idempotency leases and done markers, OAuth states, cached
//! TikTok media ids.
//! Redis keys with TTLs in production; an in-process map with expiry on the embedded default.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use deadpool_redis::redis::cmd;

use crate::redis_pool::Redis;

/// Compare-and-delete, so a worker only ever releases a lease it still holds.
const RELEASE_SCRIPT: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// Redis could not be asked (the in-process map never fails).
#[derive(Debug, thiserror::Error)]
#[error("key-value store: {0:#}")]
pub struct KvError(#[from] anyhow::Error);

#[derive(Clone)]
pub enum Kv {
    Redis(Redis),
    Memory(Arc<Mutex<MemoryMap>>),
}

/// The in-process map: key → (value, expiry).
#[derive(Default)]
pub struct MemoryMap {
    entries: HashMap<String, (String, Instant)>,
    writes: u64,
}

impl MemoryMap {
    fn live(&mut self, key: &str) -> Option<&String> {
        let now = Instant::now();
        if self.entries.get(key).is_some_and(|(_, expiry)| *expiry <= now) {
            self.entries.remove(key);
        }
        self.entries.get(key).map(|(value, _)| value)
    }

    fn insert(&mut self, key: &str, value: &str, ttl: Duration) {
        self.writes += 1;
        // Expired entries are dropped now and then, so the map does not grow without bound.
        if self.writes.is_multiple_of(1024) {
            let now = Instant::now();
            self.entries.retain(|_, (_, expiry)| *expiry > now);
        }
        self.entries.insert(key.to_owned(), (value.to_owned(), Instant::now() + ttl));
    }
}

impl Kv {
    pub fn new(redis: Option<&Redis>) -> Self {
        match redis {
            Some(redis) => Kv::Redis(redis.clone()),
            None => Kv::Memory(Arc::default()),
        }
    }

    fn map(map: &Mutex<MemoryMap>) -> std::sync::MutexGuard<'_, MemoryMap> {
        map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The full key for `name`: under the deployment's prefix on Redis.
    pub fn key(&self, name: &str) -> String {
        match self {
            Kv::Redis(redis) => redis.key(name),
            Kv::Memory(_) => name.to_owned(),
        }
    }

    /// Sets `key` to `value` for `ttl` only if it is absent; true when it was set.
    pub async fn set_if_absent(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, KvError> {
        match self {
            Kv::Redis(redis) => {
                let mut conn = redis.connection().await?;
                let reply: Option<String> = cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl.as_millis() as u64)
                    .query_async(&mut conn)
                    .await
                    .context("SET NX")?;
                Ok(reply.is_some())
            }
            Kv::Memory(map) => {
                let mut map = Self::map(map);
                if map.live(key).is_some() {
                    return Ok(false);
                }
                map.insert(key, value, ttl);
                Ok(true)
            }
        }
    }

    /// Sets `key` to `value` for `ttl`, replacing what was there.
    pub async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), KvError> {
        match self {
            Kv::Redis(redis) => {
                let mut conn = redis.connection().await?;
                let () = cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("PX")
                    .arg(ttl.as_millis() as u64)
                    .query_async(&mut conn)
                    .await
                    .context("SET")?;
                Ok(())
            }
            Kv::Memory(map) => {
                Self::map(map).insert(key, value, ttl);
                Ok(())
            }
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<String>, KvError> {
        match self {
            Kv::Redis(redis) => {
                let mut conn = redis.connection().await?;
                Ok(cmd("GET").arg(key).query_async(&mut conn).await.context("GET")?)
            }
            Kv::Memory(map) => Ok(Self::map(map).live(key).cloned()),
        }
    }

    /// Deletes `key` only while it still holds `value`.
    pub async fn delete_if_equals(&self, key: &str, value: &str) -> Result<(), KvError> {
        match self {
            Kv::Redis(redis) => {
                let mut conn = redis.connection().await?;
                let _: i64 = cmd("EVAL")
                    .arg(RELEASE_SCRIPT)
                    .arg(1)
                    .arg(key)
                    .arg(value)
                    .query_async(&mut conn)
                    .await
                    .context("EVAL")?;
                Ok(())
            }
            Kv::Memory(map) => {
                let mut map = Self::map(map);
                if map.live(key).is_some_and(|v| v == value) {
                    map.entries.remove(key);
                }
                Ok(())
            }
        }
    }
}
