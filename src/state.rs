//! What every part of a running process shares: [`AppState`], built by `startup` and handed to the web
//! routes and the worker pool, which import it from here (never from `startup`).

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::bot::Bot;
use crate::config::Settings;
use crate::jobs::JobQueue;
use crate::kv::Kv;
use crate::metrics::Metrics;
use crate::redis_pool::Redis;
use crate::tiktok::TikTokClient;
use crate::tiktok::tokens::TokenManager;

/// What every part of a running process shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: DatabaseConnection,
    pub redis: Option<Redis>,
    pub queue: JobQueue,
    pub kv: Kv,
    pub bot: Bot,
    /// The live TikTok sender; `None` is the dry run (replies stored and printed, never sent).
    pub tiktok: Option<TikTokClient>,
    /// The shop's TikTok tokens (the OAuth callback stores new ones here).
    pub tokens: TokenManager,
    /// Outbound HTTP with timeouts (TikTok, the staff webhook).
    pub http: reqwest::Client,
    /// What `/metrics` reports.
    pub metrics: Metrics,
}
