//! The `philia-bot` command line: one file per command group. Each parses its arguments (clap), calls the
//! library and prints what it returns, here at the edge where errors become messages and exit codes: a
//! fatal error is one line of text on standard error (its causes once each) and an [`Exit`] code per
//! class of failure, the same for every command and environment (the README lists them).

mod chat;
mod config;
mod customers;
mod desk;
mod eval;
mod handoff;
mod health;
mod inventory;
mod jobs;
mod migrate;
mod orders;
mod serve;
mod sign;
mod staff;
mod tiktok;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Environment, Settings};
use crate::telemetry;

#[derive(Parser)]
#[command(name = "philia-bot", version, about = "TikTok DM sales and support bot for Philia Thrifts")]
struct Cli {
    /// Folder of the config files (default.toml, {environment}.toml, …). Default: `config`, or the
    /// built-in files where it does not exist; a folder given here must exist.
    #[arg(long, global = true, env = "PHILIA_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
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
    /// Accounts of the staff console (/staff): add, remove, reset-password, list.
    Staff {
        #[command(flatten)]
        desk: DeskArgs,
        #[command(subcommand)]
        action: staff::Action,
    },
    /// A customer's data: forget it on request.
    Customers {
        #[command(flatten)]
        desk: DeskArgs,
        #[command(subcommand)]
        action: customers::Action,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: config::Action,
    },
    /// The shop's TikTok account: connect it, register the webhook, and see what is wrong when the bot
    /// is silent.
    Tiktok {
        #[command(subcommand)]
        action: tiktok::Action,
    },
    /// Measure how well the bot understands customers: a routing table, or scripted conversations.
    ///
    /// `eval routing eval/routing.tsv` prints the accuracy, a confusion table and every miss;
    /// `eval conversations eval/conversations` plays each script against the whole bot on the embedded
    /// default and prints every expectation it missed. Run both after editing the config files.
    Eval {
        #[command(subcommand)]
        action: eval::Action,
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

/// The process's exit code for each class of failure: stable, so scripts and platforms can tell a typo
/// in the settings from a database that is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Success = 0,
    /// The command failed for a reason of its own (a staff change refused, `config check` found
    /// problems, `health` found the bot not ready, an unexpected error).
    Failure = 1,
    /// The command line was not understood (clap's own code).
    Usage = 2,
    /// The configuration cannot be used: settings, config files, environment variables, config folder.
    Config = 3,
    /// A service (the database, Redis) cannot be reached or refused the connection.
    Unavailable = 4,
    /// The database schema is not up to date: run `philia-bot migrate up`.
    Schema = 5,
    /// The HTTP listener cannot be bound (the port is taken, or the address is not this machine's).
    Listen = 6,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

impl Exit {
    /// The class of a failure, from the first cause in its chain that has one.
    pub fn of(error: &anyhow::Error) -> Exit {
        for cause in error.chain() {
            if cause.is::<crate::config::ConfigError>() {
                return Exit::Config;
            }
            if cause.is::<crate::startup::Unreachable>() {
                return Exit::Unavailable;
            }
            if cause.is::<crate::startup::PendingMigrations>() {
                return Exit::Schema;
            }
            if let Some(io) = cause.downcast_ref::<std::io::Error>()
                && matches!(io.kind(), std::io::ErrorKind::AddrInUse | std::io::ErrorKind::AddrNotAvailable)
            {
                return Exit::Listen;
            }
        }
        Exit::Failure
    }
}

/// An error and its causes, each said once: a cause whose text an earlier message already contains
/// (`pool timed out …: pool timed out …`) is left out.
pub fn error_text(error: &anyhow::Error) -> String {
    let mut said: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || said.iter().any(|earlier| earlier.contains(text)) {
            continue;
        }
        said.push(text.to_owned());
    }
    said.join(": ")
}

/// Says a fatal error on standard error and gives its exit code.
fn fatal(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", error_text(error));
    Exit::of(error).into()
}

/// Parses the command line, runs the command and says how it went as the process's exit code.
pub async fn run() -> ExitCode {
    crate::install_crypto_provider();
    let cli = Cli::parse();
    // .env fills only variables that are not set already; a missing file is normal.
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        return fatal(&anyhow::Error::new(e).context("reading .env"));
    }
    let config_dir = match config_dir(cli.config_dir) {
        Ok(dir) => dir,
        Err(e) => return fatal(&e),
    };
    // Before anything can fail or panic; the guard flushes pending reports when this returns.
    let _error_reporting = telemetry::error_reporting(Environment::from_process_env().unwrap_or(Environment::Local));
    match run_command(&config_dir, cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Finished(code)) => code,
    }
}

/// The config folder: the one given (`--config-dir`, `PHILIA_CONFIG_DIR`), which must exist, or
/// `config`, which may be absent (the built-in files are used then).
fn config_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let Some(dir) = given.filter(|dir| !dir.as_os_str().is_empty()) else { return Ok(PathBuf::from("config")) };
    if dir.is_dir() {
        return Ok(dir);
    }
    let problem = crate::config::Problem::new(
        "--config-dir/PHILIA_CONFIG_DIR",
        "(folder)",
        format!(
            "{} is not a folder: the shop's texts would silently be the built-in ones (leave it unset for those)",
            dir.display()
        ),
    );
    Err(crate::config::ConfigError(vec![problem]).into())
}

/// A command that did not succeed: its exit code, its error already said.
struct Finished(ExitCode);

impl From<anyhow::Error> for Finished {
    fn from(error: anyhow::Error) -> Self {
        Finished(fatal(&error))
    }
}

/// Runs one command.
async fn run_command(config_dir: &Path, command: Command) -> Result<(), Finished> {
    match command {
        Command::Config { action } => match config::run(config_dir, action) {
            Exit::Success => Ok(()),
            exit => Err(Finished(exit.into())),
        },
        Command::Sign(args) => Ok(sign::run(args)?),
        Command::Tiktok { action } => Ok(tiktok::run(staff_settings(config_dir)?, action).await?),
        Command::Health(args) => Ok(health::run(args).await?),
        // Not logged_settings: the chat sets up its own (quiet) logging, so the transcript stays readable.
        Command::Chat(args) => Ok(chat::run(settings(config_dir)?, args).await?),
        Command::Eval { action } => Ok(eval::run(eval_settings(config_dir)?, action).await?),
        Command::Serve(args) => Ok(serve::run(logged_settings(config_dir)?, args).await?),
        Command::Migrate { action } => Ok(migrate::run(logged_settings(config_dir)?, action).await?),
        Command::Jobs { action } => Ok(jobs::run(staff_settings(config_dir)?, action).await?),
        Command::Handoff { desk, action } => {
            Ok(at_desk(staff_settings(config_dir)?, desk, async |d| handoff::run(d, action).await).await?)
        }
        Command::Inventory { desk, action } => {
            Ok(at_desk(staff_settings(config_dir)?, desk, async |d| inventory::run(d, action).await).await?)
        }
        Command::Customers { desk, action } => {
            Ok(at_desk(staff_settings(config_dir)?, desk, async |d| customers::run(d, action).await).await?)
        }
        Command::Orders { desk, action } => {
            Ok(at_desk(staff_settings(config_dir)?, desk, async |d| orders::run(d, action).await).await?)
        }
        Command::Staff { desk, action } => {
            Ok(at_desk(staff_settings(config_dir)?, desk, async |d| staff::run(d, action).await).await?)
        }
    }
}

/// The settings from `config_dir` and the environment.
fn settings(config_dir: &Path) -> anyhow::Result<Settings> {
    Ok(Settings::load(config_dir)?)
}

/// [`settings`], with the process's logging set up from them.
fn logged_settings(config_dir: &Path) -> anyhow::Result<Settings> {
    let settings = settings(config_dir)?;
    telemetry::init(&settings.log, settings.environment);
    Ok(settings)
}

/// [`settings`] for `eval`: only errors are logged (on standard error), so the report stays readable.
fn eval_settings(config_dir: &Path) -> anyhow::Result<Settings> {
    let mut settings = settings(config_dir)?;
    if std::env::var_os("RUST_LOG").is_none() {
        settings.log.level = "error".into();
    }
    telemetry::init_on_stderr(&settings.log, settings.environment);
    Ok(settings)
}

/// [`settings`], with logging on standard error: a staff command's standard output is its answer (a
/// table, JSON for scripts).
fn staff_settings(config_dir: &Path) -> anyhow::Result<Settings> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_said_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("Connection Error: pool timed out")]
        struct Outer(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("pool timed out")]
        struct Inner;
        let error = anyhow::Error::new(Outer(Inner)).context("connecting to the database");
        assert_eq!(error_text(&error), "connecting to the database: Connection Error: pool timed out");
        assert_eq!(Exit::of(&error), Exit::Failure);
    }

    #[test]
    fn each_class_has_its_code() {
        let config = anyhow::Error::new(crate::config::ConfigError(Vec::new())).context("start");
        assert_eq!(Exit::of(&config), Exit::Config);
        let taken = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::AddrInUse)).context("binding");
        assert_eq!(Exit::of(&taken), Exit::Listen);
        assert_eq!(ExitCode::from(Exit::Schema), ExitCode::from(5));
    }
}
