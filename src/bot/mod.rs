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
    shop: Arc<ShopSettings>,
}

impl Bot {
    pub fn new(replies: Replies, router: KeywordRouter, shop: ShopSettings) -> Self {
        Self { replies: Arc::new(replies), router: Arc::new(router), shop: Arc::new(shop) }
    }
}
