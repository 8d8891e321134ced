//! The Redis Streams queue: `XADD {prefix}:jobs`, a consumer group `{prefix}:workers`, `XREADGROUP …
//! BLOCK`, `XACK` + `XDEL` once the effects are stored (the stream holds only what is unread or in
//! flight: customer text does not pile up in Redis), `XAUTOCLAIM` for jobs whose consumer died or got
//! stuck, one at a time for a consumer that is free to run it, and a dead-letter stream `{prefix}:dead`
//! for jobs that failed `jobs.max_deliveries` times. A job held back behind an earlier message of its
//! conversation is put back at the tail (the copy added and the original acknowledged in one script),
//! so it never holds a consumer while that message is unread. A customer message's entry carries its turn
//! (a `turn` field); workers register the turns of entries added since the last check, in the script
//! that checks a turn's order ([`REGISTER_SCRIPT`]), so the webhook pays one `XADD` and nothing more.
//! At least once: a job is acknowledged only once
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
    Backend, DeadJob, Delivery, Earlier, InboundTurn, Job, MessageV1, QueueError, QueueParams, QueueStats, decode,
    earlier_of,
};
use crate::config::JobSettings;
use crate::redis_pool::Redis;

/// The field of a stream entry that holds the job's JSON.
const JOB_FIELD: &str = "job";
/// The field of a requeued entry that holds when its job was first put back (milliseconds since the epoch).
const DEFERRED_FIELD: &str = "deferred";
/// The field of a customer message's entry that holds its turn, as [`turn_field`] writes it.
const TURN_FIELD: &str = "turn";

/// Puts a pending entry back at the tail of the stream, atomically (a script: the copy's id is needed to
/// carry the failures over): only while it is still pending with this consumer, the copy is added first,
/// with the job's failures and last error, then the original acknowledged and deleted. Returns the copy's
/// id, or nil when the entry is no longer this consumer's.
/// The copies are counted (they are no new job: see `entries_added`).
/// The copy carries the job's turn: it is registered like any new entry (`ZADD NX` leaves a turn still
/// registered as it is; one a later message gave up waiting for is registered again, as the job is queued
/// again and the messages after it wait for it).
/// KEYS: stream, failures, errors, requeued count. ARGV: group, consumer, id, payload, first deferred (ms),
/// turn field (empty for a job without one).
const REQUEUE_SCRIPT: &str = r"
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #pending == 0 or pending[1][2] ~= ARGV[2] then return false end
local copy
if ARGV[6] == '' then
  copy = redis.call('XADD', KEYS[1], '*', 'job', ARGV[4], 'deferred', ARGV[5])
else
  copy = redis.call('XADD', KEYS[1], '*', 'job', ARGV[4], 'deferred', ARGV[5], 'turn', ARGV[6])
end
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

/// Registers the turns of the entries added since the last call, atomically: each entry's `turn` field
/// (see [`turn_field`]) is added to its conversation's sorted set with `ZADD NX` (a message registered
/// already keeps its first time), and the marker moves to the last entry scanned. An entry is registered
/// once, so a turn ended (`ZREM`) is never registered again by a later scan. A message's check runs this
/// (to the stream's end) before it reads its conversation's turns, and after the message's entry was
/// added, so every message added before the check (and not ended) is registered when the turns are
/// read: what registering at `XADD` gave, without a second command on every webhook.
/// At most ARGV[2] entries per call, so a backlog never blocks Redis for long: past that the reply says
/// the scan has not caught up, and the caller calls again. Without the marker (Redis lost it), the scan
/// starts from the first entry: the stream holds only jobs not yet acknowledged, whose turns are due.
/// Entries without the field (echoes; jobs queued by a release that registered at `XADD`) are skipped.
/// The turns keys are built here from ARGV[1], not declared: one Redis, no cluster.
/// KEYS: stream, marker. ARGV: turns prefix (`{prefix}:turns:`), batch size. Returns 1 when the scan
/// reached the stream's end, else 0.
const REGISTER_SCRIPT: &str = r"
local last = redis.call('GET', KEYS[2])
local from = last and ('(' .. last) or '-'
local batch = tonumber(ARGV[2])
local entries = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', batch)
for _, entry in ipairs(entries) do
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'turn' then
      local at, length, rest = string.match(fields[i + 1], '^(%-?%d+):(%d+):(.*)$')
      if at then
        length = tonumber(length)
        redis.call('ZADD', ARGV[1] .. string.sub(rest, 1, length), 'NX', at, string.sub(rest, length + 1))
      end
      break
    end
  end
end
if #entries > 0 then redis.call('SET', KEYS[2], entries[#entries][1]) end
if #entries < batch then return 1 end
return 0
";

/// How many entries one call of [`REGISTER_SCRIPT`] registers at most. Each costs Redis about 37,000
/// instructions (callgrind, Redis 7.0: the entry read into Lua with its job about 19,000, the `ZADD` of a
/// new conversation about 15,600). On 2 cores at a load average of 7.7, a call of 64 held Redis about
/// 650 µs, of 32 about 350 µs: so 32, whatever the backlog, and a webhook's `XADD` never waits long
/// behind one; the call's own cost (about 27,000) is still small spread over the batch.
const REGISTER_BATCH: u64 = 32;
/// How many calls of [`REGISTER_SCRIPT`] one check makes at most before it reads the turns as they are:
/// about a million entries, the default `jobs.stream_max_len`. Past it the message goes by the turns
/// registered so far (it may run before an earlier message not yet scanned) rather than keep its
/// consumer scanning; the checks after it go on from the marker.
const REGISTER_MAX_CALLS: u32 = 32_768;

/// A customer message's turn as its entry carries it: `<at_ms>:<conversation's length in bytes>:<conversation><key>`.
/// The length makes it unambiguous whatever bytes TikTok's ids hold; [`REGISTER_SCRIPT`] reads it.
fn turn_field(at_ms: i64, conversation: &str, key: &str) -> Vec<u8> {
    // itoa, not `format!`: this runs on every webhook, and the formatting machinery costs several times as much.
    let mut number = itoa::Buffer::new();
    let mut field = Vec::with_capacity(conversation.len() + key.len() + 32);
    field.extend_from_slice(number.format(at_ms).as_bytes());
    field.push(b':');
    field.extend_from_slice(number.format(conversation.len()).as_bytes());
    field.push(b':');
    field.extend_from_slice(conversation.as_bytes());
    field.extend_from_slice(key.as_bytes());
    field
}

/// A Lua script run by its SHA1 (`EVALSHA`), sent whole (`EVAL`, which caches it) only when Redis does not
/// know it (first use, or after a restart): the script is not sent and hashed again on every call.
struct Script {
    source: &'static str,
    sha1: String,
}

impl Script {
    fn new(source: &'static str) -> Self {
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, source.as_bytes());
        Self { source, sha1: hex::encode(sha1) }
    }

    /// Runs the script with `keys` and `args`, then `then` in the same round trip; both replies.
    async fn invoke_then<T: redis::FromRedisValue, U: redis::FromRedisValue>(
        &self,
        conn: &mut ConnectionManager,
        keys: &[&str],
        args: &[&[u8]],
        then: &Cmd,
    ) -> Result<(T, U), RedisError> {
        let pipeline = |name: &str, body: &str| {
            let mut pipe = redis::Pipeline::with_capacity(2);
            let script = pipe.cmd(name).arg(body).arg(keys.len());
            for key in keys {
                script.arg(*key);
            }
            for arg in args {
                script.arg(*arg);
            }
            pipe.add_command(then.clone());
            pipe
        };
        match pipeline("EVALSHA", &self.sha1).query_async(conn).await {
            Err(e) if e.code() == Some("NOSCRIPT") => pipeline("EVAL", self.source).query_async(conn).await,
            result => result,
        }
    }
}

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
    /// `{prefix}:turns-registered`: the id of the last entry whose turn was registered.
    turns_registered: String,
    register: Script,
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
                turns_registered: redis.key("turns-registered"),
                register: Script::new(REGISTER_SCRIPT),
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

    /// `XADD` on `connection` (a producer's own), or on the shared connection. A customer message's entry
    /// carries its turn, which the workers register before any check that follows this `XADD`
    /// ([`REGISTER_SCRIPT`]), so a later message of the same customer waits for it; one command, the
    /// webhook's only one (registering here too, with a `ZADD` in the same round trip, cost Redis about
    /// 9,000 instructions per webhook on top of the `XADD`'s 10,000, and this process about 3,000).
    pub(super) async fn enqueue(
        &self,
        connection: Option<&OnceCell<ConnectionManager>>,
        payload: &[u8],
        ordered: Option<&MessageV1>,
    ) -> Result<String, QueueError> {
        let mut conn = match connection {
            Some(own) => own.get_or_try_init(|| self.inner.redis.own_connection()).await?.clone(),
            None => self.inner.redis.connection().await?,
        };
        let turn = ordered.map(|m| turn_field(m.turn_at_ms(), &m.conversation_id, &m.idempotency_key));
        // Sized up front: built argument by argument, the command's buffer grew (and was copied) about
        // seven times on its way to the payload's size.
        let size = self.inner.stream.len() + payload.len() + turn.as_ref().map_or(0, Vec::len) + 80;
        let mut xadd = Cmd::with_capacity(7, size);
        xadd.arg("XADD").arg(&self.inner.stream).arg("*").arg(JOB_FIELD).arg(payload);
        if let Some(turn) = &turn {
            xadd.arg(TURN_FIELD).arg(turn.as_slice());
        }
        Ok(xadd.query_async(&mut conn).await.context("XADD")?)
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
    ///
    /// First registers the turns of the entries queued since the last check ([`REGISTER_SCRIPT`]), in
    /// calls of at most [`REGISTER_BATCH`] entries until the scan reaches the stream's end; the turns
    /// are read by a plain `ZRANGE` in the same round trip, right after the script (in Lua it cost Redis
    /// about twice as much). Not in one atomic step, and it need not be: whatever runs between the two
    /// registers turns or ends them, as it might just before the check.
    pub(super) async fn earlier_turn(&self, turn: &InboundTurn) -> Result<Option<Earlier>, QueueError> {
        let mut conn = self.inner.redis.connection().await?;
        let mut first_two = cmd("ZRANGE");
        first_two.arg(self.turns_key(&turn.conversation)).arg(0).arg(1).arg("WITHSCORES");
        let prefix = [self.inner.turns_prefix.as_str(), ":"].concat();
        let keys = [self.inner.stream.as_str(), self.inner.turns_registered.as_str()];
        let batch = REGISTER_BATCH.to_string();
        let mut calls = 0;
        loop {
            calls += 1;
            let (caught_up, first_two): (bool, Vec<(String, i64)>) = self
                .inner
                .register
                .invoke_then(&mut conn, &keys, &[prefix.as_bytes(), batch.as_bytes()], &first_two)
                .await
                .context("registering turns, ZRANGE")?;
            if !caught_up && calls < REGISTER_MAX_CALLS {
                continue;
            }
            if !caught_up {
                let entries = u64::from(calls) * REGISTER_BATCH;
                tracing::warn!(stream = %self.inner.stream, entries, "the turns of a long backlog are not all registered yet; the message goes by those that are");
            }
            return Ok(earlier_of(turn, first_two.into_iter().map(|(key, at)| (at, key))));
        }
    }

    /// Puts the consumer's pending entry `id` back at the tail of the stream (see
    /// [`Delivery::requeue`](super::Delivery::requeue)); nothing when it is no longer pending with this
    /// consumer (taken over meanwhile: the new owner settles it).
    pub(super) async fn requeue(
        &self,
        id: &str,
        payload: &str,
        turn: Option<&InboundTurn>,
        first_deferred: DateTime<Utc>,
    ) -> Result<(), QueueError> {
        let mut conn = self.inner.redis.connection().await?;
        let turn = turn.map_or_else(Vec::new, |t| turn_field(t.at_ms, &t.conversation, &t.key));
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
            .arg(turn)
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
        let mut pipe = redis::pipe();
        let xadd = pipe.atomic().cmd("XADD").arg(&self.inner.stream).arg("*").arg(JOB_FIELD).arg(&payload);
        // A new job: its turn is registered again (it ended when the job died), so the customer's messages
        // written after it wait for it.
        if let Some(turn) = decode(&payload).ok().as_ref().and_then(Job::turn) {
            xadd.arg(TURN_FIELD).arg(turn_field(turn.at_ms, &turn.conversation, &turn.key));
        }
        let (id,): (String,) = pipe
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_field_says_where_the_conversation_ends_whatever_bytes_it_holds() {
        assert_eq!(
            turn_field(1_767_225_599_873, "Cgw4LjE+Y29udjE=", "im_receive_msg:7"),
            b"1767225599873:16:Cgw4LjE+Y29udjE=im_receive_msg:7"
        );
        assert_eq!(turn_field(-5, "a: b", "k e:y"), b"-5:4:a: bk e:y");
        assert_eq!(turn_field(0, "", "k"), b"0:0:k");
        assert_eq!(turn_field(i64::MIN, "c", ""), b"-9223372036854775808:1:c");
    }
}
