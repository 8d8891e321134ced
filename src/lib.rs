//! philia-bot: the TikTok direct-message sales and support bot of Philia Thrifts.
//!
//! Dependencies point one way: `web`/`worker` → bot → shop → `store`. `startup` wires the parts of a
//! process together for its role; `config` and `telemetry` serve all of them.

pub mod bot;
pub mod chat;
pub mod config;
pub mod healthcheck;
pub mod jobs;
pub mod kv;
pub mod llm;
pub mod metrics;
pub mod redis_pool;
pub mod shop;
pub mod staff;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tiktok;
pub mod web;
pub mod worker;

use std::path::Path;

/// Everything `config check` reports for a config folder: unknown files, each settings file on its own,
/// and the bot's texts.
pub fn check_config_dir(config_dir: &Path) -> Vec<config::Problem> {
    let mut known = config::SETTINGS_FILES.to_vec();
    known.extend([bot::REPLIES_FILE, bot::intent::INTENTS_FILE, bot::intent::FAQ_FILE, shop::SIZE_CHART_FILE]);
    let mut problems = config::unknown_config_files(config_dir, &known);
    problems.extend(config::check_settings_files(config_dir));
    if let Err(more) = bot::BotFiles::load(config_dir) {
        problems.extend(more);
    }
    problems
}

/// Installs ring as rustls' process-wide crypto provider. Must run before any HTTP client or TLS
/// connection is built (reqwest, async-openai and sqlx are compiled without a provider of their own).
pub fn install_crypto_provider() {
    // Err means a provider is already installed (tests build many apps in one process): keep it.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
