//! One turn of the conversation: from what the customer wrote, the conversation's state and the shop's
//! facts, decide what the bot says, what it waits for next, and whether a human takes over.

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};

use super::intent::{Entities, Intent, menu_choice};
use super::replies::render;
use super::{Bot, Reply};
use crate::config::ShopSettings;
use crate::llm::Speaker;
use crate::shop;
use crate::store::entities::orders::{self, OrderStatus};
use crate::store::entities::{conversations, items, messages, users};

/// What the bot is waiting for in a conversation, stored as JSON in `conversations.state`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConversationState {
    #[default]
    Idle,
    /// The bot asked for an order number.
    AwaitingOrderNumber,
    /// The bot showed a numbered list of items: "2" means the second of these SKUs.
    ChoosingItem { candidates: Vec<String> },
    /// The customer asked about a piece without naming it; the bot asked which.
    AwaitingItem { purpose: ItemPurpose },
}

impl ConversationState {
    /// The state stored in a conversation row; an unreadable one (an older shape) counts as `Idle`.
    pub fn of(conversation: &conversations::Model) -> Self {
        serde_json::from_value(conversation.state.clone()).unwrap_or_default()
    }
}

/// Why the bot wants to know which item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemPurpose {
    Details,
    Sizing,
    Reserve,
}

/// A customer's message, in its conversation.
pub struct Turn<'a> {
    pub user: &'a users::Model,
    pub conversation: &'a conversations::Model,
    pub text: &'a str,
    pub now: DateTime<Utc>,
}

/// What the bot decided for one turn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Said in order; empty when the bot stays silent (a human has the conversation).
    pub replies: Vec<Reply>,
    pub state: ConversationState,
    /// Hand the conversation to a human, for this reason.
    pub handoff: Option<String>,
    /// A handoff that has been quiet long enough is over: the bot answers again.
    pub handoff_released: bool,
    pub opt_out: bool,
}

impl Decision {
    fn say(text: String, state: ConversationState) -> Self {
        Decision { replies: vec![Reply { text, image_url: None }], state, ..Default::default() }
    }

    /// Ends a finished flow with the short menu, so the customer always knows what to do next.
    fn then(mut self, hint: &str) -> Self {
        if let Some(last) = self.replies.last_mut() {
            last.text = format!("{}\n\n{hint}", last.text);
        }
        self
    }
}

impl Bot {
    /// Decides one turn. Facts (items, prices, orders, holds) come from `db`, only for this customer.
    pub async fn respond(&self, db: &impl ConnectionTrait, turn: Turn<'_>) -> anyhow::Result<Decision> {
        let conversation = turn.conversation;
        let mut released = false;
        if conversation.handoff_active {
            let quiet = Duration::hours(self.shop.handoff_quiet_hours as i64);
            match conversation.handoff_at {
                Some(at) if turn.now - at >= quiet => released = true,
                _ => return Ok(Decision { state: ConversationState::of(conversation), ..Default::default() }),
            }
        }
        let mut decision = self.decide(db, &turn).await?;
        decision.handoff_released = released;
        Ok(decision)
    }

    /// The router chain: menu number and keywords, then the LLM when configured. The model's answer is
    /// used only when it is valid; its entities are completed by what the keywords found.
    async fn route(&self, db: &impl ConnectionTrait, turn: &Turn<'_>) -> anyhow::Result<(Intent, Entities)> {
        let (intent, entities) = self.router.route(turn.text);
        let Some(llm) = &self.llm else { return Ok((intent, entities)) };
        if self.router.is_unambiguous(turn.text) {
            return Ok((intent, entities));
        }
        let history = self.history(db, turn.conversation.id).await?;
        match llm.classify(turn.text, &history).await {
            Ok((llm_intent, llm_entities)) => Ok((
                llm_intent,
                Entities {
                    sku: llm_entities.sku.or(entities.sku),
                    size: llm_entities.size.or(entities.size),
                    category: llm_entities.category.or(entities.category),
                    order_number: llm_entities.order_number.or(entities.order_number),
                    item_position: llm_entities.item_position.or(entities.item_position),
                },
            )),
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), fallback = %intent.name(), "LLM router failed; using the keywords");
                Ok((intent, entities))
            }
        }
    }

    /// The last messages before this one, oldest first, for the model's context.
    async fn history(&self, db: &impl ConnectionTrait, conversation_id: i64) -> anyhow::Result<Vec<(Speaker, String)>> {
        let mut recent = messages::Entity::find()
            .filter(messages::Column::ConversationId.eq(conversation_id))
            .filter(messages::Column::Text.is_not_null())
            .order_by_desc(messages::Column::Id)
            .limit(self.history_messages + 1)
            .all(db)
            .await?;
        recent.reverse();
        recent.pop(); // the message being answered, stored just before
        Ok(recent
            .into_iter()
            .map(|m| {
                (
                    if m.direction == messages::Direction::In { Speaker::Customer } else { Speaker::Shop },
                    m.text.unwrap_or_default(),
                )
            })
            .collect())
    }

    async fn decide(&self, db: &impl ConnectionTrait, turn: &Turn<'_>) -> anyhow::Result<Decision> {
        let (intent, entities) = self.route(db, turn).await?;
        match ConversationState::of(turn.conversation) {
            ConversationState::ChoosingItem { candidates } => {
                let position = menu_choice(turn.text).or(entities.item_position);
                if let Some(sku) = position.and_then(|n| candidates.get(n as usize - 1)) {
                    let items = shop::items_by_skus(db, std::slice::from_ref(sku)).await?;
                    let purpose = match intent {
                        Intent::Sizing => ItemPurpose::Sizing,
                        Intent::Reserve => ItemPurpose::Reserve,
                        _ => ItemPurpose::Details,
                    };
                    return Ok(self.about_item(items.into_iter().next(), purpose));
                }
            }
            ConversationState::AwaitingOrderNumber if entities.order_number.is_some() => {
                return self.order_status(db, turn.user, &entities).await;
            }
            ConversationState::AwaitingItem { purpose } if entities.sku.is_some() => {
                let item = shop::item_by_sku(db, entities.sku.as_deref().unwrap_or_default()).await?;
                return Ok(self.about_item(item, purpose));
            }
            _ => {}
        }
        self.answer(db, turn, intent, entities).await
    }

    async fn answer(
        &self,
        db: &impl ConnectionTrait,
        turn: &Turn<'_>,
        intent: Intent,
        entities: Entities,
    ) -> anyhow::Result<Decision> {
        let t = &self.replies.templates;
        Ok(match intent {
            Intent::Greeting => self.menu_decision(None),
            Intent::Unknown => self.menu_decision(Some(t.unknown.clone())),
            Intent::Thanks => Decision::say(t.thanks.clone(), ConversationState::Idle),
            Intent::OptOut => Decision { opt_out: true, ..Decision::say(t.opt_out.clone(), ConversationState::Idle) },
            Intent::Faq(topic) => match self.router.faq_answer(&topic) {
                Some(answer) => Decision::say(answer.to_owned(), ConversationState::Idle),
                None => self.menu_decision(Some(t.unknown.clone())),
            },
            Intent::Human => self.handoff(turn.now, "the customer asked for a human".into()),
            Intent::OrderStatus => self.order_status(db, turn.user, &entities).await?,
            Intent::NewDrops => self.drops(db, entities.category.as_deref()).await?,
            Intent::CancelHold => {
                let released = shop::release_holds(db, turn.user.id).await?;
                let text = if released.is_empty() {
                    t.cancel_none.clone()
                } else {
                    let lines: Vec<String> =
                        released.iter().map(|item| render(&t.cancel_done, &[("title", &item.title)])).collect();
                    lines.join("\n")
                };
                Decision::say(text, ConversationState::Idle).then(&t.menu_hint)
            }
            Intent::Availability | Intent::Sizing | Intent::Reserve => {
                let purpose = match intent {
                    Intent::Sizing => ItemPurpose::Sizing,
                    Intent::Reserve => ItemPurpose::Reserve,
                    _ => ItemPurpose::Details,
                };
                match &entities.sku {
                    Some(sku) => self.about_item(shop::item_by_sku(db, sku).await?, purpose),
                    None => self.item_by_description(db, turn.text, &entities, purpose).await?,
                }
            }
        })
    }

    /// An item the customer described instead of naming its SKU: "the one in your last video" is the
    /// newest drop; otherwise the words of the message are looked for in item titles. One match is
    /// answered, several are listed to choose from, none asks for the item number.
    async fn item_by_description(
        &self,
        db: &impl ConnectionTrait,
        text: &str,
        entities: &Entities,
        purpose: ItemPurpose,
    ) -> anyhow::Result<Decision> {
        let words = super::intent::normalize(text);
        let joined = words.join(" ");
        if ["last video", "latest video", "last post", "latest post", "last live", "your video"]
            .iter()
            .any(|p| joined.contains(p))
        {
            let newest = shop::new_drops(db, entities.category.as_deref(), self.shop.drops_days, 1).await?;
            return Ok(self.about_item(newest.into_iter().next(), purpose));
        }
        let meaningful: Vec<String> =
            words.into_iter().filter(|w| w.len() >= 4 && !self.router.is_keyword(w)).collect();
        let found = shop::search_titles(db, &meaningful, 5).await?;
        Ok(match found.len() {
            0 if entities.category.is_some() && purpose == ItemPurpose::Details => {
                self.drops(db, entities.category.as_deref()).await?
            }
            0 => Decision::say(self.replies.templates.item_ask.clone(), ConversationState::AwaitingItem { purpose }),
            1 => self.about_item(found.into_iter().next(), purpose),
            _ => self.item_list(found),
        })
    }

    fn menu_decision(&self, before: Option<String>) -> Decision {
        let menu = self.replies.menu();
        let text = match before {
            Some(before) => format!("{before}\n\n{menu}"),
            None => menu,
        };
        Decision {
            replies: vec![Reply { text, image_url: self.replies.menu.image_url.clone() }],
            state: ConversationState::Idle,
            ..Default::default()
        }
    }

    fn handoff(&self, now: DateTime<Utc>, reason: String) -> Decision {
        let hours = BusinessHours(&self.shop);
        let t = &self.replies.templates;
        let text = if hours.is_open(now) {
            render(&t.handoff_open, &[("closes", &format!("{}:00", self.shop.close_hour))])
        } else {
            render(&t.handoff_closed, &[("opens", &hours.next_opening(now))])
        };
        Decision { handoff: Some(reason), ..Decision::say(text, ConversationState::Idle) }
    }

    async fn order_status(
        &self,
        db: &impl ConnectionTrait,
        user: &users::Model,
        entities: &Entities,
    ) -> anyhow::Result<Decision> {
        let t = &self.replies.templates;
        let orders = match &entities.order_number {
            Some(number) => match shop::order_of_customer(db, user.id, number).await? {
                Some(order) => vec![order],
                None => {
                    let text = render(&t.order_not_found, &[("order_number", number)]);
                    return Ok(Decision::say(text, ConversationState::Idle));
                }
            },
            None => shop::latest_orders(db, user.id, 3).await?,
        };
        if orders.is_empty() {
            return Ok(Decision::say(t.order_ask.clone(), ConversationState::AwaitingOrderNumber));
        }
        let lines: Vec<String> = orders.iter().map(|order| self.order_line(order)).collect();
        Ok(Decision::say(lines.join("\n"), ConversationState::Idle).then(&t.menu_hint))
    }

    fn order_line(&self, order: &orders::Model) -> String {
        let t = &self.replies.templates;
        match (order.status, &order.carrier, &order.tracking_number) {
            (OrderStatus::Shipped, Some(carrier), Some(tracking)) => render(
                &t.order_shipped,
                &[("order_number", &order.order_number), ("carrier", carrier), ("tracking", tracking)],
            ),
            (status, _, _) => {
                let status = match status {
                    OrderStatus::Pending => "waiting for payment",
                    OrderStatus::Paid => "paid and being packed",
                    OrderStatus::Shipped => "shipped",
                    OrderStatus::Cancelled => "cancelled",
                };
                let total = shop::price(order.total_minor, &self.shop.currency_symbol);
                render(&t.order_status, &[("order_number", &order.order_number), ("status", status), ("total", &total)])
            }
        }
    }

    async fn drops(&self, db: &impl ConnectionTrait, category: Option<&str>) -> anyhow::Result<Decision> {
        let t = &self.replies.templates;
        let items = shop::new_drops(db, category, self.shop.drops_days, self.shop.drops_per_page).await?;
        if items.is_empty() {
            return Ok(Decision::say(t.drops_none.clone(), ConversationState::Idle));
        }
        Ok(self.item_list(items))
    }

    /// A numbered list of items to choose from; the next "2" picks the second.
    fn item_list(&self, items: Vec<items::Model>) -> Decision {
        let t = &self.replies.templates;
        let mut text = render(&t.drops_intro, &[("count", &items.len().to_string())]);
        for (i, item) in items.iter().enumerate() {
            let price = shop::price(item.price_minor, &self.shop.currency_symbol);
            let size = item.tag_size.as_deref().unwrap_or("no size");
            let line = render(
                &t.drops_item,
                &[("position", &(i + 1).to_string()), ("title", &item.title), ("price", &price), ("size", size)],
            );
            text.push('\n');
            text.push_str(&line);
        }
        let candidates = items.into_iter().map(|item| item.sku).collect();
        Decision::say(text, ConversationState::ChoosingItem { candidates })
    }

    fn about_item(&self, item: Option<items::Model>, purpose: ItemPurpose) -> Decision {
        let t = &self.replies.templates;
        let Some(item) = item else { return Decision::say(t.item_not_found.clone(), ConversationState::Idle) };
        let size = item.tag_size.as_deref().unwrap_or("no size");
        let measurements = shop::measurements(&item);
        if item.status != items::ItemStatus::Available && purpose != ItemPurpose::Sizing {
            let status = match item.status {
                items::ItemStatus::Reserved => "on hold for someone else right now",
                _ => "sold",
            };
            return Decision::say(
                render(&t.item_unavailable, &[("title", &item.title), ("status", status)]),
                ConversationState::Idle,
            );
        }
        match purpose {
            ItemPurpose::Sizing => Decision::say(
                render(&t.sizing, &[("title", &item.title), ("size", size), ("measurements", &measurements)]),
                ConversationState::Idle,
            )
            .then(&t.menu_hint),
            ItemPurpose::Reserve => {
                let text = render(&t.reserve, &[("title", &item.title)]);
                Decision {
                    handoff: Some(format!("wants to buy {} ({})", item.title, item.sku)),
                    ..Decision::say(text, ConversationState::Idle)
                }
            }
            ItemPurpose::Details => {
                let price = shop::price(item.price_minor, &self.shop.currency_symbol);
                let text = render(
                    &t.item_available,
                    &[("title", &item.title), ("price", &price), ("size", size), ("measurements", &measurements)],
                );
                let reply = Reply { text, image_url: item.image_url.clone() };
                Decision { replies: vec![reply], state: ConversationState::Idle, ..Default::default() }
            }
        }
    }
}

/// The team's opening hours, in the shop's local time.
struct BusinessHours<'a>(&'a ShopSettings);

impl BusinessHours<'_> {
    fn local(&self, now: DateTime<Utc>) -> chrono::NaiveDateTime {
        now.naive_utc() + Duration::hours(self.0.utc_offset_hours as i64)
    }

    fn open_on(&self, date: chrono::NaiveDate) -> bool {
        let day = date.weekday().to_string().to_ascii_lowercase();
        self.0.open_days.iter().any(|d| d.eq_ignore_ascii_case(&day))
    }

    fn is_open(&self, now: DateTime<Utc>) -> bool {
        let local = self.local(now);
        self.open_on(local.date()) && (self.0.open_hour..self.0.close_hour).contains(&local.hour())
    }

    /// "today at 10:00", "tomorrow at 10:00" or "on Monday at 10:00".
    fn next_opening(&self, now: DateTime<Utc>) -> String {
        let local = self.local(now);
        let at = format!("at {}:00", self.0.open_hour);
        for days in 0..8 {
            let date = local.date() + Duration::days(days);
            if !self.open_on(date) || (days == 0 && local.hour() >= self.0.open_hour) {
                continue;
            }
            return match days {
                0 => format!("today {at}"),
                1 => format!("tomorrow {at}"),
                _ => format!("on {} {at}", date.format("%A")),
            };
        }
        "as soon as we can".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn business_hours_follow_the_shop_clock() {
        let shop = ShopSettings::default(); // Mon–Sat 10–19, UTC-5
        let hours = BusinessHours(&shop);
        assert!(hours.is_open(at("2026-11-23T16:00:00Z")), "Monday 11:00 in New York");
        assert!(!hours.is_open(at("2026-11-23T02:00:00Z")), "Sunday 21:00 in New York");
        assert_eq!(hours.next_opening(at("2026-11-23T02:00:00Z")), "tomorrow at 10:00");
        assert_eq!(hours.next_opening(at("2026-11-23T12:00:00Z")), "today at 10:00");
        assert_eq!(hours.next_opening(at("2026-11-22T12:00:00Z")), "tomorrow at 10:00", "Sunday morning");
        assert_eq!(hours.next_opening(at("2026-11-29T01:00:00Z")), "on Monday at 10:00", "Saturday night");
    }
}
