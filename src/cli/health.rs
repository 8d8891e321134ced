//! `philia-bot health --url …`: the container health probe. The image has no shell and no curl, so its
//! `HEALTHCHECK` (and docker-compose's) asks `/ready` with the bot's own binary.

use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// What to ask, e.g. http://127.0.0.1:8000/ready.
    #[arg(long)]
    url: String,
    /// Milliseconds to wait for the answer (keep it under the health check's own timeout).
    #[arg(long, default_value = "3000")]
    timeout_ms: u64,
}

/// Prints `ok` when the URL answers 2xx in time; otherwise fails with what happened.
pub async fn run(args: Args) -> anyhow::Result<()> {
    crate::healthcheck::check(&args.url, Duration::from_millis(args.timeout_ms)).await.map_err(anyhow::Error::msg)?;
    println!("ok");
    Ok(())
}
