//! One `Application` builder for every role, used by `main` and by the tests alike.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::bot::llm::LlmRouter;
use crate::bot::{Bot, BotFiles};
use crate::config::{ConfigError, DatabaseKind, Settings};
use crate::jobs::{JobQueue, MemoryQueue, RedisQueue, consumer_name};
use crate::kv::Kv;
use crate::metrics::Metrics;
use crate::redis_pool::Redis;
use crate::role::Role;
use crate::state::AppState;
use crate::tiktok::{self, TikTokClient, limiter::SendLimiter, tokens::TokenManager};
use crate::web::staff::TryOut;
use crate::web::{Routes, build_server};
use crate::worker::WorkerPool;

/// How a process starts, beyond its settings.
#[derive(Clone, Default)]
pub struct StartOptions {
    pub role: Role,
    /// Apply pending migrations on start. Always done on SQLite (the embedded default); on PostgreSQL
    /// migrations are explicit (`migrate up`, the release phase) unless this is set.
    pub migrate: bool,
    /// The copy of the bot the staff console's "Try the bot" page drives (`serve` passes the sandbox's;
    /// without one the page says this process has none).
    pub try_out: TryOut,
}

impl StartOptions {
    /// A process of `role`, migrating on start when `migrate`, without a try-out.
    pub fn new(role: Role, migrate: bool) -> Self {
        Self { role, migrate, try_out: None }
    }
}

/// A built, not yet running, process: the HTTP server (web role) and the worker pool (worker role).
pub struct Application {
    state: AppState,
    role: Role,
    server: Option<(actix_web::dev::Server, u16)>,
    /// The web role's second listener on `server.metrics_port` (health, readiness, metrics), so metrics
    /// can be scraped without exposing them on the public webhook port.
    operations: Option<(actix_web::dev::Server, u16)>,
    shutdown: CancellationToken,
}

impl Application {
    /// Connects to the database and Redis, prepares the schema and binds the HTTP listener (port 0 in
    /// tests picks a free one). Nothing runs until [`Application::run_until_stopped`].
    pub async fn build(settings: Settings, options: StartOptions) -> anyhow::Result<Self> {
        let problems = options.role.requirements(&settings);
        if !problems.is_empty() {
            return Err(ConfigError(problems).into());
        }
        // The bot's files are read before the database is touched: a bad file stops start-up with nothing
        // created or migrated.
        let metrics = Metrics::new();
        let bot = build_bot(&settings, &metrics)?;
        let db = connect_database(&settings).await?;
        prepare_schema(&db, &settings, options.migrate).await?;
        let consumers = if options.role.runs_worker() { settings.worker.concurrency } else { 0 };
        let state = assemble(settings, db, bot, metrics, consumers)?;
        let grace = Duration::from_secs(state.settings.worker.shutdown_grace_secs);
        let server_settings = &state.settings.server;
        let operations = match server_settings.metrics_port {
            Some(port) => Some(build_server(server_settings, port, Routes::Operations, state.clone(), grace, None)?),
            None => None,
        };
        let (server, operations) = match options.role.runs_web() {
            true => {
                let port = server_settings.port;
                let try_out = options.try_out.clone();
                (Some(build_server(server_settings, port, Routes::All, state.clone(), grace, try_out)?), operations)
            }
            // The worker's only listener is the operations one.
            false => (operations, None),
        };
        Ok(Self { state, role: options.role, server, operations, shutdown: CancellationToken::new() })
    }

    /// The bound HTTP port, when this role serves HTTP.
    pub fn port(&self) -> Option<u16> {
        self.server.as_ref().map(|(_, port)| *port)
    }

    /// The web role's bound `server.metrics_port`, when it has one.
    pub fn operations_port(&self) -> Option<u16> {
        self.operations.as_ref().map(|(_, port)| *port)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Cancelling this token stops the process as SIGTERM would (tests use it).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// One line saying what this process runs on, so an operator sees at a glance what is durable.
    pub fn describe(&self) -> String {
        let settings = &self.state.settings;
        let http = match (self.port(), self.role.runs_web()) {
            (Some(port), true) => format!("{}:{port}", settings.server.host),
            (Some(port), false) => format!("{}:{port} (metrics and health only)", settings.server.host),
            (None, _) => "none (worker role)".into(),
        };
        let http = match self.operations_port() {
            Some(port) => format!("{http} metrics={}:{port}", settings.server.host),
            None => http,
        };
        let queue = if let JobQueue::Redis(queue) = &self.state.queue {
            format!("redis streams ({}, consumer {})", queue.stream_key(), queue.consumer())
        } else {
            "in-process (NOT durable: jobs in flight are lost when the process stops)".into()
        };
        format!(
            "role={} environment={} http={http} database={} queue={queue} cache={} llm={} tiktok={}",
            self.role.as_str(),
            settings.environment.as_str(),
            settings.database.describe(),
            if settings.redis.url.is_some() { "redis" } else { "in-process" },
            if settings.llm.api_key.is_some() {
                format!(
                    "{} at {} (router: {})",
                    settings.llm.model,
                    settings.llm.base_url,
                    self.state.bot.router_name()
                )
            } else {
                "none (keyword router only)".into()
            },
            if settings.tiktok.is_dry_run() { "dry run (replies are stored and printed, not sent)" } else { "live" },
        )
    }

    /// Runs until SIGTERM/SIGINT (or the shutdown token): then stops taking requests and jobs, lets
    /// in-flight work finish within the grace period, and returns.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!("philia-bot started: {}", self.describe());
        // `config check` refuses these; a running process says so and goes on, as a restart loop over
        // a typo would take the shop offline.
        for unknown in crate::config::unknown_env_vars() {
            tracing::warn!("{unknown}: it is ignored");
        }
        if let Some(redis) = &self.state.redis
            && let Some(warning) = redis_persistence_warning(redis).await
        {
            tracing::warn!("{warning}");
        }
        if self.role.runs_web() && self.state.settings.tiktok.webhook_secret.is_none() {
            // Production refuses to start like this (see Role::requirements); locally it is
            // how a shop owner tries the bot without TikTok, so it is allowed, loudly.
            tracing::warn!("TIKTOK_WEBHOOK_SECRET is not set: webhook signatures are NOT verified (local use only)");
        }
        if self.state.settings.tiktok.webhook_secret_differs {
            tracing::warn!(
                "TIKTOK_WEBHOOK_SECRET differs from TIKTOK_CLIENT_SECRET: TikTok signs webhooks with the client secret, \
                 so its signatures will not verify; unset TIKTOK_WEBHOOK_SECRET"
            );
        }
        if let Err(mismatch) = self.state.tokens.check_configured_account().await {
            anyhow::bail!(mismatch);
        }
        if self.state.settings.database.is_embedded() {
            use sea_orm::{EntityTrait, PaginatorTrait};
            if crate::store::entities::items::Entity::find().count(&self.state.db).await.unwrap_or(1) == 0 {
                tracing::info!(
                    "the shop has no items yet; load the demo inventory with: philia-bot inventory import examples/inventory.csv"
                );
            }
        }
        let shutdown = self.shutdown.clone();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        let worker = match self.role.runs_worker() {
            true => Some(WorkerPool::start(self.state.clone(), shutdown.clone()).await),
            false => None,
        };
        let web: Vec<_> = self
            .server
            .into_iter()
            .chain(self.operations)
            .map(|(server, _)| {
                let handle = server.handle();
                let stopper = shutdown.clone();
                tokio::spawn(async move {
                    stopper.cancelled().await;
                    handle.stop(true).await;
                });
                tokio::spawn(server)
            })
            .collect();
        shutdown.cancelled().await;
        tracing::info!("shutting down: finishing in-flight requests and jobs");
        if let Some(worker) = worker {
            worker.join().await;
        }
        for web in web {
            web.await.context("HTTP server task")?.context("HTTP server")?;
        }
        self.state.db.clone().close().await.context("closing the database pool")?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The bot from the config folder's files and the settings (the LLM when one is configured). Used by
/// `serve` and by the staff commands that message customers.
pub fn build_bot(settings: &Settings, metrics: &Metrics) -> anyhow::Result<Bot> {
    let files = BotFiles::load(&settings.config_dir).map_err(ConfigError)?;
    let texts = check_texts(&files, &settings.shop);
    if !texts.problems.is_empty() {
        return Err(ConfigError(texts.problems).into());
    }
    for warning in &texts.warnings {
        tracing::warn!("{warning}");
    }
    let llm = LlmRouter::new(
        &settings.llm,
        llm_http_client(&settings.llm)?,
        files.router.faq_topics(),
        files.router.categories(),
        metrics.clone(),
    );
    Ok(Bot::new(files, llm, settings.llm.history_messages, settings.shop.clone()))
}

/// Everything wrong with the bot's texts against the shop's settings, as `config check` and start-up
/// both say it: the facts and amounts they use (the bot's own check), and menu options no intent is
/// behind (a customer answering "4" would not be understood).
pub fn check_texts(files: &BotFiles, shop: &crate::config::ShopSettings) -> crate::bot::facts::TextCheck {
    let mut check = crate::bot::facts::check(files, shop);
    for (i, option) in files.replies.menu.options.iter().enumerate() {
        let number = i as u32 + 1;
        // The one place the menu's numbers meet their intents (the bot's router reads them the same way).
        if crate::bot::intent::Intent::from_menu(number).is_none() {
            let understood: Vec<String> = (1..=files.replies.menu.options.len() as u32)
                .filter_map(|n| {
                    crate::bot::intent::Intent::from_menu(n).map(|intent| format!("{n}. {}", intent.name()))
                })
                .collect();
            check.problems.push(crate::config::Problem::new(
                crate::bot::REPLIES_FILE,
                format!("menu.options[{i}]"),
                format!(
                    "option {number} ({option:?}) has no intent behind it: a customer answering {number} would not \
                     be understood (the menu's numbers mean: {})",
                    understood.join(", ")
                ),
            ));
        }
    }
    check
}

/// What every process shares, around an open database and a built bot: Redis (with `consumers` blocking
/// readers), the job queue, expiring keys and the TikTok sender (or the dry run).
fn assemble(
    settings: Settings,
    db: DatabaseConnection,
    bot: Bot,
    metrics: Metrics,
    consumers: usize,
) -> anyhow::Result<AppState> {
    let redis = Redis::new(&settings.redis, &settings.jobs, consumers)?;
    let queue = match &redis {
        Some(redis) => JobQueue::Redis(RedisQueue::new(redis.clone(), &settings.jobs, consumer_name())),
        None => JobQueue::Memory(MemoryQueue::new(&settings.jobs)),
    };
    let kv = Kv::new(redis.as_ref());
    let http = tiktok::client::http_client(&settings.tiktok)?;
    let alerts = tiktok::alerts::StaffAlerts::new(http.clone(), settings.shop.staff_webhook());
    let tokens = TokenManager::new(&settings.tiktok, db.clone(), http.clone(), kv.clone(), alerts);
    let tiktok = (!settings.tiktok.is_dry_run()).then(|| {
        let limiter =
            SendLimiter::new(redis.as_ref(), settings.tiktok.send_rate_per_second, settings.tiktok.send_burst);
        TikTokClient::new(&settings.tiktok, http.clone(), tokens.clone(), limiter, kv.clone(), metrics.clone())
    });
    Ok(AppState { settings: Arc::new(settings), db, redis, queue, kv, bot, tiktok, tokens, http, metrics })
}

/// What a staff command needs: the database as [`open_database`] opens it, the bot, and the same
/// sending the worker does (TikTok, or the dry run), so a notice a staff change causes goes out at once
/// from the command itself, claimed like any other so the running bot never sends it twice.
pub async fn staff_state(settings: Settings) -> anyhow::Result<AppState> {
    // Staff commands are short-lived: what they measure is not served anywhere. The bot's files are read
    // before the database is touched, so a bad file stops the command with nothing created.
    let metrics = Metrics::new();
    let bot = build_bot(&settings, &metrics)?;
    let db = open_database(&settings).await?;
    assemble(settings, db, bot, metrics, 0)
}

/// The database as the staff commands use it: connected, and on the embedded SQLite file migrated (so
/// `inventory import` works before the first `serve`); on PostgreSQL pending migrations are refused.
pub async fn open_database(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    let db = connect_database(settings).await?;
    prepare_schema(&db, settings, false).await?;
    Ok(db)
}

/// The LLM's HTTP client: its own timeout, a little over the classification timeout.
fn llm_http_client(settings: &crate::config::LlmSettings) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().timeout(std::time::Duration::from_millis(settings.timeout_ms + 1_000)).build()?)
}

async fn prepare_schema(db: &DatabaseConnection, settings: &Settings, migrate: bool) -> anyhow::Result<()> {
    if migrate || settings.database.kind() == Some(DatabaseKind::Sqlite) {
        return crate::store::migrate_up(db).await;
    }
    let pending = crate::store::pending_migrations(db).await?;
    if !pending.is_empty() {
        return Err(PendingMigrations(pending).into());
    }
    Ok(())
}

/// Why Redis may lose the queue on a restart, if it may: the job stream holds every accepted webhook
/// until a worker answers it, so a Redis with neither an append-only file nor RDB snapshots loses them
/// (three 200s were lost so in a test). Managed Redis may refuse `CONFIG`: then `INFO` says whether the
/// append-only file is on.
pub async fn redis_persistence_warning(redis: &Redis) -> Option<String> {
    use deadpool_redis::redis::cmd;
    let mut conn = match redis.connection().await {
        Ok(conn) => conn,
        Err(e) => return Some(format!("Redis did not answer ({e:#}): its persistence could not be checked")),
    };
    let forgets = "a restart loses every webhook accepted and not yet answered; turn on the append-only file \
                   (appendonly yes) or RDB snapshots (save)";
    let appendonly: Result<Vec<String>, _> = cmd("CONFIG").arg("GET").arg("appendonly").query_async(&mut conn).await;
    let save: Result<Vec<String>, _> = cmd("CONFIG").arg("GET").arg("save").query_async(&mut conn).await;
    if let (Ok(appendonly), Ok(save)) = (appendonly, save) {
        let aof = appendonly.get(1).is_some_and(|v| v == "yes");
        let rdb = save.get(1).is_some_and(|v| !v.trim().is_empty());
        return (!aof && !rdb)
            .then(|| format!("Redis keeps nothing on disk (no append-only file, no RDB snapshots): {forgets}"));
    }
    let info: String = match cmd("INFO").arg("persistence").query_async(&mut conn).await {
        Ok(info) => info,
        Err(e) => {
            return Some(format!("Redis refused CONFIG GET and INFO ({e}): its persistence could not be checked"));
        }
    };
    let aof = info.lines().any(|line| line.trim() == "aof_enabled:1");
    (!aof).then(|| {
        format!("Redis has no append-only file and refuses CONFIG GET, so its RDB snapshots cannot be checked: if it takes none, {forgets}")
    })
}

/// The database's schema is behind this binary's.
#[derive(Debug, thiserror::Error)]
#[error(
    "the database has {} pending migration(s) ({}): run `philia-bot migrate up` first, or start with --migrate",
    .0.len(),
    .0.join(", ")
)]
pub struct PendingMigrations(pub Vec<String>);

/// A service the process needs cannot be reached: which, where (`host:port`) and why, in the words of
/// the operating system rather than of a connection pool that only saw time run out.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to {service} at {address}{}", .reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
pub struct Unreachable {
    pub service: &'static str,
    pub address: String,
    /// What a plain TCP connection got, when that says more than the client's own error.
    pub reason: Option<String>,
}

/// Connects to the database as [`crate::store::connect`] does; when that fails, a plain TCP connection
/// to its host says why (`connection refused at 127.0.0.1:5432`), where the pool only says it timed out.
pub async fn connect_database(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    let error = match crate::store::connect(&settings.database, settings.log.sql_statements).await {
        Ok(db) => return Ok(db),
        Err(error) => error,
    };
    let Some(address) = tcp_address(&settings.database.connection_url(), 5432) else { return Err(error) };
    let unreachable = |reason| Unreachable { service: "the database", address: address.clone(), reason };
    match probe(&address).await {
        Some(reason) => Err(unreachable(Some(reason)).into()),
        // The server answers: its own error (a password, a missing database) is the cause.
        None => Err(error.context(unreachable(None))),
    }
}

/// `host:port` of a network URL (`default_port` when it names none); `None` for files and sockets.
pub fn tcp_address(url: &str, default_port: u16) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str().filter(|h| !h.is_empty())?;
    Some(format!("{host}:{}", parsed.port().unwrap_or(default_port)))
}

/// Why a TCP connection to `address` fails, or `None` when it succeeds.
pub async fn probe(address: &str) -> Option<String> {
    match tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(address)).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Some(format!("connection refused at {address}"))
        }
        Ok(Err(e)) => Some(format!("{e} ({address})")),
        Err(_) => Some(format!("no answer from {address} within 3 s")),
    }
}

async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
        () = token.cancelled() => return,
    }
    token.cancel();
}
