//! `philia-bot migrate up|down|status`: the database schema, on `DATABASE_URL` or the embedded SQLite file.

use clap::Subcommand;

use crate::config::{Environment, Settings};
use crate::store;

#[derive(Subcommand)]
pub enum Action {
    /// Apply every pending migration.
    Up,
    /// Roll back migrations: all of them (removing the schema and its data) unless --steps is given.
    Down {
        /// Roll back only this many migrations, newest first.
        #[arg(long)]
        steps: Option<u32>,
        /// Required in production: rolling back deletes data.
        #[arg(long)]
        yes: bool,
    },
    /// List every migration and whether it is applied.
    Status,
}

pub async fn run(settings: Settings, action: Action) -> anyhow::Result<()> {
    let db = crate::startup::connect_database(&settings).await?;
    let target = settings.database.describe();
    match action {
        Action::Up => {
            let pending = store::pending_migrations(&db).await?;
            store::migrate_up(&db).await?;
            println!("{target}: applied {} migration(s)", pending.len());
        }
        Action::Down { steps, yes } => {
            if settings.environment == Environment::Production && !yes {
                anyhow::bail!("refusing to roll back a production database without --yes (it deletes data)");
            }
            store::migrate_down(&db, steps).await?;
            match steps {
                Some(n) => println!("{target}: rolled back {n} migration(s)"),
                None => println!("{target}: rolled back every migration"),
            }
        }
        Action::Status => {
            for (name, applied) in store::migration_status(&db).await? {
                println!("{} {name}", if applied { "applied" } else { "pending" });
            }
        }
    }
    db.close().await?;
    Ok(())
}
