//! What every job of the worker shares: the event's idempotency lease, what a job amounted to, and the
//! message as the ledger stores it.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::jobs::{JobError, MessageV1};
use crate::state::AppState;
use crate::store::ledger::Received;

/// What running a job amounted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Processed,
    /// The event had been processed before (a redelivery): nothing was stored or sent again.
    Duplicate,
    /// Another delivery of the event holds its lease and may still fail: this copy did nothing and is
    /// left pending (not acknowledged, not counted as a failure), to be looked at again later.
    Deferred,
    /// An earlier message of the conversation is queued and not running: this job did nothing and goes
    /// to the back of the queue (no failure), remembering when it was first put back.
    Requeued {
        first_deferred: DateTime<Utc>,
    },
}

/// Where the delivery of an event stands, as its idempotency key says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EventState {
    /// No delivery is running it (it waits in the queue, or failed and waits to be taken over).
    Idle,
    /// A delivery holds its lease: it is running.
    Running,
    /// Done (its job may not have ended its turn yet).
    Done,
}

/// The message as the ledger stores it.
pub(super) fn received(message: &MessageV1) -> Received<'_> {
    Received {
        tiktok_message_id: message.message_id.as_deref(),
        message_type: &message.message_type,
        text: message.text.as_deref(),
        media_id: message.media_id.as_deref(),
        event_id: &message.idempotency_key,
        at: message.sent_at(),
    }
}

/// How long "this event is done" is remembered in Redis; the database row is the durable guard.
const DONE_TTL: Duration = Duration::from_secs(72 * 3600);
const DONE: &str = "done";
/// How often a copy that found its event's lease held looks at the key again.
const LEASE_WATCH_INTERVAL: Duration = Duration::from_millis(50);

fn lease_key(state: &AppState, event_id: &str) -> String {
    state.kv.key(&format!("idem:{event_id}"))
}

/// An event's idempotency lease: a `SET NX` on the event's key, so one delivery of an event runs at a
/// time (it lapses on its own if its worker dies, so the job can run again elsewhere), then a done
/// marker. The `processed_events` row, written in the same transaction as the job's effects, is the
/// durable guard behind both.
pub(super) struct Lease<'a> {
    state: &'a AppState,
    key: String,
    token: String,
}

impl<'a> Lease<'a> {
    /// Takes the lease on an event; otherwise what this copy of the job amounts to: `Duplicate` once
    /// the key says the event is done. Another delivery holding the lease may still fail, and a
    /// redelivered stream entry may be this very entry (taken over while it runs), so a copy that finds
    /// a lease is never acknowledged on that ground: it watches the key for up to half the job timeout
    /// (done: a duplicate; the lease gone: this copy runs the job), then gives up as `Deferred`, left
    /// pending without counting as a failure.
    pub(super) async fn take(state: &'a AppState, event_id: &str) -> Result<Result<Self, Outcome>, JobError> {
        let key = lease_key(state, event_id);
        let token = format!("lease:{}", uuid::Uuid::new_v4().simple());
        let ttl = Duration::from_millis(state.settings.worker.job_timeout_ms);
        let watch_until = tokio::time::Instant::now() + ttl / 2;
        loop {
            if state.kv.set_if_absent(&key, &token, ttl).await? {
                return Ok(Ok(Self { state, key, token }));
            }
            if state.kv.get(&key).await?.as_deref() == Some(DONE) {
                tracing::debug!(event_id, "event done before");
                return Ok(Err(Outcome::Duplicate));
            }
            if tokio::time::Instant::now() + LEASE_WATCH_INTERVAL > watch_until {
                tracing::debug!(event_id, "event still being processed by another delivery; left pending");
                return Ok(Err(Outcome::Deferred));
            }
            tokio::time::sleep(LEASE_WATCH_INTERVAL).await;
        }
    }

    /// Where the event stands: a job waiting for it needs to know whether it is being run.
    pub(super) async fn state_of(state: &AppState, event_id: &str) -> Result<EventState, JobError> {
        let key = lease_key(state, event_id);
        Ok(match state.kv.get(&key).await?.as_deref() {
            None => EventState::Idle,
            Some(DONE) => EventState::Done,
            Some(_) => EventState::Running,
        })
    }

    /// Ends the lease with the job's result: the event is marked done when the job succeeded; after a
    /// failure the lease is given back, so the retry can take it.
    pub(super) async fn release(self, result: Result<Outcome, JobError>) -> Result<Outcome, JobError> {
        match &result {
            Ok(_) => self.state.kv.set(&self.key, DONE, DONE_TTL).await?,
            Err(_) => {
                if let Err(e) = self.state.kv.delete_if_equals(&self.key, &self.token).await {
                    tracing::warn!(error = %e, "could not release an idempotency lease; it will lapse");
                }
            }
        }
        result
    }
}
