//! philia-bot: the TikTok direct-message sales and support bot of Philia Thrifts.
//!
//! Dependencies point one way: `cli` → `startup` → `web`/`worker` → `bot` → `shop` → `store`. `startup`
//! wires the parts of a process together for its `role`; `config` and `telemetry` serve all of them.

pub mod bot;
pub mod cli;
pub mod config;
pub mod healthcheck;
pub mod jobs;
pub mod kv;
pub mod metrics;
pub mod redis_pool;
pub mod role;
pub mod sandbox;
pub mod shop;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tiktok;
pub mod web;
pub mod worker;

/// Installs ring as rustls' process-wide crypto provider. Must run before any HTTP client or TLS
/// connection is built (reqwest, async-openai and sqlx are compiled without a provider of their own).
pub fn install_crypto_provider() {
    // Err means a provider is already installed (tests build many apps in one process): keep it.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
