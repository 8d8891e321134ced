//! The conversation: what the bot answers a customer. Today every text gets the numbered menu; intent
//! routing, the shop's facts and human handoff build on this.

pub mod intent;
mod replies;

use std::sync::Arc;

pub use self::replies::{REPLIES_FILE, Replies};
use crate::jobs::MessageV1;

/// What the bot says: a text, and optionally a picture sent right after it (TikTok sends one or the
/// other per message, so a reply with both becomes two messages, in this order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub text: String,
    pub image_url: Option<String>,
}

/// The bot's decision-making, shared by every worker task.
#[derive(Clone)]
pub struct Bot {
    replies: Arc<Replies>,
}

impl Bot {
    pub fn new(replies: Replies) -> Self {
        Self { replies: Arc::new(replies) }
    }

    /// The reply to a customer's message, if it gets one. Non-text messages (stickers, images, shared
    /// posts) get no automatic answer yet.
    pub fn reply_to(&self, message: &MessageV1) -> Option<Reply> {
        message
            .text
            .as_ref()
            .filter(|t| !t.trim().is_empty())
            .map(|_| Reply { text: self.replies.menu(), image_url: self.replies.menu.image_url.clone() })
    }
}
