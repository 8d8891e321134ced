//! `philia-bot serve`: build the application for its role and run it until SIGTERM/SIGINT.

use crate::config::Settings;
use crate::role::Role;
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
    let app = Application::build(settings, StartOptions { role: args.role, migrate: args.migrate }).await?;
    app.run_until_stopped().await
}
