//! The conversation: what the bot answers a customer, in the shop's voice, from the shop's facts.

pub mod conversation;
pub mod handoff;
pub mod intent;
mod replies;

use std::sync::Arc;

pub use self::conversation::{ConversationState, Decision, Turn};
use self::intent::KeywordRouter;
pub use self::replies::{REPLIES_FILE, Replies};
use crate::config::ShopSettings;
use crate::llm::LlmRouter;

/// What the bot says: a text, and optionally a picture sent right after it (TikTok sends one or the
/// other per message, so a reply with both becomes two messages, in this order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub text: String,
    pub image_url: Option<String>,
}

/// The bot's decision-making, shared by every worker task: its texts, its router and the shop's rules.
#[derive(Clone)]
pub struct Bot {
    replies: Arc<Replies>,
    router: Arc<KeywordRouter>,
    llm: Option<LlmRouter>,
    history_messages: u64,
    shop: Arc<ShopSettings>,
}

impl Bot {
    /// `llm` is consulted after the keyword router when configured; `history_messages` earlier messages
    /// go to it as context.
    pub fn new(
        replies: Replies,
        router: KeywordRouter,
        llm: Option<LlmRouter>,
        history_messages: u64,
        shop: ShopSettings,
    ) -> Self {
        Self { replies: Arc::new(replies), router: Arc::new(router), llm, history_messages, shop: Arc::new(shop) }
    }

    /// Which router decides: for the start-up line.
    pub fn router_name(&self) -> &'static str {
        if self.llm.is_some() { "keywords, then the LLM" } else { "keywords only" }
    }
}
