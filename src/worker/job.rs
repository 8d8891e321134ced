//! What every job of the worker shares: the event's idempotency lease, what a job amounted to, and the
//! message as the ledger stores it.

use std::time::Duration;

use crate::jobs::{JobError, MessageV1};
use crate::state::AppState;
use crate::store::ledger::Received;

/// What running a job amounted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Processed,
    /// The event had been processed before (a redelivery): nothing was stored or sent again.
    Duplicate,
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
    /// Takes the lease on an event; `None` when the event is done or another delivery of it holds the
    /// lease. That delivery stays pending until its effects are stored (and is taken over if its worker
    /// dies), so this copy can be settled now either way.
    pub(super) async fn take(state: &'a AppState, event_id: &str) -> Result<Option<Self>, JobError> {
        let key = state.kv.key(&format!("idem:{event_id}"));
        let token = format!("lease:{}", uuid::Uuid::new_v4().simple());
        let ttl = Duration::from_millis(state.settings.worker.job_timeout_ms);
        if !state.kv.set_if_absent(&key, &token, ttl).await? {
            tracing::debug!(event_id, "event done or being processed by another worker");
            return Ok(None);
        }
        Ok(Some(Self { state, key, token }))
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
