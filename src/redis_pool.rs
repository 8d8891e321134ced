//! The Redis connection pool shared by the queue, idempotency keys, reply windows and the send limiter.

use std::time::Duration;

use anyhow::Context;
use deadpool_redis::{Config, Pool, Runtime, Timeouts};
use secrecy::ExposeSecret;

use crate::config::RedisSettings;

/// Builds the pool when Redis is configured. Connections are opened lazily, so this fails only on a
/// malformed URL; reachability is what `/ready` reports.
pub fn create_pool(settings: &RedisSettings) -> anyhow::Result<Option<Pool>> {
    let Some(url) = &settings.url else { return Ok(None) };
    let timeout = Some(Duration::from_millis(settings.timeout_ms));
    let pool = Config::from_url(url.expose_secret())
        .builder()
        .context("redis.url: not a Redis URL")?
        .max_size(settings.pool_size)
        .timeouts(Timeouts {
            wait: timeout,
            create: timeout,
            recycle: timeout,
        })
        .runtime(Runtime::Tokio1)
        .build()
        .context("building the Redis pool")?;
    Ok(Some(pool))
}

/// One PING round trip through the pool.
pub async fn ping(pool: &Pool) -> anyhow::Result<()> {
    let mut conn = pool.get().await.context("getting a Redis connection")?;
    let _: String = deadpool_redis::redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .context("PING")?;
    Ok(())
}
