//! A message in or out of a conversation, with its delivery outcome.

use sea_orm::entity::prelude::*;

/// Whether the customer wrote it or the shop sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)", rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

/// Who wrote it: the customer, the bot, a human from the shop, or the system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)", rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
    Staff,
    System,
}

/// What became of an outbound message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)", rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    /// Claimed by one worker right before its send request: never sent again blindly.
    Sending,
    Sent,
    /// The send request may have landed (no answer, 5xx, 51065): settled by its echo or by reading the
    /// conversation, and sent again only once TikTok shows it did not arrive.
    Unknown,
    Failed,
    OutsideWindow,
    DryRun,
    /// Not sent: the customer's 10 messages since they last wrote are used up (TikTok would refuse it).
    QuotaExhausted,
    /// Refused with 40064 ("sending too fast", a per-account limit): sent again when the pause is over,
    /// while the customer's window and quota allow.
    Throttled,
    /// Not sent: the shop's TikTok account is not connected (TikTok removed the authorization).
    NotConnected,
    /// Not sent by choice: a picture where TikTok allows no images, or the photo of a notice.
    Skipped,
    /// Its text went out inside the message before it (a turn merged to fit the quota).
    Merged,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub conversation_id: i64,
    pub direction: Direction,
    pub role: Role,
    #[sea_orm(unique)]
    pub tiktok_message_id: Option<String>,
    /// TikTok's message type: `text`, `image`, `share_post`, …
    pub message_type: String,
    pub text: Option<String>,
    pub media_id: Option<String>,
    pub delivery_status: Option<DeliveryStatus>,
    /// TikTok's error code when a send failed.
    pub error_code: Option<i64>,
    #[sea_orm(column_type = "JsonBinary")]
    pub metadata: Json,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::conversations::Entity",
        from = "Column::ConversationId",
        to = "super::conversations::Column::Id",
        on_delete = "Cascade"
    )]
    Conversation,
}

impl Related<super::conversations::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Conversation.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
