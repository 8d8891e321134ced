//! The inbound job: a customer wrote. It runs as named steps, top to bottom: wait for the conversation's
//! earlier messages; take the event's lease; when the model is to be asked, check the event is not stored
//! already; route the text (the model, when configured), both before the transaction, so a redelivery
//! never pays for the model and the model's seconds hold no lock; store
//! the customer (which restarts their reply window), the conversation and the message; let the bot
//! decide; store what it decided and its replies; record the event; commit; deliver. Everything up to the
//! commit is one transaction, so a job that fails anywhere before it leaves nothing behind, and a job run
//! twice stores and sends nothing twice.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseTransaction, TransactionTrait};
use serde_json::json;

use super::delivery;
use super::job::{EventState, Lease, Outcome, received};
use crate::bot::{BotError, ConversationState, Decision, Routed, Turn};
use crate::jobs::{InboundTurn, JobError, MessageV1};
use crate::shop::ReplyWindow;
use crate::state::AppState;
use crate::store::entities::messages::{self, DeliveryStatus, Role};
use crate::store::ledger::{self, Customer, CustomerConversation, Event, Handoff};
use crate::telemetry::escape_for_log;

/// The longest a message is held back for an earlier one of its conversation, from when it first was.
const ORDER_WAIT: Duration = Duration::from_secs(5);
/// How often a message waiting in place (right after a running one) looks whether that one is done.
const TURN_POLL: Duration = Duration::from_millis(20);

/// The bot fails only when the database does: worth another try.
impl From<BotError> for JobError {
    fn from(error: BotError) -> Self {
        JobError::Retryable(error.into())
    }
}

/// Runs the inbound job for one customer message, after the conversation's earlier messages.
/// `first_deferred`: when the job was first put back behind one of them (its queue entry says).
pub async fn run(
    state: &AppState,
    message: &MessageV1,
    first_deferred: Option<DateTime<Utc>>,
) -> Result<Outcome, JobError> {
    let turn = message.turn();
    if let Place::Requeue(first_deferred) = take_turn(state, &turn, first_deferred).await? {
        return Ok(Outcome::Requeued { first_deferred });
    }
    let lease = match Lease::take(state, &message.idempotency_key).await? {
        Ok(lease) => lease,
        // Done before: its turn ends here too (a redelivery of a done event registered it again). Held
        // by another delivery: that one ends it.
        Err(Outcome::Duplicate) => {
            end_turn(state, &turn).await;
            return Ok(Outcome::Duplicate);
        }
        Err(outcome) => return Ok(outcome),
    };
    let outcome = lease.release(process(state, message).await).await?;
    end_turn(state, &turn).await;
    Ok(outcome)
}

async fn end_turn(state: &AppState, turn: &InboundTurn) {
    if let Err(e) = state.queue.end_turn(turn).await {
        tracing::warn!(error = %e, "could not end a message's turn; the next one waits for the bound");
    }
}

/// What a message does about its conversation's earlier messages.
enum Place {
    /// Runs now.
    Go,
    /// Goes to the back of the queue; first deferred then.
    Requeue(DateTime<Utc>),
}

/// Sees that no message of the conversation written earlier (TikTok's timestamp) is queued or running,
/// so one customer's messages are processed one at a time in the order they were written ("I'll take
/// it", then "checkout"). A consumer never waits for a message that no one is running: behind an earlier
/// message still in the queue (or failed, waiting to be taken over) the job goes to the back of the queue
/// ([`Place::Requeue`]), else consumers holding later messages could all sleep while the earlier ones sit
/// unread behind them. It waits in place only when it is the next message and the earlier one is running
/// (its lease is held: it is progressing). Bounded: [`ORDER_WAIT`] after the job was first held back it
/// goes ahead (and the earlier message's turn ends), so a failed earlier message, retried only after the
/// reclaim time, does not stall its customer.
async fn take_turn(
    state: &AppState,
    turn: &InboundTurn,
    first_deferred: Option<DateTime<Utc>>,
) -> Result<Place, JobError> {
    let job_timeout = Duration::from_millis(state.settings.worker.job_timeout_ms);
    let bound = ORDER_WAIT.min(job_timeout / 4);
    let mut since = first_deferred;
    loop {
        let queue_error = |e: crate::jobs::QueueError| JobError::Retryable(e.into());
        let Some(earlier) = state.queue.earlier_in_conversation(turn).await.map_err(queue_error)? else {
            return Ok(Place::Go);
        };
        let since = *since.get_or_insert_with(Utc::now);
        if (Utc::now() - since).to_std().unwrap_or_default() >= bound {
            tracing::warn!(conversation = %turn.conversation, event_id = %turn.key, earlier = %earlier.turn.key, "an earlier message of the conversation is still not done; going ahead");
            // Given up on: the conversation's later messages do not wait for it either (a turn whose job
            // was lost would otherwise hold each of them back for the bound).
            state.queue.end_turn(&earlier.turn).await.map_err(queue_error)?;
            return Ok(Place::Go);
        }
        match Lease::state_of(state, &earlier.turn.key).await? {
            // Its job is done but has not ended its turn (or could not): it is over.
            EventState::Done => state.queue.end_turn(&earlier.turn).await.map_err(queue_error)?,
            EventState::Running if earlier.next => tokio::time::sleep(TURN_POLL).await,
            EventState::Running | EventState::Idle => return Ok(Place::Requeue(since)),
        }
    }
}

async fn process(state: &AppState, message: &MessageV1) -> Result<Outcome, JobError> {
    let text = message.text.as_deref().filter(|t| !t.trim().is_empty());
    // A redelivery of a stored event (its done marker lost with Redis) is found before the model is paid
    // for again. Without the model the transaction's own event row finds it, for no extra read.
    if text.is_some_and(|t| state.bot.asks_the_model(t))
        && ledger::event(&state.db, &message.idempotency_key).await?.is_some()
    {
        delivery::finish_event(state, &message.idempotency_key).await?;
        return Ok(Outcome::Duplicate);
    }
    let routed = match text {
        Some(text) => Some(state.bot.route_ahead(&state.db, &message.conversation_id, text).await?),
        None => None,
    };
    let now = Utc::now();
    let txn = state.db.begin().await?;
    let customer = store_inbound(&txn, message, now).await?;
    let window = ReplyWindow::of(&customer.user);
    let decision = decide(state, &txn, &customer, text.zip(routed), now).await?;
    store_decision(&txn, &customer, &decision, now).await?;
    let replies = store_replies(&txn, &customer, &decision, reply_status(state, window, now), message).await?;
    if !record_event(&txn, message, &replies).await? {
        txn.rollback().await?;
        // An earlier delivery of this event stored everything: only replies it left undelivered (a crash
        // between its commit and its sends) are left to do.
        delivery::finish_event(state, &message.idempotency_key).await?;
        return Ok(Outcome::Duplicate);
    }
    txn.commit().await?;
    log_stored(message, &customer, &replies);
    deliver(state, &customer, &decision, &replies).await?;
    Ok(Outcome::Processed)
}

/// Stores the customer, with the moment they wrote (the reply window restarts from it), the conversation
/// and the message as TikTok described it.
async fn store_inbound(
    txn: &DatabaseTransaction,
    message: &MessageV1,
    now: DateTime<Utc>,
) -> Result<CustomerConversation, JobError> {
    let sent_at = message.sent_at();
    let customer = Customer {
        tiktok_user_id: &message.from_user_id,
        username: message.from_username.as_deref(),
        wrote_at: Some(sent_at),
    };
    let stored = ledger::upsert_conversation(txn, &customer, &message.conversation_id, sent_at, now).await?;
    ledger::store_received(txn, stored.conversation.id, Role::User, &received(message)).await?;
    Ok(stored)
}

/// What the bot makes of the message, its text routed before the transaction. Stickers, images and
/// shared posts get no automatic answer: only text is understood.
async fn decide(
    state: &AppState,
    txn: &DatabaseTransaction,
    customer: &CustomerConversation,
    routed: Option<(&str, Routed)>,
    now: DateTime<Utc>,
) -> Result<Decision, JobError> {
    match routed {
        Some((text, routed)) => {
            let turn = Turn { user: &customer.user, conversation: &customer.conversation, text, now };
            Ok(state.bot.respond_routed(txn, turn, routed).await?)
        }
        None => Ok(Decision { state: ConversationState::of(&customer.conversation), ..Default::default() }),
    }
}

/// Stores what the turn changed: the conversation's state and handoff, the customer's opt-out. The
/// common turn (idle stays idle) writes nothing beyond the message itself.
async fn store_decision(
    txn: &DatabaseTransaction,
    customer: &CustomerConversation,
    decision: &Decision,
    now: DateTime<Utc>,
) -> Result<(), JobError> {
    let handoff = match (&decision.handoff, decision.handoff_released) {
        (Some(reason), _) => Handoff::Start(reason),
        (None, true) => Handoff::End,
        (None, false) => Handoff::Unchanged,
    };
    if handoff != Handoff::Unchanged || ConversationState::of(&customer.conversation) != decision.state {
        ledger::update_conversation(txn, &customer.conversation, &decision.state, handoff, now).await?;
    }
    if decision.opt_out && !customer.user.opted_out {
        ledger::record_opt_out(txn, &customer.user, now).await?;
    }
    Ok(())
}

/// How the replies are stored. A live reply is `pending` and sent after the commit, recording its own
/// outcome; without TikTok credentials "sending" is printing, so the reply is settled here already:
/// `dry_run`, or `outside_window` exactly as a live send would be refused.
fn reply_status(state: &AppState, window: ReplyWindow, now: DateTime<Utc>) -> DeliveryStatus {
    if state.tiktok.is_some() { DeliveryStatus::Pending } else { delivery::dry_run_status(window, now) }
}

/// Stores the bot's replies as the TikTok messages they become, in order.
async fn store_replies(
    txn: &DatabaseTransaction,
    customer: &CustomerConversation,
    decision: &Decision,
    status: DeliveryStatus,
    message: &MessageV1,
) -> Result<Vec<messages::Model>, JobError> {
    let in_reply_to = json!({"in_reply_to": message.idempotency_key});
    let outgoing = decision.replies.iter().flat_map(|reply| reply.messages(&in_reply_to)).collect();
    Ok(ledger::store_outgoing(txn, customer.conversation.id, Role::Assistant, status, outgoing).await?)
}

/// Records the event, written last in the transaction: false when another delivery of it got there first
/// (its row is found, and everything above is rolled back). It is processed once this commits: replies
/// still pending are their rows' to track (sent right after the commit, else by a redelivery or the
/// sweeper), so a live send costs no third write to mark the event.
async fn record_event(
    txn: &DatabaseTransaction,
    message: &MessageV1,
    replies: &[messages::Model],
) -> Result<bool, JobError> {
    let event = Event {
        idempotency_key: &message.idempotency_key,
        event_type: &message.event,
        received_at: message.received_at,
        outcome: ledger::replies_outcome(replies),
        processed_at: Some(Utc::now()),
    };
    Ok(ledger::record_event(txn, event).await?)
}

fn log_stored(message: &MessageV1, customer: &CustomerConversation, replies: &[messages::Model]) {
    let text = escape_for_log(message.text.as_deref().unwrap_or(""), 200);
    let (event_id, conversation) = (&message.idempotency_key, &customer.conversation.tiktok_conversation_id);
    // The customer's words at INFO only where telemetry says so (not in production): see there.
    if crate::telemetry::customer_text_at_info() {
        tracing::info!(
            %event_id, %conversation, user = %customer.user.tiktok_user_id, message_type = %message.message_type,
            %text, "inbound message stored"
        );
    } else {
        tracing::info!(
            %event_id, %conversation, user = %customer.user.tiktok_user_id, message_type = %message.message_type,
            "inbound message stored"
        );
        tracing::debug!(%event_id, %text, "inbound message text");
    }
    for reply in replies {
        delivery::log_unsent(&customer.conversation, reply.text.as_deref(), reply.delivery_status);
    }
}

/// After the commit: tells the team when a human is wanted, sends the pending replies (the rows are in
/// hand, nothing is read back), then other customers' notices the turn stored (a cancelled hold freed a
/// piece they wait for). A notice that cannot be sent now is left for the sweeper, never failing this
/// customer's job.
async fn deliver(
    state: &AppState,
    customer: &CustomerConversation,
    decision: &Decision,
    replies: &[messages::Model],
) -> Result<(), JobError> {
    if let Some(reason) = &decision.handoff {
        delivery::notify_staff(state, customer, reason);
    }
    if replies.iter().any(|r| r.delivery_status == Some(DeliveryStatus::Pending)) {
        delivery::send_in_order(state, replies, customer).await?;
    }
    delivery::deliver_notices(state, &decision.notices).await;
    Ok(())
}
