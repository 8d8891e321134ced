//! Messages the shop sends on its own: a piece a customer waited for is free again, their order moved
//! (paid, shipped, delivered, returned, cancelled, expired unpaid, tracking corrected), a reminder to pay,
//! a hold staff ended. A notice is stored as a pending `system` message in the customer's
//! conversation, in the same transaction as the change it reports, and the worker delivers it (right
//! after the commit, and on its next sweep should that fail). Only customers TikTok lets the shop write
//! to get one: reply window open, not opted out.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::json;

use super::replies::render;
use super::{Bot, ConversationState, Reply};
use crate::shop::holds::Freed;
use crate::shop::orders::{Change, Moved};
use crate::shop::window::ReplyWindow;
use crate::store::entities::messages::{DeliveryStatus, Role};
use crate::store::entities::orders::OrderStatus;
use crate::store::entities::{conversations, items, orders, users};
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

    /// Tells a customer what happened to their order: paid, shipped, delivered, returned, cancelled,
    /// expired unpaid, or its tracking corrected. Returns the notices stored (none when TikTok does not
    /// let the shop write to them now).
    pub async fn tell_order_customer(
        &self,
        db: &impl ConnectionTrait,
        moved: &Moved,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, DbErr> {
        let t = &self.replies.templates;
        let order = &moved.order;
        let number = order.order_number.as_str();
        let carrier = order.carrier.as_deref().unwrap_or("");
        let tracking = order.tracking_number.as_deref().unwrap_or("");
        let shipped = [("order_number", number), ("carrier", carrier), ("tracking", tracking)];
        let text = match (moved.change, order.status) {
            (Change::Tracking, _) => Some(render(&t.order_tracking_notice, &shipped)),
            (Change::Expired, _) => Some(render(&t.order_expired_notice, &[("order_number", number)])),
            (Change::Status, OrderStatus::Paid) => Some(render(&t.order_paid_notice, &[("order_number", number)])),
            (Change::Status, OrderStatus::Shipped) => Some(render(&t.order_shipped_notice, &shipped)),
            (Change::Status, OrderStatus::Delivered) => {
                Some(render(&t.order_delivered_notice, &[("order_number", number)]))
            }
            (Change::Status, OrderStatus::Returned) => {
                Some(render(&t.order_returned_notice, &[("order_number", number)]))
            }
            (Change::Status, OrderStatus::Cancelled) => {
                Some(render(&t.order_cancelled_notice, &[("order_number", number)]))
            }
            (Change::Status, OrderStatus::Pending) => None,
        };
        let Some(text) = text else { return Ok(Vec::new()) };
        let reply = Reply { text, image_url: None };
        let conversation = order.tiktok_conversation_id.as_deref();
        store_notice(db, &moved.customer, conversation, "order", &[reply], None, now).await
    }

    /// [`Bot::tell_order_customer`], then each waiting customer that pieces the order let go of are free
    /// again. Returns every notice stored, in order.
    pub async fn tell_order_moved(
        &self,
        db: &impl ConnectionTrait,
        moved: &Moved,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, DbErr> {
        let mut ids = self.tell_order_customer(db, moved, now).await?;
        for freed in &moved.freed {
            ids.extend(self.tell_item_free(db, freed, now).await?);
        }
        Ok(ids)
    }

    /// Reminds a customer that their order waits for payment, with how to pay.
    pub async fn remind_to_pay(
        &self,
        db: &impl ConnectionTrait,
        order: &orders::Model,
        customer: &users::Model,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, DbErr> {
        let number = order.order_number.as_str();
        let total = crate::shop::price(order.total_minor, &self.shop.currency_symbol);
        let payment = render(&self.shop.payment_instructions, &[("order_number", number)]);
        let text = render(
            &self.replies.templates.payment_reminder_notice,
            &[("order_number", number), ("total", &total), ("payment", &payment)],
        );
        let reply = Reply { text, image_url: None };
        let conversation = order.tiktok_conversation_id.as_deref();
        store_notice(db, customer, conversation, "payment_reminder", &[reply], None, now).await
    }

    /// Tells a customer that staff took a piece they held off sale, so their hold ended.
    pub async fn tell_hold_ended(
        &self,
        db: &impl ConnectionTrait,
        item: &items::Model,
        holder: &users::Model,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, DbErr> {
        let text = render(&self.replies.templates.hold_ended_notice, &[("title", &item.title)]);
        store_notice(db, holder, None, "hold_ended", &[Reply { text, image_url: None }], None, now).await
    }
}
