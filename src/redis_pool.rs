//! Connections to Redis, shared by the queue, idempotency keys, reply windows and the send limiter: one
//! long-lived multiplexed connection that reconnects by itself (every short command: no pool checkout,
//! which costs an extra round trip each time), one more of the same kind per HTTP worker for the webhook's
//! `XADD`, and a pool of dedicated connections for blocking reads (`XREADGROUP … BLOCK` holds its
//! connection for the block time).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use deadpool_redis::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use deadpool_redis::redis::{AsyncConnectionConfig, Client};
use deadpool_redis::{Manager, Pool, Runtime};
use secrecy::ExposeSecret;
use tokio::sync::OnceCell;

use crate::config::{JobSettings, RedisSettings};

/// Redis for one deployment: connections plus the key prefix every key is written under.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    shared: OnceCell<ConnectionManager>,
    shared_config: ConnectionManagerConfig,
    blocking: Pool,
    prefix: String,
}

impl Redis {
    /// Prepares the connections when Redis is configured. Nothing is connected yet, so a process can
    /// start while Redis is down (and answer 503 until it is back); a malformed URL fails here.
    /// `consumers` connections are held for good by the worker's consumer tasks: the pool gets that
    /// many on top of `redis.pool_size`.
    pub fn new(settings: &RedisSettings, jobs: &JobSettings, consumers: usize) -> anyhow::Result<Option<Self>> {
        let Some(url) = &settings.url else { return Ok(None) };
        let client = Client::open(url.expose_secret()).context("redis.url: not a Redis URL")?;
        let timeout = Duration::from_millis(settings.timeout_ms);
        let shared_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        // A blocking read legitimately waits the whole block time for its answer.
        let blocking_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout + Duration::from_millis(jobs.block_ms)));
        let manager = Manager::new_with_config(url.expose_secret(), blocking_config).context("redis.url")?;
        let blocking = Pool::builder(manager)
            .max_size(settings.pool_size + consumers)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .context("building the Redis pool")?;
        Ok(Some(Self {
            inner: Arc::new(Inner {
                client,
                shared: OnceCell::new(),
                shared_config,
                blocking,
                prefix: settings.key_prefix.clone(),
            }),
        }))
    }

    /// The shared multiplexed connection (cheap to clone; reconnects after Redis comes back).
    pub async fn connection(&self) -> anyhow::Result<ConnectionManager> {
        let inner = &self.inner;
        let manager = inner.shared.get_or_try_init(|| self.own_connection()).await?;
        Ok(manager.clone())
    }

    /// A multiplexed connection of the caller's own, set up like the shared one. Its reading task runs
    /// on the runtime that opens it: one per HTTP worker keeps each worker's commands on its own thread.
    pub async fn own_connection(&self) -> anyhow::Result<ConnectionManager> {
        let inner = &self.inner;
        ConnectionManager::new_with_config(inner.client.clone(), inner.shared_config.clone())
            .await
            .context("connecting to Redis")
    }

    /// A dedicated connection for a blocking command.
    pub async fn blocking_connection(&self) -> anyhow::Result<deadpool_redis::Connection> {
        self.inner.blocking.get().await.context("getting a Redis connection")
    }

    /// `{prefix}:{name}`: every key of this deployment (and of each test) is under its own prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.inner.prefix)
    }

    /// One PING round trip.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let mut conn = self.connection().await?;
        let _: String = deadpool_redis::redis::cmd("PING").query_async(&mut conn).await.context("PING")?;
        Ok(())
    }
}
