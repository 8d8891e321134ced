//! The Redis Streams queue: `XADD {prefix}:jobs`, a consumer group `{prefix}:workers`, `XREADGROUP …
//! BLOCK`, `XACK` + `XDEL` once the effects are stored (the stream holds only what is unread or in
//! flight: customer text does not pile up in Redis), `XAUTOCLAIM` for jobs whose consumer died or got
//! stuck, one at a time for a consumer that is free to run it, and a dead-letter stream `{prefix}:dead`
//! for jobs that failed `jobs.max_deliveries` times. A job held back behind an earlier message of its
//! conversation is put back at the tail (the copy added and the original acknowledged in one script),
//! so it never holds a consumer while that message is unread. At least once: a job is acknowledged only once
//! its effects are stored ([`Delivery::ack`](super::Delivery::ack)), its copy is queued or it is a dead
//! letter, and idempotency makes the repeats harmless. Nothing is ever
//! trimmed: above `jobs.stream_max_len` entries a warning is logged instead.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use chrono::{DateTime, Utc};
use deadpool_redis::redis::aio::ConnectionManager;
use deadpool_redis::redis::streams::{
    StreamAutoClaimReply, StreamId, StreamInfoGroupsReply, StreamPendingCountReply, StreamRangeReply, StreamReadReply,
};
use deadpool_redis::redis::{self, Cmd, ErrorKind, RedisError, Value, cmd};
use tokio::sync::OnceCell;

use super::{
    Backend, DeadJob, Delivery, Earlier, InboundTurn, QueueError, QueueParams, QueueStats, decode, earlier_of,
};
use crate::config::JobSettings;
use crate::redis_pool::Redis;

/// The field of a stream entry that holds the job's JSON.
const JOB_FIELD: &str = "job";
/// The field of a requeued entry that holds when its job was first put back (milliseconds since the epoch).
const DEFERRED_FIELD: &str = "deferred";

/// Puts a pending entry back at the tail of the stream, atomically (a script: the copy's id is needed to
/// carry the failures over): only while it is still pending with this consumer, the copy is added first,
/// with the job's failures and last error, then the original acknowledged and deleted. Returns the copy's
/// id, or nil when the entry is no longer this consumer's.
/// The copies are counted (they are no new job: see `entries_added`).
/// KEYS: stream, failures, errors, requeued count. ARGV: group, consumer, id, payload, first deferred (ms).
const REQUEUE_SCRIPT: &str = r"
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #pending == 0 or pending[1][2] ~= ARGV[2] then return false end
local copy = redis.call('XADD', KEYS[1], '*', 'job', ARGV[4], 'deferred', ARGV[5])
for _, hash in ipairs({KEYS[2], KEYS[3]}) do
  local value = redis.call('HGET', hash, ARGV[3])
  if value then
    redis.call('HSET', hash, copy, value)
    redis.call('HDEL', hash, ARGV[3])
  end
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
redis.call('INCR', KEYS[4])
return copy
";

#[derive(Clone)]
pub struct RedisQueue {
    inner: Arc<Inner>,
}

struct Inner {
    redis: Redis,
    params: QueueParams,
    stream: String,
    group: String,
    dead: String,
    errors: String,
    /// Failures recorded per job: what sends a job to the dead letters (deliveries are not: a copy
    /// re-claimed while another runs, or deferred behind its event's lease, never ran).
    failures: String,
    /// How many copies [`RedisQueue::requeue`] added to the stream: not jobs accepted, so
    /// `entries-added` less these is what was enqueued.
    requeued: String,
    /// `{prefix}:turns`, the prefix of each conversation's sorted set of messages queued or running.
    turns_prefix: String,
    consumer: String,
    max_len: u64,
    reclaim_min_idle: Duration,
    reclaim_interval: Duration,
    last_reclaim: Mutex<Option<Instant>>,
    /// When the stream was last found longer than `max_len` (the warning is repeated once a minute).
    last_length_warning: Mutex<Option<Instant>>,
}

/// A job taken over this many times more than `jobs.max_deliveries` without a recorded failure is dead
/// anyway: it kills or hangs its worker each time it runs.
const CRASH_LOOP_FACTOR: u64 = 4;
/// How long a conversation's turns are kept after one of its messages was last done.
const TURNS_LIFE: Duration = Duration::from_secs(24 * 3600);
/// How often a stream over `jobs.stream_max_len` is warned about.
const LENGTH_WARNING_EVERY: Duration = Duration::from_secs(60);

fn is_nogroup(error: &RedisError) -> bool {
    error.code() == Some("NOGROUP") || error.to_string().contains("NOGROUP")
}

impl RedisQueue {
    /// A queue on `redis` for the consumer named `consumer` (one name per process).
    pub fn new(redis: Redis, settings: &JobSettings, consumer: String) -> Self {
        Self {
            inner: Arc::new(Inner {
                stream: redis.key("jobs"),
                group: redis.key("workers"),
                dead: redis.key("dead"),
                errors: redis.key("job-errors"),
                failures: redis.key("job-failures"),
                requeued: redis.key("jobs-requeued"),
                turns_prefix: redis.key("turns"),
                redis,
                params: settings.into(),
                consumer,
                max_len: settings.stream_max_len,
                reclaim_min_idle: Duration::from_millis(settings.reclaim_min_idle_ms),
                reclaim_interval: Duration::from_millis(settings.reclaim_interval_ms),
                last_reclaim: Mutex::new(None),
                last_length_warning: Mutex::new(None),
            }),
        }
    }

    pub fn consumer(&self) -> &str {
        &self.inner.consumer
    }

    pub fn stream_key(&self) -> &str {
        &self.inner.stream
    }

    pub(super) fn max_deliveries(&self) -> u64 {
        self.inner.params.max_deliveries
    }

    /// The sorted set of a conversation's customer messages queued or running, by their timestamp.
    fn turns_key(&self, conversation: &str) -> String {
        // Joined, not `format!`ted: this runs on every webhook, and the formatting machinery costs more.
        [self.inner.turns_prefix.as_str(), ":", conversation].concat()
    }

    /// `XADD` on `connection` (a producer's own), or on the shared connection; a customer message is
    /// also registered in its conversation's turns (`ZADD`, in the same round trip), so a later
    /// message of the same customer waits for it.
    pub(super) async fn enqueue(
        &self,
        connection: Option<&OnceCell<ConnectionManager>>,
        payload: &[u8],
        turn: Option<InboundTurn>,
    ) -> Result<String, QueueError> {
        let mut conn = match connection {
            Some(own) => own.get_or_try_init(|| self.inner.redis.own_connection()).await?.clone(),
            None => self.inner.redis.connection().await?,
        };
        // Sized up front: built argument by argument, the command's buffer grew (and was copied) about
        // seven times on its way to the payload's size.
        let size = self.inner.stream.len() + payload.len() + 64;
        let mut xadd = Cmd::with_capacity(5, size);
        xadd.arg("XADD").arg(&self.inner.stream).arg("*").arg(JOB_FIELD).arg(payload);
        let Some(turn) = turn else {
            return Ok(xadd.query_async(&mut conn).await.context("XADD")?);
        };
        let mut zadd =
            Cmd::with_capacity(5, self.inner.turns_prefix.len() + turn.conversation.len() + turn.key.len() + 64);
        zadd.arg("ZADD").arg(self.turns_key(&turn.conversation)).arg("NX").arg(turn.at_ms).arg(&turn.key);
        // One round trip, two commands, no MULTI: the turn goes first, so a job is never queued unregistered.
        // Should the XADD fail after the ZADD, the webhook is answered 5xx and TikTok's retry queues it under
        // the same member (NX keeps the first timestamp); a turn left without a job is given up on by the
        // worker after the order wait. The expiry is set by the worker when a turn ends (not here: with it,
        // MULTI and PEXPIRE, Redis spent 31k instructions per enqueue instead of 19k, XADD alone 10k).
        let (id,): (String,) = redis::Pipeline::with_capacity(2)
            .add_command(zadd)
            .ignore()
            .add_command(xadd)
            .query_async(&mut conn)
            .await
            .context("XADD")?;
        Ok(id)
    }

    /// Creates the consumer group (and the stream) when missing. The group starts at the beginning of
    /// the stream, so jobs added before any worker ever ran (or after Redis lost the group) are read.
    pub(super) async fn ensure_group(&self) -> Result<(), QueueError> {
        let mut conn = self.inner.redis.connection().await?;
        let created: Result<(), RedisError> = cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.inner.stream)
            .arg(&self.inner.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Ok(()) => {
                tracing::info!(stream = %self.inner.stream, group = %self.inner.group, "created consumer group");
                Ok(())
            }
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(QueueError(anyhow!(e).context("XGROUP CREATE"))),
        }
    }

    /// The next job for the consumer holding `connection` (checked out when `None`, dropped after an
    /// error so the next read starts on a fresh one).
    pub(super) async fn next(
        &self,
        connection: &mut Option<deadpool_redis::Connection>,
    ) -> Result<Option<Delivery>, QueueError> {
        if self.reclaim_due()
            && let Some(delivery) = self.reclaim().await?
        {
            return Ok(Some(delivery));
        }
        let read = self.read_new(connection).await;
        if read.is_err() {
            *connection = None;
        }
        match read {
            Err(e) if is_nogroup(&e) => {
                // Redis lost the group (restart without persistence, FLUSHALL): recreate it and go on.
                tracing::warn!(stream = %self.inner.stream, "consumer group missing; recreating it");
                self.ensure_group().await?;
                Ok(None)
            }
            Err(e) => Err(QueueError(anyhow!(e).context("XREADGROUP"))),
            Ok(entry) => Ok(entry.map(|entry| self.delivery(entry, 1))),
        }
    }

    async fn read_new(
        &self,
        connection: &mut Option<deadpool_redis::Connection>,
    ) -> Result<Option<StreamId>, RedisError> {
        if connection.is_none() {
            let fresh = self
                .inner
                .redis
                .blocking_connection()
                .await
                .map_err(|e| RedisError::from((ErrorKind::Io, "no Redis connection", format!("{e:#}"))))?;
            *connection = Some(fresh);
        }
        let conn = connection.as_mut().expect("set just above");
        let reply: Option<StreamReadReply> = cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.inner.group)
            .arg(&self.inner.consumer)
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(self.inner.params.block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.inner.stream)
            .arg(">")
            .query_async(conn)
            .await?;
        Ok(reply.and_then(|r| r.keys.into_iter().next()).and_then(|k| k.ids.into_iter().next()))
    }

    fn delivery(&self, entry: StreamId, deliveries: u64) -> Delivery {
        let payload = match entry.map.get(JOB_FIELD) {
            Some(Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            Some(Value::SimpleString(text)) => text.clone(),
            _ => String::new(),
        };
        let job = if payload.is_empty() { Err("stream entry has no job field".to_owned()) } else { decode(&payload) };
        let first_deferred = match entry.map.get(DEFERRED_FIELD) {
            Some(Value::BulkString(bytes)) => std::str::from_utf8(bytes).ok().and_then(|ms| ms.parse().ok()),
            Some(Value::SimpleString(text)) => text.parse().ok(),
            _ => None,
        }
        .and_then(DateTime::from_timestamp_millis);
        Delivery { id: entry.id, deliveries, job, payload, first_deferred, backend: Backend::Redis(self.clone()) }
    }

    fn reclaim_due(&self) -> bool {
        let mut last = self.inner.last_reclaim.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = last.is_none_or(|at| at.elapsed() >= self.inner.reclaim_interval);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    /// Takes over one job that a consumer (dead, or stuck past the min-idle time) left unacknowledged,
    /// for the calling consumer, which is free to run it now: claimed into no buffer, its idle clock
    /// never restarts while it waits. When one was found the next consumer looks again at once. A job
    /// that failed `max_deliveries` times (or was taken over far more often without ever failing: it
    /// kills its worker) goes to the dead letters instead. Also warns when the stream is longer than
    /// `jobs.stream_max_len`.
    async fn reclaim(&self) -> Result<Option<Delivery>, QueueError> {
        let mut conn = self.inner.redis.connection().await?;
        self.warn_if_long(&mut conn).await;
        loop {
            let claimed: Result<StreamAutoClaimReply, RedisError> = cmd("XAUTOCLAIM")
                .arg(&self.inner.stream)
                .arg(&self.inner.group)
                .arg(&self.inner.consumer)
                .arg(self.inner.reclaim_min_idle.as_millis() as u64)
                .arg("0-0")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut conn)
                .await;
            let entry = match claimed {
                Ok(reply) => reply.claimed.into_iter().next(),
                Err(e) if is_nogroup(&e) => {
                    self.ensure_group().await?;
                    return Ok(None);
                }
                Err(e) => return Err(QueueError(anyhow!(e).context("XAUTOCLAIM"))),
            };
            let Some(entry) = entry else { return Ok(None) };
            *self.inner.last_reclaim.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
            let deliveries = self.delivery_count(&entry.id).await?;
            let delivery = self.delivery(entry, deliveries);
            let (failures, last_error): (Option<u64>, Option<String>) = redis::pipe()
                .cmd("HGET")
                .arg(&self.inner.failures)
                .arg(&delivery.id)
                .cmd("HGET")
                .arg(&self.inner.errors)
                .arg(&delivery.id)
                .query_async(&mut conn)
                .await
                .context("HGET")?;
            let max = self.max_deliveries();
            if failures.unwrap_or(0) >= max || deliveries > max * CRASH_LOOP_FACTOR {
                let reason = last_error.unwrap_or_else(|| "never acknowledged (its worker died each time)".into());
                self.dead_letter(&delivery, &reason).await?;
                continue;
            }
            tracing::warn!(job_id = %delivery.id, deliveries, "took over an unacknowledged job");
            return Ok(Some(delivery));
        }
    }

    /// The earliest message of the turn's conversation still queued or running, when it was written before
    /// the turn (by timestamp, then key), and whether the turn comes right after it.
    pub(super) async fn earlier_turn(&self, turn: &InboundTurn) -> Result<Option<Earlier>, QueueError> {
        let mut conn = self.inner.redis.connection().await?;
        let first_two: Vec<(String, i64)> = cmd("ZRANGE")
            .arg(self.turns_key(&turn.conversation))
            .arg(0)
            .arg(1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .context("ZRANGE")?;
        Ok(earlier_of(turn, first_two.into_iter().map(|(key, at)| (at, key))))
    }

    /// Puts the consumer's pending entry `id` back at the tail of the stream (see
    /// [`Delivery::requeue`](super::Delivery::requeue)); nothing when it is no longer pending with this
    /// consumer (taken over meanwhile: the new owner settles it).
    pub(super) async fn requeue(
        &self,
        id: &str,
        payload: &str,
        first_deferred: DateTime<Utc>,
    ) -> Result<(), QueueError> {
        let mut conn = self.inner.redis.connection().await?;
        let requeued: Result<Option<String>, RedisError> = cmd("EVAL")
            .arg(REQUEUE_SCRIPT)
            .arg(4)
            .arg(&self.inner.stream)
            .arg(&self.inner.failures)
            .arg(&self.inner.errors)
            .arg(&self.inner.requeued)
            .arg(&self.inner.group)
            .arg(&self.inner.consumer)
            .arg(id)
            .arg(payload)
            .arg(first_deferred.timestamp_millis())
            .query_async(&mut conn)
            .await;
        match requeued {
            Ok(Some(new_id)) => {
                tracing::debug!(job_id = %id, %new_id, "job put back behind an earlier message of its conversation");
                Ok(())
            }
            Ok(None) => {
                tracing::debug!(job_id = %id, "job to put back was taken over meanwhile; left to its new owner");
                Ok(())
            }
            // The group is gone (Redis lost it): nothing is pending, the entry is read again from the start.
            Err(e) if is_nogroup(&e) => Ok(()),
            Err(e) => Err(QueueError(anyhow!(e).context("requeueing a job"))),
        }
    }

    /// Removes the turn; what is left of its conversation's turns (later messages, or a turn whose job
    /// was lost) expires [`TURNS_LIFE`] after this.
    pub(super) async fn end_turn(&self, turn: &InboundTurn) -> Result<(), QueueError> {
        let mut conn = self.inner.redis.connection().await?;
        let turns = self.turns_key(&turn.conversation);
        let () = redis::pipe()
            .cmd("ZREM")
            .arg(&turns)
            .arg(&turn.key)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&turns)
            .arg(TURNS_LIFE.as_millis() as u64)
            .ignore()
            .query_async(&mut conn)
            .await
            .context("ZREM")?;
        Ok(())
    }

    /// Logs a warning (at most once a minute) when the stream holds more than `jobs.stream_max_len`
    /// entries: with acknowledged jobs deleted, that is a backlog; nothing is trimmed.
    async fn warn_if_long(&self, conn: &mut ConnectionManager) {
        let Ok(length) = cmd("XLEN").arg(&self.inner.stream).query_async::<u64>(conn).await else { return };
        if length <= self.inner.max_len {
            return;
        }
        let mut last = self.inner.last_length_warning.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_none_or(|at| at.elapsed() >= LENGTH_WARNING_EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(
                stream = %self.inner.stream,
                length,
                max_len = self.inner.max_len,
                "job stream longer than jobs.stream_max_len: a backlog of unread or unacknowledged jobs; nothing is trimmed"
            );
        }
    }

    async fn delivery_count(&self, id: &str) -> Result<u64, QueueError> {
        let mut conn = self.inner.redis.connection().await?;
        let reply: StreamPendingCountReply = cmd("XPENDING")
            .arg(&self.inner.stream)
            .arg(&self.inner.group)
            .arg(id)
            .arg(id)
            .arg(1)
            .query_async(&mut conn)
            .await
            .context("XPENDING")?;
        Ok(reply.ids.first().map_or(1, |p| p.times_delivered as u64))
    }

    pub(super) async fn ack(&self, id: &str) -> Result<(), QueueError> {
        let mut conn = self.inner.redis.connection().await?;
        // Acknowledged by the only group that reads the stream: deleted in the same step, so the stream
        // keeps no customer text it no longer needs.
        let acked: Result<(), RedisError> = redis::pipe()
            .atomic()
            .cmd("XACK")
            .arg(&self.inner.stream)
            .arg(&self.inner.group)
            .arg(id)
            .ignore()
            .cmd("XDEL")
            .arg(&self.inner.stream)
            .arg(id)
            .ignore()
            .cmd("HDEL")
            .arg(&self.inner.errors)
            .arg(id)
            .ignore()
            .cmd("HDEL")
            .arg(&self.inner.failures)
            .arg(id)
            .ignore()
            .query_async(&mut conn)
            .await;
        match acked {
            Ok(()) => Ok(()),
            // The group is gone (Redis lost it): nothing is pending any more, so nothing to ack.
            Err(e) if is_nogroup(&e) => Ok(()),
            Err(e) => Err(QueueError(anyhow!(e).context("XACK"))),
        }
    }

    /// Remembers why the job failed and counts the failure; it stays pending and is taken over after the
    /// min-idle time. Returns the failures so far.
    pub(super) async fn record_failure(&self, id: &str, error: &str) -> Result<u64, QueueError> {
        let mut conn = self.inner.redis.connection().await?;
        let (failures,): (u64,) = redis::pipe()
            .cmd("HSET")
            .arg(&self.inner.errors)
            .arg(id)
            .arg(error)
            .ignore()
            .cmd("HINCRBY")
            .arg(&self.inner.failures)
            .arg(id)
            .arg(1)
            .query_async(&mut conn)
            .await
            .context("recording a failed job")?;
        Ok(failures)
    }

    /// Copies the job to `{prefix}:dead` with its last error, then acknowledges it, atomically.
    pub(super) async fn dead_letter(&self, delivery: &Delivery, error: &str) -> Result<(), QueueError> {
        tracing::error!(job_id = %delivery.id, deliveries = delivery.deliveries, error, "job moved to the dead letters");
        let mut conn = self.inner.redis.connection().await?;
        let result: Result<(), RedisError> = redis::pipe()
            .atomic()
            .cmd("XADD")
            .arg(&self.inner.dead)
            .arg("*")
            .arg("id")
            .arg(&delivery.id)
            .arg(JOB_FIELD)
            .arg(&delivery.payload)
            .arg("error")
            .arg(error)
            .arg("deliveries")
            .arg(delivery.deliveries)
            .ignore()
            .cmd("XACK")
            .arg(&self.inner.stream)
            .arg(&self.inner.group)
            .arg(&delivery.id)
            .ignore()
            .cmd("XDEL")
            .arg(&self.inner.stream)
            .arg(&delivery.id)
            .ignore()
            .cmd("HDEL")
            .arg(&self.inner.errors)
            .arg(&delivery.id)
            .ignore()
            .cmd("HDEL")
            .arg(&self.inner.failures)
            .arg(&delivery.id)
            .ignore()
            .query_async(&mut conn)
            .await;
        result.context("moving a job to the dead letters")?;
        Ok(())
    }

    /// Entries not yet read by the group plus those read and not acknowledged.
    pub(super) async fn backlog(&self) -> Result<u64, QueueError> {
        let mut conn = self.inner.redis.connection().await?;
        let exists: bool = cmd("EXISTS").arg(&self.inner.stream).query_async(&mut conn).await.context("EXISTS")?;
        if !exists {
            return Ok(0);
        }
        let info: StreamInfoGroupsReply =
            cmd("XINFO").arg("GROUPS").arg(&self.inner.stream).query_async(&mut conn).await.context("XINFO GROUPS")?;
        match info.groups.iter().find(|g| g.name == self.inner.group) {
            Some(group) => Ok((group.pending + group.lag.unwrap_or(0)) as u64),
            None => Ok(cmd("XLEN").arg(&self.inner.stream).query_async(&mut conn).await.context("XLEN")?),
        }
    }

    /// Unread jobs, pending jobs, and how long ago the oldest pending one was enqueued.
    pub(super) async fn stats(&self) -> Result<QueueStats, QueueError> {
        let mut conn = self.inner.redis.connection().await?;
        let exists: bool = cmd("EXISTS").arg(&self.inner.stream).query_async(&mut conn).await.context("EXISTS")?;
        if !exists {
            return Ok(QueueStats::default());
        }
        // The stream's size, whether or not a worker has created the group yet (a web role alone
        // queues jobs with none: that backlog is what the gauges are for).
        let (stream_length, stream_bytes): (u64, Option<u64>) = redis::pipe()
            .cmd("XLEN")
            .arg(&self.inner.stream)
            .cmd("MEMORY")
            .arg("USAGE")
            .arg(&self.inner.stream)
            .query_async(&mut conn)
            .await
            .context("XLEN, MEMORY USAGE")?;
        let stream_bytes = stream_bytes.unwrap_or(0);
        let info: StreamInfoGroupsReply =
            cmd("XINFO").arg("GROUPS").arg(&self.inner.stream).query_async(&mut conn).await.context("XINFO GROUPS")?;
        let Some(group) = info.groups.iter().find(|g| g.name == self.inner.group) else {
            return Ok(QueueStats { waiting: stream_length, stream_length, stream_bytes, ..Default::default() });
        };
        // XPENDING's summary: [count, smallest id, greatest id, consumers]; an id starts with its
        // millisecond timestamp.
        let summary: Value = cmd("XPENDING")
            .arg(&self.inner.stream)
            .arg(&self.inner.group)
            .query_async(&mut conn)
            .await
            .context("XPENDING")?;
        let oldest_ms = match summary {
            Value::Array(parts) => match parts.get(1) {
                Some(Value::BulkString(id)) => {
                    String::from_utf8_lossy(id).split('-').next().and_then(|ms| ms.parse::<u64>().ok())
                }
                _ => None,
            },
            _ => None,
        };
        let now_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
        Ok(QueueStats {
            waiting: group.lag.unwrap_or(0) as u64,
            pending: group.pending as u64,
            oldest_pending: oldest_ms.map_or(Duration::ZERO, |ms| Duration::from_millis(now_ms.saturating_sub(ms))),
            stream_length,
            stream_bytes,
        })
    }

    /// Entries ever added to the stream (`XINFO STREAM`'s `entries-added`, Redis 7) but the copies of jobs
    /// put back in line: the stream's length no longer counts them, as acknowledged jobs are deleted. 0
    /// before the stream exists.
    pub(super) async fn entries_added(&self) -> Result<u64, QueueError> {
        let mut conn = self.inner.redis.connection().await?;
        let exists: bool = cmd("EXISTS").arg(&self.inner.stream).query_async(&mut conn).await.context("EXISTS")?;
        if !exists {
            return Ok(0);
        }
        // Both read in one MULTI: a requeue between them (its copy added, its count raised) would make
        // the difference one short.
        let (info, requeued): (Value, Option<u64>) = redis::pipe()
            .atomic()
            .cmd("XINFO")
            .arg("STREAM")
            .arg(&self.inner.stream)
            .cmd("GET")
            .arg(&self.inner.requeued)
            .query_async(&mut conn)
            .await
            .context("XINFO STREAM, GET")?;
        let field = |name: &str| -> Option<u64> {
            match &info {
                Value::Array(items) => items.chunks(2).find_map(|pair| match pair {
                    [Value::BulkString(key), Value::Int(n)] if key.as_slice() == name.as_bytes() => Some(*n as u64),
                    [Value::SimpleString(key), Value::Int(n)] if key == name => Some(*n as u64),
                    _ => None,
                }),
                Value::Map(items) => items.iter().find_map(|pair| match pair {
                    (Value::BulkString(key), Value::Int(n)) if key.as_slice() == name.as_bytes() => Some(*n as u64),
                    (Value::SimpleString(key), Value::Int(n)) if key == name => Some(*n as u64),
                    _ => None,
                }),
                _ => None,
            }
        };
        match field("entries-added") {
            Some(added) => Ok(added.saturating_sub(requeued.unwrap_or(0))),
            // Before Redis 7: the length, exact only while nothing was acknowledged.
            None => Ok(field("length").unwrap_or(0)),
        }
    }

    /// `XADD`s the dead letter's job to the stream and `XDEL`s the dead letter, in one MULTI.
    pub(super) async fn replay_dead(&self, entry: &str) -> Result<Option<String>, QueueError> {
        let mut conn = self.inner.redis.connection().await?;
        let found: StreamRangeReply =
            cmd("XRANGE").arg(&self.inner.dead).arg(entry).arg(entry).query_async(&mut conn).await.context("XRANGE")?;
        let Some(dead) = found.ids.into_iter().next() else { return Ok(None) };
        let payload: String = dead.get(JOB_FIELD).unwrap_or_default();
        let (id,): (String,) = redis::pipe()
            .atomic()
            .cmd("XADD")
            .arg(&self.inner.stream)
            .arg("*")
            .arg(JOB_FIELD)
            .arg(&payload)
            .cmd("XDEL")
            .arg(&self.inner.dead)
            .arg(entry)
            .ignore()
            .query_async(&mut conn)
            .await
            .context("replaying a dead letter")?;
        Ok(Some(id))
    }

    pub(super) async fn drop_dead(&self, entry: &str) -> Result<bool, QueueError> {
        let mut conn = self.inner.redis.connection().await?;
        let deleted: u64 = cmd("XDEL").arg(&self.inner.dead).arg(entry).query_async(&mut conn).await.context("XDEL")?;
        Ok(deleted > 0)
    }

    pub(super) async fn dead_jobs(&self) -> Result<Vec<DeadJob>, QueueError> {
        let mut conn = self.inner.redis.connection().await?;
        let reply: StreamRangeReply =
            cmd("XRANGE").arg(&self.inner.dead).arg("-").arg("+").query_async(&mut conn).await.context("XRANGE")?;
        Ok(reply
            .ids
            .into_iter()
            .map(|entry| DeadJob {
                id: entry.get("id").unwrap_or_default(),
                entry: entry.id.clone(),
                payload: entry.get(JOB_FIELD).unwrap_or_default(),
                error: entry.get("error").unwrap_or_default(),
                deliveries: entry.get("deliveries").unwrap_or_default(),
            })
            .collect())
    }
}
