//! The conversation: what the bot answers a customer. Today every text gets the numbered menu; intent
//! routing, the shop's facts and human handoff build on this.

mod replies;

use std::sync::Arc;

pub use self::replies::{REPLIES_FILE, Replies};
use crate::jobs::MessageV1;

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
    pub fn reply_to(&self, message: &MessageV1) -> Option<String> {
        message.text.as_ref().filter(|t| !t.trim().is_empty()).map(|_| self.replies.menu())
    }
}
