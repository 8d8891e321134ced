//! The conversation: what the bot answers a customer, in the shop's voice, from the shop's facts.

pub mod conversation;
pub mod handoff;
pub mod intent;
pub mod llm;
pub mod notices;
mod replies;
pub mod staff;

use std::sync::Arc;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DbErr};

pub use self::conversation::{ConversationState, Decision, Turn};
use self::intent::KeywordRouter;
use self::llm::LlmRouter;
pub use self::replies::{REPLIES_FILE, Replies};
use crate::config::ShopSettings;
use crate::shop::SizeChart;
use crate::store::entities::messages::{self, DeliveryStatus, Direction, Role};
use crate::tiktok::api::{MAX_TEXT_CHARS, split_text};

/// What the bot says: a text, and optionally a picture sent right after it (TikTok sends one or the
/// other per message, so a reply with both becomes two messages, in this order). An empty text sends
/// the picture alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub text: String,
    pub image_url: Option<String>,
}

impl Reply {
    /// Stores this reply in a conversation as the TikTok messages it becomes, in the order they are to
    /// arrive: its text (split at TikTok's limit; none when empty), then its picture (by URL, uploaded
    /// when sent). Each carries `metadata` (the picture also its `image_url`). Replies to a customer's
    /// message and notices the shop sends on its own are stored alike, so they are delivered alike.
    pub async fn store(
        &self,
        db: &impl ConnectionTrait,
        conversation_id: i64,
        role: Role,
        status: DeliveryStatus,
        metadata: &serde_json::Value,
    ) -> Result<Vec<messages::Model>, DbErr> {
        let mut parts: Vec<(&str, Option<String>, serde_json::Value)> = Vec::new();
        if !self.text.is_empty() {
            for part in split_text(&self.text, MAX_TEXT_CHARS) {
                parts.push(("text", Some(part), metadata.clone()));
            }
        }
        if let Some(url) = &self.image_url {
            let mut with_url = metadata.clone();
            with_url["image_url"] = url.clone().into();
            parts.push(("image", None, with_url));
        }
        let mut stored = Vec::with_capacity(parts.len());
        for (message_type, text, metadata) in parts {
            let message = messages::ActiveModel {
                conversation_id: Set(conversation_id),
                direction: Set(Direction::Out),
                role: Set(role),
                message_type: Set(message_type.to_owned()),
                text: Set(text),
                delivery_status: Set(Some(status)),
                metadata: Set(metadata),
                created_at: Set(Utc::now()),
                ..Default::default()
            };
            stored.push(message.insert(db).await?);
        }
        Ok(stored)
    }
}

/// The bot's decision-making, shared by every worker task: its texts, its router and the shop's rules.
#[derive(Clone)]
pub struct Bot {
    replies: Arc<Replies>,
    router: Arc<KeywordRouter>,
    llm: Option<LlmRouter>,
    history_messages: u64,
    shop: Arc<ShopSettings>,
    chart: Arc<SizeChart>,
}

/// The bot's config files, read and validated together: texts, keywords and FAQ, size chart.
pub struct BotFiles {
    pub replies: Replies,
    pub router: KeywordRouter,
    pub chart: SizeChart,
}

impl BotFiles {
    /// Reads every file from `config_dir` (each falls back to its built-in copy when absent) and returns
    /// every problem found in any of them.
    pub fn load(config_dir: &std::path::Path) -> Result<Self, Vec<crate::config::Problem>> {
        let (replies, router, chart) =
            (Replies::load(config_dir), KeywordRouter::load(config_dir), SizeChart::load(config_dir));
        match (replies, router, chart) {
            (Ok(replies), Ok(router), Ok(chart)) => Ok(BotFiles { replies, router, chart }),
            (replies, router, chart) => {
                Err(replies.err().into_iter().chain(router.err()).chain(chart.err()).flatten().collect())
            }
        }
    }
}

impl Bot {
    /// `llm` is consulted after the keyword router when configured; `history_messages` earlier messages
    /// go to it as context.
    pub fn new(files: BotFiles, llm: Option<LlmRouter>, history_messages: u64, shop: ShopSettings) -> Self {
        Self {
            replies: Arc::new(files.replies),
            router: Arc::new(files.router),
            llm,
            history_messages,
            shop: Arc::new(shop),
            chart: Arc::new(files.chart),
        }
    }

    /// The size chart the bot advises from.
    pub fn size_chart(&self) -> &SizeChart {
        &self.chart
    }

    /// Which router decides: for the start-up line.
    pub fn router_name(&self) -> &'static str {
        if self.llm.is_some() { "keywords, then the LLM" } else { "keywords only" }
    }
}
