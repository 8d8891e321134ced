//! The worker role: a pool of consumer tasks that stops reading on shutdown and lets in-flight work finish.

use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::startup::AppState;

/// The running worker tasks of this process.
pub struct WorkerPool {
    tasks: JoinSet<()>,
    grace: Duration,
}

impl WorkerPool {
    /// Starts the pool's tasks; each watches `shutdown` and returns when it fires.
    /// The job consumers join this pool with the job queue (`src/jobs/`); today it holds only the
    /// supervisor that keeps the role alive until shutdown.
    pub fn start(state: AppState, shutdown: CancellationToken) -> Self {
        let mut tasks = JoinSet::new();
        let grace = Duration::from_secs(state.settings.worker.shutdown_grace_secs);
        tasks.spawn(async move {
            shutdown.cancelled().await;
            tracing::info!("worker pool: stop reading new jobs");
        });
        Self { tasks, grace }
    }

    /// Waits for every task to finish, at most the configured grace period; the rest are aborted.
    pub async fn join(mut self) {
        let drained = tokio::time::timeout(self.grace, async {
            while let Some(result) = self.tasks.join_next().await {
                if let Err(e) = result
                    && e.is_panic()
                {
                    tracing::error!(error = %e, "worker task panicked");
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                remaining = self.tasks.len(),
                "worker pool: grace period over, aborting remaining tasks"
            );
            self.tasks.shutdown().await;
        }
    }
}
