//! Conversations a human has taken over, for staff: list them, and give one back to the bot.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use crate::store::entities::{conversations, users};
use crate::store::ledger;

/// The handoff reason of a conversation a person from the shop took over by writing in it from the
/// TikTok app: from then on the bot is silent there.
pub const STAFF_TOOK_OVER: &str = "staff replied in the TikTok app";

/// A conversation in handoff, as staff see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    pub conversation: String,
    pub customer: String,
    pub since: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

/// Every conversation a human has, oldest handoff first.
pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<Handoff>, DbErr> {
    let rows = conversations::Entity::find()
        .filter(conversations::Column::HandoffActive.eq(true))
        .order_by_asc(conversations::Column::HandoffAt)
        .find_also_related(users::Entity)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(conversation, user)| Handoff {
            customer: user.map(|u| u.handle().to_owned()).unwrap_or_default(),
            conversation: conversation.tiktok_conversation_id,
            since: conversation.handoff_at,
            reason: conversation.handoff_reason,
        })
        .collect())
}

/// Gives a conversation back to the bot; false when it was not in handoff (or does not exist).
pub async fn release(db: &impl ConnectionTrait, tiktok_conversation_id: &str) -> Result<bool, DbErr> {
    ledger::end_handoff(db, tiktok_conversation_id, Utc::now()).await
}
