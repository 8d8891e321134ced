//! Delivery: sending what the bot stored, exactly once. TikTok's send call has no idempotency key, so a
//! message is claimed (`pending` → `sending`) only right before its request is written, after the window
//! check, the shared rate limit, the token and any image upload; a failure before that puts it back to
//! `pending` (the [`Claim`] guard, also when the job is cut off). The request's outcome is recorded:
//! `sent` with TikTok's id; `pending` again when TikTok certainly did not take it; `unknown` when it may
//! have landed (settled by the message's echo, or by [`settle_unknown`] reading the conversation, and
//! sent again only once TikTok shows it absent); `outside_window` or `failed` when refused. Notices are
//! delivered right after the commit that stored them; the sweeper sends whatever was left pending. The
//! staff webhook is told when a human is wanted.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sea_orm::DatabaseConnection;

use super::sending_rules;
use crate::jobs::JobError;
use crate::shop::ReplyWindow;
use crate::state::AppState;
use crate::store::entities::conversations;
use crate::store::entities::messages::{self, DeliveryStatus};
use crate::store::ledger::{self, CustomerConversation, DeliveryRecord};
use crate::telemetry::escape_for_log;
use crate::tiktok::api::{ApiError, SendOutcome, codes};
use crate::tiktok::client::{ListedMessage, SendGuard};

/// How far TikTok's clock and ours may disagree when a listed message or an echo is matched to a send.
const CLOCK_SLACK: chrono::Duration = chrono::Duration::seconds(60);
/// The most messages TikTok lists for a conversation: a full page that does not reach back to the claim
/// cannot prove a message absent.
const LISTED_AT_MOST: usize = 20;

/// Where a conversation's sends stand after one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The message is settled (sent, printed, refused): the next one may go.
    Settled,
    /// The message is in another delivery's hands or its outcome is unknown: later messages of the
    /// conversation wait, so the customer reads them in order.
    Held,
}

/// Sends stored messages of one conversation in order (a split text must arrive as it was written);
/// stops at a message whose outcome is unknown, leaving the rest pending for the sweeper.
pub async fn send_in_order(
    state: &AppState,
    messages: &[messages::Model],
    to: &CustomerConversation,
) -> Result<(), JobError> {
    // Composed within TikTok's 10 messages per customer message (pictures dropped first, texts merged).
    for message in &sending_rules::fit_turn(state, messages, to).await? {
        if send_claimed(state, message, to).await? == Progress::Held {
            break;
        }
    }
    Ok(())
}

/// Delivers the replies an earlier delivery of the event stored and left pending (it died between its
/// commit and its sends). Safe to run again: a reply that is no longer pending is left alone.
pub async fn finish_event(state: &AppState, event_id: &str) -> Result<(), JobError> {
    let Some(event) = ledger::event(&state.db, event_id).await? else { return Ok(()) };
    for reply_id in ledger::reply_ids(&event) {
        if deliver(state, reply_id).await? == Progress::Held {
            break;
        }
    }
    if event.processed_at.is_none() {
        // Stored by a release that marked an event processed only once its replies were sent.
        ledger::mark_processed(&state.db, event_id, Utc::now()).await?;
    }
    Ok(())
}

/// Delivers stored messages in order; one that cannot be sent now stays pending (the sweeper tries it
/// again).
pub async fn deliver_notices(state: &AppState, ids: &[i64]) {
    for id in ids {
        match deliver(state, *id).await {
            Ok(Progress::Settled) => {}
            Ok(Progress::Held) => break,
            Err(e) => {
                tracing::warn!(message = id, error = %e, "message not delivered yet; the sweeper will retry");
                break;
            }
        }
    }
}

/// Sends one stored message if it is pending and nothing stored before it in its conversation is still
/// unsettled, reading it and its conversation first (a redelivered job, a notice, the sweeper).
async fn deliver(state: &AppState, message_id: i64) -> Result<Progress, JobError> {
    let Some((message, to)) = ledger::outgoing_with_conversation(&state.db, message_id).await? else {
        return Err(JobError::Permanent(anyhow!("message {message_id} does not exist or has no conversation")));
    };
    match message.delivery_status {
        Some(DeliveryStatus::Pending) => {}
        // Sending or unknown: the sweeper settles it; anything else is done.
        Some(DeliveryStatus::Sending | DeliveryStatus::Unknown) => return Ok(Progress::Held),
        _ => return Ok(Progress::Settled),
    }
    if ledger::earlier_unsettled(&state.db, message.conversation_id, message.id).await? {
        return Ok(Progress::Held);
    }
    send_claimed(state, &message, &to).await
}

/// What the dry-run sender does with a message: print it (`dry_run`), or nothing when the customer's
/// window is closed (`outside_window`), exactly as a live send would check first.
pub fn dry_run_status(window: ReplyWindow, now: DateTime<Utc>) -> DeliveryStatus {
    if window.is_open(now) { DeliveryStatus::DryRun } else { DeliveryStatus::OutsideWindow }
}

/// A pending message's claim for one send: taken by the client right before the request is written.
/// Dropped unsettled (an error, a job cut off, a shutdown), it puts the row back to `pending` when no
/// request was in flight, or records `unknown` when one was, so no row is left `sending`.
struct Claim {
    db: DatabaseConnection,
    message: messages::Model,
    phase: Mutex<Phase>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Unclaimed,
    Claimed,
    InFlight,
    Settled,
}

impl Claim {
    fn new(db: &DatabaseConnection, message: &messages::Model) -> Self {
        Self { db: db.clone(), message: message.clone(), phase: Mutex::new(Phase::Unclaimed) }
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = phase;
    }

    /// Records the send's end; the claim is then settled, whatever the write's outcome (a failed write
    /// leaves the row `sending`, which the sweeper settles).
    async fn settle(
        &self,
        status: DeliveryStatus,
        tiktok_message_id: Option<String>,
        error_code: Option<i64>,
    ) -> Result<bool, JobError> {
        let from: &[DeliveryStatus] = match status {
            // The echo may have settled it `sent` first: that is kept.
            DeliveryStatus::Unknown | DeliveryStatus::Pending => &[DeliveryStatus::Sending],
            _ => &[DeliveryStatus::Pending, DeliveryStatus::Sending, DeliveryStatus::Unknown],
        };
        self.set(Phase::Settled);
        let record = DeliveryRecord { status, tiktok_message_id, error_code };
        Ok(ledger::move_delivery(&self.db, self.message.id, from, record).await?)
    }
}

impl SendGuard for Claim {
    fn claim(&self) -> BoxFuture<'_, Result<bool, ApiError>> {
        Box::pin(async move {
            if self.phase() != Phase::Unclaimed {
                return Ok(true);
            }
            let claimed = ledger::claim_for_sending(&self.db, &self.message, Utc::now())
                .await
                .map_err(|e| ApiError::Limiter(format!("claiming the message for sending: {e}")))?;
            if claimed {
                self.set(Phase::Claimed);
            }
            Ok(claimed)
        })
    }

    fn in_flight(&self, in_flight: bool) {
        self.set(if in_flight { Phase::InFlight } else { Phase::Claimed });
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let to = match self.phase() {
            Phase::Claimed => DeliveryStatus::Pending,
            Phase::InFlight => DeliveryStatus::Unknown,
            Phase::Unclaimed | Phase::Settled => return,
        };
        let (db, id) = (self.db.clone(), self.message.id);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            let record = DeliveryRecord { status: to, tiktok_message_id: None, error_code: None };
            match ledger::move_delivery(&db, id, &[DeliveryStatus::Sending], record).await {
                Ok(_) => tracing::warn!(message = id, status = ?to, "send cut off; its claim was released"),
                Err(e) => {
                    tracing::warn!(message = id, error = %e, "could not release a cut-off send; the sweeper settles it");
                }
            }
        });
    }
}

/// Sends one pending message, once. Without TikTok credentials this is the dry-run sender: the message is
/// printed and marked `dry_run`.
async fn send_claimed(
    state: &AppState,
    message: &messages::Model,
    to: &CustomerConversation,
) -> Result<Progress, JobError> {
    let (id, conversation) = (message.id, &to.conversation);
    let window = ReplyWindow::of(&to.user);
    let Some(client) = &state.tiktok else {
        let status = dry_run_status(window, Utc::now());
        log_unsent(conversation, message.text.as_deref(), Some(status));
        let record = DeliveryRecord { status, tiktok_message_id: None, error_code: None };
        ledger::move_delivery(&state.db, id, &[DeliveryStatus::Pending], record).await?;
        return Ok(Progress::Settled);
    };
    let claim = Claim::new(&state.db, message);
    if !window.is_open(Utc::now()) {
        log_unsent(conversation, message.text.as_deref(), Some(DeliveryStatus::OutsideWindow));
        claim.settle(DeliveryStatus::OutsideWindow, None, None).await?;
        return Ok(Progress::Settled);
    }
    // TikTok's rules first: pictures where allowed, no send while TikTok pauses the account, the quota.
    if sending_rules::before_send(state, message, to).await?.is_none() {
        return Ok(Progress::Settled);
    }
    let recipient = &conversation.tiktok_conversation_id;
    // An image carries TikTok's media id, or the URL of a photo to upload first (before the claim).
    let image_url = message.metadata.get("image_url").and_then(serde_json::Value::as_str);
    let sent = match (message.message_type.as_str(), &message.media_id, image_url) {
        ("image", Some(media_id), _) => client.send_image_guarded(recipient, media_id, &claim).await,
        ("image", None, Some(url)) => client.send_image_url_guarded(recipient, url, &claim).await,
        ("image", None, None) => Err(ApiError::Image("image reply without a media id or URL".into())),
        _ => client.send_text_guarded(recipient, message.text.as_deref().unwrap_or(""), &claim).await,
    };
    if let Err(error) = &sent {
        sending_rules::give_back(state, to, error).await;
    }
    let error = match sent {
        Ok(message_id) => {
            tracing::info!(conversation = %recipient, %message_id, "reply sent");
            claim.settle(DeliveryStatus::Sent, Some(message_id), None).await?;
            return Ok(Progress::Settled);
        }
        Err(error) => error,
    };
    if error == ApiError::Superseded {
        return Ok(Progress::Held);
    }
    if let ApiError::NotConnected(why) = &error {
        // TikTok removed the authorization: nothing can be sent until the owner connects again.
        tracing::warn!(conversation = %recipient, %why, "reply not sent: TikTok account not connected");
        claim.settle(DeliveryStatus::NotConnected, None, None).await?;
        return Ok(Progress::Settled);
    }
    if error.code() == Some(codes::TOO_FAST) {
        // Not the window (checked above) nor the quota (taken above): TikTok's per-account limit.
        tracing::warn!(conversation = %recipient, %error, "TikTok: sending too fast (40064); pausing");
        sending_rules::pause(state, &error).await;
        claim.settle(DeliveryStatus::Throttled, None, error.code()).await?;
        return Ok(Progress::Settled);
    }
    match error.send_outcome() {
        SendOutcome::NotSent => {
            // TikTok certainly did not take it: released, so a later delivery of the job sends it.
            claim.settle(DeliveryStatus::Pending, None, error.code()).await?;
            Err(JobError::Retryable(anyhow!("sending reply {id}: {error}")))
        }
        SendOutcome::Unknown => {
            // It may have landed: never re-POSTed blindly. Its echo or the sweeper settles it.
            tracing::warn!(conversation = %recipient, message = id, %error, "reply outcome unknown; settling it by its echo or the conversation");
            claim.settle(DeliveryStatus::Unknown, None, error.code()).await?;
            Ok(Progress::Held)
        }
        SendOutcome::Refused => {
            tracing::error!(conversation = %recipient, %error, "reply not sent");
            claim.settle(DeliveryStatus::Failed, None, error.code()).await?;
            Ok(Progress::Settled)
        }
    }
}

/// What one pass over unsettled sends did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    /// Found in the conversation (or echoed meanwhile): `sent`.
    pub arrived: usize,
    /// Shown absent after `tiktok.unknown_settle_secs`: sent again.
    pub resent: usize,
    /// Could not be proven either way (the conversation moved on past a full page): `failed`.
    pub unprovable: usize,
}

/// Settles sends left `unknown` (or `sending` past the job timeout: their worker died mid-call) by
/// reading each conversation's recent messages: a message of the business that says the same and is no
/// older than the claim is this one (`sent`); when none is there after `tiktok.unknown_settle_secs` and
/// the listing reaches back before the claim, TikTok does not have it, and it is sent again, once per
/// proven absence.
pub async fn settle_unknown(state: &AppState, now: DateTime<Utc>, limit: u64) -> Result<Settled, JobError> {
    let mut done = Settled::default();
    let Some(client) = &state.tiktok else { return Ok(done) };
    let settle_after = chrono::Duration::seconds(state.settings.tiktok.unknown_settle_secs as i64);
    let job_timeout = chrono::Duration::milliseconds(state.settings.worker.job_timeout_ms as i64);
    for message in ledger::unsettled_sends(&state.db, limit).await? {
        let claimed_at = ledger::send_claimed_at(&message).unwrap_or(message.created_at);
        let age = now - claimed_at;
        if message.delivery_status == Some(DeliveryStatus::Sending) && age < job_timeout.max(settle_after) {
            continue; // a live job may still have it
        }
        let Some((message, to)) = ledger::outgoing_with_conversation(&state.db, message.id).await? else { continue };
        let listed = match client.recent_messages(&to.conversation.tiktok_conversation_id).await {
            Ok(listed) => listed,
            Err(e) => {
                tracing::warn!(message = message.id, error = %e, "could not read the conversation to settle a send; trying again next sweep");
                continue;
            }
        };
        let unsettled = [DeliveryStatus::Sending, DeliveryStatus::Unknown];
        let mut found = None;
        for candidate in
            listed.iter().filter(|l| l.from_business && l.at >= claimed_at - CLOCK_SLACK && says_the_same(l, &message))
        {
            if !ledger::is_stored(&state.db, &candidate.message_id).await? {
                found = Some(candidate.message_id.clone());
                break;
            }
        }
        if let Some(tiktok_id) = found {
            let record =
                DeliveryRecord { status: DeliveryStatus::Sent, tiktok_message_id: Some(tiktok_id), error_code: None };
            if ledger::move_delivery(&state.db, message.id, &unsettled, record).await? {
                tracing::info!(message = message.id, "a send of unknown outcome arrived: settled as sent");
                done.arrived += 1;
            }
            continue;
        }
        if age < settle_after {
            continue;
        }
        let reaches_back = listed.len() < LISTED_AT_MOST || listed.iter().any(|l| l.at < claimed_at - CLOCK_SLACK);
        if !reaches_back {
            let record = DeliveryRecord {
                status: DeliveryStatus::Failed,
                tiktok_message_id: None,
                error_code: message.error_code,
            };
            if ledger::move_delivery(&state.db, message.id, &unsettled, record).await? {
                tracing::error!(
                    message = message.id,
                    "a send of unknown outcome cannot be proven absent (the conversation moved on): not sent again"
                );
                done.unprovable += 1;
            }
            continue;
        }
        let record =
            DeliveryRecord { status: DeliveryStatus::Pending, tiktok_message_id: None, error_code: message.error_code };
        if ledger::move_delivery(&state.db, message.id, &unsettled, record).await? {
            tracing::warn!(message = message.id, "a send of unknown outcome did not arrive: sending it again");
            sending_rules::give_back_absent(state, &to, claimed_at).await;
            done.resent += 1;
            deliver(state, message.id).await?;
        }
    }
    Ok(done)
}

/// Whether a message TikTok lists is the stored one: the same text, or the same picture.
fn says_the_same(listed: &ListedMessage, message: &messages::Model) -> bool {
    match (&message.text, &message.media_id) {
        (Some(text), _) if message.message_type == "text" => listed.text.as_deref() == Some(text.as_str()),
        (_, Some(media_id)) => listed.media_id.as_deref() == Some(media_id.as_str()),
        _ => false,
    }
}

/// Sends what was left pending for longer than `grace` (a delivery that failed right after its commit, a
/// job that died, a message held behind an unknown one, a dead-lettered job's replies), oldest first and in
/// order per conversation, while the customer's window is open.
pub async fn send_left_pending(state: &AppState, older_than: DateTime<Utc>, limit: u64) -> Result<usize, JobError> {
    let ids = ledger::pending_outgoing(&state.db, older_than, limit).await?;
    let mut sent = 0;
    let mut held = std::collections::HashSet::new();
    for id in ids {
        let Some((message, _)) = ledger::outgoing_with_conversation(&state.db, id).await? else { continue };
        if held.contains(&message.conversation_id) {
            continue;
        }
        match deliver(state, id).await {
            Ok(Progress::Settled) => sent += 1,
            Ok(Progress::Held) => {
                held.insert(message.conversation_id);
            }
            Err(e) => {
                tracing::warn!(message = id, error = %e, "message left pending not delivered yet; trying again next sweep");
                held.insert(message.conversation_id);
            }
        }
    }
    Ok(sent)
}

/// How long a send may stay `sending` before the sweeper takes its worker for dead.
pub fn sending_bound(state: &AppState) -> Duration {
    Duration::from_millis(state.settings.worker.job_timeout_ms)
        .max(Duration::from_secs(state.settings.tiktok.unknown_settle_secs))
}

/// Says in the log what became of a message that was not sent to TikTok (printed, or refused by the
/// window).
pub fn log_unsent(conversation: &conversations::Model, text: Option<&str>, status: Option<DeliveryStatus>) {
    let text = escape_for_log(text.unwrap_or(""), 2_000);
    let conversation_id = &conversation.tiktok_conversation_id;
    match status {
        // A reply can repeat what the customer wrote: at INFO only where telemetry says so.
        Some(DeliveryStatus::DryRun) if crate::telemetry::customer_text_at_info() => {
            tracing::info!(conversation = %conversation_id, %text, "reply (dry run, not sent to TikTok)");
        }
        Some(DeliveryStatus::DryRun) => {
            tracing::info!(conversation = %conversation_id, "reply (dry run, not sent to TikTok)");
            tracing::debug!(conversation = %conversation_id, %text, "reply text (dry run)");
        }
        Some(DeliveryStatus::OutsideWindow) => tracing::info!(
            conversation = %conversation.tiktok_conversation_id,
            "reply window closed: reply not sent"
        ),
        _ => {}
    }
}

/// Tells the team a conversation needs a human: a log line, and a POST to the staff webhook when one is
/// configured (Slack reads `text`, Discord reads `content`), in the words of `replies.toml` [staff]
/// notice. Best effort: it never fails the job.
pub fn notify_staff(state: &AppState, to: &CustomerConversation, reason: &str) {
    let (user, conversation) = (&to.user, &to.conversation);
    let who = user.username.as_deref().unwrap_or(&user.tiktok_user_id);
    let text = state.bot.staff_notice(who, reason, &conversation.tiktok_conversation_id);
    tracing::warn!(conversation = %conversation.tiktok_conversation_id, %reason, "handoff to a human");
    let Some(url) = state.settings.shop.staff_webhook() else {
        return;
    };
    let client = state.http.clone();
    tokio::spawn(async move {
        let body = serde_json::json!({"text": text, "content": text});
        match client.post(&url).json(&body).send().await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => {
                tracing::warn!(status = response.status().as_u16(), "staff webhook refused the handoff notice");
            }
            // Without the URL: for Slack it is the secret that lets anyone post to the channel.
            Err(e) => tracing::warn!(error = %e.without_url(), "staff webhook unreachable"),
        }
    });
}
