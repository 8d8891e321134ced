//! `philia-bot chat`: talk to the bot in a terminal before it goes live. The whole system runs in this
//! process on the embedded default (a temporary SQLite file, the in-process queue, the dry-run sender,
//! the demo inventory), and every line typed becomes a real TikTok `im_receive_msg` webhook posted to
//! the running ingress (signed when a secret is configured), so it takes exactly the production path.
//! Read from a pipe it prints a transcript: `printf 'hi\n2\n' | philia-bot chat`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde_json::json;
use tokio::sync::mpsc;

use super::inventory::import;
use crate::bot::ConversationState;
use crate::bot::staff::Staff;
use crate::config::Settings;
use crate::role::Role;
use crate::sandbox::{self, Customer};
use crate::shop::holds;
use crate::startup::{Application, StartOptions};
use crate::state::AppState;
use crate::store::entities::messages::{self, Direction, Role as Speaker};
use crate::store::entities::{conversations, items, users};

/// How long a turn may take before the chat says it got no answer (an LLM may be slow).
const PATIENCE: Duration = Duration::from_secs(30);

/// What `chat` runs on besides the config folder's files.
#[derive(clap::Args)]
pub struct Args {
    /// Keep the conversation in this database (a URL) instead of a temporary SQLite file.
    #[arg(long)]
    database: Option<String>,
    /// Load this inventory CSV into an empty database instead of the demo inventory.
    #[arg(long)]
    inventory: Option<PathBuf>,
    /// The customer to start as.
    #[arg(long = "as", default_value = "kim")]
    customer: String,
}

/// Runs the chat until `/quit` or the end of the input.
pub async fn run(settings: Settings, options: Args) -> anyhow::Result<()> {
    let temp = tempfile::tempdir().context("creating a temporary folder for the chat database")?;
    let settings = sandbox::settings_for(settings, options.database.as_deref(), temp.path());
    crate::telemetry::init(&settings.log, settings.environment);
    let secret = settings.tiktok.webhook_secret.clone();
    let app = Application::build(settings, StartOptions::new(Role::All, true)).await?;
    let port = app.port().context("the chat's ingress has no port")?;
    let state = app.state().clone();
    let shutdown = app.shutdown_token();
    let running = tokio::spawn(app.run_until_stopped());

    let interactive = std::io::stdin().is_terminal();
    let mut out = std::io::stdout().lock();
    let loaded = load_inventory(&state, options.inventory.as_deref()).await?;
    writeln!(
        out,
        "philia-bot chat · router: {} · database: {} · {loaded}",
        state.bot.router_name(),
        if options.database.is_some() {
            state.settings.database.describe()
        } else {
            "temporary SQLite (deleted at exit)".into()
        },
    )?;
    writeln!(
        out,
        "Every line is posted to the webhook as TikTok would{}; replies are printed, never sent. Commands: /as NAME, /menu, /state, /reset, /quit.",
        if secret.is_some() { " (signed)" } else { "" }
    )?;
    drop(out);

    let mut lines = read_lines();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/webhook/tiktok");
    let mut customer = Customer { name: if options.customer.is_empty() { "kim".into() } else { options.customer } };
    // Messages already in a kept database (--database) are not printed again.
    let mut seen = last_message_id(&state).await?;
    loop {
        if interactive {
            print!("{} › ", customer.name);
            std::io::stdout().flush()?;
        }
        let Some(line) = lines.recv().await else { break };
        let line = line.trim().to_owned();
        if line.is_empty() {
            continue;
        }
        if !interactive {
            println!("{} › {line}", customer.name);
        }
        let (command, argument) = line.split_once(' ').map_or((line.as_str(), ""), |(c, a)| (c, a.trim()));
        match command {
            "/quit" | "/exit" => break,
            "/as" if !argument.is_empty() => {
                let name: String = argument.chars().filter(|c| c.is_alphanumeric() || *c == '_').collect();
                customer = Customer { name: if name.is_empty() { "kim".into() } else { name } };
                println!("  (now writing as {})", customer.name);
                continue;
            }
            "/state" => {
                println!("{}", describe_state(&state, &customer).await?);
                continue;
            }
            "/reset" => {
                reset(&state, &customer).await?;
                println!("  ({}'s conversation starts over: state idle, no handoff, holds released)", customer.name);
                continue;
            }
            "/menu" => {}
            _ if command.starts_with('/') => {
                println!("  commands: /as NAME (switch customer), /menu, /state, /reset, /quit");
                continue;
            }
            _ => {}
        }
        let text = if command == "/menu" { "menu" } else { line.as_str() };
        let key = sandbox::post(&client, &url, secret.as_ref(), &customer, text).await?;
        print_turn(&state, &customer, &key, &mut seen).await?;
    }
    shutdown.cancel();
    running.await.context("the chat's application task")??;
    Ok(())
}

/// Loads `path` (or the demo inventory) into an empty database; says what the shop has.
pub(super) async fn load_inventory(state: &AppState, path: Option<&std::path::Path>) -> anyhow::Result<String> {
    let count = items::Entity::find().count(&state.db).await?;
    if count > 0 {
        return Ok(format!("{count} item(s) in the database"));
    }
    let staff = Staff::new(state.db.clone(), state.bot.clone(), state.settings.shop.clone());
    let said = match path {
        Some(path) => {
            let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            import(&staff, file, &path.display().to_string(), false, |at| at.to_rfc3339()).await?
        }
        None => {
            let source = "examples/inventory.csv";
            match std::fs::File::open(source) {
                Ok(file) => import(&staff, file, source, false, |at| at.to_rfc3339()).await?,
                Err(_) => {
                    let demo = crate::shop::inventory::DEMO_INVENTORY.as_bytes();
                    import(&staff, demo, "the built-in demo inventory", false, |at| at.to_rfc3339()).await?
                }
            }
        }
    };
    Ok(said.lines().next().unwrap_or_default().replace(": imported", ": loaded"))
}

/// Reads standard input on its own thread (a blocking read must not hold a runtime worker).
fn read_lines() -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if sender.blocking_send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// Waits for the bot to finish the event, then prints its replies, the notices the shop sent others on
/// its own in the same turn (a cancelled hold frees a piece someone waits for), and the conversation's
/// state. `seen` is the last message id printed; one read per turn fetches everything after it.
async fn print_turn(state: &AppState, customer: &Customer, key: &str, seen: &mut i64) -> anyhow::Result<()> {
    if !sandbox::processed(state, key, PATIENCE).await? {
        println!("  (no answer after {} s: see the logs with RUST_LOG=info)", PATIENCE.as_secs());
        return Ok(());
    }
    let new = messages::Entity::find()
        .filter(messages::Column::Id.gt(*seen))
        .filter(messages::Column::Direction.eq(Direction::Out))
        .order_by_asc(messages::Column::Id)
        .find_also_related(conversations::Entity)
        .all(&state.db)
        .await?;
    *seen = new.last().map_or(*seen, |(m, _)| m.id);
    let (replies, others): (Vec<_>, Vec<_>) = new.iter().partition(|(m, _)| m.metadata["in_reply_to"] == json!(key));
    for (reply, _) in &replies {
        print_message("bot", reply);
    }
    for (notice, conversation) in others.iter().filter(|(m, _)| m.role == Speaker::System) {
        let to =
            conversation.as_ref().map_or("?", |c| c.tiktok_conversation_id.trim_start_matches("chat-conversation-"));
        print_message(&format!("bot → {to}"), notice);
    }
    let conversation = conversation_of(state, customer).await?;
    if replies.is_empty() {
        if conversation.as_ref().is_some_and(|c| c.handoff_active) {
            println!("  (no reply: a human has this conversation; /reset gives it back to the bot)");
        } else {
            println!("  (no reply)");
        }
    }
    if let Some(conversation) = conversation {
        println!("  state: {}", state_line(&ConversationState::of(&conversation), conversation.handoff_active));
    }
    Ok(())
}

fn print_message(who: &str, message: &messages::Model) {
    let time = message.created_at.with_timezone(&chrono::Local).format("%H:%M:%S");
    let body = match (&message.text, message.metadata["image_url"].as_str()) {
        (Some(text), _) => text.clone(),
        (None, Some(url)) => format!("[image] {url}"),
        (None, None) => format!("[{}]", message.message_type),
    };
    let indent = " ".repeat(who.chars().count() + 14);
    let lines: Vec<String> = body
        .lines()
        .enumerate()
        .map(|(i, line)| if i == 0 || line.is_empty() { line.to_owned() } else { format!("{indent}{line}") })
        .collect();
    println!("[{time}] {who} › {}", lines.join("\n"));
}

async fn last_message_id(state: &AppState) -> anyhow::Result<i64> {
    Ok(messages::Entity::find().order_by_desc(messages::Column::Id).one(&state.db).await?.map_or(0, |m| m.id))
}

async fn conversation_of(state: &AppState, customer: &Customer) -> anyhow::Result<Option<conversations::Model>> {
    Ok(conversations::Entity::find()
        .filter(conversations::Column::TiktokConversationId.eq(customer.conversation_id()))
        .one(&state.db)
        .await?)
}

async fn user_of(state: &AppState, customer: &Customer) -> anyhow::Result<Option<users::Model>> {
    Ok(users::Entity::find().filter(users::Column::TiktokUserId.eq(customer.user_id())).one(&state.db).await?)
}

fn state_line(state: &ConversationState, handoff: bool) -> String {
    let what = match state {
        ConversationState::Idle => "idle".to_owned(),
        ConversationState::AwaitingOrderNumber => "waiting for an order number".to_owned(),
        ConversationState::ChoosingItem { candidates, more, .. } => format!(
            "choosing from {}{}",
            candidates.join(", "),
            if more.is_some() { " (\"more\" pages on)" } else { "" }
        ),
        ConversationState::AwaitingItem { .. } => "waiting for an item number".to_owned(),
        ConversationState::ViewingItem { sku } => format!("talking about {sku}"),
        ConversationState::AwaitingAddress { .. } => "waiting for a shipping address".to_owned(),
        ConversationState::ConfirmingAddress { .. } => "waiting for the address to be confirmed".to_owned(),
    };
    if handoff { format!("{what}; handed to a human") } else { what }
}

/// `/state`: the conversation's state, handoff, and the customer's holds.
async fn describe_state(state: &AppState, customer: &Customer) -> anyhow::Result<String> {
    let Some(conversation) = conversation_of(state, customer).await? else {
        return Ok(format!("  {} has not written yet", customer.name));
    };
    let mut out = format!(
        "  {}: {}",
        customer.name,
        state_line(&ConversationState::of(&conversation), conversation.handoff_active)
    );
    if let Some(user) = user_of(state, customer).await? {
        for (hold, item) in holds::holds_of(&state.db, user.id).await? {
            out.push_str(&format!(
                "\n  holds {} ({}) until {}",
                item.sku,
                item.title,
                hold.expires_at.format("%H:%M UTC")
            ));
        }
    }
    Ok(out)
}

/// `/reset`: the customer's conversation starts over (idle, back with the bot) and their holds end.
async fn reset(state: &AppState, customer: &Customer) -> anyhow::Result<()> {
    if let Some(conversation) = conversation_of(state, customer).await? {
        crate::bot::handoff::release(&state.db, &conversation.tiktok_conversation_id).await?;
        crate::store::ledger::set_state(&state.db, conversation.id, &ConversationState::Idle, Utc::now()).await?;
    }
    if let Some(user) = user_of(state, customer).await? {
        holds::release_holds(&state.db, user.id, Utc::now()).await?;
    }
    Ok(())
}
