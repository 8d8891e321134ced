//! TikTok's sending rules, enforced before a message leaves rather than discovered by refusals: a turn is
//! composed within the customer's quota ([`fit_turn`]), and each send first checks that pictures are
//! allowed in the conversation, that TikTok has not paused the account, and takes one message of the
//! quota ([`before_send`]). A 40064 pauses every send for `tiktok.throttle_pause_secs` and alerts the team
//! once; once it is over, [`release_throttled`] puts what it held back up for sending again (the sweeper
//! delivers them).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, RelationTrait};

use crate::jobs::JobError;
use crate::shop::window::{self, Part, ReplyWindow};
use crate::state::AppState;
use crate::store::entities::conversations;
use crate::store::entities::messages::{self, DeliveryStatus};
use crate::store::ledger::{self, CustomerConversation, DeliveryRecord};
use crate::tiktok::api::{ApiError, MAX_TEXT_CHARS};

/// Present while TikTok has paused the account's sending (40064).
const PAUSE_KEY: &str = "tiktok:paused";
/// Held-back messages sent again per sweep at most.
const RESUME_BATCH: u64 = 200;

/// Records that a message was not sent, and why, in the database and in `/metrics`.
async fn not_sent(state: &AppState, id: i64, status: DeliveryStatus, code: Option<i64>) -> Result<(), JobError> {
    let outcome = match status {
        DeliveryStatus::QuotaExhausted => "quota_exhausted",
        DeliveryStatus::Throttled => "throttled",
        DeliveryStatus::NotConnected => "not_connected",
        DeliveryStatus::Skipped => "skipped",
        _ => "other",
    };
    state.metrics.not_sent(outcome);
    // Only a message nobody has claimed for sending meanwhile.
    let record = DeliveryRecord { status, tiktok_message_id: None, error_code: code };
    ledger::move_delivery(&state.db, id, &[DeliveryStatus::Pending], record).await?;
    Ok(())
}

fn is_picture(message: &messages::Model) -> bool {
    message.message_type == "image"
}

fn is_notice(message: &messages::Model) -> bool {
    message.metadata.get("notice").is_some()
}

/// Whether the shop has written in the conversation before (TikTok's `SINGLE`; else `STRANGER`).
async fn replied_before(state: &AppState, conversation_id: i64) -> Result<bool, JobError> {
    Ok(messages::Entity::find()
        .filter(messages::Column::ConversationId.eq(conversation_id))
        .filter(messages::Column::DeliveryStatus.eq(DeliveryStatus::Sent))
        .one(&state.db)
        .await?
        .is_some())
}

/// Whether a picture may go out: never with a notice (a notice is one message, its text), else when TikTok
/// allows images in the conversation.
async fn picture_allowed(
    state: &AppState,
    message: &messages::Model,
    to: &CustomerConversation,
) -> Result<bool, JobError> {
    let Some(client) = &state.tiktok else { return Ok(true) };
    if is_notice(message) {
        return Ok(false);
    }
    let replied = replied_before(state, to.conversation.id).await?;
    Ok(client.allows_images(&to.conversation.tiktok_conversation_id, replied).await)
}

/// The line from `replies.toml` that stands in for a picture TikTok does not allow, if the shop wrote one;
/// never for a notice (one message, its text).
fn link_line(state: &AppState, message: &messages::Model) -> Option<String> {
    let url = message.metadata.get("image_url").and_then(serde_json::Value::as_str)?;
    if is_notice(message) { None } else { state.bot.photo_link(url) }
}

/// Makes a picture the text that stands in for it, stored so that its send and the console say it.
async fn become_text(state: &AppState, message: &mut messages::Model, line: String) -> Result<(), JobError> {
    ledger::record_picture_as_text(&state.db, message.id, &line).await?;
    message.message_type = "text".into();
    message.text = Some(line);
    Ok(())
}

/// Composes a turn's pending messages within what TikTok still lets the shop send the customer: pictures
/// TikTok does not allow are skipped (or become the `photo_link` line of `replies.toml`), then
/// [`window::fit`] drops pictures first and merges texts. Returns the messages to send, in order (merged
/// texts carried by the first). Without TikTok (dry run) the turn is sent as it is.
pub async fn fit_turn(
    state: &AppState,
    turn: &[messages::Model],
    to: &CustomerConversation,
) -> Result<Vec<messages::Model>, JobError> {
    // Without TikTok (dry run) or with the window closed, each message is settled as it is by its send.
    if state.tiktok.is_none() || !ReplyWindow::of(&to.user).is_open(Utc::now()) {
        return Ok(turn.to_vec());
    }
    let mut turn = turn.to_vec();
    let mut parts = Vec::new();
    for message in turn.iter_mut().filter(|m| m.delivery_status == Some(DeliveryStatus::Pending)) {
        if is_picture(message) && !picture_allowed(state, message, to).await? {
            match link_line(state, message) {
                Some(line) => become_text(state, message, line).await?,
                None => {
                    not_sent(state, message.id, DeliveryStatus::Skipped, None).await?;
                    continue;
                }
            }
        }
        parts.push(Part {
            id: message.id,
            text: (!is_picture(message)).then(|| message.text.clone().unwrap_or_default()),
        });
    }
    if let [only] = parts.as_slice() {
        // One message needs no composing: its send takes its unit of the quota or records it
        // `quota_exhausted` (`before_send`), so the quota is not read here (one statement less per reply).
        let only = only.id;
        return Ok(turn.into_iter().filter(|m| m.id == only).collect());
    }
    let left = window::quota_left(&state.db, to.user.id, Utc::now()).await?;
    let fitted = window::fit(&parts, usize::try_from(left).unwrap_or(0), MAX_TEXT_CHARS);
    for id in &fitted.dropped {
        not_sent(state, *id, DeliveryStatus::QuotaExhausted, None).await?;
    }
    for id in &fitted.merged {
        let merged = DeliveryRecord { status: DeliveryStatus::Merged, tiktok_message_id: None, error_code: None };
        ledger::move_delivery(&state.db, *id, &[DeliveryStatus::Pending], merged).await?;
    }
    if !fitted.dropped.is_empty() || !fitted.merged.is_empty() {
        tracing::info!(
            conversation = %to.conversation.tiktok_conversation_id,
            quota_left = left,
            dropped = fitted.dropped.len(),
            merged = fitted.merged.len(),
            "turn composed within TikTok's 10 messages per customer message"
        );
    }
    let mut send = Vec::with_capacity(fitted.send.len());
    for (id, merged_text) in fitted.send {
        let Some(message) = turn.iter().find(|m| m.id == id) else { continue };
        let mut message = message.clone();
        if let Some(text) = merged_text {
            ledger::record_merged_text(&state.db, id, &text).await?;
            message.text = Some(text);
        }
        send.push(message);
    }
    Ok(send)
}

/// Checks TikTok's rules right before a claimed message is sent: a picture where none is allowed is
/// `skipped`; while the account is paused it is `throttled` (sent when the pause is over); without quota
/// left it is `quota_exhausted`. `None`: send it, one message of the quota taken (give it back with
/// [`give_back`] if TikTok certainly did not take it). Each refusal is recorded here.
pub async fn before_send(
    state: &AppState,
    message: &messages::Model,
    to: &CustomerConversation,
) -> Result<Option<()>, JobError> {
    if is_picture(message) && !picture_allowed(state, message, to).await? {
        not_sent(state, message.id, DeliveryStatus::Skipped, None).await?;
        return Ok(None);
    }
    if is_paused(state).await {
        not_sent(state, message.id, DeliveryStatus::Throttled, Some(crate::tiktok::api::codes::TOO_FAST)).await?;
        return Ok(None);
    }
    if !window::take_quota(&state.db, to.user.id, Utc::now()).await? {
        tracing::info!(conversation = %to.conversation.tiktok_conversation_id, "quota of 10 messages used up: not sent");
        not_sent(state, message.id, DeliveryStatus::QuotaExhausted, None).await?;
        return Ok(None);
    }
    Ok(Some(()))
}

/// Gives back the quota a send took, when TikTok certainly did not deliver it.
pub async fn give_back(state: &AppState, to: &CustomerConversation, error: &ApiError) {
    if !error.maybe_delivered() {
        return_quota(state, to).await;
    }
}

/// Gives back the quota a send of unknown outcome took, once TikTok shows it absent: TikTok counted
/// nothing, and the send that follows takes its own. Only when it was taken in the customer's current
/// window (a message of theirs since then restarted the count).
pub async fn give_back_absent(state: &AppState, to: &CustomerConversation, claimed_at: DateTime<Utc>) {
    if to.user.last_inbound_at.is_some_and(|wrote| claimed_at >= wrote) {
        return_quota(state, to).await;
    }
}

async fn return_quota(state: &AppState, to: &CustomerConversation) {
    if let Err(e) = window::give_back_quota(&state.db, to.user.id).await {
        tracing::warn!(error = %e, "could not give an undelivered message back to the quota");
    }
}

async fn is_paused(state: &AppState) -> bool {
    let key = state.kv.key(PAUSE_KEY);
    matches!(state.kv.get(&key).await, Ok(Some(_)))
}

/// TikTok answered 40064 ("sending too fast", a per-account limit or a messaging restriction): every send
/// pauses for `tiktok.throttle_pause_secs` (the message is recorded `throttled` by its sender and sent
/// again when the pause is over), and the team is alerted once per pause.
pub async fn pause(state: &AppState, error: &ApiError) {
    state.metrics.not_sent("throttled");
    let pause = Duration::from_secs(state.settings.tiktok.throttle_pause_secs.max(1));
    let key = state.kv.key(PAUSE_KEY);
    let until = Utc::now() + chrono::Duration::seconds(i64::try_from(pause.as_secs()).unwrap_or(i64::MAX / 2));
    match state.kv.set_if_absent(&key, &until.to_rfc3339(), pause).await {
        Ok(true) => {
            let text = format!(
                "⏸️ TikTok refused a message: \"{error}\" (40064: too many new conversations today, or the account's \
                 messaging is restricted). The bot pauses sending until {} UTC and then sends what waited, while \
                 each customer's 48-hour window allows.",
                until.format("%H:%M")
            );
            crate::tiktok::alerts::StaffAlerts::new(state.http.clone(), state.settings.shop.staff_webhook()).send(text);
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(error = format!("{e:#}"), "could not record TikTok's pause"),
    }
}

/// After a pause: the messages it held back, whose customer's window is still open, go back to `pending`
/// (in order); returns their ids, for the caller to deliver through the same checks.
pub async fn release_throttled(state: &AppState, now: DateTime<Utc>) -> Result<Vec<i64>, JobError> {
    if state.tiktok.is_none() || is_paused(state).await {
        return Ok(Vec::new());
    }
    let held: Vec<i64> = messages::Entity::find()
        .select_only()
        .column(messages::Column::Id)
        .inner_join(conversations::Entity)
        .join(sea_orm::JoinType::InnerJoin, conversations::Relation::User.def())
        .filter(messages::Column::DeliveryStatus.eq(DeliveryStatus::Throttled))
        .filter(ReplyWindow::is_open_condition(now))
        .order_by_asc(messages::Column::Id)
        .limit(RESUME_BATCH)
        .into_tuple()
        .all(&state.db)
        .await?;
    let mut ready = Vec::with_capacity(held.len());
    for id in held {
        if ledger::release_throttled(&state.db, id).await? {
            ready.push(id);
        }
    }
    if !ready.is_empty() {
        tracing::info!(messages = ready.len(), "TikTok's pause is over: sending what it held back");
    }
    Ok(ready)
}
