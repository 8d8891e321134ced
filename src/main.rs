//! The `philia-bot` command line: a thin shell over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use philia_bot::config::{self, Role, Settings};
use philia_bot::staff::Staff;
use philia_bot::startup::{Application, StartOptions};
use philia_bot::store::entities::items::ItemStatus;
use philia_bot::store::entities::orders::OrderStatus;
use philia_bot::{store, telemetry};

#[derive(Parser)]
#[command(name = "philia-bot", version, about = "TikTok DM sales and support bot for Philia Thrifts")]
struct Cli {
    /// Folder of the config files (default.toml, {environment}.toml, …).
    #[arg(long, global = true, env = "PHILIA_CONFIG_DIR", default_value = "config")]
    config_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bot: the webhook ingress and/or the worker pool.
    ///
    /// With no configuration at all it runs on the embedded default: SQLite at ./data/philia.db
    /// (migrated on start), the in-process queue, dry-run sending, http://127.0.0.1:8000.
    Serve {
        /// Which parts to run: `all` (ingress + workers), `web` (ingress only) or `worker` (workers only).
        /// Split roles need Redis (REDIS_URL) to share the queue.
        #[arg(long, value_enum, env = "PHILIA_ROLE", default_value = "all")]
        role: Role,
        /// Apply pending migrations before starting (always done on SQLite; explicit on PostgreSQL).
        #[arg(long)]
        migrate: bool,
    },
    /// Manage the database schema (DATABASE_URL, or the embedded SQLite file).
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Talk to the bot in this terminal, as a customer would on TikTok, before it goes live.
    ///
    /// Runs the whole bot in-process on the embedded default (a temporary SQLite database, the
    /// in-process queue, the dry-run sender, the demo inventory) and posts each line typed to its webhook
    /// as TikTok would. Reads standard input when it is not a terminal, so it can be scripted:
    /// `printf 'hi\n2\n' | philia-bot chat`. Commands: /as NAME, /menu, /state, /reset, /quit.
    Chat {
        /// Keep the conversation in this database (a URL) instead of a temporary SQLite file.
        #[arg(long)]
        database: Option<String>,
        /// Load this inventory CSV into an empty database instead of the demo inventory.
        #[arg(long)]
        inventory: Option<PathBuf>,
        /// The customer to start as.
        #[arg(long = "as", default_value = "kim")]
        customer: String,
    },
    /// Print the TikTok-Signature header for a webhook body (signed now), to post a valid webhook by hand.
    Sign {
        /// The webhook secret; defaults to TIKTOK_WEBHOOK_SECRET.
        #[arg(long, env = "TIKTOK_WEBHOOK_SECRET", hide_env_values = true)]
        secret: String,
        /// Print a complete curl command posting the body to this URL instead of the header alone.
        #[arg(long)]
        curl: Option<String>,
        /// The body: a file, or `-` (the default) for standard input.
        #[arg(default_value = "-")]
        file: PathBuf,
    },
    /// The shop's stock: import the inventory file, export it, list items, take one off sale.
    Inventory {
        #[command(subcommand)]
        action: InventoryAction,
    },
    /// Orders: list them; mark them paid, shipped or cancelled (the customer is told).
    Orders {
        #[command(subcommand)]
        action: OrdersAction,
    },
    /// Conversations a human has taken over (the bot stays silent in them).
    Handoff {
        #[command(subcommand)]
        action: HandoffAction,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Subcommand)]
enum MigrateAction {
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

#[derive(Subcommand)]
enum InventoryAction {
    /// Load a CSV file (see examples/inventory.csv): every row is checked first, problems are listed by
    /// row and column and nothing is imported until all are fixed; items are upserted by SKU.
    Import {
        file: PathBuf,
        /// Check the file and say what would change, without writing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write every item as CSV, in the import file's shape (standard output unless --output).
    Export {
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// List items, newest drop first.
    List {
        /// Only items of this status: available, reserved or sold.
        #[arg(long, value_parser = item_status)]
        status: Option<ItemStatus>,
    },
    /// Put an item on sale (`available`) or take it off (`sold`). A hold on it ends.
    SetStatus {
        sku: String,
        #[arg(value_parser = item_status)]
        status: ItemStatus,
    },
}

#[derive(Subcommand)]
enum OrdersAction {
    /// List orders, newest first.
    List {
        /// Only orders of this status: pending, paid, shipped or cancelled.
        #[arg(long, value_parser = order_status)]
        status: Option<OrderStatus>,
    },
    /// Move an order to paid, shipped (with --carrier and --tracking) or cancelled (its items go back
    /// on sale). The customer is told when TikTok lets the shop message them.
    SetStatus {
        number: String,
        #[arg(value_parser = order_status)]
        status: OrderStatus,
        #[arg(long)]
        carrier: Option<String>,
        #[arg(long)]
        tracking: Option<String>,
    },
}

fn item_status(text: &str) -> Result<ItemStatus, String> {
    philia_bot::store::entities::parse_status(text)
        .ok_or_else(|| format!("{text:?} is not an item status (available, reserved, sold)"))
}

fn order_status(text: &str) -> Result<OrderStatus, String> {
    philia_bot::store::entities::parse_status(text)
        .ok_or_else(|| format!("{text:?} is not an order status (pending, paid, shipped, cancelled)"))
}

#[derive(Subcommand)]
enum HandoffAction {
    /// List the conversations in handoff, oldest first.
    List,
    /// Give a conversation back to the bot.
    Release {
        /// The TikTok conversation id, as `handoff list` shows it.
        conversation: String,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Validate every config file and the effective settings; print `ok` (exit 0) or each problem as
    /// `file: field: what is wrong` (exit 1).
    Check {
        /// Also check what this role requires (e.g. Redis for split roles).
        #[arg(long, value_enum, env = "PHILIA_ROLE", default_value = "all")]
        role: Role,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    philia_bot::install_crypto_provider();
    let cli = Cli::parse();
    // .env fills only variables that are not set already; a missing file is normal.
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!(".env: {e}");
        return ExitCode::from(2);
    }
    // Before anything can fail or panic; the guard flushes pending reports when main returns.
    let _error_reporting = philia_bot::telemetry::error_reporting(
        config::Environment::from_process_env().unwrap_or(config::Environment::Local),
    );
    match cli.command {
        Command::Config { action: ConfigAction::Check { role } } => config_check(&cli.config_dir, role),
        Command::Serve { role, migrate } => {
            let settings = match load_settings(&cli.config_dir) {
                Ok(s) => s,
                Err(code) => return code,
            };
            report(serve(settings, StartOptions { role, migrate }).await)
        }
        Command::Chat { database, inventory, customer } => {
            // Not load_settings: the chat sets up its own (quiet) logging, so the transcript stays readable.
            let settings = match Settings::load(&cli.config_dir) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let options = philia_bot::chat::ChatOptions { database, inventory, customer };
            match philia_bot::chat::run(settings, options).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Sign { secret, curl, file } => match sign(&secret, curl.as_deref(), &file) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Inventory { action } => {
            let settings = match load_settings(&cli.config_dir) {
                Ok(s) => s,
                Err(code) => return code,
            };
            print_result(run_inventory(settings, action).await)
        }
        Command::Orders { action } => {
            let settings = match load_settings(&cli.config_dir) {
                Ok(s) => s,
                Err(code) => return code,
            };
            print_result(run_orders(settings, action).await)
        }
        Command::Handoff { action } => {
            let settings = match load_settings(&cli.config_dir) {
                Ok(s) => s,
                Err(code) => return code,
            };
            report(run_handoff(settings, action).await)
        }
        Command::Migrate { action } => {
            let settings = match load_settings(&cli.config_dir) {
                Ok(s) => s,
                Err(code) => return code,
            };
            report(run_migrate(settings, action).await)
        }
    }
}

fn load_settings(config_dir: &std::path::Path) -> Result<Settings, ExitCode> {
    match Settings::load(config_dir) {
        Ok(settings) => {
            telemetry::init(&settings.log, settings.environment);
            Ok(settings)
        }
        Err(e) => {
            eprintln!("{e}");
            Err(ExitCode::from(2))
        }
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Telemetry is up by now: the error is logged once, with its cause chain, where operators look.
            tracing::error!(error = format!("{e:#}"), "fatal");
            ExitCode::FAILURE
        }
    }
}

/// Prints a staff command's answer, or its error (exit 1) on standard error, where a terminal user reads it.
fn print_result(result: anyhow::Result<String>) -> ExitCode {
    match result {
        Ok(text) => {
            if !text.is_empty() {
                println!("{text}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_inventory(settings: Settings, action: InventoryAction) -> anyhow::Result<String> {
    let staff = Staff::open(settings).await?;
    let out = match action {
        InventoryAction::Import { file, dry_run } => staff.import(&file, dry_run).await,
        InventoryAction::Export { output: None } => {
            // The CSV itself is the output: nothing else goes to standard output.
            staff.export(std::io::stdout().lock()).await?;
            Ok(String::new())
        }
        InventoryAction::Export { output: Some(path) } => {
            let file = std::fs::File::create(&path)?;
            let count = staff.export(file).await?;
            Ok(format!("{}: exported {count} item(s)", path.display()))
        }
        InventoryAction::List { status } => staff.list_items(status).await,
        InventoryAction::SetStatus { sku, status } => staff.set_item_status(&sku, status).await,
    };
    staff.db.close().await?;
    out
}

async fn run_orders(settings: Settings, action: OrdersAction) -> anyhow::Result<String> {
    let staff = Staff::open(settings).await?;
    let out = match action {
        OrdersAction::List { status } => staff.list_orders(status).await,
        OrdersAction::SetStatus { number, status, carrier, tracking } => {
            staff.set_order_status(&number, status, carrier.as_deref(), tracking.as_deref()).await
        }
    };
    staff.db.close().await?;
    out
}

async fn serve(settings: Settings, options: StartOptions) -> anyhow::Result<()> {
    let app = Application::build(settings, options).await?;
    app.run_until_stopped().await
}

async fn run_migrate(settings: Settings, action: MigrateAction) -> anyhow::Result<()> {
    let db = store::connect(&settings.database, settings.log.sql_statements).await?;
    let target = settings.database.describe();
    match action {
        MigrateAction::Up => {
            let pending = store::pending_migrations(&db).await?;
            store::migrate_up(&db).await?;
            println!("{target}: applied {} migration(s)", pending.len());
        }
        MigrateAction::Down { steps, yes } => {
            if settings.environment == config::Environment::Production && !yes {
                anyhow::bail!("refusing to roll back a production database without --yes (it deletes data)");
            }
            store::migrate_down(&db, steps).await?;
            match steps {
                Some(n) => println!("{target}: rolled back {n} migration(s)"),
                None => println!("{target}: rolled back every migration"),
            }
        }
        MigrateAction::Status => {
            for (name, applied) in store::migration_status(&db).await? {
                println!("{} {name}", if applied { "applied" } else { "pending" });
            }
        }
    }
    db.close().await?;
    Ok(())
}

/// The signature header for `file`'s bytes, or a curl command that posts them with it.
fn sign(secret: &str, curl: Option<&str>, file: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context;
    use std::io::Read;
    let mut body = Vec::new();
    if file == std::path::Path::new("-") {
        std::io::stdin().read_to_end(&mut body).context("reading the body from standard input")?;
    } else {
        body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    }
    let header = philia_bot::tiktok::signature::sign(secret.as_bytes(), chrono::Utc::now().timestamp(), &body);
    Ok(match curl {
        None => format!("TikTok-Signature: {header}"),
        Some(url) => {
            // Single quotes keep the shell from touching the body; a quote inside it is closed and escaped.
            let quoted = String::from_utf8_lossy(&body).replace('\'', "'\\''");
            format!(
                "curl -sS -X POST '{url}' -H 'Content-Type: application/json' -H 'TikTok-Signature: {header}' --data-binary '{quoted}'"
            )
        }
    })
}

async fn run_handoff(settings: Settings, action: HandoffAction) -> anyhow::Result<()> {
    use philia_bot::bot::handoff;
    let db = store::connect(&settings.database, settings.log.sql_statements).await?;
    match action {
        HandoffAction::List => {
            let handoffs = handoff::list(&db).await?;
            if handoffs.is_empty() {
                println!("no conversation is in handoff");
            }
            for h in handoffs {
                let since = h.since.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default();
                println!("{}\t@{}\tsince {since}\t{}", h.conversation, h.customer, h.reason.unwrap_or_default());
            }
        }
        HandoffAction::Release { conversation } => {
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

fn config_check(config_dir: &std::path::Path, role: Role) -> ExitCode {
    let mut problems = philia_bot::check_config_dir(config_dir);
    // The files are fine on their own: now the layered result, environment variables included.
    if problems.is_empty() {
        match Settings::load(config_dir) {
            Ok(settings) => problems.extend(settings.validate_for_role(role)),
            Err(e) => problems.extend(e.0),
        }
    }
    if problems.is_empty() {
        println!("ok");
        ExitCode::SUCCESS
    } else {
        for problem in &problems {
            println!("{problem}");
        }
        ExitCode::FAILURE
    }
}
