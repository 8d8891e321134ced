//! `philia-bot jobs dead list|replay ID|replay --all|drop ID`: the jobs that failed `jobs.max_deliveries`
//! times (or for good) and were moved to the dead-letter stream `{prefix}:dead`, for an on-call engineer
//! to look at, run again once the cause is fixed, or throw away. A replayed job is an ordinary new job:
//! its event's idempotency makes it finish only what was left (a reply still pending is sent, nothing is
//! stored or sent twice).

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;

use super::desk::{print_json, table};
use crate::config::Settings;
use crate::jobs::{DeadJob, Job, JobQueue, RedisQueue, consumer_name};
use crate::redis_pool::Redis;
use crate::telemetry::escape_for_log;

#[derive(Subcommand)]
pub enum Action {
    /// The dead letters.
    Dead {
        #[command(subcommand)]
        action: DeadAction,
    },
}

#[derive(Subcommand)]
pub enum DeadAction {
    /// List the dead letters, oldest first: id, the event, how often it was delivered, its last error.
    List {
        /// Print JSON (for scripts) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Put a dead letter's job back on the queue (the running workers pick it up).
    Replay {
        /// The dead letter's id, as `jobs dead list` shows it.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Replay every dead letter.
        #[arg(long)]
        all: bool,
    },
    /// Delete a dead letter for good.
    Drop {
        /// The dead letter's id, as `jobs dead list` shows it.
        id: String,
    },
}

pub async fn run(settings: Settings, action: Action) -> anyhow::Result<()> {
    let Action::Dead { action } = action;
    let queue = queue(&settings)?;
    match action {
        DeadAction::List { json } => {
            let dead = queue.dead_jobs().await?;
            if json {
                let rows = dead
                    .iter()
                    .map(|d| {
                        json!({"id": d.entry, "job_id": d.id, "event": event_of(d), "deliveries": d.deliveries,
                               "error": d.error})
                    })
                    .collect();
                return print_json(&rows);
            }
            let mut t = table(&["ID", "EVENT", "DELIVERIES", "LAST ERROR"]);
            for d in &dead {
                t.add_row([d.entry.clone(), event_of(d), d.deliveries.to_string(), escape_for_log(&d.error, 200)]);
            }
            println!("{t}\n{} dead letter(s)", dead.len());
        }
        DeadAction::Replay { id: Some(id), .. } => match queue.replay_dead(&id).await? {
            Some(job) => println!("{id}: back on the queue as job {job}"),
            None => bail!("no dead letter {id} (see `philia-bot jobs dead list`)"),
        },
        DeadAction::Replay { id: None, .. } => {
            let dead = queue.dead_jobs().await?;
            for d in &dead {
                if let Some(job) = queue.replay_dead(&d.entry).await? {
                    println!("{}: back on the queue as job {job}", d.entry);
                }
            }
            println!("{} dead letter(s) replayed", dead.len());
        }
        DeadAction::Drop { id } => {
            if !queue.drop_dead(&id).await? {
                bail!("no dead letter {id} (see `philia-bot jobs dead list`)");
            }
            println!("{id}: deleted");
        }
    }
    Ok(())
}

/// The queue of the deployment's Redis; the in-process queue's dead letters live and end in the process
/// that ran them, so without Redis there is nothing to reach.
fn queue(settings: &Settings) -> anyhow::Result<JobQueue> {
    let redis = Redis::new(&settings.redis, &settings.jobs, 0)?.context(
        "no REDIS_URL: without Redis the dead letters are held in the running process's memory and end with it",
    )?;
    Ok(JobQueue::Redis(RedisQueue::new(redis, &settings.jobs, consumer_name())))
}

/// The event a dead job came from (its idempotency key), or why its payload is not a job.
fn event_of(dead: &DeadJob) -> String {
    match serde_json::from_str::<Job>(&dead.payload) {
        Ok(job) => job.idempotency_key().to_owned(),
        Err(_) => "(not a job)".to_owned(),
    }
}
