//! The `philia-bot` command line: one file per command group. Each parses its arguments (clap), calls the
//! library and prints what it returns, here at the edge where errors become messages and exit codes.

mod chat;
mod config;
mod desk;
mod handoff;
mod health;
mod inventory;
mod jobs;
mod migrate;
mod orders;
mod serve;
mod sign;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Environment, Settings};
use crate::telemetry;

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
    Serve(serve::Args),
    /// Manage the database schema (DATABASE_URL, or the embedded SQLite file).
    Migrate {
        #[command(subcommand)]
        action: migrate::Action,
    },
    /// Talk to the bot in this terminal, as a customer would on TikTok, before it goes live.
    ///
    /// Runs the whole bot in-process on the embedded default (a temporary SQLite database, the
    /// in-process queue, the dry-run sender, the demo inventory) and posts each line typed to its webhook
    /// as TikTok would. Reads standard input when it is not a terminal, so it can be scripted:
    /// `printf 'hi\n2\n' | philia-bot chat`. Commands: /as NAME, /menu, /state, /reset, /quit.
    Chat(chat::Args),
    /// Print the TikTok-Signature header for a webhook body (signed now), to post a valid webhook by hand.
    Sign(sign::Args),
    /// The shop's stock: import the inventory file, export it, list items, take one off sale.
    Inventory {
        #[command(flatten)]
        desk: DeskArgs,
        #[command(subcommand)]
        action: inventory::Action,
    },
    /// Orders: list and show them; move them along (the customer is told), correct tracking and address.
    Orders {
        #[command(flatten)]
        desk: DeskArgs,
        #[command(subcommand)]
        action: orders::Action,
    },
    /// Conversations a human has taken over (the bot stays silent in them).
    Handoff {
        #[command(flatten)]
        desk: DeskArgs,
        #[command(subcommand)]
        action: handoff::Action,
    },
    /// The job queue's dead letters: list them, replay them once the cause is fixed, or drop them
    /// (REDIS_URL).
    Jobs {
        #[command(subcommand)]
        action: jobs::Action,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: config::Action,
    },
    /// Ask a running philia-bot whether it is ready (exit 0) or not (exit 1): the container health check.
    Health(health::Args),
}

/// What every staff command takes.
#[derive(clap::Args)]
struct DeskArgs {
    /// Without DATABASE_URL, create the embedded SQLite database when it does not exist yet (otherwise a
    /// staff command refuses, rather than show a fresh, empty shop).
    #[arg(long, global = true)]
    create: bool,
}

/// Parses the command line, runs the command and says how it went as the process's exit code.
pub async fn run() -> ExitCode {
    crate::install_crypto_provider();
    let cli = Cli::parse();
    // .env fills only variables that are not set already; a missing file is normal.
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!(".env: {e}");
        return ExitCode::from(2);
    }
    // Before anything can fail or panic; the guard flushes pending reports when this returns.
    let _error_reporting = telemetry::error_reporting(Environment::from_process_env().unwrap_or(Environment::Local));
    run_command(&cli.config_dir, cli.command).await.unwrap_or_else(|refused| refused)
}

/// Runs one command; `Err` is the exit code of settings that could not be loaded.
async fn run_command(config_dir: &Path, command: Command) -> Result<ExitCode, ExitCode> {
    Ok(match command {
        Command::Config { action } => config::run(config_dir, action),
        Command::Sign(args) => printed(sign::run(args)),
        Command::Health(args) => printed(health::run(args).await),
        // Not logged_settings: the chat sets up its own (quiet) logging, so the transcript stays readable.
        Command::Chat(args) => printed(chat::run(settings(config_dir)?, args).await),
        Command::Serve(args) => logged(serve::run(logged_settings(config_dir)?, args).await),
        Command::Migrate { action } => logged(migrate::run(logged_settings(config_dir)?, action).await),
        Command::Jobs { action } => printed(jobs::run(staff_settings(config_dir)?, action).await),
        Command::Handoff { desk, action } => {
            printed(at_desk(staff_settings(config_dir)?, desk, async |d| handoff::run(d, action).await).await)
        }
        Command::Inventory { desk, action } => {
            printed(at_desk(staff_settings(config_dir)?, desk, async |d| inventory::run(d, action).await).await)
        }
        Command::Orders { desk, action } => {
            printed(at_desk(staff_settings(config_dir)?, desk, async |d| orders::run(d, action).await).await)
        }
    })
}

/// The settings from `config_dir` and the environment; when they cannot be used, every problem is said
/// on standard error and the exit code is 2.
fn settings(config_dir: &Path) -> Result<Settings, ExitCode> {
    Settings::load(config_dir).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

/// [`settings`], with the process's logging set up from them.
fn logged_settings(config_dir: &Path) -> Result<Settings, ExitCode> {
    let settings = settings(config_dir)?;
    telemetry::init(&settings.log, settings.environment);
    Ok(settings)
}

/// [`settings`], with logging on standard error: a staff command's standard output is its answer (a
/// table, JSON for scripts).
fn staff_settings(config_dir: &Path) -> Result<Settings, ExitCode> {
    let settings = settings(config_dir)?;
    telemetry::init_on_stderr(&settings.log, settings.environment);
    Ok(settings)
}

/// Runs a staff command at the shop's desk (its database, bot and sending, opened as `serve` would open
/// them), and closes the database after it.
async fn at_desk(
    settings: Settings,
    args: DeskArgs,
    command: impl AsyncFnOnce(&desk::Desk) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let desk = desk::Desk::open(settings, args.create).await?;
    let done = command(&desk).await;
    desk.close().await?;
    done
}

/// The end of a command whose logs are set up: an error is logged once, with its cause chain, where
/// operators look.
fn logged(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "fatal");
            ExitCode::FAILURE
        }
    }
}

/// The end of a command a person reads in a terminal: an error goes to standard error.
fn printed(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
