//! `philia-bot handoff list|release`: the conversations a human has taken over.

use clap::Subcommand;
use serde_json::json;

use super::desk::{Desk, print_json, table};
use crate::bot::handoff;

#[derive(Subcommand)]
pub enum Action {
    /// List the conversations in handoff, oldest first.
    List {
        /// Print JSON (for scripts) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Give a conversation back to the bot.
    Release {
        /// The TikTok conversation id, as `handoff list` shows it.
        conversation: String,
    },
}

pub async fn run(desk: &Desk, action: Action) -> anyhow::Result<()> {
    let db = desk.db();
    match action {
        Action::List { json } => {
            let handoffs = handoff::list(db).await?;
            if json {
                let rows = handoffs
                    .iter()
                    .map(|h| {
                        json!({"conversation": h.conversation, "customer": h.customer,
                               "since": h.since.map(|t| t.to_rfc3339()), "reason": h.reason})
                    })
                    .collect();
                return print_json(&rows);
            }
            let since = format!("SINCE ({})", desk.zone());
            let mut t = table(&["CONVERSATION", "CUSTOMER", &since, "REASON"]);
            for h in &handoffs {
                t.add_row([
                    h.conversation.clone(),
                    format!("@{}", h.customer),
                    h.since.map(|at| desk.local(at)).unwrap_or_default(),
                    h.reason.clone().unwrap_or_default(),
                ]);
            }
            println!("{t}\n{} conversation(s) in handoff", handoffs.len());
        }
        Action::Release { conversation } => {
            if handoff::release(db, &conversation).await? {
                println!("{conversation}: back with the bot");
            } else {
                anyhow::bail!("{conversation} is not in handoff (see `philia-bot handoff list`)");
            }
        }
    }
    Ok(())
}
