//! The conversation: what the bot answers a customer, in the shop's voice, from the shop's facts.

pub mod address;
pub mod conversation;
pub mod facts;
pub mod handoff;
pub mod intent;
mod learned;
pub mod llm;
pub mod notices;
mod replies;
pub mod staff;

use std::sync::Arc;

pub use self::conversation::{ConversationState, Decision, Routed, Turn};
use self::intent::KeywordRouter;
use self::llm::LlmRouter;
pub use self::replies::{REPLIES_FILE, Replies};
use crate::config::ShopSettings;
use crate::shop::SizeChart;
use crate::store::ledger::Outgoing;
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
    /// The TikTok messages this reply becomes, in the order they are to arrive: its text (split at TikTok's
    /// limit; none when empty), then its picture (by URL, uploaded when sent). Each carries `metadata` (the
    /// picture also its `image_url`). Replies to a customer's message and notices the shop sends on its own
    /// become messages alike, so they are stored and delivered alike.
    pub fn messages(&self, metadata: &serde_json::Value) -> Vec<Outgoing> {
        let mut messages = Vec::new();
        if !self.text.is_empty() {
            for part in split_text(&self.text, MAX_TEXT_CHARS) {
                messages.push(Outgoing { message_type: "text", text: Some(part), metadata: metadata.clone() });
            }
        }
        if let Some(url) = &self.image_url {
            let mut with_url = metadata.clone();
            with_url["image_url"] = url.clone().into();
            messages.push(Outgoing { message_type: "image", text: None, metadata: with_url });
        }
        messages
    }
}

/// Why the bot could not decide a turn: the shop's facts could not be read or written (the job is
/// retried). A failing LLM is not one: the keyword router's answer stands.
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
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
        let facts = facts::Facts::new(&shop, &files.replies);
        Self {
            replies: Arc::new(files.replies.with_facts(&facts)),
            router: Arc::new(files.router.with_facts(&facts)),
            llm,
            history_messages,
            shop: Arc::new(shop),
            chart: Arc::new(files.chart),
        }
    }

    /// The line `replies.toml` sends in place of a photo TikTok does not allow (`templates.photo_link`),
    /// when it has one.
    pub fn photo_link(&self, photo: &str) -> Option<String> {
        self.replies.templates.photo_link.as_deref().map(|line| replies::render(line, &[("photo", photo)]))
    }

    /// The size chart the bot advises from.
    pub fn size_chart(&self) -> &SizeChart {
        &self.chart
    }

    /// Whether an LLM is configured (it is asked after the keyword router).
    pub fn has_llm(&self) -> bool {
        self.llm.is_some()
    }

    /// The intent of one message on its own (no conversation around it), as the router chain decides:
    /// the keywords, then the LLM when configured and the message is not unambiguous. For `eval routing`.
    pub async fn classify(&self, text: &str) -> self::intent::Intent {
        let (intent, _) = self.router.route(text);
        match &self.llm {
            Some(llm) if !self.router.is_unambiguous(text) => llm.classify(text, &[]).await.map_or(intent, |(i, _)| i),
            _ => intent,
        }
    }

    /// The staff webhook's notice that `who` needs a person for `reason`, in the words of
    /// `replies.toml` [staff] notice.
    pub fn staff_notice(&self, who: &str, reason: &str, conversation: &str) -> String {
        self::replies::render(
            &self.replies.staff.notice,
            &[("who", who), ("reason", reason), ("conversation", conversation)],
        )
    }

    /// Which router decides: for the start-up line.
    pub fn router_name(&self) -> &'static str {
        if self.llm.is_some() { "keywords, then the LLM" } else { "keywords only" }
    }
}
