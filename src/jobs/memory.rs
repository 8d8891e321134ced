//! The in-process queue of the embedded default: same contract as Redis, but not durable (jobs in it
//! are lost when the process stops) and seen by this process only.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::{Backend, DeadJob, Delivery, Earlier, InboundTurn, QueueError, QueueParams, decode, earlier_of};
use crate::config::JobSettings;

/// Delay before a failed job is offered again: grows with its deliveries, capped.
fn retry_delay(deliveries: u64) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << deliveries.min(6))).min(Duration::from_secs(5))
}

#[derive(Clone)]
pub struct MemoryQueue {
    inner: Arc<Inner>,
}

struct Inner {
    params: QueueParams,
    capacity: usize,
    next_id: AtomicU64,
    state: Mutex<State>,
    available: Notify,
    /// Told whenever a job leaves the queue for good (acknowledged or dead).
    settled: Notify,
}

/// A job waiting in line.
struct Ready {
    id: String,
    payload: String,
    /// Deliveries so far.
    deliveries: u64,
    /// When it was first put back behind an earlier message of its conversation.
    first_deferred: Option<DateTime<Utc>>,
}

#[derive(Default)]
struct State {
    ready: VecDeque<Ready>,
    /// Handed out and not settled: id → (payload, deliveries).
    in_flight: HashMap<String, (String, u64)>,
    dead: Vec<DeadJob>,
    /// Per conversation, the customer messages queued or running, by the customer's timestamp.
    turns: HashMap<String, BTreeSet<(i64, String)>>,
}

impl MemoryQueue {
    pub fn new(settings: &JobSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                params: settings.into(),
                capacity: settings.memory_capacity,
                next_id: AtomicU64::new(1),
                state: Mutex::new(State::default()),
                available: Notify::new(),
                settled: Notify::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue half-updated (every update is one
        // push or remove), so a poisoned lock is still safe to use.
        self.inner.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a customer message of `conversation` written at `at_ms`, so later ones wait for it; a
    /// message registered already keeps its first time (as `ZADD NX` does on Redis).
    pub(super) fn register_turn(&self, conversation: &str, key: &str, at_ms: i64) {
        let mut state = self.state();
        let turns = state.turns.entry(conversation.to_owned()).or_default();
        if !turns.iter().any(|(_, k)| k == key) {
            turns.insert((at_ms, key.to_owned()));
        }
    }

    /// The earliest message of the turn's conversation still queued or running, when it was written
    /// before the turn, and whether the turn comes right after it.
    pub(super) fn earlier_turn(&self, turn: &InboundTurn) -> Option<Earlier> {
        let state = self.state();
        let turns = state.turns.get(&turn.conversation)?;
        earlier_of(turn, turns.iter().take(2).cloned())
    }

    pub(super) fn end_turn(&self, conversation: &str, key: &str) {
        let mut state = self.state();
        if let Some(turns) = state.turns.get_mut(conversation) {
            turns.retain(|(_, k)| k != key);
            if turns.is_empty() {
                state.turns.remove(conversation);
            }
        }
    }

    pub(super) fn enqueue(&self, payload: String) -> Result<String, QueueError> {
        let id = {
            let mut state = self.state();
            if state.ready.len() + state.in_flight.len() >= self.inner.capacity {
                return Err(QueueError(anyhow!("in-process queue is full ({} jobs)", self.inner.capacity)));
            }
            let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed).to_string();
            state.ready.push_back(Ready { id: id.clone(), payload, deliveries: 0, first_deferred: None });
            id
        };
        self.inner.available.notify_one();
        Ok(id)
    }

    pub(super) async fn next(&self) -> Option<Delivery> {
        let deadline = tokio::time::Instant::now() + self.inner.params.block;
        loop {
            // Register interest before looking, so a job enqueued in between still wakes us.
            let notified = self.inner.available.notified();
            if let Some(Ready { id, payload, deliveries, first_deferred }) = self.take() {
                return Some(Delivery {
                    job: decode(&payload),
                    id,
                    deliveries,
                    payload,
                    first_deferred,
                    backend: Backend::Memory(self.clone()),
                });
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    fn take(&self) -> Option<Ready> {
        let mut state = self.state();
        let mut ready = state.ready.pop_front()?;
        ready.deliveries += 1;
        state.in_flight.insert(ready.id.clone(), (ready.payload.clone(), ready.deliveries));
        Some(ready)
    }

    pub(super) fn ack(&self, id: &str) {
        self.state().in_flight.remove(id);
        self.inner.settled.notify_waiters();
    }

    /// Waits until nothing is waiting or in flight: every job enqueued so far has been acknowledged or
    /// moved to the dead letters (a failed job waiting for its retry is still in flight). Woken by the
    /// queue as jobs settle, so it neither polls nor sleeps.
    pub async fn until_idle(&self) {
        loop {
            let settled = self.inner.settled.notified();
            tokio::pin!(settled);
            // Registered before looking, so a job settling in between still wakes this.
            settled.as_mut().enable();
            if self.backlog() == 0 {
                return;
            }
            settled.await;
        }
    }

    pub(super) fn retry_later(
        &self,
        id: String,
        payload: String,
        deliveries: u64,
        first_deferred: Option<DateTime<Utc>>,
    ) {
        self.back_in_line(Ready { id, payload, deliveries, first_deferred }, retry_delay(deliveries));
    }

    /// Puts a job back at the end of the line after `pause`, keeping when it was first deferred; the
    /// consumer is free at once, and the job counts as in flight until it is back.
    pub(super) fn requeue(
        &self,
        id: String,
        payload: String,
        deliveries: u64,
        first_deferred: DateTime<Utc>,
        pause: Duration,
    ) {
        self.back_in_line(Ready { id, payload, deliveries, first_deferred: Some(first_deferred) }, pause);
    }

    fn back_in_line(&self, ready: Ready, after: Duration) {
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            {
                let mut state = queue.state();
                state.in_flight.remove(&ready.id);
                state.ready.push_back(ready);
            }
            queue.inner.available.notify_one();
        });
    }

    pub(super) fn dead_letter(&self, delivery: &Delivery, error: &str) {
        tracing::error!(job_id = %delivery.id, deliveries = delivery.deliveries, error, "job moved to the dead letters");
        let mut state = self.state();
        state.in_flight.remove(&delivery.id);
        state.dead.push(DeadJob {
            entry: delivery.id.clone(),
            id: delivery.id.clone(),
            payload: delivery.payload.clone(),
            error: error.to_owned(),
            deliveries: delivery.deliveries,
        });
        drop(state);
        self.inner.settled.notify_waiters();
    }

    pub(super) fn backlog(&self) -> u64 {
        let state = self.state();
        (state.ready.len() + state.in_flight.len()) as u64
    }

    /// Jobs waiting and in flight (in-process jobs carry no enqueue time: the oldest age is not kept).
    pub(super) fn stats(&self) -> super::QueueStats {
        let state = self.state();
        super::QueueStats {
            waiting: state.ready.len() as u64,
            pending: state.in_flight.len() as u64,
            ..Default::default()
        }
    }

    pub(super) fn enqueued_total(&self) -> u64 {
        self.inner.next_id.load(Ordering::Relaxed) - 1
    }

    pub(super) fn dead_jobs(&self) -> Vec<DeadJob> {
        self.state().dead.clone()
    }

    pub(super) fn replay_dead(&self, entry: &str) -> Result<Option<String>, QueueError> {
        let dead = {
            let mut state = self.state();
            let Some(at) = state.dead.iter().position(|d| d.entry == entry) else { return Ok(None) };
            state.dead.remove(at)
        };
        // A new job, registered as on Redis: its turn ended when it died.
        if let Some(turn) = decode(&dead.payload).ok().as_ref().and_then(super::Job::turn) {
            self.register_turn(&turn.conversation, &turn.key, turn.at_ms);
        }
        self.enqueue(dead.payload).map(Some)
    }

    pub(super) fn drop_dead(&self, entry: &str) -> bool {
        let mut state = self.state();
        let before = state.dead.len();
        state.dead.retain(|d| d.entry != entry);
        state.dead.len() < before
    }

    pub(super) fn max_deliveries(&self) -> u64 {
        self.inner.params.max_deliveries
    }
}
