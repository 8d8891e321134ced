//! Settings, layered: the embedded `config/default.toml` (the only source of defaults) → the config
//! folder's `default.toml` → its `{environment}.toml` → `.env` → environment variables (`PHILIA_` prefix
//! with `__` for nesting, plus the conventional names such as `DATABASE_URL` and `PORT`).

pub mod check;
mod problem;
mod validate;

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub use self::problem::{ConfigError, Problem, parse_toml, read_or_built_in};

/// `config/default.toml` as shipped, compiled in: the bottom layer of every load, so a missing config
/// folder (or a file that sets only a few fields) still gives every setting its documented default.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/default.toml");

/// Where the bot runs: decides log format and how strict start-up is.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// A developer's or shop owner's machine: embedded defaults allowed, human-readable logs.
    #[default]
    Local,
    /// Railway or any real deployment: PostgreSQL, a webhook secret and JSON logs are required.
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Local => "local",
            Environment::Production => "production",
        }
    }

    /// Reads `ENVIRONMENT` (or `PHILIA_ENVIRONMENT`) from the process environment; `local` when unset.
    pub fn from_process_env() -> Result<Self, Problem> {
        let (name, value) = match (std::env::var("PHILIA_ENVIRONMENT"), std::env::var("ENVIRONMENT")) {
            (Ok(v), _) => ("PHILIA_ENVIRONMENT", v),
            (_, Ok(v)) => ("ENVIRONMENT", v),
            _ => return Ok(Environment::Local),
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "local" | "" => Ok(Environment::Local),
            "production" => Ok(Environment::Production),
            other => Err(Problem::new(
                name,
                "environment",
                format!("unknown environment {other:?}: expected \"local\" or \"production\""),
            )),
        }
    }
}

/// Every setting of the bot. Every field has its default in `config/default.toml` (embedded), so an
/// empty configuration runs.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// `local` (default) or `production`. Env: `ENVIRONMENT`. Chosen before any file is read (it picks
    /// `{environment}.toml`), so its default is the process's, not a file's.
    #[serde(default)]
    pub environment: Environment,
    pub log: LogSettings,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub worker: WorkerSettings,
    pub jobs: JobSettings,
    pub webhook: WebhookSettings,
    pub tiktok: TikTokSettings,
    pub llm: LlmSettings,
    pub shop: ShopSettings,
    /// The staff console under `/staff` (off unless enabled).
    pub staff: StaffSettings,
    /// The folder the settings were read from; the bot's texts (`replies.toml`) are read from it too.
    #[serde(skip)]
    pub config_dir: PathBuf,
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    /// Filter directive, e.g. `info` or `philia_bot=debug,info`. Env: `LOG_LEVEL`; `RUST_LOG` wins over it.
    pub level: String,
    /// `auto` (JSON in production, human-readable locally), `json` or `pretty`.
    pub format: LogFormat,
    /// Log every SQL statement (noisy; for debugging only).
    pub sql_statements: bool,
}

/// How log records are written to stdout.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Json,
    Pretty,
}

/// The HTTP server.
#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    /// Address to bind. `0.0.0.0` when `PORT` is set (Railway), else `127.0.0.1`.
    pub host: String,
    /// Port to bind; 0 picks a free one (tests). Env: `PORT`.
    pub port: u16,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// Time a client has to send the request head, in milliseconds.
    pub client_request_timeout_ms: u64,
    /// Keep-alive of idle connections, in seconds.
    pub keep_alive_secs: u64,
    /// HTTP worker threads; 0 means one per CPU core.
    pub http_workers: usize,
    /// The worker role serves no webhook; with this set it serves `/metrics`, `/health` and `/ready`
    /// on this port (on `host`), so it can be scraped. Ignored by roles that serve the webhook.
    pub metrics_port: Option<u16>,
    /// Proxies in front of this server that append the address they saw to `X-Forwarded-For` (Railway's
    /// edge: 1). The webhook's per-source rate limit keys on the address that many hops from the right of
    /// that header; 0 keys on the connection's peer address and ignores the header (any client can set it).
    pub trusted_proxies: usize,
    /// Bearer token that `GET /metrics` on the webhook's port asks for. Without it, production serves
    /// metrics only on `metrics_port` (the webhook's port is public). Env: `PHILIA_METRICS_TOKEN`.
    #[serde(default, deserialize_with = "lenient::opt_secret")]
    pub metrics_token: Option<SecretString>,
}

/// The database: SQLite file by default, PostgreSQL in production.
#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// `postgres://…` or `sqlite://…`. Unset: the embedded SQLite file at `sqlite_path`. Env: `DATABASE_URL`.
    #[serde(default, deserialize_with = "lenient::opt_secret")]
    pub url: Option<SecretString>,
    /// The embedded database file used when `url` is unset.
    pub sqlite_path: PathBuf,
    /// Upper bound of pooled connections.
    pub max_connections: u32,
    /// Seconds to wait for a connection before giving up.
    pub connect_timeout_secs: u64,
}

/// Which database engine a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

impl DatabaseSettings {
    /// The URL to connect with: the configured one, or the embedded SQLite file (created if missing).
    pub fn connection_url(&self) -> String {
        match &self.url {
            Some(url) => url.expose_secret().to_owned(),
            None => format!("sqlite://{}?mode=rwc", self.sqlite_path.display()),
        }
    }

    /// True when no database is configured and the embedded SQLite file is used.
    pub fn is_embedded(&self) -> bool {
        self.url.is_none()
    }

    pub fn kind(&self) -> Option<DatabaseKind> {
        database_kind(&self.connection_url())
    }

    /// Where the database is, for logs: engine, host and database name, never credentials.
    pub fn describe(&self) -> String {
        match &self.url {
            None => format!("sqlite ({}, embedded)", self.sqlite_path.display()),
            Some(url) => describe_url(url.expose_secret()),
        }
    }
}

fn database_kind(url: &str) -> Option<DatabaseKind> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some(DatabaseKind::Postgres)
    } else if url.starts_with("sqlite:") {
        Some(DatabaseKind::Sqlite)
    } else {
        None
    }
}

/// `scheme (host:port/path)` without user or password; for log lines.
pub fn describe_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => {
            let host = parsed.host_str().unwrap_or("");
            let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{} ({host}{port}{})", parsed.scheme(), parsed.path())
        }
        Err(_) => "unparseable URL".into(),
    }
}

/// Redis: queue, idempotency keys, reply windows and the shared send rate.
#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    /// `redis://host:port/db`. Unset: in-process queue and maps (not durable). Env: `REDIS_URL`.
    #[serde(default, deserialize_with = "lenient::opt_secret")]
    pub url: Option<SecretString>,
    /// Prefix of every key this deployment writes (`{prefix}:jobs`, …), so several bots can share a server.
    pub key_prefix: String,
    /// Pooled connections (blocking stream reads each hold one).
    pub pool_size: usize,
    /// Milliseconds to wait for a connection or a command before calling Redis unreachable.
    pub timeout_ms: u64,
}

/// The worker pool.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkerSettings {
    /// Consumer tasks per worker process.
    pub concurrency: usize,
    /// Seconds in-flight jobs get to finish after SIGTERM/SIGINT before the process exits.
    pub shutdown_grace_secs: u64,
    /// Milliseconds one job may run before it counts as a failed delivery.
    pub job_timeout_ms: u64,
}

/// The job queue (Redis Streams, or in-process without Redis).
#[derive(Debug, Clone, Deserialize)]
pub struct JobSettings {
    /// Deliveries of one job before it goes to the dead-letter stream `{prefix}:dead`.
    pub max_deliveries: u64,
    /// The stream length above which a warning is logged. Acknowledged jobs are deleted at once; unread
    /// or pending ones are never trimmed.
    pub stream_max_len: u64,
    /// Milliseconds a consumer blocks waiting for a job (`XREADGROUP BLOCK`).
    pub block_ms: u64,
    /// Milliseconds a job stays unacknowledged before another consumer takes it over (`XAUTOCLAIM`).
    /// Must exceed the job timeout, so a slow but live consumer is never robbed of its job.
    pub reclaim_min_idle_ms: u64,
    /// Milliseconds between looks for abandoned jobs.
    pub reclaim_interval_ms: u64,
    /// Jobs the in-process queue holds before the ingress answers 503.
    pub memory_capacity: usize,
}

/// The webhook ingress.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    /// Requests per second one source address may send before getting 429 (TikTok retries those).
    pub rate_limit_per_second: u32,
    /// Requests a source may send at once above the steady rate.
    pub rate_limit_burst: u32,
}

/// TikTok Business Messaging API and webhook verification.
#[derive(Debug, Clone, Deserialize)]
pub struct TikTokSettings {
    /// App client key. Env: `TIKTOK_CLIENT_KEY`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub client_key: Option<String>,
    /// App client secret. Env: `TIKTOK_CLIENT_SECRET`.
    #[serde(default, deserialize_with = "lenient::opt_secret")]
    pub client_secret: Option<SecretString>,
    /// Access token of the shop's business account; unset means dry run. Env: `TIKTOK_ACCESS_TOKEN`.
    #[serde(default, deserialize_with = "lenient::opt_secret")]
    pub access_token: Option<SecretString>,
    /// Secret that signs webhooks (`TikTok-Signature`); required in production. Env: `TIKTOK_WEBHOOK_SECRET`.
    #[serde(default, deserialize_with = "lenient::opt_secret")]
    pub webhook_secret: Option<SecretString>,
    /// The shop's business account id, the `business_id` of every send.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub business_id: Option<String>,
    /// Base URL of the API (a fake server's in tests).
    pub api_base_url: String,
    /// How far a webhook's signed timestamp may be from now, in seconds.
    pub signature_tolerance_secs: u64,
    /// Refresh token to start from, until the OAuth callback or a refresh stores newer ones in the database.
    #[serde(default, deserialize_with = "lenient::opt_secret")]
    pub refresh_token: Option<SecretString>,
    /// Sends per second for all replicas together (TikTok allows about 10).
    pub send_rate_per_second: u32,
    /// Sends allowed at once above the steady rate (1 = evenly spaced).
    pub send_burst: u32,
    /// Attempts of one API call before it counts as failed (retryable errors only).
    pub max_attempts: u32,
    /// First retry delay in milliseconds; doubles each attempt, with full jitter.
    pub retry_base_ms: u64,
    /// Longest delay between two attempts, in milliseconds (a longer Retry-After is still honoured).
    pub retry_max_delay_ms: u64,
    /// Milliseconds to open a connection to TikTok.
    pub connect_timeout_ms: u64,
    /// Milliseconds for a whole API call.
    pub request_timeout_ms: u64,
    /// Seconds after which a send of unknown outcome (no answer, 5xx, 51065) that neither its echo nor
    /// the conversation's recent messages show is taken as not delivered and sent again, once.
    pub unknown_settle_secs: u64,
    /// `true`: replies are stored and printed, never sent, whatever credentials are set. `false`: sending
    /// is required (credentials must be set). Unset: dry run exactly when there are no credentials, which
    /// production refuses (customers would get no replies). Env: `PHILIA_TIKTOK__DRY_RUN`.
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// TikTok's page where the shop owner authorizes the app (`philia-bot tiktok connect` prints a link
    /// to it): `https://www.tiktok.com/v2/auth/authorize`.
    pub authorize_url: String,
    /// This server's `/oauth/tiktok/callback` URL as registered with TikTok (the `redirect_uri`).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub oauth_redirect_url: Option<String>,
    /// The scopes the owner is asked to grant, comma-separated; messaging needs `message.list.read`,
    /// `message.list.send` and `message.list.manage`.
    pub scopes: String,
    /// Whether the bot sends pictures: `auto` asks TikTok per conversation (media sending is unavailable
    /// in several regions, the United States among them), `never`, or `always`.
    pub images: ImagePolicy,
    /// After TikTok answers 40064 ("sending too fast", a per-account limit), no message is sent for this
    /// many seconds; the ones refused meanwhile are sent afterwards, while their customer's window allows.
    pub throttle_pause_secs: u64,
    /// Set when loading: `webhook_secret` was given and is not the client secret, with which TikTok signs.
    #[serde(skip)]
    pub webhook_secret_differs: bool,
}

/// `tiktok.images`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImagePolicy {
    /// Ask TikTok whether the conversation takes images (cached a day per conversation).
    Auto,
    /// Never send pictures: item answers read complete without them.
    Never,
    /// Send pictures without asking.
    Always,
}

impl TikTokSettings {
    /// TikTok signs webhooks with the app's client secret: an unset webhook secret is the client secret.
    /// An explicit, different one is kept (a proxy may re-sign) but flagged, because TikTok's own
    /// signatures will not verify with it.
    pub fn resolve_webhook_secret(&mut self) {
        use secrecy::ExposeSecret;
        match (&self.webhook_secret, &self.client_secret) {
            (None, Some(client)) => self.webhook_secret = Some(client.clone()),
            (Some(webhook), Some(client)) => {
                self.webhook_secret_differs = webhook.expose_secret() != client.expose_secret();
            }
            _ => {}
        }
    }

    /// Replies are sent only with credentials (an access token, or the app's key and secret for tokens
    /// stored by the OAuth callback) and without `dry_run = true`; otherwise they are stored and printed.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run.unwrap_or(!self.has_credentials())
    }

    /// Whether anything to send with is set: an access token, or the app's key and secret.
    pub fn has_credentials(&self) -> bool {
        self.access_token.is_some() || (self.client_key.is_some() && self.client_secret.is_some())
    }

    /// The sending mode, as `/ready` and the start-up line say it.
    pub fn sending_mode(&self) -> &'static str {
        if self.is_dry_run() { "dry_run" } else { "live" }
    }
}

/// The shop: opening hours, handoff, how prices and drops are shown.
#[derive(Debug, Clone, Deserialize)]
pub struct ShopSettings {
    /// The shop's time zone, an IANA name ("America/New_York"): the bot's clock (hold times, opening
    /// hours) and every time staff see (console, staff commands), daylight saving included.
    pub time_zone: String,
    /// Days a human answers: `mon` … `sun`.
    pub open_days: Vec<String>,
    /// Hour (local, 0–23) the team starts answering.
    pub open_hour: u32,
    /// Hour (local, 1–24) the team stops answering.
    pub close_hour: u32,
    /// A conversation in handoff goes back to the bot after this many quiet hours.
    pub handoff_quiet_hours: u64,
    /// Slack- or Discord-compatible webhook told about every handoff (`{"text","content"}`). Optional.
    /// A secret (whoever has a Slack webhook URL can post to the channel): never logged nor printed.
    #[serde(default, deserialize_with = "lenient::opt_secret")]
    pub staff_webhook_url: Option<SecretString>,
    /// Put before prices.
    pub currency_symbol: String,
    /// "New drops" are items dropped within this many days.
    pub drops_days: i64,
    /// Items per "new drops" answer (each with its photo); "more" shows the next ones.
    pub drops_per_page: u64,
    /// How long "I'll take it" holds an item, in minutes (never past the customer's reply window).
    pub hold_minutes: u64,
    /// Flat shipping added to an order, in minor units (cents).
    pub shipping_minor: i64,
    /// Orders whose items add up to at least this much ship free (minor units). Unset: never free.
    #[serde(default)]
    pub free_shipping_over_minor: Option<i64>,
    /// Currency of items imported without one (ISO code).
    pub currency: String,
    /// Whether offers below the price go to a person (true) or prices are firm (false).
    #[serde(default)]
    pub accept_offers: bool,
    /// The country the flat shipping applies to (ISO 3166-1 alpha-2).
    pub home_country: String,
    /// Shipping abroad, by country code, in minor units; a country not listed gets a quote from a person.
    #[serde(default)]
    pub international_shipping_minor: std::collections::BTreeMap<String, i64>,
    /// Told with every new order; `{order_number}` is filled in (the FAQ says "your order number").
    pub payment_instructions: String,
    /// Days after delivery a customer may report a piece that is not as described.
    pub returns_days: u64,
    /// Pieces one customer may hold at once.
    pub max_holds_per_customer: u64,
    /// A customer told from the waitlist that a piece is free has this many minutes to answer before
    /// the customer whose hold on it lapsed may take it again.
    pub waitlist_claim_minutes: u64,
    /// An unpaid order's customer is reminded to pay after this many hours (when TikTok lets the shop
    /// write to them).
    pub payment_reminder_hours: u64,
    /// An unpaid order is cancelled after this many hours: its pieces go back on sale and the waitlist
    /// is told.
    pub payment_expiry_hours: u64,
    /// Seconds between the worker's sweeps: lapsed holds and unpaid orders, and notices to retry.
    pub sweep_interval_secs: u64,
    /// Days the text of a message is kept; older ones lose it (and their media) at the next sweep, once
    /// their delivery is settled. Unset: kept. Orders, holds and ids stay.
    #[serde(default)]
    pub message_retention_days: Option<u64>,
}

/// The staff console in the browser, served by the web role under `/staff`.
#[derive(Debug, Clone, Deserialize)]
pub struct StaffSettings {
    /// Serve the console. Off by default: a deployment opts in, with a session key.
    pub enabled: bool,
    /// Secret the session cookies are signed and encrypted with: at least 32 characters (`openssl rand
    /// -hex 32`). Env: `PHILIA_STAFF__SESSION_KEY`. Changing it signs every staff member out.
    #[serde(default, deserialize_with = "lenient::opt_secret")]
    pub session_key: Option<SecretString>,
    /// Hours a sign-in lasts; then staff sign in again.
    pub session_hours: u64,
    /// Failed or not, sign-in attempts one account, or one address, may make per window.
    pub login_attempts: u32,
    /// The window of `login_attempts`, in minutes.
    pub login_window_minutes: u64,
    /// Mark the session cookie `Secure` (sent over HTTPS only). Only a console on plain HTTP away from
    /// localhost (never in production) needs this off.
    pub secure_cookie: bool,
}

impl ShopSettings {
    /// The staff webhook's URL, for the one call that posts to it: a secret, so it goes nowhere else
    /// (no log line, no error text: reqwest errors are logged `without_url`).
    pub fn staff_webhook(&self) -> Option<String> {
        self.staff_webhook_url.as_ref().map(|url| url.expose_secret().to_owned())
    }

    /// The shop's time zone (`time_zone`); UTC only if it does not parse, which `config check` and
    /// start-up refuse.
    pub fn tz(&self) -> chrono_tz::Tz {
        self.time_zone.parse().unwrap_or(chrono_tz::UTC)
    }
}

/// The intent classifier: any OpenAI-compatible endpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct LlmSettings {
    /// API key; unset means the keyword router only. Env: `OPENAI_API_KEY`.
    #[serde(default, deserialize_with = "lenient::opt_secret")]
    pub api_key: Option<SecretString>,
    /// Base URL of the OpenAI-compatible API. Env: `OPENAI_BASE_URL`.
    pub base_url: String,
    /// Model name sent with every request.
    pub model: String,
    /// Milliseconds before a classification falls back to the keyword result.
    pub timeout_ms: u64,
    /// Instructions to the model. The customer's text is never put here: it goes in a delimited user message.
    pub system_prompt: String,
    /// Earlier messages of the conversation sent along as context.
    pub history_messages: u64,
    /// Failed classifications in a row that open the circuit breaker (the model is skipped).
    pub breaker_failures: u32,
    /// Seconds the model is skipped once the breaker opens.
    pub breaker_cool_down_secs: u64,
}

/// Conventional environment variable names and the fields they set.
const CONVENTIONAL_ENV: &[(&str, &str)] = &[
    ("ENVIRONMENT", "environment"),
    ("LOG_LEVEL", "log.level"),
    ("PORT", "server.port"),
    ("DATABASE_URL", "database.url"),
    ("REDIS_URL", "redis.url"),
    ("OPENAI_API_KEY", "llm.api_key"),
    ("OPENAI_BASE_URL", "llm.base_url"),
    ("TIKTOK_CLIENT_KEY", "tiktok.client_key"),
    ("TIKTOK_CLIENT_SECRET", "tiktok.client_secret"),
    ("TIKTOK_ACCESS_TOKEN", "tiktok.access_token"),
    ("TIKTOK_WEBHOOK_SECRET", "tiktok.webhook_secret"),
    ("TIKTOK_REFRESH_TOKEN", "tiktok.refresh_token"),
    ("TIKTOK_BUSINESS_ID", "tiktok.business_id"),
    ("PHILIA_METRICS_TOKEN", "server.metrics_token"),
];

/// `PHILIA_` variables that configure the process rather than `Settings`.
/// (`metrics_token` is a setting, `server.metrics_token`, under the shorter name the issue gave it.)
const NON_SETTINGS_ENV: &[&str] = &["role", "config_dir", "require_services", "metrics_token"];

impl Settings {
    /// The embedded `config/default.toml` alone: what [`Settings::load`] gives with no config folder and
    /// no environment variables, with `config_dir` the CLI's default folder (`config`).
    pub fn defaults() -> Settings {
        let mut settings: Settings = Figment::from(Toml::string(EMBEDDED_DEFAULT))
            .extract()
            .unwrap_or_else(|e| panic!("the embedded config/default.toml does not load: {e}"));
        settings.config_dir = PathBuf::from("config");
        settings
    }

    /// Loads the layered settings from `config_dir` and the process environment, and validates them.
    /// The caller loads `.env` first (it only fills variables that are not already set).
    pub fn load(config_dir: &Path) -> Result<Settings, ConfigError> {
        let environment = Environment::from_process_env().map_err(|p| ConfigError(vec![p]))?;
        let mut problems = check::check_settings_files(config_dir);
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        let mut settings: Settings =
            figment(config_dir, environment).extract().map_err(|e| ConfigError(problem::figment_problems(e)))?;
        settings.config_dir = config_dir.to_path_buf();
        settings.tiktok.resolve_webhook_secret();
        problems.extend(settings.validate());
        if problems.is_empty() { Ok(settings) } else { Err(ConfigError(problems)) }
    }
}

/// The layered provider chain, without validation.
fn figment(config_dir: &Path, environment: Environment) -> Figment {
    let mut figment = Figment::from(Toml::string(EMBEDDED_DEFAULT));
    // Each file is optional; an absent file is skipped (Toml::file would search parent folders instead).
    for name in ["default.toml".to_owned(), format!("{}.toml", environment.as_str())] {
        let path = config_dir.join(name);
        if path.exists() {
            figment = figment.merge(Toml::file_exact(path));
        }
    }
    // Railway sets PORT and expects the service on every interface; PHILIA_SERVER__HOST still wins.
    if is_set("PORT") {
        figment = figment.merge(Serialized::default("server.host", "0.0.0.0"));
    }
    let names: Vec<&str> = CONVENTIONAL_ENV.iter().map(|(name, _)| *name).collect();
    // A blank variable is unset, everywhere: `TIKTOK_WEBHOOK_SECRET=` in a dashboard must not become an
    // empty secret, nor `PHILIA_WORKER__CONCURRENCY=` a type error; the layers below decide.
    figment
        .merge(Env::raw().only(&names).filter(|key| is_set(key.as_str())).map(|key| {
            let field = CONVENTIONAL_ENV
                .iter()
                .find(|(name, _)| key.as_str().eq_ignore_ascii_case(name))
                .map_or(key.as_str(), |(_, field)| field);
            field.to_owned().into()
        }))
        .merge(
            Env::raw()
                .filter_map(|key| {
                    let rest = strip_prefix_ignore_case(key.as_str(), ENV_PREFIX)?;
                    is_set(key.as_str()).then(|| rest.to_owned().into())
                })
                .ignore(NON_SETTINGS_ENV)
                .split("__"),
        )
}

/// The prefix of the bot's own environment variables.
const ENV_PREFIX: &str = "PHILIA_";

/// Whether an environment variable is set to something other than blanks.
fn is_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|value| !value.to_string_lossy().trim().is_empty())
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

/// Every `PHILIA_` variable the bot reads: one per setting (`PHILIA_SECTION__FIELD`), `PHILIA_ENVIRONMENT`
/// and those that configure the process rather than the settings.
pub fn known_env_names() -> Vec<String> {
    let mut names: Vec<String> =
        NON_SETTINGS_ENV.iter().chain(&["environment"]).map(|name| format!("{ENV_PREFIX}{name}")).collect();
    for (section, fields) in check::sections() {
        names.extend(fields.iter().map(|field| format!("{ENV_PREFIX}{section}__{field}")));
    }
    names.iter().map(|name| name.to_ascii_uppercase()).collect()
}

/// The process's `PHILIA_` variables that name no setting (a typo would otherwise be ignored, although
/// the same typo in a file is caught), each naming the closest variable the bot reads.
pub fn unknown_env_vars() -> Vec<Problem> {
    let known = known_env_names();
    let mut vars: Vec<String> = std::env::vars_os()
        .map(|(name, _)| name.to_string_lossy().into_owned())
        .filter(|name| strip_prefix_ignore_case(name, ENV_PREFIX).is_some())
        .filter(|name| !known.contains(&name.to_ascii_uppercase()))
        .collect();
    vars.sort();
    vars.into_iter()
        .map(|name| {
            let closest = closest(&name.to_ascii_uppercase(), &known).unwrap_or_default();
            Problem::new(&name, "(environment)", format!("names no setting; did you mean {closest}?"))
        })
        .collect()
}

/// The name in `known` with the fewest single-character edits from `name`.
fn closest<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    known.iter().min_by_key(|candidate| edit_distance(name, candidate)).map(String::as_str)
}

/// Levenshtein distance, by characters: a handful of short names, so the quadratic table is cheap.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// Deserializers for optional text settings: environment variables may carry them as digits (figment
/// parses `TIKTOK_CLIENT_KEY=123456` as a number, but ids and secrets are strings), and a blank value is
/// unset.
mod lenient {
    use secrecy::SecretString;
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        String(String),
        Unsigned(u64),
        Signed(i64),
    }

    /// An empty (or blank) value is unset: `TIKTOK_WEBHOOK_SECRET=` must not become an empty HMAC key,
    /// with which every signature could be forged.
    pub fn opt_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
        Ok(Option::<Text>::deserialize(deserializer)?
            .map(|text| match text {
                Text::String(s) => s,
                Text::Unsigned(n) => n.to_string(),
                Text::Signed(n) => n.to_string(),
            })
            .filter(|text| !text.trim().is_empty()))
    }

    pub fn opt_secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SecretString>, D::Error> {
        Ok(opt_string(deserializer)?.map(SecretString::from))
    }
}

#[cfg(test)]
// figment's Jail closures return figment::Error, whose size is not ours to choose.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn load_in(jail: &Jail) -> Result<Settings, ConfigError> {
        Settings::load(&jail.directory().join("config"))
    }

    #[test]
    fn empty_configuration_gives_the_embedded_defaults() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            let settings = load_in(jail).expect("defaults load");
            assert_eq!(settings.environment, Environment::Local);
            assert!(settings.database.is_embedded());
            assert_eq!(settings.database.connection_url(), "sqlite://./data/philia.db?mode=rwc");
            assert_eq!((settings.server.host.as_str(), settings.server.port), ("127.0.0.1", 8000));
            assert!(settings.tiktok.is_dry_run());
            Ok(())
        });
    }

    #[test]
    fn a_missing_config_folder_loads_exactly_the_shipped_config_folder() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
            let from_shipped = Settings::load(&shipped).expect("the shipped folder loads");
            let from_nothing = load_in(jail).expect("no folder loads");
            assert!(!jail.directory().join("config").exists());
            // Every field, secrets and the system prompt included; the folder read from aside.
            let every_field =
                |settings: Settings| format!("{:#?}", Settings { config_dir: PathBuf::new(), ..settings });
            assert_eq!(every_field(from_nothing), every_field(from_shipped));
            Ok(())
        });
    }

    #[test]
    fn files_then_environment_override_in_order() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_dir("config")?;
            jail.create_file(
                "config/default.toml",
                "[server]\nport = 9000\nhost = \"10.1.1.1\"\n[worker]\nconcurrency = 3",
            )?;
            jail.create_file("config/production.toml", "[worker]\nconcurrency = 5")?;
            jail.set_env("ENVIRONMENT", "production");
            jail.set_env("DATABASE_URL", "postgres://u:pw@db.internal:5432/philia");
            jail.set_env("TIKTOK_CLIENT_KEY", "123456");
            jail.set_env("PHILIA_WORKER__CONCURRENCY", "7");
            let settings = load_in(jail).expect("loads");
            assert_eq!(settings.environment, Environment::Production);
            assert_eq!(settings.server.port, 9000);
            assert_eq!(settings.worker.concurrency, 7, "PHILIA_ variables win over files");
            assert_eq!(settings.database.kind(), Some(DatabaseKind::Postgres));
            assert_eq!(settings.tiktok.client_key.as_deref(), Some("123456"), "numeric ids stay strings");
            Ok(())
        });
    }

    #[test]
    fn port_from_the_platform_binds_every_interface() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("PORT", "4321");
            let settings = load_in(jail).expect("loads");
            assert_eq!((settings.server.host.as_str(), settings.server.port), ("0.0.0.0", 4321));
            jail.set_env("PHILIA_SERVER__HOST", "127.0.0.2");
            assert_eq!(load_in(jail).expect("loads").server.host, "127.0.0.2");
            Ok(())
        });
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("TIKTOK_WEBHOOK_SECRET", "hunter2-webhook");
            jail.set_env("OPENAI_API_KEY", "sk-hunter2");
            jail.set_env("DATABASE_URL", "postgres://u:hunter2pw@db/philia");
            let settings = load_in(jail).expect("loads");
            let debug = format!("{settings:?}");
            assert!(!debug.contains("hunter2"), "{debug}");
            assert_eq!(settings.database.describe(), "postgres (db/philia)");
            Ok(())
        });
    }

    #[test]
    fn a_misspelt_variable_names_the_closest_setting() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("PHILIA_WORKER__CONCURENCY", "4");
            jail.set_env("PHILIA_SERVER__PORT", "9000");
            let said: Vec<String> = unknown_env_vars().iter().map(ToString::to_string).collect();
            assert_eq!(
                said,
                [
                    "PHILIA_WORKER__CONCURENCY: (environment): names no setting; did you mean PHILIA_WORKER__CONCURRENCY?"
                ]
            );
            Ok(())
        });
    }

    #[test]
    fn bad_environment_variable_value_names_the_variable() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("PHILIA_SERVER__PORT", "not-a-port");
            let problems = load_in(jail).expect_err("rejected").0;
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].field, "server.port");
            assert_eq!(problems[0].source, "PHILIA_SERVER__PORT");
            Ok(())
        });
    }
}
