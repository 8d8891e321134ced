//! `philia-bot serve`: build the application for its role and run it until SIGTERM/SIGINT.

use std::sync::Arc;

use crate::config::Settings;
use crate::role::Role;
use crate::sandbox::TryOut;
use crate::startup::{Application, StartOptions};

#[derive(clap::Args)]
pub struct Args {
    /// Which parts to run: `all` (ingress + workers), `web` (ingress only) or `worker` (workers only).
    /// Split roles need Redis (REDIS_URL) to share the queue.
    #[arg(long, value_enum, env = "PHILIA_ROLE", default_value = "all")]
    role: Role,
    /// Apply pending migrations before starting (always done on SQLite; explicit on PostgreSQL).
    #[arg(long)]
    migrate: bool,
}

pub async fn run(settings: Settings, args: Args) -> anyhow::Result<()> {
    let mut options = StartOptions::new(args.role, args.migrate);
    // The console's "Try the bot" runs a copy of this server's bot (a thread of its own, started on first use).
    if args.role.runs_web() && settings.staff.enabled {
        options.try_out = Some(Arc::new(TryOut::new(settings.clone())));
    }
    let app = Application::build(settings, options).await?;
    app.run_until_stopped().await
}
