//! Delivery: sending what the bot stored, once. A message is claimed (`pending` → `sending`) right before
//! the call, so no redelivered job sends it twice, and the call's outcome is recorded on the row: `sent`
//! with TikTok's id, `outside_window`, `failed` (refused, or possibly delivered: never sent blindly
//! again), or `pending` again when TikTok certainly did not take it. Notices are delivered right after the
//! commit that stored them and retried by the sweeper. The staff webhook is told when a human is wanted.

use anyhow::anyhow;
use chrono::{DateTime, Utc};

use crate::jobs::JobError;
use crate::shop::ReplyWindow;
use crate::state::AppState;
use crate::store::entities::conversations;
use crate::store::entities::messages::{self, DeliveryStatus};
use crate::store::ledger::{self, CustomerConversation, DeliveryRecord};
use crate::telemetry::escape_for_log;
use crate::tiktok::api::{ApiError, codes};

/// Sends stored messages of one conversation in order (a split text must arrive as it was written).
pub async fn send_in_order(
    state: &AppState,
    messages: &[messages::Model],
    to: &CustomerConversation,
) -> Result<(), JobError> {
    for message in messages {
        send_claimed(state, message, to).await?;
    }
    Ok(())
}

/// Delivers the replies stored for an event, if they are still pending, then marks the event processed.
/// Safe to run again: a reply that is no longer pending is left alone.
pub async fn finish_event(state: &AppState, event_id: &str) -> Result<(), JobError> {
    let Some(event) = ledger::event(&state.db, event_id).await? else { return Ok(()) };
    if event.processed_at.is_some() {
        return Ok(());
    }
    for reply_id in ledger::reply_ids(&event) {
        deliver(state, reply_id).await?;
    }
    Ok(ledger::mark_processed(&state.db, event_id, Utc::now()).await?)
}

/// Delivers stored notices in order; one that fails stays pending (the sweeper tries it again).
pub async fn deliver_notices(state: &AppState, ids: &[i64]) {
    for id in ids {
        if let Err(e) = deliver(state, *id).await {
            tracing::warn!(message = id, error = %e, "notice not delivered yet; the sweeper will retry");
        }
    }
}

/// Sends one stored message, once, reading it and its conversation first (a redelivered job, a notice).
async fn deliver(state: &AppState, message_id: i64) -> Result<(), JobError> {
    let Some((message, to)) = ledger::outgoing_with_conversation(&state.db, message_id).await? else {
        return Err(JobError::Permanent(anyhow!("message {message_id} does not exist or has no conversation")));
    };
    if message.delivery_status == Some(DeliveryStatus::Sending) {
        // Its worker died mid-call (a crash: job timeouts never cut a call). TikTok may have it; its
        // echo, if any, marks it sent. Sending it again could say the same thing twice.
        tracing::warn!(message = message_id, "message was being sent when its worker stopped; not sent again");
    }
    if message.delivery_status != Some(DeliveryStatus::Pending) {
        return Ok(());
    }
    send_claimed(state, &message, &to).await
}

/// What the dry-run sender does with a message: print it (`dry_run`), or nothing when the customer's
/// window is closed (`outside_window`), exactly as a live send would check first.
pub fn dry_run_status(window: ReplyWindow, now: DateTime<Utc>) -> DeliveryStatus {
    if window.is_open(now) { DeliveryStatus::DryRun } else { DeliveryStatus::OutsideWindow }
}

/// Sends one pending message, once: the row is claimed before the call, and the customer's reply window
/// checked. Without TikTok credentials this is the dry-run sender: the message is printed and marked
/// `dry_run`.
async fn send_claimed(state: &AppState, message: &messages::Model, to: &CustomerConversation) -> Result<(), JobError> {
    let (id, conversation) = (message.id, &to.conversation);
    let window = ReplyWindow::of(&to.user);
    let Some(client) = &state.tiktok else {
        let status = dry_run_status(window, Utc::now());
        log_unsent(conversation, message.text.as_deref(), Some(status));
        return record(state, id, status, None, None).await;
    };
    if !ledger::claim_for_sending(&state.db, id).await? {
        return Ok(());
    }
    if !window.is_open(Utc::now()) {
        log_unsent(conversation, message.text.as_deref(), Some(DeliveryStatus::OutsideWindow));
        return record(state, id, DeliveryStatus::OutsideWindow, None, None).await;
    }
    let recipient = &conversation.tiktok_conversation_id;
    // An image carries TikTok's media id, or the URL of a photo to upload first.
    let image_url = message.metadata.get("image_url").and_then(serde_json::Value::as_str);
    let sent = match (message.message_type.as_str(), &message.media_id, image_url) {
        ("image", Some(media_id), _) => client.send_image(recipient, media_id).await,
        ("image", None, Some(url)) => client.send_image_url(recipient, url).await,
        ("image", None, None) => Err(ApiError::Image("image reply without a media id or URL".into())),
        _ => client.send_text(recipient, message.text.as_deref().unwrap_or("")).await,
    };
    match sent {
        Ok(message_id) => {
            tracing::info!(conversation = %conversation.tiktok_conversation_id, %message_id, "reply sent");
            record(state, id, DeliveryStatus::Sent, Some(message_id), None).await
        }
        Err(error) if error.code() == Some(codes::OUTSIDE_WINDOW) => {
            tracing::info!(conversation = %conversation.tiktok_conversation_id, "TikTok: outside the reply window (40064)");
            record(state, id, DeliveryStatus::OutsideWindow, None, error.code()).await
        }
        Err(error) if error.is_retryable() && !error.maybe_delivered() => {
            // TikTok certainly did not take it: release the claim so a later delivery of the job sends it.
            record(state, id, DeliveryStatus::Pending, None, error.code()).await?;
            Err(JobError::Retryable(anyhow!("sending reply {id}: {error}")))
        }
        Err(error) => {
            // Refused for good, or possibly delivered (no answer): recorded, never sent twice.
            tracing::error!(conversation = %conversation.tiktok_conversation_id, %error, "reply not sent");
            record(state, id, DeliveryStatus::Failed, None, error.code()).await
        }
    }
}

async fn record(
    state: &AppState,
    message_id: i64,
    status: DeliveryStatus,
    tiktok_message_id: Option<String>,
    error_code: Option<i64>,
) -> Result<(), JobError> {
    let record = DeliveryRecord { status, tiktok_message_id, error_code };
    Ok(ledger::record_delivery(&state.db, message_id, record).await?)
}

/// Says in the log what became of a message that was not sent to TikTok (printed, or refused by the
/// window).
pub fn log_unsent(conversation: &conversations::Model, text: Option<&str>, status: Option<DeliveryStatus>) {
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

/// Tells the team a conversation needs a human: a log line, and a POST to the staff webhook when one is
/// configured (Slack reads `text`, Discord reads `content`). Best effort: it never fails the job.
pub fn notify_staff(state: &AppState, to: &CustomerConversation, reason: &str) {
    let (user, conversation) = (&to.user, &to.conversation);
    let who = user.username.as_deref().unwrap_or(&user.tiktok_user_id);
    let text = format!("🙋 @{who} needs a human ({reason}). Conversation {}", conversation.tiktok_conversation_id);
    tracing::warn!(conversation = %conversation.tiktok_conversation_id, %reason, "handoff to a human");
    let Some(url) = state.settings.shop.staff_webhook_url.clone() else { return };
    let client = state.http.clone();
    tokio::spawn(async move {
        let body = serde_json::json!({"text": text, "content": text});
        match client.post(&url).json(&body).send().await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => {
                tracing::warn!(status = response.status().as_u16(), "staff webhook refused the handoff notice");
            }
            Err(e) => tracing::warn!(error = %e, "staff webhook unreachable"),
        }
    });
}
