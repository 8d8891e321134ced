//! The worker role: a pool of consumer tasks reading the job queue. Each job runs in its own task under
//! a timeout, so a panic or a hang in one job is a failed delivery, never a crashed worker. On shutdown
//! the consumers stop reading and in-flight jobs get the grace period to finish. The jobs themselves are
//! `inbound` (a customer wrote) and `echo` (TikTok's copy of a message the business sent), each under the
//! event's idempotency lease (`job`); `delivery` sends what they stored, and the `sweeper` does the shop's
//! timed work.

pub mod delivery;
pub mod echo;
pub mod inbound;
mod job;
pub mod sending_rules;
pub mod sweeper;

pub use self::job::Outcome;

use std::time::Duration;

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::jobs::{Delivery, Job, JobError, NackOutcome};
use crate::state::AppState;
use crate::tiktok::client::CALL_DEADLINE;

/// Longest pause between attempts to reach an unavailable queue: workers resume within this long of
/// Redis coming back.
const MAX_QUEUE_BACKOFF: Duration = Duration::from_secs(2);

/// The running consumer tasks of this process.
pub struct WorkerPool {
    tasks: JoinSet<()>,
    grace: Duration,
    /// Cancels the jobs still running when the grace period is over.
    cut_off: CancellationToken,
}

/// The pause before a job is put back behind an earlier message of its conversation a second time or more:
/// it may be alone in the queue (the earlier one failed and waits to be taken over), and would otherwise
/// go round without a pause until the bound.
const REQUEUE_PAUSE: Duration = Duration::from_millis(50);

/// How long consumers get, once their jobs are cut off, to put the jobs back on the queue.
const CUT_OFF_GRACE: Duration = Duration::from_secs(2);

impl WorkerPool {
    /// Starts `worker.concurrency` consumers; each finishes its current job and returns once `shutdown`
    /// fires.
    pub async fn start(state: AppState, shutdown: CancellationToken) -> Self {
        if let Err(e) = state.queue.prepare().await {
            tracing::warn!(error = format!("{e:#}"), "job queue not ready yet; consumers will retry");
        }
        let mut tasks = JoinSet::new();
        let grace = Duration::from_secs(state.settings.worker.shutdown_grace_secs);
        let cut_off = CancellationToken::new();
        for consumer in 0..state.settings.worker.concurrency {
            tasks.spawn(consume(state.clone(), shutdown.clone(), cut_off.clone(), consumer));
        }
        tasks.spawn(sweeper::run(state.clone(), shutdown.clone()));
        tracing::info!(consumers = state.settings.worker.concurrency, "worker pool started");
        Self { tasks, grace, cut_off }
    }

    /// Waits for every consumer to finish its job, at most the grace period (config check holds it to at
    /// least the job timeout, so a job runs to its end). Jobs still running then are cut off: a message
    /// not yet handed to TikTok goes back to `pending`, one in flight becomes `unknown`, and the job is
    /// put back on the queue for the next process.
    pub async fn join(mut self) {
        if tokio::time::timeout(self.grace, Self::drain(&mut self.tasks)).await.is_ok() {
            return;
        }
        tracing::warn!(remaining = self.tasks.len(), "grace period over: cutting off unfinished jobs");
        self.cut_off.cancel();
        if tokio::time::timeout(CUT_OFF_GRACE, Self::drain(&mut self.tasks)).await.is_err() {
            self.tasks.shutdown().await;
        }
    }

    async fn drain(tasks: &mut JoinSet<()>) {
        while let Some(result) = tasks.join_next().await {
            if let Err(e) = result
                && e.is_panic()
            {
                tracing::error!(error = %e, "worker consumer panicked");
            }
        }
    }
}

async fn consume(state: AppState, shutdown: CancellationToken, cut_off: CancellationToken, consumer: usize) {
    let mut queue = state.queue.consumer();
    let mut backoff = Duration::from_millis(100);
    let mut queue_down = false;
    // Shutdown is checked between reads rather than by cancelling a read, so a job Redis has already
    // handed over is never dropped on the floor; a read blocks at most `jobs.block_ms`.
    while !shutdown.is_cancelled() {
        match queue.next().await {
            Ok(Some(delivery)) => {
                queue_down = false;
                backoff = Duration::from_millis(100);
                settle(&state, delivery, &cut_off).await;
            }
            Ok(None) => queue_down = false,
            Err(e) => {
                if !queue_down {
                    tracing::error!(consumer, error = format!("{e:#}"), "job queue unavailable; retrying");
                    queue_down = true;
                }
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_QUEUE_BACKOFF);
            }
        }
    }
}

/// Runs one delivery and acknowledges or nacks it according to the result. The job runs in a task of its
/// own (a panic is a failed delivery); `cut_off` ends it early at the end of a shutdown's grace.
async fn settle(state: &AppState, delivery: Delivery, cut_off: &CancellationToken) {
    let job = match &delivery.job {
        Ok(job) => job.clone(),
        Err(reason) => {
            let error = JobError::Permanent(anyhow!("{reason}"));
            let (id, deliveries) = (delivery.id.clone(), delivery.deliveries);
            report_nack(state, &id, deliveries, delivery.nack(&error).await, &error);
            return;
        }
    };
    let timeout = Duration::from_millis(state.settings.worker.job_timeout_ms);
    let task_state = state.clone();
    // Calls to TikTok start only if they can end before the job is cut off (with a second to record
    // the outcome), so a timeout never leaves a message whose delivery is unknown.
    let margin = (timeout / 4).min(Duration::from_secs(1));
    let deadline = tokio::time::Instant::now() + timeout - margin;
    let job_cut_off = cut_off.clone();
    let first_deferred = delivery.first_deferred;
    let mut task = tokio::spawn(CALL_DEADLINE.scope(deadline, async move {
        tokio::select! {
            result = run_job(&task_state, job, first_deferred) => result,
            // Dropping the job runs its guards: claimed messages go back to `pending` (or `unknown`).
            () = job_cut_off.cancelled() => Err(JobError::Retryable(anyhow!("cut off at shutdown"))),
        }
    }));
    let result = match tokio::time::timeout(timeout, &mut task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join_error)) if join_error.is_panic() => {
            Err(JobError::Retryable(anyhow!("job panicked: {}", panic_message(join_error.into_panic()))))
        }
        Ok(Err(join_error)) => Err(JobError::Retryable(anyhow!("job task failed: {join_error}"))),
        Err(_) => {
            task.abort();
            Err(JobError::Retryable(anyhow!("job timed out after {timeout:?}")))
        }
    };
    let (id, deliveries) = (delivery.id.clone(), delivery.deliveries);
    match result {
        Ok(Outcome::Deferred) => {
            // Left pending on purpose: the copy holding the lease acknowledges it, or fails and the
            // entry is taken over again. Not a failure, so it never counts towards the dead letters.
            tracing::debug!(job_id = %id, "job deferred: another delivery holds its lease");
            delivery.defer();
            state.metrics.job_processed("deferred");
        }
        Ok(Outcome::Requeued { first_deferred }) => {
            // Back at once the first time (the earlier message is most likely right behind it); after that
            // with a pause, so a job alone in the queue behind a failed one does not spin until the bound.
            let pause = if delivery.first_deferred.is_some() { REQUEUE_PAUSE } else { Duration::ZERO };
            match delivery.requeue(first_deferred, pause).await {
                // Put off, as a job behind its event's lease is (the outcomes the README lists).
                Ok(()) => state.metrics.job_processed("deferred"),
                // Still pending: it is taken over after the reclaim time, no failure counted.
                Err(e) => {
                    tracing::warn!(job_id = %id, error = format!("{e:#}"), "could not put a job back in the queue");
                }
            }
        }
        Ok(outcome) => {
            tracing::debug!(job_id = %id, ?outcome, "job done");
            if let Err(e) = delivery.ack().await {
                // The effects are stored; a redelivery is recognised as a duplicate.
                tracing::warn!(job_id = %id, error = format!("{e:#}"), "could not acknowledge a finished job");
            }
            // Counted once acknowledged, so a scrape never shows a job both finished and still pending.
            state.metrics.job_processed(match outcome {
                Outcome::Processed => "processed",
                Outcome::Duplicate | Outcome::Deferred | Outcome::Requeued { .. } => "duplicate",
            });
        }
        Err(error) => {
            let turn = delivery.job.as_ref().ok().and_then(Job::turn);
            let nacked = delivery.nack(&error).await;
            if let (Ok(NackOutcome::Dead), Some(turn)) = (&nacked, turn)
                && let Err(e) = state.queue.end_turn(&turn).await
            {
                tracing::warn!(error = %e, "could not end a dead job's turn");
            }
            report_nack(state, &id, deliveries, nacked, &error);
        }
    }
}

fn report_nack(
    state: &AppState,
    id: &str,
    deliveries: u64,
    nacked: Result<NackOutcome, crate::jobs::QueueError>,
    error: &JobError,
) {
    match nacked {
        Ok(NackOutcome::Retry) => {
            state.metrics.job_retried();
            tracing::warn!(job_id = %id, deliveries, error = %error, "job failed; it will be retried");
        }
        Ok(NackOutcome::Dead) => state.metrics.job_dead(),
        Err(e) => tracing::error!(job_id = %id, error = format!("{e:#}"), "could not record a failed job"),
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic payload".into())
}

/// Runs one job: each kind is a module of named steps. `first_deferred`: when the job was first put back
/// behind an earlier message of its conversation.
async fn run_job(state: &AppState, job: Job, first_deferred: Option<DateTime<Utc>>) -> Result<Outcome, JobError> {
    match job {
        Job::InboundMessageV1(message) => inbound::run(state, &message, first_deferred).await,
        Job::OutboundEchoV1(message) => echo::run(state, &message).await,
    }
}
