//! The echo job: TikTok's copy of a message the business sent (`im_send_msg`). One of ours (a known
//! TikTok id, or a message still being sent that says the same: the echo can beat the send call's
//! answer) is matched and left alone. Of the others, only a person's (`message_tag.source` `APP` or
//! `WEB`, or no marker at all) is staff writing from the TikTok app: stored as a `staff` message, and that
//! person takes the conversation over. TikTok's own automatic messages (source `OTHERS`, with an
//! `auto_message_type`: the welcome message, suggested questions, keyword auto-replies) and other API
//! senders are stored as `system` and change nothing: they never silence the bot.

use anyhow::anyhow;
use chrono::Utc;
use sea_orm::TransactionTrait;

use super::job::{Lease, Outcome, received};
use crate::bot::ConversationState;
// Why a conversation is handed over when staff write from the app: the bot reads it to stay silent.
use crate::bot::handoff::STAFF_TOOK_OVER;
use crate::jobs::{JobError, MessageV1};
use crate::state::AppState;
use crate::store::entities::messages::Role;
use crate::store::ledger::{self, Customer, Event, Handoff};

/// Runs the echo job for one message the business sent.
pub async fn run(state: &AppState, message: &MessageV1) -> Result<Outcome, JobError> {
    let lease = match Lease::take(state, &message.idempotency_key).await? {
        Ok(lease) => lease,
        Err(outcome) => return Ok(outcome),
    };
    lease.release(process(state, message).await).await
}

async fn process(state: &AppState, message: &MessageV1) -> Result<Outcome, JobError> {
    let customer_id = message
        .to_user_id
        .as_deref()
        .ok_or_else(|| JobError::Permanent(anyhow!("echo {} names no recipient", message.idempotency_key)))?;
    let now = Utc::now();
    let echo = received(message);
    let txn = state.db.begin().await?;
    // A send still under way first, then a known id: the send's answer may be recorded between the two
    // reads (moving the row from `sending` to `sent` with this id), and in this order that shows in the
    // second; the other way round the echo was found in neither and stored again as an automatic message.
    let ours = if let Some(ours) = ledger::being_sent_like(&txn, &message.conversation_id, &echo).await? {
        ledger::match_echo(&txn, &ours, echo.tiktok_message_id).await?;
        true
    } else {
        match echo.tiktok_message_id {
            Some(id) => ledger::is_stored(&txn, id).await?,
            None => false,
        }
    };
    let outcome = if ours {
        "echo:ours"
    } else if !from_a_person(message) {
        let customer = Customer { tiktok_user_id: customer_id, username: None, wrote_at: None };
        let stored = ledger::upsert_conversation(&txn, &customer, &message.conversation_id, echo.at, now).await?;
        ledger::store_received(&txn, stored.conversation.id, Role::System, &echo).await?;
        tracing::info!(
            conversation = %message.conversation_id,
            source = message.source.as_deref().unwrap_or("none"),
            auto_message_type = message.auto_message_type.as_deref().unwrap_or("none"),
            "automatic message from TikTok's side: the bot carries on"
        );
        "echo:automatic"
    } else {
        let customer = Customer { tiktok_user_id: customer_id, username: None, wrote_at: None };
        let stored = ledger::upsert_conversation(&txn, &customer, &message.conversation_id, echo.at, now).await?;
        ledger::store_received(&txn, stored.conversation.id, Role::Staff, &echo).await?;
        // TikTok counts staff's messages against the customer's 10 too.
        crate::shop::window::count_sent_by_staff(&txn, stored.user.id).await?;
        // A human answering from the app takes the conversation over: the bot stays out of it.
        let takeover = Handoff::Start(STAFF_TOOK_OVER);
        ledger::update_conversation(&txn, &stored.conversation, &ConversationState::Idle, takeover, now).await?;
        tracing::info!(conversation = %message.conversation_id, "staff replied from the TikTok app");
        "echo:staff"
    };
    let event = Event {
        idempotency_key: &message.idempotency_key,
        event_type: &message.event,
        received_at: message.received_at,
        outcome: outcome.to_owned(),
        processed_at: Some(now),
    };
    if !ledger::record_event(&txn, event).await? {
        txn.rollback().await?;
        return Ok(Outcome::Duplicate);
    }
    txn.commit().await?;
    Ok(Outcome::Processed)
}

/// A person on the shop's side wrote it: the TikTok app or web (`APP`, `WEB`), or an echo with no marker
/// at all (older events). TikTok's automatic messages (`OTHERS`, or any `auto_message_type`), other API
/// senders and `UNKNOWN_SOURCE` are not a person taking over.
fn from_a_person(message: &MessageV1) -> bool {
    message.auto_message_type.is_none() && matches!(message.source.as_deref(), None | Some("APP" | "WEB"))
}
