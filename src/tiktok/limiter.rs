//! The send rate (about 10 per second) for all worker replicas together: a GCRA limiter in Redis when
//! Redis is configured, governor in-process on the embedded default.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis::cmd;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::redis_pool::Redis;

/// GCRA (the algorithm of redis-cell): the key holds the theoretical arrival time of the next send, in
/// microseconds of Redis' own clock, so every replica agrees on it. Returns 0 when the caller may send
/// now, else the microseconds to wait.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - now - tolerance
if wait > 0 then return wait end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1000)
return 0
"#;

/// Why the shared send rate could not be asked (Redis unreachable or refusing the script): nothing was sent.
#[derive(Debug, thiserror::Error)]
pub enum LimiterError {
    /// No connection to Redis (the pool's error says why).
    #[error("send-rate limiter: {0:#}")]
    Connect(anyhow::Error),
    #[error("send-rate limiter")]
    Redis(#[source] deadpool_redis::redis::RedisError),
}

#[derive(Clone)]
pub enum SendLimiter {
    Redis { redis: Redis, key: String, interval_us: u64, tolerance_us: u64 },
    Local(Arc<DefaultDirectRateLimiter>),
}

impl SendLimiter {
    pub fn new(redis: Option<&Redis>, per_second: u32, burst: u32) -> Self {
        let per_second = per_second.max(1);
        let burst = burst.max(1);
        match redis {
            Some(redis) => {
                let interval_us = 1_000_000 / u64::from(per_second);
                SendLimiter::Redis {
                    redis: redis.clone(),
                    key: redis.key("tiktok:send-rate"),
                    interval_us,
                    tolerance_us: interval_us * (u64::from(burst) - 1),
                }
            }
            None => {
                let quota = Quota::per_second(NonZeroU32::new(per_second).expect("at least 1"))
                    .allow_burst(NonZeroU32::new(burst).expect("at least 1"));
                SendLimiter::Local(Arc::new(RateLimiter::direct(quota)))
            }
        }
    }

    /// Waits until this process may send one message.
    pub async fn until_ready(&self) -> Result<(), LimiterError> {
        match self {
            SendLimiter::Local(limiter) => {
                limiter.until_ready().await;
                Ok(())
            }
            SendLimiter::Redis { redis, key, interval_us, tolerance_us } => loop {
                let mut conn = redis.connection().await.map_err(LimiterError::Connect)?;
                let wait_us: i64 = cmd("EVAL")
                    .arg(GCRA)
                    .arg(1)
                    .arg(key)
                    .arg(*interval_us)
                    .arg(*tolerance_us)
                    .query_async(&mut conn)
                    .await
                    .map_err(LimiterError::Redis)?;
                if wait_us <= 0 {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_micros(wait_us as u64)).await;
            },
        }
    }
}
