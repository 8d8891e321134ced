//! `philia-bot handoff list|release`: the conversations a human has taken over.

use clap::Subcommand;

use crate::bot::handoff::{self, Handoff};
use crate::config::Settings;
use crate::store;

#[derive(Subcommand)]
pub enum Action {
    /// List the conversations in handoff, oldest first.
    List,
    /// Give a conversation back to the bot.
    Release {
        /// The TikTok conversation id, as `handoff list` shows it.
        conversation: String,
    },
}

pub async fn run(settings: Settings, action: Action) -> anyhow::Result<()> {
    let db = store::connect(&settings.database, settings.log.sql_statements).await?;
    match action {
        Action::List => {
            let handoffs = handoff::list(&db).await?;
            if handoffs.is_empty() {
                println!("no conversation is in handoff");
            }
            for handoff in &handoffs {
                println!("{}", line(handoff));
            }
        }
        Action::Release { conversation } => {
            if handoff::release(&db, &conversation).await? {
                println!("{conversation}: back with the bot");
            } else {
                anyhow::bail!("{conversation} is not in handoff (see `philia-bot handoff list`)");
            }
        }
    }
    db.close().await?;
    Ok(())
}

/// One conversation in handoff: its id, the customer, since when and why, tab-separated.
fn line(handoff: &Handoff) -> String {
    let since = handoff.since.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default();
    let reason = handoff.reason.as_deref().unwrap_or_default();
    format!("{}\t@{}\tsince {since}\t{reason}", handoff.conversation, handoff.customer)
}
