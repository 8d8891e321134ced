//! The ledger of conversations: the one module that writes customers, conversations, messages and
//! `processed_events`, so each of those rows is written one way whoever asks (the inbound job, the echo
//! job, delivery and TikTok's sending rules, notices, staff commands, `customers forget` and the retention
//! rule, which `shop::privacy` decides). Every function takes `&impl ConnectionTrait`: callers run it
//! inside their own transaction, together with the other effects it must commit with. (`shop::locks`
//! takes a customer's row lock with an `UPDATE` that changes nothing: a lock, not a write.)

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Serialize;
use serde_json::{Value, json};

use super::entities::messages::{self, DeliveryStatus, Direction, Role};
use super::entities::{conversations, processed_events, users};

/// A conversation and its customer.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerConversation {
    pub user: users::Model,
    pub conversation: conversations::Model,
}

/// The customer of a conversation, and when they wrote (`None` for a message the shop sent).
#[derive(Debug, Clone, Copy)]
pub struct Customer<'a> {
    pub tiktok_user_id: &'a str,
    pub username: Option<&'a str>,
    pub wrote_at: Option<DateTime<Utc>>,
}

/// A message as TikTok's webhook described it.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    pub tiktok_message_id: Option<&'a str>,
    pub message_type: &'a str,
    pub text: Option<&'a str>,
    pub media_id: Option<&'a str>,
    /// The idempotency key of the webhook event that brought it.
    pub event_id: &'a str,
    pub at: DateTime<Utc>,
}

/// One message the shop is to send: a text or a picture (TikTok sends one or the other per message).
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// `text` or `image`.
    pub message_type: &'static str,
    pub text: Option<String>,
    /// Why it is sent (`in_reply_to`, `notice`), and for a picture its `image_url`.
    pub metadata: Value,
}

/// What a turn does to the conversation's handoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff<'a> {
    Unchanged,
    /// A human takes over, for this reason.
    Start(&'a str),
    /// The bot answers again.
    End,
}

/// A webhook event's `processed_events` row.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub idempotency_key: &'a str,
    pub event_type: &'a str,
    pub received_at: DateTime<Utc>,
    /// What it came to: [`replies_outcome`], or `echo:…`.
    pub outcome: String,
    /// Set when nothing is left to do for the event; `None` while its replies wait to be delivered.
    pub processed_at: Option<DateTime<Utc>>,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub status: DeliveryStatus,
    pub tiktok_message_id: Option<String>,
    pub error_code: Option<i64>,
}

/// Upserts the customer and the conversation. When the customer wrote, their reply window restarts from
/// that moment (`users.last_inbound_at`), unless a later message of theirs is stored already: messages can
/// be processed out of order, and an old one must not close the window a newer one opened.
pub async fn upsert_conversation(
    db: &impl ConnectionTrait,
    customer: &Customer<'_>,
    tiktok_conversation_id: &str,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<CustomerConversation, DbErr> {
    let mut on_conflict = OnConflict::column(users::Column::TiktokUserId);
    on_conflict.update_column(users::Column::UpdatedAt);
    if customer.username.is_some() {
        on_conflict.update_column(users::Column::Username);
    }
    if customer.wrote_at.is_some() {
        let stored = Expr::col((users::Entity, users::Column::LastInboundAt));
        let written = Expr::col((Alias::new("excluded"), users::Column::LastInboundAt));
        let later =
            Expr::case(stored.clone().is_null().or(written.clone().gt(stored.clone())), written).finally(stored);
        on_conflict.value(users::Column::LastInboundAt, later);
    }
    let user = users::Entity::insert(users::ActiveModel {
        tiktok_user_id: Set(customer.tiktok_user_id.to_owned()),
        username: Set(customer.username.map(str::to_owned)),
        last_inbound_at: Set(customer.wrote_at),
        opted_out: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    })
    .on_conflict(on_conflict.clone())
    .exec_with_returning(db)
    .await?;

    let conversation = conversations::Entity::insert(conversations::ActiveModel {
        tiktok_conversation_id: Set(tiktok_conversation_id.to_owned()),
        user_id: Set(user.id),
        state: Set(json!({"kind": "idle"})),
        handoff_active: Set(false),
        metadata: Set(json!({})),
        last_message_at: Set(Some(at)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::column(conversations::Column::TiktokConversationId)
            .update_columns([conversations::Column::LastMessageAt, conversations::Column::UpdatedAt])
            .to_owned(),
    )
    .exec_with_returning(db)
    .await?;
    Ok(CustomerConversation { user, conversation })
}

/// Stores a message TikTok told us about: the customer's (`Role::User`, inbound) or one a person on the
/// shop's side sent from the app (`Role::Staff`, outbound). A known TikTok message id is not stored again.
pub async fn store_received(
    db: &impl ConnectionTrait,
    conversation_id: i64,
    role: Role,
    message: &Received<'_>,
) -> Result<(), DbErr> {
    let direction = if role == Role::User { Direction::In } else { Direction::Out };
    messages::Entity::insert(messages::ActiveModel {
        conversation_id: Set(conversation_id),
        direction: Set(direction),
        role: Set(role),
        tiktok_message_id: Set(message.tiktok_message_id.map(str::to_owned)),
        message_type: Set(message.message_type.to_owned()),
        text: Set(message.text.map(str::to_owned)),
        media_id: Set(message.media_id.map(str::to_owned)),
        metadata: Set(json!({"event_id": message.event_id})),
        created_at: Set(message.at),
        ..Default::default()
    })
    .on_conflict(OnConflict::column(messages::Column::TiktokMessageId).do_nothing().to_owned())
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Stores messages the shop is to send, in the order they are to arrive, each with `status`. They are
/// stamped with the clock, not a caller's `now`: the sweeper retries notices by how long they have waited.
pub async fn store_outgoing(
    db: &impl ConnectionTrait,
    conversation_id: i64,
    role: Role,
    status: DeliveryStatus,
    outgoing: Vec<Outgoing>,
) -> Result<Vec<messages::Model>, DbErr> {
    let mut stored = Vec::with_capacity(outgoing.len());
    for message in outgoing {
        let row = messages::ActiveModel {
            conversation_id: Set(conversation_id),
            direction: Set(Direction::Out),
            role: Set(role),
            message_type: Set(message.message_type.to_owned()),
            text: Set(message.text),
            delivery_status: Set(Some(status)),
            metadata: Set(message.metadata),
            created_at: Set(Utc::now()),
            ..Default::default()
        };
        stored.push(row.insert(db).await?);
    }
    Ok(stored)
}

/// Stores what a turn changed on the conversation: what the bot waits for next, and its handoff.
pub async fn update_conversation(
    db: &impl ConnectionTrait,
    conversation: &conversations::Model,
    state: &impl Serialize,
    handoff: Handoff<'_>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let mut update = conversations::ActiveModel {
        id: Set(conversation.id),
        state: Set(state_json(state)?),
        updated_at: Set(now),
        ..Default::default()
    };
    match handoff {
        Handoff::Unchanged => {}
        Handoff::Start(reason) => {
            update.handoff_active = Set(true);
            update.handoff_at = Set(Some(now));
            update.handoff_reason = Set(Some(reason.to_owned()));
        }
        Handoff::End => {
            update.handoff_active = Set(false);
            update.handoff_reason = Set(None);
        }
    }
    update.update(db).await?;
    Ok(())
}

/// Sets what the bot waits for in a conversation (a notice invites an answer; `chat`'s `/reset`).
pub async fn set_state(
    db: &impl ConnectionTrait,
    conversation_id: i64,
    state: &impl Serialize,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    conversations::Entity::update_many()
        .col_expr(conversations::Column::State, Expr::value(state_json(state)?))
        .col_expr(conversations::Column::UpdatedAt, Expr::value(now))
        .filter(conversations::Column::Id.eq(conversation_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Gives a conversation back to the bot; false when it was not in handoff (or does not exist).
pub async fn end_handoff(
    db: &impl ConnectionTrait,
    tiktok_conversation_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = conversations::Entity::update_many()
        .set(conversations::ActiveModel {
            handoff_active: Set(false),
            handoff_reason: Set(None),
            updated_at: Set(now),
            ..Default::default()
        })
        .filter(conversations::Column::TiktokConversationId.eq(tiktok_conversation_id))
        .filter(conversations::Column::HandoffActive.eq(true))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// The customer asked the bot to stop writing to them.
pub async fn record_opt_out(db: &impl ConnectionTrait, user: &users::Model, now: DateTime<Utc>) -> Result<(), DbErr> {
    users::ActiveModel { id: Set(user.id), opted_out: Set(true), updated_at: Set(now), ..Default::default() }
        .update(db)
        .await?;
    Ok(())
}

fn state_json(state: &impl Serialize) -> Result<Value, DbErr> {
    serde_json::to_value(state).map_err(|e| DbErr::Json(e.to_string()))
}

/// Inserts the event's `processed_events` row; false when the event was recorded before (the caller then
/// rolls its transaction back: another delivery of the event stored its effects).
pub async fn record_event(db: &impl ConnectionTrait, event: Event<'_>) -> Result<bool, DbErr> {
    let row = processed_events::ActiveModel {
        idempotency_key: Set(event.idempotency_key.to_owned()),
        event_type: Set(event.event_type.to_owned()),
        received_at: Set(event.received_at),
        processed_at: Set(event.processed_at),
        outcome: Set(Some(event.outcome)),
        ..Default::default()
    };
    let inserted = processed_events::Entity::insert(row)
        .on_conflict(OnConflict::column(processed_events::Column::IdempotencyKey).do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
    Ok(inserted == 1)
}

/// The outcome of an event the bot answered with these stored messages (`no_reply` when none).
pub fn replies_outcome(replies: &[messages::Model]) -> String {
    if replies.is_empty() {
        return "no_reply".to_owned();
    }
    format!("reply:{}", replies.iter().map(|r| r.id.to_string()).collect::<Vec<_>>().join(","))
}

/// The ids of the replies an event's outcome names, in the order they are to arrive.
pub fn reply_ids(event: &processed_events::Model) -> Vec<i64> {
    let ids = event.outcome.as_deref().and_then(|o| o.strip_prefix("reply:")).unwrap_or("");
    ids.split(',').filter_map(|id| id.parse().ok()).collect()
}

/// The `processed_events` row of an event.
pub async fn event(db: &impl ConnectionTrait, idempotency_key: &str) -> Result<Option<processed_events::Model>, DbErr> {
    processed_events::Entity::find().filter(processed_events::Column::IdempotencyKey.eq(idempotency_key)).one(db).await
}

/// The event's replies are all settled: a redelivery has nothing left to do.
pub async fn mark_processed(db: &impl ConnectionTrait, idempotency_key: &str, now: DateTime<Utc>) -> Result<(), DbErr> {
    processed_events::Entity::update_many()
        .col_expr(processed_events::Column::ProcessedAt, Expr::value(now))
        .filter(processed_events::Column::IdempotencyKey.eq(idempotency_key))
        .filter(processed_events::Column::ProcessedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// A stored message the shop sends, with its conversation and customer.
pub async fn outgoing_with_conversation(
    db: &impl ConnectionTrait,
    message_id: i64,
) -> Result<Option<(messages::Model, CustomerConversation)>, DbErr> {
    let Some(message) = messages::Entity::find_by_id(message_id).one(db).await? else { return Ok(None) };
    let found =
        conversations::Entity::find_by_id(message.conversation_id).find_also_related(users::Entity).one(db).await?;
    Ok(match found {
        Some((conversation, Some(user))) => Some((message, CustomerConversation { user, conversation })),
        _ => None,
    })
}

/// The metadata key holding when a message's latest send request was claimed (RFC 3339): how the
/// sweeper tells a send stuck in `sending` or `unknown` and how an echo or a listed message is matched
/// to it in time.
pub const SEND_CLAIMED_AT: &str = "send_claimed_at";

/// When the latest send of `message` was claimed, if it ever was.
pub fn send_claimed_at(message: &messages::Model) -> Option<DateTime<Utc>> {
    message.metadata.get(SEND_CLAIMED_AT).and_then(Value::as_str).and_then(|at| at.parse().ok())
}

/// Claims a pending message for sending (`pending` → `sending`, stamped with `now`) right before its send
/// request is written; false when it is not pending any more (another delivery has it), so it is never
/// sent twice.
pub async fn claim_for_sending(
    db: &impl ConnectionTrait,
    message: &messages::Model,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let mut metadata = message.metadata.clone();
    if let Some(fields) = metadata.as_object_mut() {
        fields.insert(SEND_CLAIMED_AT.to_owned(), now.to_rfc3339().into());
    }
    let claimed = messages::Entity::update_many()
        .col_expr(messages::Column::DeliveryStatus, DeliveryStatus::Sending.into())
        .col_expr(messages::Column::Metadata, Expr::value(metadata))
        .filter(messages::Column::Id.eq(message.id))
        .filter(messages::Column::DeliveryStatus.eq(DeliveryStatus::Pending))
        .exec(db)
        .await?;
    Ok(claimed.rows_affected == 1)
}

/// Records how a send ended, if the message is still in one of `from`; false when it was in none of them
/// (its echo settled it first, or another delivery moved it).
pub async fn move_delivery(
    db: &impl ConnectionTrait,
    message_id: i64,
    from: &[DeliveryStatus],
    record: DeliveryRecord,
) -> Result<bool, DbErr> {
    let mut update = messages::Entity::update_many()
        .col_expr(messages::Column::DeliveryStatus, record.status.into())
        .col_expr(messages::Column::ErrorCode, Expr::value(record.error_code));
    if let Some(id) = record.tiktok_message_id {
        update = update.col_expr(messages::Column::TiktokMessageId, Expr::value(id));
    }
    let moved = update
        .filter(messages::Column::Id.eq(message_id))
        .filter(messages::Column::DeliveryStatus.is_in(from.iter().copied()))
        .exec(db)
        .await?;
    Ok(moved.rows_affected == 1)
}

/// Puts a message TikTok's pause held back (`throttled`) up for sending again (`pending`); false when it
/// is not `throttled` any more (another sweep released it). Its error code (the 40064) stays.
pub async fn release_throttled(db: &impl ConnectionTrait, message_id: i64) -> Result<bool, DbErr> {
    let released = messages::Entity::update_many()
        .col_expr(messages::Column::DeliveryStatus, Expr::value(DeliveryStatus::Pending))
        .filter(messages::Column::Id.eq(message_id))
        .filter(messages::Column::DeliveryStatus.eq(DeliveryStatus::Throttled))
        .exec(db)
        .await?;
    Ok(released.rows_affected == 1)
}

/// Gives the first message of a composed turn the texts merged into it (the others were recorded `merged`).
pub async fn record_merged_text(db: &impl ConnectionTrait, message_id: i64, text: &str) -> Result<(), DbErr> {
    messages::ActiveModel { id: Set(message_id), text: Set(Some(text.to_owned())), ..Default::default() }
        .update(db)
        .await?;
    Ok(())
}

/// Records that a picture goes out as the text line standing in for it (TikTok allows no images there).
pub async fn record_picture_as_text(db: &impl ConnectionTrait, message_id: i64, line: &str) -> Result<(), DbErr> {
    messages::ActiveModel {
        id: Set(message_id),
        message_type: Set("text".into()),
        text: Set(Some(line.to_owned())),
        ..Default::default()
    }
    .update(db)
    .await?;
    Ok(())
}

/// Records how a delivery ended.
pub async fn record_delivery(db: &impl ConnectionTrait, message_id: i64, record: DeliveryRecord) -> Result<(), DbErr> {
    let mut update = messages::ActiveModel { id: Set(message_id), ..Default::default() };
    update.delivery_status = Set(Some(record.status));
    update.error_code = Set(record.error_code);
    if let Some(id) = record.tiktok_message_id {
        update.tiktok_message_id = Set(Some(id));
    }
    update.update(db).await?;
    Ok(())
}

/// Messages whose send is unsettled (`sending` or `unknown`), oldest first.
pub async fn unsettled_sends(db: &impl ConnectionTrait, limit: u64) -> Result<Vec<messages::Model>, DbErr> {
    messages::Entity::find()
        .filter(messages::Column::DeliveryStatus.is_in([DeliveryStatus::Sending, DeliveryStatus::Unknown]))
        .order_by_asc(messages::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// Whether a message of the conversation stored before `message_id` is still to be sent or settled: a
/// later one waits for it, so the customer reads them in order.
pub async fn earlier_unsettled(
    db: &impl ConnectionTrait,
    conversation_id: i64,
    message_id: i64,
) -> Result<bool, DbErr> {
    let found = messages::Entity::find()
        .filter(messages::Column::ConversationId.eq(conversation_id))
        .filter(messages::Column::Id.lt(message_id))
        .filter(messages::Column::DeliveryStatus.is_in([
            DeliveryStatus::Pending,
            DeliveryStatus::Sending,
            DeliveryStatus::Unknown,
        ]))
        .one(db)
        .await?;
    Ok(found.is_some())
}

/// Messages of the shop (replies and notices) still pending after `older_than`, oldest first: their
/// delivery right after their commit failed, their job died, or they wait behind an earlier one.
pub async fn pending_outgoing(
    db: &impl ConnectionTrait,
    older_than: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<i64>, DbErr> {
    Ok(messages::Entity::find()
        .filter(messages::Column::Direction.eq(Direction::Out))
        .filter(messages::Column::DeliveryStatus.eq(DeliveryStatus::Pending))
        .filter(messages::Column::CreatedAt.lte(older_than))
        .order_by_asc(messages::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(|m| m.id)
        .collect())
}

/// Whether a message with this TikTok id is stored.
pub async fn is_stored(db: &impl ConnectionTrait, tiktok_message_id: &str) -> Result<bool, DbErr> {
    let found =
        messages::Entity::find().filter(messages::Column::TiktokMessageId.eq(tiktok_message_id)).one(db).await?;
    Ok(found.is_some())
}

/// The oldest message of the bot in the echo's conversation that is being sent (or whose send is
/// unknown), has no TikTok id yet, says what the echo says, and was claimed no later than a minute after
/// the echo's moment (the echo can arrive before the send call has answered; the minute allows for
/// clocks that disagree).
pub async fn being_sent_like(
    db: &impl ConnectionTrait,
    tiktok_conversation_id: &str,
    echo: &Received<'_>,
) -> Result<Option<messages::Model>, DbErr> {
    let Some(conversation) = conversations::Entity::find()
        .filter(conversations::Column::TiktokConversationId.eq(tiktok_conversation_id))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let mut query = messages::Entity::find()
        .filter(messages::Column::ConversationId.eq(conversation.id))
        .filter(messages::Column::Role.is_in([Role::Assistant, Role::System]))
        .filter(messages::Column::TiktokMessageId.is_null())
        .filter(messages::Column::DeliveryStatus.is_in([
            DeliveryStatus::Sending,
            DeliveryStatus::Unknown,
            DeliveryStatus::Sent,
        ]))
        .filter(messages::Column::MessageType.eq(echo.message_type.to_ascii_lowercase()));
    query = match (echo.text, echo.media_id) {
        (Some(text), _) => query.filter(messages::Column::Text.eq(text)),
        (None, Some(media_id)) => query.filter(messages::Column::MediaId.eq(media_id)),
        (None, None) => return Ok(None),
    };
    let latest_claim = echo.at + chrono::Duration::minutes(1);
    let candidates = query.order_by_asc(messages::Column::Id).all(db).await?;
    Ok(candidates.into_iter().find(|m| send_claimed_at(m).is_none_or(|at| at <= latest_claim)))
}

/// Gives one of our messages the TikTok id its echo carried: the echo proves it arrived, so a send still
/// in flight or of unknown outcome is settled `sent`.
pub async fn match_echo(
    db: &impl ConnectionTrait,
    message: &messages::Model,
    tiktok_message_id: Option<&str>,
) -> Result<(), DbErr> {
    let mut update = messages::ActiveModel { id: Set(message.id), ..Default::default() };
    update.tiktok_message_id = Set(tiktok_message_id.map(str::to_owned));
    if matches!(message.delivery_status, Some(DeliveryStatus::Sending | DeliveryStatus::Unknown)) {
        update.delivery_status = Set(Some(DeliveryStatus::Sent));
        update.error_code = Set(None);
    }
    update.update(db).await?;
    Ok(())
}

/// Statuses of a message that may still be sent (now, after a pause, or once TikTok shows it did not
/// arrive): it needs its text until then.
const AWAITING_A_SEND: &[DeliveryStatus] =
    &[DeliveryStatus::Pending, DeliveryStatus::Sending, DeliveryStatus::Unknown, DeliveryStatus::Throttled];

/// Erases what a customer wrote and was written in their conversations (`customers forget`): a reply not
/// yet sent is not sent at all (`failed`; one being sent right now keeps going), every message loses its
/// text, media and metadata, and each conversation loses its TikTok id (replaced by one that names only
/// the row), state, metadata and handoff. Returns how many messages were erased.
pub async fn forget_conversations(db: &impl ConnectionTrait, user_id: i64, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let their_conversations = Query::select()
        .column(conversations::Column::Id)
        .from(conversations::Entity)
        .and_where(Expr::col(conversations::Column::UserId).eq(user_id))
        .to_owned();
    messages::Entity::update_many()
        .col_expr(messages::Column::DeliveryStatus, Expr::value(DeliveryStatus::Failed))
        .filter(messages::Column::ConversationId.in_subquery(their_conversations.clone()))
        .filter(
            messages::Column::DeliveryStatus
                .is_in(AWAITING_A_SEND.iter().copied().filter(|s| *s != DeliveryStatus::Sending)),
        )
        .exec(db)
        .await?;
    let erased = messages::Entity::update_many()
        .col_expr(messages::Column::Text, Expr::value(Option::<String>::None))
        .col_expr(messages::Column::MediaId, Expr::value(Option::<String>::None))
        .col_expr(messages::Column::Metadata, Expr::value(json!({})))
        .filter(messages::Column::ConversationId.in_subquery(their_conversations))
        .exec(db)
        .await?
        .rows_affected;
    for conversation in conversations::Entity::find().filter(conversations::Column::UserId.eq(user_id)).all(db).await? {
        // The TikTok id links the rows to the person: replaced by one that names only the row.
        conversations::Entity::update_many()
            .col_expr(
                conversations::Column::TiktokConversationId,
                Expr::value(format!("forgotten-{}", conversation.id)),
            )
            .col_expr(conversations::Column::State, Expr::value(json!({})))
            .col_expr(conversations::Column::Metadata, Expr::value(json!({})))
            .col_expr(conversations::Column::HandoffActive, Expr::value(false))
            .col_expr(conversations::Column::HandoffReason, Expr::value(Option::<String>::None))
            .col_expr(conversations::Column::UpdatedAt, Expr::value(now))
            .filter(conversations::Column::Id.eq(conversation.id))
            .exec(db)
            .await?;
    }
    Ok(erased)
}

/// Erases a customer's row (`customers forget`): their TikTok id (replaced by one that names only the
/// row), handle, phone and window go, and they are opted out so nothing is ever sent to it again. The
/// row stays: orders point at it.
pub async fn forget_customer(db: &impl ConnectionTrait, user_id: i64, now: DateTime<Utc>) -> Result<(), DbErr> {
    users::Entity::update_many()
        .col_expr(users::Column::TiktokUserId, Expr::value(format!("forgotten-{user_id}")))
        .col_expr(users::Column::Username, Expr::value(Option::<String>::None))
        .col_expr(users::Column::Phone, Expr::value(Option::<String>::None))
        .col_expr(users::Column::LastInboundAt, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(users::Column::OptedOut, Expr::value(true))
        .col_expr(users::Column::UpdatedAt, Expr::value(now))
        .filter(users::Column::Id.eq(user_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Removes the text (and media) of messages older than `cutoff` whose delivery is settled (a reply
/// still waiting to be sent keeps its text): the retention rule. Returns how many.
pub async fn drop_settled_texts(db: &impl ConnectionTrait, cutoff: DateTime<Utc>) -> Result<u64, DbErr> {
    let settled = messages::Column::DeliveryStatus
        .is_null()
        .or(messages::Column::DeliveryStatus.is_not_in(AWAITING_A_SEND.iter().copied()));
    let dropped = messages::Entity::update_many()
        .col_expr(messages::Column::Text, Expr::value(Option::<String>::None))
        .col_expr(messages::Column::MediaId, Expr::value(Option::<String>::None))
        .filter(messages::Column::CreatedAt.lt(cutoff))
        .filter(messages::Column::Text.is_not_null().or(messages::Column::MediaId.is_not_null()))
        .filter(settled)
        .exec(db)
        .await?;
    Ok(dropped.rows_affected)
}
