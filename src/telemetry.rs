//! Logging: tracing to stdout (stderr for staff commands, whose stdout is their answer), JSON lines in
//! production (Railway reads stdout), human-readable locally.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{Environment, LogFormat, LogSettings};

/// Whether what customers write (their messages, and replies that may repeat it) is logged at INFO:
/// locally yes, so a shop owner trying the bot sees the conversation; in production only at DEBUG, so
/// the logs a platform keeps hold ids and intents, not people's words. Set once by [`init`]; processes
/// that never call it (tests) behave as local.
static CUSTOMER_TEXT_AT_INFO: AtomicBool = AtomicBool::new(true);

/// See [`CUSTOMER_TEXT_AT_INFO`].
pub fn customer_text_at_info() -> bool {
    CUSTOMER_TEXT_AT_INFO.load(Ordering::Relaxed)
}

/// Crates whose per-statement logs are silenced unless `log.sql_statements` asks for them.
const SQL_TARGETS: &[&str] = &["sqlx", "sea_orm", "sea_orm_migration"];

/// The filter in force: `RUST_LOG` when set, else `log.level` (`LOG_LEVEL`), with SQL statements muted.
pub fn env_filter(settings: &LogSettings) -> EnvFilter {
    let base =
        std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| settings.level.clone());
    let mut directives = base;
    if !settings.sql_statements {
        for target in SQL_TARGETS {
            // An explicit directive for the target in RUST_LOG/LOG_LEVEL is kept: the operator asked for it.
            if !directives.contains(target) {
                directives.push_str(&format!(",{target}=warn"));
            }
        }
    }
    EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Whether logs are JSON lines for these settings.
pub fn is_json(settings: &LogSettings, environment: Environment) -> bool {
    match settings.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => environment == Environment::Production,
    }
}

/// Installs the global subscriber once, writing to stdout; later calls (tests building several apps) are
/// no-ops.
pub fn init(settings: &LogSettings, environment: Environment) {
    install(settings, environment, LogTo::Stdout);
}

/// Like [`init`], writing to stderr: for commands whose stdout is their answer (staff tables, `--json`).
pub fn init_on_stderr(settings: &LogSettings, environment: Environment) {
    install(settings, environment, LogTo::Stderr);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LogTo {
    Stdout,
    Stderr,
}

fn install(settings: &LogSettings, environment: Environment, to: LogTo) {
    CUSTOMER_TEXT_AT_INFO.store(environment != Environment::Production, Ordering::Relaxed);
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (writer, is_terminal) = match to {
        LogTo::Stdout => (BoxMakeWriter::new(std::io::stdout), std::io::stdout().is_terminal()),
        LogTo::Stderr => (BoxMakeWriter::new(std::io::stderr), std::io::stderr().is_terminal()),
    };
    let output = if is_json(settings, environment) {
        tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_span_events(FmtSpan::NONE)
            .boxed()
    } else {
        // Colours only on a terminal: piped output (files, CI, `chat` transcripts) stays plain text.
        tracing_subscriber::fmt::layer().with_writer(writer).with_target(false).with_ansi(is_terminal).boxed()
    };
    // One global filter (not per layer): it decides for the output and the error reporting alike.
    let registry = tracing_subscriber::registry().with(env_filter(settings)).with(output);
    // Warnings and errors also go to Sentry when it is compiled in and SENTRY_DSN is set (see error_reporting).
    #[cfg(feature = "sentry")]
    let registry = registry.with(sentry::integrations::tracing::layer());
    // Err only means a subscriber is already installed (a second Application in one test process).
    drop(registry.try_init());
}

/// Starts error reporting to Sentry when built with `--features sentry` and `SENTRY_DSN` is set: panics,
/// and `error!` logs as events (`warn!` as breadcrumbs). Keep the returned guard until exit: dropping it
/// flushes what is unsent.
#[cfg(feature = "sentry")]
pub fn error_reporting(environment: Environment) -> Option<sentry::ClientInitGuard> {
    let dsn = std::env::var("SENTRY_DSN").ok().filter(|d| !d.trim().is_empty())?;
    Some(sentry::init((
        dsn,
        sentry::ClientOptions {
            release: sentry::release_name!(),
            environment: Some(environment.as_str().to_owned().into()),
            ..Default::default()
        },
    )))
}

/// Without the `sentry` feature there is no error reporting; `SENTRY_DSN` is then reported as ignored.
#[cfg(not(feature = "sentry"))]
pub fn error_reporting(_environment: Environment) -> Option<()> {
    if std::env::var_os("SENTRY_DSN").is_some() {
        eprintln!("SENTRY_DSN is set but this binary was built without `--features sentry`: errors are not reported");
    }
    None
}

/// Makes user-provided text safe to put in a log line: CR, LF and other control characters are escaped,
/// and the text is capped, so no message can forge or break a log record.
pub fn escape_for_log(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 2));
    for (count, c) in text.chars().enumerate() {
        if count == max_chars {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_text_is_capped() {
        assert_eq!(escape_for_log("hi\r\nINFO fake\x1b[31m", 100), "hi\\r\\nINFO fake\\u{1b}[31m");
        assert_eq!(escape_for_log("abcdef", 3), "abc…");
    }
}
