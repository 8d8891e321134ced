//! What makes loaded settings unusable, whatever the role: one `validate` per section, each naming the
//! field it rejects. (What a role needs beyond this, such as Redis for split roles, is the role's own
//! check.)

use secrecy::{ExposeSecret, SecretString};

use super::{
    DatabaseSettings, Environment, JobSettings, LlmSettings, LogSettings, Problem, RedisSettings, ServerSettings,
    Settings, ShopSettings, StaffSettings, TikTokSettings, WebhookSettings, WorkerSettings, database_kind,
};

/// Problems of the layered result are not one file's: they name the settings as a whole.
fn problem(field: &str, message: impl Into<String>) -> Problem {
    Problem::new("settings", field, message)
}

fn at_least_one(field: &str, value: u64) -> Option<Problem> {
    (value == 0).then(|| problem(field, "must be at least 1"))
}

fn http_url(field: &str, url: &str) -> Option<Problem> {
    let is_http = url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
    (!is_http).then(|| problem(field, format!("{url:?} is not an http(s) URL")))
}

impl Settings {
    /// Problems that make these settings unusable, whatever the role.
    pub fn validate(&self) -> Vec<Problem> {
        [
            self.log.validate(),
            self.server.validate(),
            self.database.validate(),
            self.redis.validate(),
            self.worker.validate(),
            self.jobs.validate(&self.worker),
            self.delivery_timing(),
            self.webhook.validate(),
            self.tiktok.validate(self.environment, &self.server.metrics_token),
            self.llm.validate(),
            self.shop.validate(),
            self.staff.validate(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// The smallest `jobs.stream_max_len` accepted: a busy shop's backlog during an outage of a few hours.
const MIN_STREAM_LEN: u64 = 10_000;

impl Settings {
    /// The worker's timing against TikTok's: a deploy must not cut a job mid-send, and a job must have
    /// time for one TikTok call.
    fn delivery_timing(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let (grace_ms, job_ms) = (self.worker.shutdown_grace_secs * 1000, self.worker.job_timeout_ms);
        if grace_ms < job_ms {
            problems.push(problem(
                "worker.shutdown_grace_secs",
                format!(
                    "must be at least worker.job_timeout_ms ({job_ms} ms), or a deploy cuts jobs in the middle of a send"
                ),
            ));
        }
        let one_call = self.tiktok.request_timeout_ms + 1000;
        if job_ms < one_call {
            problems.push(problem(
                "worker.job_timeout_ms",
                format!(
                    "must leave time for one TikTok call: at least tiktok.request_timeout_ms + 1000 ({one_call} ms)"
                ),
            ));
        }
        problems
    }
}

impl LogSettings {
    fn validate(&self) -> Vec<Problem> {
        let mut problems: Vec<Problem> = log_filter_problem(&self.level)
            .map(|message| problem("log.level", format!("not a log filter (LOG_LEVEL): {message}")))
            .into_iter()
            .collect();
        // RUST_LOG wins over log.level when set, so it is held to the same rule.
        if let Ok(rust_log) = std::env::var("RUST_LOG")
            && !rust_log.trim().is_empty()
            && let Some(message) = log_filter_problem(&rust_log)
        {
            problems.push(Problem::new("RUST_LOG", "log.level", format!("not a log filter: {message}")));
        }
        problems
    }
}

/// The levels a log filter directive may name.
const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// What is wrong with a log filter, if anything. Stricter than the filter's own parser: a bare word
/// that is not a level (`verbose`) is read by it as a module name to log at TRACE, which silences
/// everything else, the start-up line included; a module's level is written `module=level`.
pub fn log_filter_problem(directives: &str) -> Option<String> {
    for directive in directives.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = match directive.rsplit_once('=') {
            Some((_, level)) => level,
            None if directive.contains('[') => continue,
            None => directive,
        };
        if !LOG_LEVELS.contains(&level.trim().to_ascii_lowercase().as_str()) {
            return Some(format!("{directive:?} is not a level ({}) nor module=level", LOG_LEVELS.join(", ")));
        }
    }
    tracing_subscriber::EnvFilter::try_new(directives).err().map(|e| e.to_string())
}

impl ServerSettings {
    fn validate(&self) -> Vec<Problem> {
        let too_small = self.body_limit_bytes < 1024;
        too_small.then(|| problem("server.body_limit_bytes", "must be at least 1024")).into_iter().collect()
    }
}

impl DatabaseSettings {
    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if let Some(url) = &self.url
            && database_kind(url.expose_secret()).is_none()
        {
            problems.push(problem("database.url", "must start with postgres://, postgresql:// or sqlite:"));
        }
        problems.extend(at_least_one("database.max_connections", self.max_connections.into()));
        problems
    }
}

impl RedisSettings {
    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if let Some(url) = &self.url {
            let url = url.expose_secret();
            if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://")) {
                problems.push(problem("redis.url", "must start with redis://, rediss:// or unix://"));
            }
        }
        if self.key_prefix.is_empty() || self.key_prefix.contains(char::is_whitespace) {
            problems.push(problem("redis.key_prefix", "must be non-empty and without spaces"));
        }
        problems
    }
}

impl WorkerSettings {
    fn validate(&self) -> Vec<Problem> {
        at_least_one("worker.concurrency", self.concurrency as u64).into_iter().collect()
    }
}

impl JobSettings {
    /// `worker`: a job may be taken over only once it has had its whole timeout.
    fn validate(&self, worker: &WorkerSettings) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.reclaim_min_idle_ms <= worker.job_timeout_ms {
            problems.push(problem(
                "jobs.reclaim_min_idle_ms",
                format!("must exceed worker.job_timeout_ms ({}), or live jobs get taken over", worker.job_timeout_ms),
            ));
        }
        problems.extend(at_least_one("jobs.max_deliveries", self.max_deliveries));
        if self.stream_max_len < MIN_STREAM_LEN {
            problems.push(problem(
                "jobs.stream_max_len",
                format!(
                    "must be at least {MIN_STREAM_LEN}: a backlog of a few hours' messages (an outage) must fit without a warning"
                ),
            ));
        }
        problems
    }
}

impl WebhookSettings {
    fn validate(&self) -> Vec<Problem> {
        let zero = self.rate_limit_per_second == 0 || self.rate_limit_burst == 0;
        zero.then(|| problem("webhook.rate_limit_per_second", "rate and burst must be at least 1"))
            .into_iter()
            .collect()
    }
}

impl TikTokSettings {
    /// `metrics_token`: the other secret production holds to the same length (checked here, with them).
    fn validate(&self, environment: Environment, metrics_token: &Option<SecretString>) -> Vec<Problem> {
        let mut problems: Vec<Problem> = http_url("tiktok.api_base_url", &self.api_base_url).into_iter().collect();
        // A short secret can be guessed offline from one signed webhook; TikTok's own are 32+ characters.
        if environment == Environment::Production {
            let secrets = [
                ("tiktok.client_secret", "TIKTOK_CLIENT_SECRET", &self.client_secret),
                ("tiktok.webhook_secret", "TIKTOK_WEBHOOK_SECRET", &self.webhook_secret),
                ("server.metrics_token", "PHILIA_METRICS_TOKEN", metrics_token),
            ];
            for (field, variable, secret) in secrets {
                if let Some(secret) = secret
                    && secret.expose_secret().trim().chars().count() < MIN_SECRET_CHARS
                {
                    problems.push(Problem::new(
                        "production",
                        field,
                        format!("{variable} is shorter than {MIN_SECRET_CHARS} characters: use the app's real secret"),
                    ));
                }
            }
        }
        if self.dry_run == Some(false) && !self.has_credentials() {
            problems.push(problem(
                "tiktok.dry_run",
                "is false but nothing to send with is set: set TIKTOK_ACCESS_TOKEN, or TIKTOK_CLIENT_KEY and \
                 TIKTOK_CLIENT_SECRET",
            ));
        }
        problems.extend(http_url("tiktok.authorize_url", &self.authorize_url));
        if !self.scopes.split(',').any(|s| s.trim() == "message.list.send") {
            problems.push(problem("tiktok.scopes", "must include message.list.send, or the bot cannot reply"));
        }
        problems
    }
}

impl LlmSettings {
    fn validate(&self) -> Vec<Problem> {
        http_url("llm.base_url", &self.base_url).into_iter().collect()
    }
}

/// The shortest client secret or webhook key production accepts.
pub const MIN_SECRET_CHARS: usize = 16;

/// The placeholders `shop.payment_instructions` may use.
pub const PAYMENT_INSTRUCTIONS_PLACEHOLDERS: &[&str] = &["order_number"];

/// A problem for each `{placeholder}` of a customer-facing setting that is not one of `known` (customers
/// would read it as it is).
fn unknown_placeholders(field: &str, text: &str, known: &[&str]) -> Vec<Problem> {
    let mut rest = text;
    let mut problems = Vec::new();
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start + 1..].find('}') else { break };
        let name = &rest[start + 1..start + 1 + len];
        if !known.contains(&name) {
            problems.push(problem(
                field,
                format!("unknown placeholder {{{name}}} (this setting knows: {})", known.join(", ")),
            ));
        }
        rest = &rest[start + 1 + len + 1..];
    }
    problems
}

impl ShopSettings {
    fn validate(&self) -> Vec<Problem> {
        const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let mut problems = Vec::new();
        if let Some(day) = self.open_days.iter().find(|d| !DAYS.contains(&d.as_str())) {
            problems.push(problem("shop.open_days", format!("{day:?} is not one of {}", DAYS.join(", "))));
        }
        if self.open_hour >= self.close_hour || self.close_hour > 24 {
            problems.push(problem("shop.close_hour", "must be after shop.open_hour and at most 24"));
        }
        problems.extend(at_least_one("shop.drops_per_page", self.drops_per_page));
        problems.extend(at_least_one("shop.hold_minutes", self.hold_minutes));
        problems.extend(at_least_one("shop.sweep_interval_secs", self.sweep_interval_secs));
        if let Some(days) = self.message_retention_days {
            problems.extend(at_least_one("shop.message_retention_days", days));
        }
        if self.shipping_minor < 0 {
            problems.push(problem("shop.shipping_minor", "must not be negative"));
        }
        if self.free_shipping_over_minor.is_some_and(|over| over <= 0) {
            problems.push(problem("shop.free_shipping_over_minor", "must be more than 0 (comment it out for none)"));
        }
        problems.extend(at_least_one("shop.max_holds_per_customer", self.max_holds_per_customer));
        problems.extend(at_least_one("shop.payment_reminder_hours", self.payment_reminder_hours));
        if self.payment_expiry_hours <= self.payment_reminder_hours {
            problems.push(problem(
                "shop.payment_expiry_hours",
                format!("must be more than shop.payment_reminder_hours ({})", self.payment_reminder_hours),
            ));
        }
        problems.extend(unknown_placeholders(
            "shop.payment_instructions",
            &self.payment_instructions,
            PAYMENT_INSTRUCTIONS_PLACEHOLDERS,
        ));
        if self.currency.len() != 3 || !self.currency.chars().all(|c| c.is_ascii_alphabetic()) {
            problems.push(problem("shop.currency", "must be a 3-letter currency code, like USD"));
        }
        if self.time_zone.parse::<chrono_tz::Tz>().is_err() {
            let message = format!("{:?} is not an IANA time zone name, like America/New_York", self.time_zone);
            problems.push(problem("shop.time_zone", message));
        }
        problems
    }
}

impl StaffSettings {
    fn validate(&self) -> Vec<Problem> {
        let mut problems: Vec<Problem> = [
            at_least_one("staff.session_hours", self.session_hours),
            at_least_one("staff.login_attempts", self.login_attempts.into()),
            at_least_one("staff.login_window_minutes", self.login_window_minutes),
        ]
        .into_iter()
        .flatten()
        .collect();
        let key_length = self.session_key.as_ref().map(|k| k.expose_secret().len());
        match key_length {
            None if self.enabled => problems.push(problem(
                "staff.session_key",
                "the console is enabled but has no session key: set PHILIA_STAFF__SESSION_KEY (openssl rand -hex 32)",
            )),
            Some(length) if length < 32 => problems.push(problem(
                "staff.session_key",
                format!("is {length} characters; at least 32 are needed (openssl rand -hex 32)"),
            )),
            _ => {}
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_defaults_are_valid() {
        assert_eq!(Settings::defaults().validate(), []);
    }

    #[test]
    fn each_section_names_the_field_it_rejects() {
        let mut settings = Settings::defaults();
        settings.worker.concurrency = 0;
        settings.jobs.reclaim_min_idle_ms = settings.worker.job_timeout_ms;
        settings.shop.open_days.push("someday".into());
        settings.shop.currency = "dollars".into();
        settings.shop.time_zone = "Eastern".into();
        settings.llm.base_url = "ftp://models".into();
        let fields: Vec<String> = settings.validate().into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "worker.concurrency",
                "jobs.reclaim_min_idle_ms",
                "llm.base_url",
                "shop.open_days",
                "shop.currency",
                "shop.time_zone"
            ]
        );
    }

    #[test]
    fn production_refuses_short_secrets() {
        let mut settings = Settings::defaults();
        settings.tiktok.client_secret = Some("short".to_owned().into());
        settings.tiktok.webhook_secret = Some("0123456789abcdef".to_owned().into());
        assert_eq!(settings.validate(), [], "locally anything goes");
        settings.environment = Environment::Production;
        let said: Vec<String> = settings.validate().iter().map(ToString::to_string).collect();
        assert_eq!(
            said,
            [
                "production: tiktok.client_secret: TIKTOK_CLIENT_SECRET is shorter than 16 characters: use the app's real secret"
            ]
        );
    }

    #[test]
    fn a_log_filter_names_levels() {
        for good in ["info", "WARN", "philia_bot=debug,info", "philia_bot::web=trace,sqlx=warn", ""] {
            assert_eq!(log_filter_problem(good), None, "{good:?}");
        }
        for bad in ["verbose", "info,verbose", "philia_bot=loud"] {
            assert!(log_filter_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn a_grace_shorter_than_a_job_or_a_job_shorter_than_a_call_or_a_tiny_stream_is_refused() {
        let fields = |tweak: &dyn Fn(&mut Settings)| {
            let mut settings = Settings::defaults();
            tweak(&mut settings);
            settings.validate().into_iter().map(|p| p.field).collect::<Vec<_>>()
        };
        assert_eq!(fields(&|s| s.worker.shutdown_grace_secs = 20), ["worker.shutdown_grace_secs"]);
        assert_eq!(
            fields(&|s| {
                s.worker.job_timeout_ms = 5_000;
                s.jobs.reclaim_min_idle_ms = 10_000;
            }),
            ["worker.job_timeout_ms"]
        );
        assert_eq!(fields(&|s| s.jobs.stream_max_len = 1_000), ["jobs.stream_max_len"]);
    }

    #[test]
    fn an_unknown_placeholder_in_the_payment_instructions_is_refused() {
        let mut settings = Settings::defaults();
        settings.shop.payment_instructions = "Venmo @philia, note {order} please".into();
        let said: Vec<String> = settings.validate().iter().map(ToString::to_string).collect();
        assert_eq!(
            said,
            ["settings: shop.payment_instructions: unknown placeholder {order} (this setting knows: order_number)"]
        );
    }
}
