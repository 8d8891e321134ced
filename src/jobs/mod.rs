//! The typed job module: the only thing that crosses from the web role to the worker role. A serde enum
//! of versioned jobs, a producer (`enqueue`) and a consumer (`next` → [`Delivery`] with `ack`/`nack`),
//! over Redis Streams (durable, shared by replicas) or an in-process queue (embedded default).

mod memory;
mod redis;

use chrono::{DateTime, Utc};
use deadpool_redis::redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

pub use self::memory::MemoryQueue;
pub use self::redis::RedisQueue;

/// Every kind of job, versioned: a new shape of a job is a new variant, so jobs already queued by an
/// older release still deserialize.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Job {
    /// A customer wrote to the shop (`im_receive_msg`).
    InboundMessageV1(MessageV1),
    /// TikTok's echo of a message the business sent (`im_send_msg`): ours, or a staff reply from the app.
    OutboundEchoV1(MessageV1),
}

/// A customer message's place in its conversation: what orders the conversation's jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundTurn {
    pub conversation: String,
    /// The event's idempotency key.
    pub key: String,
    /// When the customer wrote it (TikTok's timestamp, else when the webhook arrived), in milliseconds.
    pub at_ms: i64,
}

impl Job {
    /// The customer message's turn in its conversation; `None` for jobs that need no order (echoes).
    pub fn turn(&self) -> Option<InboundTurn> {
        self.ordered_message().map(MessageV1::turn)
    }

    /// The message whose turn orders the job: a customer's; `None` for echoes.
    fn ordered_message(&self) -> Option<&MessageV1> {
        match self {
            Job::InboundMessageV1(m) => Some(m),
            Job::OutboundEchoV1(_) => None,
        }
    }

    /// The idempotency key of the webhook event the job came from.
    pub fn idempotency_key(&self) -> &str {
        match self {
            Job::InboundMessageV1(m) | Job::OutboundEchoV1(m) => &m.idempotency_key,
        }
    }
}

/// A message of a conversation as TikTok's webhook describes it. Ids are strings, as TikTok sends them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageV1 {
    pub idempotency_key: String,
    pub event: String,
    #[serde(serialize_with = "rfc3339")]
    pub received_at: DateTime<Utc>,
    pub conversation_id: String,
    pub message_id: Option<String>,
    /// When the customer sent it (TikTok's `timestamp`, milliseconds since the epoch).
    pub sent_at_ms: Option<i64>,
    /// `text`, `image`, `share_post`, `sticker`, `emoji`, `video`, …
    pub message_type: String,
    pub text: Option<String>,
    pub media_id: Option<String>,
    pub from_user_id: String,
    pub from_username: Option<String>,
    pub to_user_id: Option<String>,
    /// Where a message the business sent came from (TikTok's `message_tag.source`): `API` (ours), `APP`
    /// or `WEB` (a person on the shop's side), `OTHERS` (TikTok's automatic messages), `UNKNOWN_SOURCE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// For TikTok's automatic messages: `WELCOME_MESSAGE`, `SUGGESTED_QUESTION`, `AUTO_REPLY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_message_type: Option<String>,
}

/// A time as chrono's serde writes it (RFC 3339, the fractional digits it needs: none, 3, 6 or 9, and
/// `Z`), written digit by digit into a stack buffer: chrono's own `Serialize` goes through `collect_str`
/// a character at a time, and `to_rfc3339_opts` through the formatting machinery and a `String`; on
/// every webhook those cost about 2,500 instructions, this a tenth of that.
fn rfc3339<S: serde::Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    use chrono::{Datelike, Timelike};
    let (year, nanos) = (at.year(), at.nanosecond());
    // Outside four-digit years, or in a leap second (nanoseconds from 1,000,000,000 up), chrono writes it.
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return serializer.serialize_str(&at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true));
    }
    let mut text = *b"0000-00-00T00:00:00.000000000Z";
    let mut put = |end: usize, mut value: u32, digits: usize| {
        for slot in text[end - digits..end].iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(4, year.unsigned_abs(), 4);
    put(7, at.month(), 2);
    put(10, at.day(), 2);
    put(13, at.hour(), 2);
    put(16, at.minute(), 2);
    put(19, at.second(), 2);
    put(29, nanos, 9);
    let digits = match nanos {
        0 => 0,
        n if n % 1_000_000 == 0 => 3,
        n if n % 1_000 == 0 => 6,
        _ => 9,
    };
    let end = if digits == 0 { 19 } else { 20 + digits };
    text[end] = b'Z';
    serializer.serialize_str(std::str::from_utf8(&text[..=end]).unwrap_or_default())
}

impl MessageV1 {
    /// Its place in its conversation.
    pub fn turn(&self) -> InboundTurn {
        InboundTurn {
            conversation: self.conversation_id.clone(),
            key: self.idempotency_key.clone(),
            at_ms: self.turn_at_ms(),
        }
    }

    /// Its turn's time: when it was written, in milliseconds.
    fn turn_at_ms(&self) -> i64 {
        self.sent_at().timestamp_millis()
    }

    /// When it was written: TikTok's timestamp, or when the webhook arrived if TikTok gave none.
    pub fn sent_at(&self) -> DateTime<Utc> {
        self.sent_at_ms.and_then(DateTime::from_timestamp_millis).unwrap_or(self.received_at)
    }
}

/// The earliest customer message of a conversation still queued or running, written before the one asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Earlier {
    pub turn: InboundTurn,
    /// Whether the asking message comes right after it (no other message of the conversation between).
    pub next: bool,
}

/// What `turn` waits for, from the first two of its conversation's turns as (timestamp, key), in order.
fn earlier_of(turn: &InboundTurn, first_two: impl IntoIterator<Item = (i64, String)>) -> Option<Earlier> {
    let mut first_two = first_two.into_iter();
    let (at_ms, key) = first_two.next()?;
    if (at_ms, key.as_str()) >= (turn.at_ms, turn.key.as_str()) {
        return None;
    }
    let next = first_two.next().is_some_and(|(_, second)| second == turn.key);
    Some(Earlier { turn: InboundTurn { conversation: turn.conversation.clone(), key, at_ms }, next })
}

/// Why a job failed, which decides what happens to it.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another try later (a database or network hiccup): the job stays pending.
    #[error("{0:#}")]
    Retryable(anyhow::Error),
    /// Will never succeed (bad data): the job goes to the dead-letter stream at once.
    #[error("{0:#}")]
    Permanent(anyhow::Error),
}

/// A database error is worth another try: the job stays pending and runs again once the database answers.
impl From<sea_orm::DbErr> for JobError {
    fn from(error: sea_orm::DbErr) -> Self {
        JobError::Retryable(error.into())
    }
}

/// So is a Redis hiccup (an idempotency lease that could not be taken or marked done).
impl From<crate::kv::KvError> for JobError {
    fn from(error: crate::kv::KvError) -> Self {
        JobError::Retryable(error.into())
    }
}

/// The queue could not do what was asked (Redis unreachable, in-process queue full, …).
#[derive(Debug, thiserror::Error)]
#[error("job queue: {0:#}")]
pub struct QueueError(#[from] pub anyhow::Error);

/// A job handed to one consumer. It is settled with [`Delivery::ack`] once its effects are stored, or
/// [`Delivery::nack`] with the error; a delivery dropped unsettled is redelivered (Redis: after the
/// reclaim idle time).
pub struct Delivery {
    /// The queue's id of the entry (a stream id on Redis).
    pub id: String,
    /// How many times this job has been handed out, this time included.
    pub deliveries: u64,
    /// The job, or why its payload could not be read (such a job goes to the dead letters at once).
    pub job: Result<Job, String>,
    /// The payload as queued, kept for the dead-letter stream.
    pub payload: String,
    /// When the job was first put back behind an earlier message of its conversation ([`Delivery::requeue`]),
    /// carried by the queue entry (not the job: a replayed dead letter starts afresh); `None` until then.
    pub first_deferred: Option<DateTime<Utc>>,
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Redis(RedisQueue),
    Memory(MemoryQueue),
}

/// What became of a nacked job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NackOutcome {
    /// It will be delivered again.
    Retry,
    /// It went to the dead letters.
    Dead,
}

impl Delivery {
    /// The job's effects are stored: it is done.
    pub async fn ack(self) -> Result<(), QueueError> {
        match &self.backend {
            Backend::Redis(queue) => queue.ack(&self.id).await,
            Backend::Memory(queue) => {
                queue.ack(&self.id);
                Ok(())
            }
        }
    }

    /// The job did not run (another delivery of its event is running): it is offered again later, and
    /// this delivery never counts towards the dead letters. On Redis it simply stays pending.
    pub fn defer(self) {
        match &self.backend {
            Backend::Redis(_) => {}
            Backend::Memory(queue) => {
                queue.retry_later(self.id.clone(), self.payload.clone(), self.deliveries - 1, self.first_deferred);
            }
        }
    }

    /// The job did not run because an earlier message of its conversation is queued and not running: it
    /// goes to the back of the queue, after `pause`, so it never holds a consumer while the earlier one
    /// waits for one. No failed delivery: its failures so far go with it. `first_deferred` is carried, so
    /// the wait stays bounded. At least once: on Redis the copy at the back is added and the original
    /// acknowledged in one script, nothing is acknowledged when the entry is no longer this consumer's;
    /// in-process the job stays in flight until it is back in line.
    pub async fn requeue(self, first_deferred: DateTime<Utc>, pause: std::time::Duration) -> Result<(), QueueError> {
        match &self.backend {
            Backend::Redis(queue) => {
                tokio::time::sleep(pause).await;
                let turn = self.job.as_ref().ok().and_then(Job::turn);
                queue.requeue(&self.id, &self.payload, turn.as_ref(), first_deferred).await
            }
            Backend::Memory(queue) => {
                queue.requeue(self.id.clone(), self.payload.clone(), self.deliveries - 1, first_deferred, pause);
                Ok(())
            }
        }
    }

    /// The job failed: retry it later, or move it to the dead letters when the error is permanent or it
    /// has failed `max_deliveries` times (on Redis the failures are counted, not the deliveries: a
    /// re-claimed copy that never ran is no failure).
    pub async fn nack(self, error: &JobError) -> Result<NackOutcome, QueueError> {
        let reason = error.to_string();
        let permanent = matches!(error, JobError::Permanent(_));
        let dead = permanent || self.deliveries >= self.max_deliveries();
        match &self.backend {
            Backend::Redis(queue) if permanent => queue.dead_letter(&self, &reason).await.map(|()| NackOutcome::Dead),
            Backend::Redis(queue) => {
                let failures = queue.record_failure(&self.id, &reason).await?;
                if failures >= self.max_deliveries() {
                    queue.dead_letter(&self, &reason).await.map(|()| NackOutcome::Dead)
                } else {
                    Ok(NackOutcome::Retry)
                }
            }
            Backend::Memory(queue) if dead => {
                queue.dead_letter(&self, &reason);
                Ok(NackOutcome::Dead)
            }
            Backend::Memory(queue) => {
                queue.retry_later(self.id.clone(), self.payload.clone(), self.deliveries, self.first_deferred);
                Ok(NackOutcome::Retry)
            }
        }
    }

    fn max_deliveries(&self) -> u64 {
        match &self.backend {
            Backend::Redis(queue) => queue.max_deliveries(),
            Backend::Memory(queue) => queue.max_deliveries(),
        }
    }
}

/// A job moved aside for a human to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadJob {
    /// The dead letter's own id (`jobs dead replay|drop` take it).
    pub entry: String,
    /// The job's id on the queue when it died.
    pub id: String,
    pub payload: String,
    pub error: String,
    pub deliveries: u64,
}

/// How deep the queue is, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Enqueued, not yet read by a worker.
    pub waiting: u64,
    /// Read, not yet acknowledged.
    pub pending: u64,
    /// Since the oldest pending job was enqueued (Redis only).
    pub oldest_pending: std::time::Duration,
    /// Entries in the stream (Redis only): acknowledged jobs are deleted, so this is what is unread or
    /// in flight.
    pub stream_length: u64,
    /// The stream's memory in Redis, in bytes (`MEMORY USAGE`; Redis only).
    pub stream_bytes: u64,
}

/// The queue of this deployment: Redis Streams when Redis is configured, else in-process.
#[derive(Clone)]
pub enum JobQueue {
    Redis(RedisQueue),
    Memory(MemoryQueue),
}

impl JobQueue {
    /// Puts a job on the queue; `Ok` means it is durably there (Redis) or held (in-process).
    pub async fn enqueue(&self, job: &Job) -> Result<String, QueueError> {
        self.enqueue_on(None, job).await
    }

    async fn enqueue_on(
        &self,
        connection: Option<&OnceCell<ConnectionManager>>,
        job: &Job,
    ) -> Result<String, QueueError> {
        // Sized for a typical job up front: growing from serde_json's default took three reallocations.
        let mut payload = Vec::with_capacity(1024);
        serde_json::to_writer(&mut payload, job).map_err(|e| QueueError(e.into()))?;
        match self {
            // Redis takes the bytes as they are: serde_json writes UTF-8, and checking it again costs a
            // pass over the job on every webhook. The turn goes in the entry, registered by the workers.
            JobQueue::Redis(queue) => queue.enqueue(connection, &payload, job.ordered_message()).await,
            JobQueue::Memory(queue) => {
                let payload = String::from_utf8(payload).map_err(|e| QueueError(e.into()))?;
                if let Some(turn) = job.turn() {
                    queue.register_turn(&turn.conversation, &turn.key, turn.at_ms);
                }
                queue.enqueue(payload)
            }
        }
    }

    /// The earliest customer message of the same conversation still queued or running, when it was
    /// written before `turn`'s (TikTok's timestamp, then the key): the turn's job runs after it, so a
    /// customer's messages are processed one at a time in the order they were written.
    pub async fn earlier_in_conversation(&self, turn: &InboundTurn) -> Result<Option<Earlier>, QueueError> {
        match self {
            JobQueue::Redis(queue) => queue.earlier_turn(turn).await,
            JobQueue::Memory(queue) => Ok(queue.earlier_turn(turn)),
        }
    }

    /// The turn's job is done (processed, a duplicate, or dead): the conversation's next message may run.
    pub async fn end_turn(&self, turn: &InboundTurn) -> Result<(), QueueError> {
        match self {
            JobQueue::Redis(queue) => queue.end_turn(turn).await,
            JobQueue::Memory(queue) => {
                queue.end_turn(&turn.conversation, &turn.key);
                Ok(())
            }
        }
    }

    /// A handle for one producing thread (an HTTP worker). On Redis it opens a connection of its own on
    /// first use, so each worker's `XADD`s are written and answered on its own thread; through the one
    /// shared connection they would all pass through the thread that happened to open it.
    pub fn producer(&self) -> Producer {
        Producer { queue: self.clone(), connection: OnceCell::new() }
    }

    /// Readies the queue for consuming: on Redis, creates the consumer group when it does not exist yet
    /// (quietly: that is every first start). A failure here is not fatal; reads retry it.
    pub async fn prepare(&self) -> Result<(), QueueError> {
        match self {
            JobQueue::Redis(queue) => queue.ensure_group().await,
            JobQueue::Memory(_) => Ok(()),
        }
    }

    /// A handle for one consumer task. On Redis it keeps its own connection for blocking reads, so a
    /// read costs one round trip rather than a pool checkout (with its health check) each time.
    pub fn consumer(&self) -> Consumer {
        Consumer { queue: self.clone(), connection: None }
    }

    /// Jobs waiting or in flight (Redis: the stream's pending entries plus those not yet read).
    pub async fn backlog(&self) -> Result<u64, QueueError> {
        match self {
            JobQueue::Redis(queue) => queue.backlog().await,
            JobQueue::Memory(queue) => Ok(queue.backlog()),
        }
    }

    /// Jobs accepted since the queue began: the stream's `entries-added` on Redis (acknowledged jobs are
    /// deleted from the stream), the ids handed out in-process. Tests use it to prove a request was not
    /// enqueued.
    pub async fn enqueued_total(&self) -> Result<u64, QueueError> {
        match self {
            JobQueue::Redis(queue) => queue.entries_added().await,
            JobQueue::Memory(queue) => Ok(queue.enqueued_total()),
        }
    }

    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        match self {
            JobQueue::Redis(queue) => queue.stats().await,
            JobQueue::Memory(queue) => Ok(queue.stats()),
        }
    }

    /// The dead letters, oldest first.
    pub async fn dead_jobs(&self) -> Result<Vec<DeadJob>, QueueError> {
        match self {
            JobQueue::Redis(queue) => queue.dead_jobs().await,
            JobQueue::Memory(queue) => Ok(queue.dead_jobs()),
        }
    }

    /// Puts a dead letter's job back on the queue as a new job and removes the dead letter; the new
    /// job's id, or `None` when there is no such dead letter. Safe for a job that had run in part: its
    /// event's idempotency makes the replay finish what is left (replies left pending) and nothing more.
    pub async fn replay_dead(&self, entry: &str) -> Result<Option<String>, QueueError> {
        match self {
            JobQueue::Redis(queue) => queue.replay_dead(entry).await,
            JobQueue::Memory(queue) => queue.replay_dead(entry),
        }
    }

    /// Deletes a dead letter for good; false when there is no such dead letter.
    pub async fn drop_dead(&self, entry: &str) -> Result<bool, QueueError> {
        match self {
            JobQueue::Redis(queue) => queue.drop_dead(entry).await,
            JobQueue::Memory(queue) => Ok(queue.drop_dead(entry)),
        }
    }
}

/// One producing thread's view of the queue (see [`JobQueue::producer`]).
pub struct Producer {
    queue: JobQueue,
    connection: OnceCell<ConnectionManager>,
}

impl Producer {
    /// [`JobQueue::enqueue`], on this producer's own connection.
    pub async fn enqueue(&self, job: &Job) -> Result<String, QueueError> {
        self.queue.enqueue_on(Some(&self.connection), job).await
    }
}

/// One consumer task's view of the queue.
pub struct Consumer {
    queue: JobQueue,
    connection: Option<deadpool_redis::Connection>,
}

impl Consumer {
    /// The next job, waiting at most the configured block time; `None` when idle.
    pub async fn next(&mut self) -> Result<Option<Delivery>, QueueError> {
        match &self.queue {
            JobQueue::Redis(queue) => queue.next(&mut self.connection).await,
            JobQueue::Memory(queue) => Ok(queue.next().await),
        }
    }
}

/// Decodes a queued payload; a payload that is not a known job is reported, not panicked on.
fn decode(payload: &str) -> Result<Job, String> {
    serde_json::from_str(payload).map_err(|e| format!("undecodable job: {e}"))
}

/// A name for this process's consumer, unique across replicas and restarts: host, pid and a random part.
pub fn consumer_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &random[..8])
}

/// Shared by the backends: a job queue's fixed parameters.
#[derive(Debug, Clone)]
struct QueueParams {
    max_deliveries: u64,
    block: std::time::Duration,
}

impl From<&crate::config::JobSettings> for QueueParams {
    fn from(settings: &crate::config::JobSettings) -> Self {
        Self { max_deliveries: settings.max_deliveries, block: std::time::Duration::from_millis(settings.block_ms) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_at_is_written_as_chrono_writes_it() {
        // Whole seconds, each fraction length, the ends of the four-digit years, and a spread of
        // instants across them (a fixed linear congruential sequence: the same on every run).
        let mut instants = vec![(1_767_225_600, 0), (1_767_225_600, 120_000_000), (1_767_225_600, 123_456_000)];
        instants.extend([(1_767_225_600, 123_456_789), (-62_167_219_200, 0), (253_402_300_799, 999_999_999)]);
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2_000 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let secs = (seed >> 20) as i64 % 253_402_300_800 - 62_167_219_200;
            let nanos = match seed % 4 {
                0 => 0,
                1 => (seed >> 8) as u32 % 1_000 * 1_000_000,
                2 => (seed >> 8) as u32 % 1_000_000 * 1_000,
                _ => (seed >> 8) as u32 % 1_000_000_000,
            };
            instants.push((secs, nanos));
        }
        for (secs, nanos) in instants {
            let at = DateTime::from_timestamp(secs, nanos).unwrap();
            let message = MessageV1 {
                idempotency_key: "k".into(),
                event: "im_receive_msg".into(),
                received_at: at,
                conversation_id: "c".into(),
                message_id: None,
                sent_at_ms: None,
                message_type: "text".into(),
                text: None,
                media_id: None,
                from_user_id: "u".into(),
                from_username: None,
                to_user_id: None,
                source: Some("APP".into()),
                auto_message_type: None,
            };
            let written = serde_json::to_value(&message).unwrap();
            assert_eq!(written["received_at"], serde_json::to_value(at).unwrap(), "{secs} s {nanos} ns");
            assert_eq!(serde_json::from_value::<MessageV1>(written).unwrap(), message);
        }
    }
}
