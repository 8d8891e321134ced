//! Messages the shop sends on its own: a piece a customer waited for is free again, their order was
//! paid, shipped or cancelled. A notice is stored as a pending `system` message in the customer's
//! conversation, in the same transaction as the change it reports, and the worker delivers it (right
//! after the commit, and on its next sweep should that fail). Only customers TikTok lets the shop write
//! to get one: reply window open, not opted out.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::json;

use super::replies::render;
use super::{Bot, ConversationState, Reply};
use crate::shop::holds::Freed;
use crate::shop::orders::Moved;
use crate::shop::window::ReplyWindow;
use crate::store::entities::messages::{DeliveryStatus, Role};
use crate::store::entities::orders::OrderStatus;
use crate::store::entities::{conversations, users};
use crate::store::ledger;

/// Whether TikTok lets the shop message this customer unprompted at `now`.
pub fn can_message(customer: &users::Model, now: DateTime<Utc>) -> bool {
    !customer.opted_out && ReplyWindow::of(customer).is_open(now)
}

/// Stores `replies` for `customer` as pending notices (text, then its picture), in `conversation` when
/// given, else their latest. With `state`, the conversation waits for what the notice invites (unless a
/// human has it). Returns the stored message ids, in order; none when the customer cannot be messaged.
pub async fn store_notice(
    db: &impl ConnectionTrait,
    customer: &users::Model,
    conversation: Option<&str>,
    kind: &str,
    replies: &[Reply],
    state: Option<ConversationState>,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, DbErr> {
    if !can_message(customer, now) {
        return Ok(Vec::new());
    }
    let mut query = conversations::Entity::find().filter(conversations::Column::UserId.eq(customer.id));
    if let Some(id) = conversation {
        query = query.filter(conversations::Column::TiktokConversationId.eq(id));
    }
    let Some(conversation) = query.order_by_desc(conversations::Column::LastMessageAt).limit(1).one(db).await? else {
        return Ok(Vec::new());
    };
    let metadata = json!({"notice": kind});
    let messages = replies.iter().flat_map(|reply| reply.messages(&metadata)).collect();
    let stored = ledger::store_outgoing(db, conversation.id, Role::System, DeliveryStatus::Pending, messages).await?;
    if let Some(state) = state.filter(|_| !conversation.handoff_active) {
        ledger::set_state(db, conversation.id, &state, now).await?;
    }
    Ok(stored.iter().map(|m| m.id).collect())
}

impl Bot {
    /// Tells the customer picked from the waitlist that the item is free again; their conversation then
    /// points at it, so "I'll take it" holds it.
    pub async fn tell_item_free(
        &self,
        db: &impl ConnectionTrait,
        freed: &Freed,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, DbErr> {
        let Some(customer) = &freed.tell else { return Ok(Vec::new()) };
        let item = &freed.item;
        let price = crate::shop::price(item.price_minor, &self.shop.currency_symbol);
        let text = render(&self.replies.templates.waitlist_free, &[("title", &item.title), ("price", &price)]);
        let reply = Reply { text, image_url: item.image_url.clone() };
        let state = ConversationState::ViewingItem { sku: item.sku.clone() };
        store_notice(db, customer, None, "waitlist", &[reply], Some(state), now).await
    }

    /// Tells a customer their order was paid, shipped or cancelled, and each waiting customer that a
    /// cancelled order's items are free again.
    pub async fn tell_order_moved(
        &self,
        db: &impl ConnectionTrait,
        moved: &Moved,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, DbErr> {
        let t = &self.replies.templates;
        let order = &moved.order;
        let number = order.order_number.as_str();
        let text = match order.status {
            OrderStatus::Paid => render(&t.order_paid_notice, &[("order_number", number)]),
            OrderStatus::Shipped => render(
                &t.order_shipped_notice,
                &[
                    ("order_number", number),
                    ("carrier", order.carrier.as_deref().unwrap_or("")),
                    ("tracking", order.tracking_number.as_deref().unwrap_or("")),
                ],
            ),
            OrderStatus::Cancelled => render(&t.order_cancelled_notice, &[("order_number", number)]),
            OrderStatus::Pending => return Ok(Vec::new()),
        };
        let reply = Reply { text, image_url: None };
        let conversation = order.tiktok_conversation_id.as_deref();
        let mut ids = store_notice(db, &moved.customer, conversation, "order", &[reply], None, now).await?;
        for freed in &moved.freed {
            ids.extend(self.tell_item_free(db, freed, now).await?);
        }
        Ok(ids)
    }
}
