//! What a worker does with each job. For an inbound customer message: take the idempotency lease, open
//! the reply window, store user, conversation, message and the bot's reply in one transaction together
//! with the `processed_events` row, then deliver the reply. Run twice, it stores and sends nothing twice.

use std::time::Duration;

use anyhow::{Context, anyhow};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};
use serde_json::json;

use crate::bot::{ConversationState, Decision, Turn};
use crate::jobs::{Job, JobError, MessageV1};
use crate::shop::ReplyWindow;
use crate::state::AppState;
use crate::store::entities::messages::{DeliveryStatus, Direction, Role};
use crate::store::entities::{conversations, messages, processed_events, users};
use crate::telemetry::escape_for_log;
use crate::tiktok::api::{ApiError, codes};

/// How long "this event is done" is remembered in Redis; the database row is the durable guard.
const DONE_TTL: Duration = Duration::from_secs(72 * 3600);
const DONE: &str = "done";

/// What running a job amounted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Processed,
    /// The event had been processed before (a redelivery): nothing was stored or sent again.
    Duplicate,
}

fn retryable(error: impl Into<anyhow::Error>) -> JobError {
    JobError::Retryable(error.into())
}

pub async fn handle(state: &AppState, job: Job) -> Result<Outcome, JobError> {
    match job {
        Job::InboundMessageV1(message) => {
            exactly_once(state, &message.idempotency_key, || process_inbound(state, &message)).await
        }
        Job::OutboundEchoV1(message) => {
            exactly_once(state, &message.idempotency_key, || process_echo(state, &message)).await
        }
    }
}

/// The Redis (or in-process) key of the reply window of a customer.
pub fn window_key(state: &AppState, tiktok_user_id: &str) -> String {
    state.kv.key(&format!("TIKTOK_WINDOW:{tiktok_user_id}"))
}

/// Runs `process` for an event unless it is done or another worker holds it: a `SET NX` lease on the
/// event's key (it lapses on its own if this worker dies, so the job can run again elsewhere), then a
/// done marker. The database's `processed_events` row, written by `process` in the same transaction as
/// its effects, is the durable guard behind both.
async fn exactly_once<F, Fut>(state: &AppState, event_id: &str, process: F) -> Result<Outcome, JobError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Outcome, JobError>>,
{
    let key = state.kv.key(&format!("idem:{event_id}"));
    let lease = format!("lease:{}", uuid::Uuid::new_v4().simple());
    let lease_ttl = Duration::from_millis(state.settings.worker.job_timeout_ms);
    if !state.kv.set_if_absent(&key, &lease, lease_ttl).await.map_err(retryable)? {
        // Either the event is done, or another delivery of it holds the lease. That delivery stays
        // pending until its effects are stored (and is taken over if its worker dies), so this copy can
        // be settled now either way.
        tracing::debug!(event_id, "event done or being processed by another worker");
        return Ok(Outcome::Duplicate);
    }
    let result = process().await;
    match &result {
        Ok(_) => state.kv.set(&key, DONE, DONE_TTL).await.map_err(retryable)?,
        Err(_) => {
            if let Err(e) = state.kv.delete_if_equals(&key, &lease).await {
                tracing::warn!(error = format!("{e:#}"), "could not release an idempotency lease; it will lapse");
            }
        }
    }
    result
}

async fn process_inbound(state: &AppState, message: &MessageV1) -> Result<Outcome, JobError> {
    let sent_at = message.sent_at();
    // The window is 48 h from when the customer wrote, not from when this job happens to run; it is
    // opened before anything else, so even if storing fails now, the customer did write.
    let window_left = (sent_at + ReplyWindow::LENGTH) - Utc::now();
    let window_opened = match window_left.to_std() {
        Ok(ttl) if !ttl.is_zero() => {
            let key = window_key(state, &message.from_user_id);
            state.kv.set(&key, &sent_at.timestamp().to_string(), ttl).await.map_err(retryable)?;
            true
        }
        _ => false,
    };

    // Known before the transaction opens, so no Redis round trip happens while it holds locks.
    // Without TikTok credentials "sending" is printing, so replies are settled in the message's own
    // transaction; a live send happens after the commit and records its own outcome.
    let reply_status = if !state.settings.tiktok.is_dry_run() {
        DeliveryStatus::Pending
    } else if window_opened {
        // This very message opened the window: no need to ask Redis whether it is open.
        DeliveryStatus::DryRun
    } else {
        dry_run_status(state, &message.from_user_id).await?
    };
    let txn = state.db.begin().await.context("starting a transaction").map_err(retryable)?;
    let customer = Customer {
        tiktok_user_id: &message.from_user_id,
        username: message.from_username.as_deref(),
        wrote_at: Some(sent_at),
    };
    let stored = upsert_conversation(&txn, &customer, &message.conversation_id, sent_at).await.map_err(retryable)?;
    insert_message(&txn, stored.conversation.id, (Direction::In, Role::User), message, sent_at)
        .await
        .map_err(retryable)?;
    // Stickers, images and shared posts get no automatic answer: only text is understood.
    let decision = match message.text.as_deref().filter(|t| !t.trim().is_empty()) {
        Some(text) => {
            let turn = Turn { user: &stored.user, conversation: &stored.conversation, text, now: Utc::now() };
            state.bot.respond(&txn, turn).await.map_err(retryable)?
        }
        None => Decision { state: ConversationState::of(&stored.conversation), ..Default::default() },
    };
    apply_decision(&txn, &stored, &decision).await.map_err(retryable)?;
    let mut replies = Vec::new();
    let in_reply_to = json!({"in_reply_to": message.idempotency_key});
    for reply in &decision.replies {
        let parts = reply
            .store(&txn, stored.conversation.id, Role::Assistant, reply_status, &in_reply_to)
            .await
            .context("storing the reply")
            .map_err(retryable)?;
        replies.extend(parts);
    }
    let pending_reply = replies.iter().any(|r| r.delivery_status == Some(DeliveryStatus::Pending));
    // Written last, in the same transaction: if another delivery of this event got here first, the
    // insert finds its row and everything above is rolled back.
    let outcome = if replies.is_empty() {
        "no_reply".to_owned()
    } else {
        format!("reply:{}", replies.iter().map(|r| r.id.to_string()).collect::<Vec<_>>().join(","))
    };
    if !record_event(&txn, message, outcome, !pending_reply).await? {
        txn.rollback().await.context("rollback").map_err(retryable)?;
        // Stored before: only a reply that was stored but not yet delivered (a crash in between) is left.
        finish_delivery(state, &message.idempotency_key).await?;
        return Ok(Outcome::Duplicate);
    }
    txn.commit().await.context("committing").map_err(retryable)?;

    tracing::info!(
        event_id = %message.idempotency_key,
        conversation = %stored.conversation.tiktok_conversation_id,
        user = %stored.user.tiktok_user_id,
        message_type = %message.message_type,
        text = %escape_for_log(message.text.as_deref().unwrap_or(""), 200),
        "inbound message stored"
    );
    for reply in &replies {
        log_reply(&stored.conversation, reply.text.as_deref(), reply.delivery_status);
    }
    if let Some(reason) = &decision.handoff {
        notify_staff(state, &stored, reason);
    }
    if pending_reply {
        // The rows are in hand: no need to read back what this job just wrote. The window was opened
        // by this very message when `window_opened`.
        for reply in &replies {
            send_claimed(state, reply, &stored, window_opened).await?;
        }
        mark_processed(state, &message.idempotency_key).await?;
    }
    // Other customers' notices (a cancelled hold freed a piece they wait for) are committed already; one
    // that cannot be sent now is left pending for the sweeper, never failing this customer's job.
    deliver_notices(state, &decision.notices).await;
    Ok(Outcome::Processed)
}

/// Whether TikTok still lets the shop reply to this customer (48 h after their last message).
pub async fn window_open(state: &AppState, tiktok_user_id: &str) -> Result<bool, JobError> {
    Ok(state.kv.get(&window_key(state, tiktok_user_id)).await.map_err(retryable)?.is_some())
}

/// What the dry-run sender does with a reply: print it (`dry_run`), or nothing when the customer's
/// window is closed (`outside_window`), exactly as a live send would check first.
async fn dry_run_status(state: &AppState, tiktok_user_id: &str) -> Result<DeliveryStatus, JobError> {
    Ok(if window_open(state, tiktok_user_id).await? { DeliveryStatus::DryRun } else { DeliveryStatus::OutsideWindow })
}

/// Says in the log what became of a reply that was not sent to TikTok (printed, or refused by the window).
fn log_reply(conversation: &conversations::Model, text: Option<&str>, status: Option<DeliveryStatus>) {
    let text = escape_for_log(text.unwrap_or(""), 2_000);
    match status {
        Some(DeliveryStatus::DryRun) => tracing::info!(
            conversation = %conversation.tiktok_conversation_id,
            %text,
            "reply (dry run, not sent to TikTok)"
        ),
        Some(DeliveryStatus::OutsideWindow) => tracing::info!(
            conversation = %conversation.tiktok_conversation_id,
            "reply window closed: reply not sent"
        ),
        _ => {}
    }
}

struct Stored {
    user: users::Model,
    conversation: conversations::Model,
}

/// The customer of a conversation, and when they wrote (`None` for messages the shop sent).
struct Customer<'a> {
    tiktok_user_id: &'a str,
    username: Option<&'a str>,
    wrote_at: Option<DateTime<Utc>>,
}

/// Upserts the customer and the conversation.
async fn upsert_conversation(
    txn: &DatabaseTransaction,
    customer: &Customer<'_>,
    conversation_id: &str,
    at: DateTime<Utc>,
) -> anyhow::Result<Stored> {
    let now = Utc::now();
    let mut update = vec![users::Column::UpdatedAt];
    if customer.wrote_at.is_some() {
        update.push(users::Column::LastInboundAt);
    }
    if customer.username.is_some() {
        update.push(users::Column::Username);
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
    .on_conflict(OnConflict::column(users::Column::TiktokUserId).update_columns(update).to_owned())
    .exec_with_returning(txn)
    .await
    .context("upserting the user")?;

    let conversation = conversations::Entity::insert(conversations::ActiveModel {
        tiktok_conversation_id: Set(conversation_id.to_owned()),
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
    .exec_with_returning(txn)
    .await
    .context("upserting the conversation")?;
    Ok(Stored { user, conversation })
}

/// Stores a message as TikTok described it (once: a known TikTok message id is not stored again).
async fn insert_message(
    txn: &DatabaseTransaction,
    conversation_id: i64,
    (direction, role): (Direction, Role),
    message: &MessageV1,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    messages::Entity::insert(messages::ActiveModel {
        conversation_id: Set(conversation_id),
        direction: Set(direction),
        role: Set(role),
        tiktok_message_id: Set(message.message_id.clone()),
        message_type: Set(message.message_type.clone()),
        text: Set(message.text.clone()),
        media_id: Set(message.media_id.clone()),
        metadata: Set(json!({"event_id": message.idempotency_key})),
        created_at: Set(at),
        ..Default::default()
    })
    .on_conflict(OnConflict::column(messages::Column::TiktokMessageId).do_nothing().to_owned())
    .exec_without_returning(txn)
    .await
    .context("storing the message")?;
    Ok(())
}

/// Stores what the turn changed: the conversation's state and handoff, the customer's opt-out.
async fn apply_decision(txn: &DatabaseTransaction, stored: &Stored, decision: &Decision) -> anyhow::Result<()> {
    let unchanged = decision.handoff.is_none()
        && !decision.handoff_released
        && ConversationState::of(&stored.conversation) == decision.state
        && (!decision.opt_out || stored.user.opted_out);
    if unchanged {
        // The common turn (Idle stays Idle): no write beyond the message itself.
        return Ok(());
    }
    let mut conversation: conversations::ActiveModel = stored.conversation.clone().into();
    conversation.state = Set(serde_json::to_value(&decision.state)?);
    if let Some(reason) = &decision.handoff {
        conversation.handoff_active = Set(true);
        conversation.handoff_at = Set(Some(Utc::now()));
        conversation.handoff_reason = Set(Some(reason.clone()));
    } else if decision.handoff_released {
        conversation.handoff_active = Set(false);
        conversation.handoff_reason = Set(None);
    }
    conversation.update(txn).await.context("updating the conversation")?;
    if decision.opt_out && !stored.user.opted_out {
        let mut user: users::ActiveModel = stored.user.clone().into();
        user.opted_out = Set(true);
        user.update(txn).await.context("recording the opt-out")?;
    }
    Ok(())
}

/// Tells the team a conversation needs a human: a log line, and a POST to the staff webhook when one is
/// configured (Slack reads `text`, Discord reads `content`). Best effort: it never fails the job.
fn notify_staff(state: &AppState, stored: &Stored, reason: &str) {
    let who = stored.user.username.clone().unwrap_or_else(|| stored.user.tiktok_user_id.clone());
    let text =
        format!("🙋 @{who} needs a human ({reason}). Conversation {}", stored.conversation.tiktok_conversation_id);
    tracing::warn!(conversation = %stored.conversation.tiktok_conversation_id, %reason, "handoff to a human");
    let Some(url) = state.settings.shop.staff_webhook_url.clone() else { return };
    let client = state.http.clone();
    tokio::spawn(async move {
        let body = serde_json::json!({"text": text, "content": text});
        match client.post(&url).json(&body).send().await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => {
                tracing::warn!(status = response.status().as_u16(), "staff webhook refused the handoff notice")
            }
            Err(e) => tracing::warn!(error = %e, "staff webhook unreachable"),
        }
    });
}

/// Inserts the event's `processed_events` row; false when the event was recorded before (the caller then
/// rolls its transaction back).
async fn record_event(
    txn: &DatabaseTransaction,
    message: &MessageV1,
    outcome: String,
    processed: bool,
) -> Result<bool, JobError> {
    let event = processed_events::ActiveModel {
        idempotency_key: Set(message.idempotency_key.clone()),
        event_type: Set(message.event.clone()),
        received_at: Set(message.received_at),
        processed_at: Set(processed.then(Utc::now)),
        outcome: Set(Some(outcome)),
        ..Default::default()
    };
    let inserted = processed_events::Entity::insert(event)
        .on_conflict(OnConflict::column(processed_events::Column::IdempotencyKey).do_nothing().to_owned())
        .exec_without_returning(txn)
        .await
        .context("recording the event")
        .map_err(retryable)?;
    Ok(inserted == 1)
}

/// TikTok's echo of a message the business sent. One of ours (known id, or a reply still being sent
/// with the same content: the echo can beat the send call's answer) is matched and left alone; any
/// other is a human writing from the TikTok app, stored as a `staff` message.
async fn process_echo(state: &AppState, message: &MessageV1) -> Result<Outcome, JobError> {
    let customer_id = message
        .to_user_id
        .as_deref()
        .ok_or_else(|| JobError::Permanent(anyhow!("echo {} names no recipient", message.idempotency_key)))?;
    let at = message.sent_at();
    let txn = state.db.begin().await.context("starting a transaction").map_err(retryable)?;
    let known = match &message.message_id {
        Some(id) => messages::Entity::find()
            .filter(messages::Column::TiktokMessageId.eq(id))
            .one(&txn)
            .await
            .context("looking up the echoed message")
            .map_err(retryable)?
            .is_some(),
        None => false,
    };
    let outcome = if known {
        "echo:ours"
    } else if let Some(ours) = reply_being_sent(&txn, message).await.map_err(retryable)? {
        let mut matched: messages::ActiveModel = ours.into();
        matched.tiktok_message_id = Set(message.message_id.clone());
        matched.update(&txn).await.context("matching the echo").map_err(retryable)?;
        "echo:ours"
    } else {
        let customer = Customer { tiktok_user_id: customer_id, username: None, wrote_at: None };
        let stored = upsert_conversation(&txn, &customer, &message.conversation_id, at).await.map_err(retryable)?;
        insert_message(&txn, stored.conversation.id, (Direction::Out, Role::Staff), message, at)
            .await
            .map_err(retryable)?;
        // A human answering from the app takes the conversation over: the bot stays out of it.
        let takeover = Decision {
            state: ConversationState::Idle,
            handoff: Some("staff replied in the TikTok app".into()),
            ..Default::default()
        };
        apply_decision(&txn, &stored, &takeover).await.map_err(retryable)?;
        tracing::info!(conversation = %message.conversation_id, "staff replied from the TikTok app");
        "echo:staff"
    };
    if !record_event(&txn, message, outcome.to_owned(), true).await? {
        txn.rollback().await.context("rollback").map_err(retryable)?;
        return Ok(Outcome::Duplicate);
    }
    txn.commit().await.context("committing").map_err(retryable)?;
    Ok(Outcome::Processed)
}

/// The oldest reply of the bot in the echo's conversation that is being sent, has no TikTok id yet, and
/// says what the echo says.
async fn reply_being_sent(txn: &DatabaseTransaction, echo: &MessageV1) -> anyhow::Result<Option<messages::Model>> {
    let Some(conversation) = conversations::Entity::find()
        .filter(conversations::Column::TiktokConversationId.eq(&echo.conversation_id))
        .one(txn)
        .await?
    else {
        return Ok(None);
    };
    let mut query = messages::Entity::find()
        .filter(messages::Column::ConversationId.eq(conversation.id))
        .filter(messages::Column::Role.is_in([Role::Assistant, Role::System]))
        .filter(messages::Column::TiktokMessageId.is_null())
        .filter(messages::Column::DeliveryStatus.is_in([DeliveryStatus::Sending, DeliveryStatus::Sent]))
        .filter(messages::Column::MessageType.eq(echo.message_type.to_ascii_lowercase()));
    query = match (&echo.text, &echo.media_id) {
        (Some(text), _) => query.filter(messages::Column::Text.eq(text)),
        (None, Some(media_id)) => query.filter(messages::Column::MediaId.eq(media_id)),
        (None, None) => return Ok(None),
    };
    Ok(query.order_by_asc(messages::Column::Id).one(txn).await?)
}

/// Delivers the reply stored for an event, if it is still pending, then marks the event processed.
/// Safe to run again: a reply that is no longer pending is left alone.
async fn finish_delivery(state: &AppState, event_id: &str) -> Result<(), JobError> {
    let event = processed_events::Entity::find()
        .filter(processed_events::Column::IdempotencyKey.eq(event_id))
        .one(&state.db)
        .await
        .context("reading the event")
        .map_err(retryable)?;
    let Some(event) = event else { return Ok(()) };
    if event.processed_at.is_some() {
        return Ok(());
    }
    let reply_ids = event.outcome.as_deref().and_then(|o| o.strip_prefix("reply:")).unwrap_or("");
    // In order: a split text must arrive as it was written.
    for reply_id in reply_ids.split(',').filter_map(|id| id.parse::<i64>().ok()) {
        deliver_reply(state, reply_id).await?;
    }
    mark_processed(state, event_id).await
}

/// The event's replies are all settled: a redelivery has nothing left to do.
async fn mark_processed(state: &AppState, event_id: &str) -> Result<(), JobError> {
    processed_events::Entity::update_many()
        .col_expr(processed_events::Column::ProcessedAt, sea_orm::sea_query::Expr::value(Utc::now()))
        .filter(processed_events::Column::IdempotencyKey.eq(event_id))
        .filter(processed_events::Column::ProcessedAt.is_null())
        .exec(&state.db)
        .await
        .context("marking the event processed")
        .map_err(retryable)?;
    Ok(())
}

/// Delivers stored notices in order; one that fails stays pending (the sweeper tries it again).
pub async fn deliver_notices(state: &AppState, ids: &[i64]) {
    for id in ids {
        if let Err(e) = deliver_reply(state, *id).await {
            tracing::warn!(message = id, error = %e, "notice not delivered yet; the sweeper will retry");
        }
    }
}

/// Sends one stored reply, once, reading it and its conversation first (a redelivered job, a notice).
async fn deliver_reply(state: &AppState, reply_id: i64) -> Result<(), JobError> {
    let reply =
        messages::Entity::find_by_id(reply_id).one(&state.db).await.context("reading the reply").map_err(retryable)?;
    let Some(reply) = reply else { return Err(JobError::Permanent(anyhow!("reply {reply_id} does not exist"))) };
    if reply.delivery_status == Some(DeliveryStatus::Sending) {
        // Its worker died mid-call (a crash: job timeouts never cut a call). TikTok may have it; its
        // echo, if any, marks it sent. Sending it again could say the same thing twice.
        tracing::warn!(reply = reply_id, "reply was being sent when its worker stopped; not sent again");
    }
    if reply.delivery_status != Some(DeliveryStatus::Pending) {
        return Ok(());
    }
    let (conversation, user) = conversations::Entity::find_by_id(reply.conversation_id)
        .find_also_related(users::Entity)
        .one(&state.db)
        .await
        .context("reading the conversation")
        .map_err(retryable)?
        .and_then(|(c, u)| u.map(|u| (c, u)))
        .ok_or_else(|| JobError::Permanent(anyhow!("reply {reply_id} has no conversation or user")))?;
    send_claimed(state, &reply, &Stored { user, conversation }, false).await
}

/// Sends one pending reply, once: the row is claimed (`pending` → `sending`) before the call, so a
/// redelivered job never sends it twice. The customer's reply window is checked first (unless this
/// job's own message just opened it). Without TikTok credentials this is the dry-run sender: the reply
/// is printed and marked `dry_run`.
async fn send_claimed(
    state: &AppState,
    reply: &messages::Model,
    stored: &Stored,
    window_known_open: bool,
) -> Result<(), JobError> {
    let (reply_id, conversation, user) = (reply.id, &stored.conversation, &stored.user);
    let Some(client) = &state.tiktok else {
        let status = dry_run_status(state, &user.tiktok_user_id).await?;
        log_reply(conversation, reply.text.as_deref(), Some(status));
        return record_delivery(state, reply_id, status, None, None).await;
    };
    let claimed = messages::Entity::update_many()
        .col_expr(messages::Column::DeliveryStatus, DeliveryStatus::Sending.into())
        .filter(messages::Column::Id.eq(reply_id))
        .filter(messages::Column::DeliveryStatus.eq(DeliveryStatus::Pending))
        .exec(&state.db)
        .await
        .context("claiming the reply")
        .map_err(retryable)?;
    if claimed.rows_affected == 0 {
        return Ok(());
    }
    if !window_known_open && !window_open(state, &user.tiktok_user_id).await? {
        log_reply(conversation, reply.text.as_deref(), Some(DeliveryStatus::OutsideWindow));
        return record_delivery(state, reply_id, DeliveryStatus::OutsideWindow, None, None).await;
    }
    let recipient = &conversation.tiktok_conversation_id;
    // An image reply carries TikTok's media id, or the URL of a photo to upload first.
    let image_url = reply.metadata.get("image_url").and_then(serde_json::Value::as_str);
    let sent = match (reply.message_type.as_str(), &reply.media_id, image_url) {
        ("image", Some(media_id), _) => client.send_image(recipient, media_id).await,
        ("image", None, Some(url)) => client.send_image_url(recipient, url).await,
        ("image", None, None) => Err(ApiError::Image("image reply without a media id or URL".into())),
        _ => client.send_text(recipient, reply.text.as_deref().unwrap_or("")).await,
    };
    match sent {
        Ok(message_id) => {
            tracing::info!(conversation = %conversation.tiktok_conversation_id, %message_id, "reply sent");
            record_delivery(state, reply_id, DeliveryStatus::Sent, Some(message_id), None).await
        }
        Err(error) if error.code() == Some(codes::OUTSIDE_WINDOW) => {
            tracing::info!(conversation = %conversation.tiktok_conversation_id, "TikTok: outside the reply window (40064)");
            record_delivery(state, reply_id, DeliveryStatus::OutsideWindow, None, error.code()).await
        }
        Err(error) if error.is_retryable() && !error.maybe_delivered() => {
            // TikTok certainly did not take it: release the claim so a later delivery of the job sends it.
            record_delivery(state, reply_id, DeliveryStatus::Pending, None, error.code()).await?;
            Err(retryable(anyhow!("sending reply {reply_id}: {error}")))
        }
        Err(error) => {
            // Refused for good, or possibly delivered (no answer): recorded, never sent twice.
            tracing::error!(conversation = %conversation.tiktok_conversation_id, %error, "reply not sent");
            record_delivery(state, reply_id, DeliveryStatus::Failed, None, error.code()).await
        }
    }
}

async fn record_delivery(
    state: &AppState,
    reply_id: i64,
    status: DeliveryStatus,
    tiktok_message_id: Option<String>,
    error_code: Option<i64>,
) -> Result<(), JobError> {
    let mut update = messages::ActiveModel { id: Set(reply_id), ..Default::default() };
    update.delivery_status = Set(Some(status));
    update.error_code = Set(error_code);
    if let Some(id) = tiktok_message_id {
        update.tiktok_message_id = Set(Some(id));
    }
    update.update(&state.db).await.context("recording the delivery").map_err(retryable)?;
    Ok(())
}
