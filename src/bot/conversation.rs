//! One turn of the conversation: from what the customer wrote, the conversation's state and the shop's
//! facts, decide what the bot says, what it waits for next, and whether a human takes over.

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};

use super::intent::{Entities, Intent};
use super::llm::Speaker;
use super::replies::render;
use super::{Bot, BotError, Reply};
use crate::config::ShopSettings;
use crate::shop::fit::{Assessment, Measured, Verdict};
use crate::shop::holds::{HoldOutcome, HoldRules};
use crate::shop::orders::Shipping;
use crate::shop::{self, Search, holds, orders as shop_orders};
use crate::store::entities::items::ItemStatus;
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
    /// The bot showed a numbered list of items: "2" means the second of these SKUs; "more" shows `more`.
    ChoosingItem {
        candidates: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        more: Option<DropsPage>,
    },
    /// The customer asked about a piece without naming it; the bot asked which.
    AwaitingItem { purpose: ItemPurpose },
    /// The bot just talked about this piece: "I'll take it" or "will it fit?" means it.
    ViewingItem { sku: String },
}

/// The next page of "new drops".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropsPage {
    pub category: Option<String>,
    pub offset: u64,
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
/// What the routers made of a customer's text: the intent and what it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed(Intent, Entities);

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
    /// Notices for other customers stored by this turn (a cancelled hold frees an item someone waits
    /// for), to deliver after the commit.
    pub notices: Vec<i64>,
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

fn purpose_of(intent: &Intent) -> ItemPurpose {
    match intent {
        Intent::Sizing => ItemPurpose::Sizing,
        Intent::Reserve => ItemPurpose::Reserve,
        _ => ItemPurpose::Details,
    }
}

impl Bot {
    /// Decides one turn. Facts (items, prices, orders, holds) come from `db`, only for this customer.
    pub async fn respond(&self, db: &impl ConnectionTrait, turn: Turn<'_>) -> Result<Decision, BotError> {
        let routed = self.route(db, Some(turn.conversation.id), turn.text, true).await?;
        self.respond_routed(db, turn, routed).await
    }

    /// What the routers make of a customer's text in a conversation (`None`: its first message), asked
    /// before the turn's transaction: the model's seconds then hold no row lock (nor SQLite's one write
    /// lock), and a redelivered event found done never pays for the model.
    pub async fn route_ahead(
        &self,
        db: &impl ConnectionTrait,
        tiktok_conversation_id: &str,
        text: &str,
    ) -> Result<Routed, BotError> {
        if self.llm.is_none() || self.router.is_unambiguous(text) {
            return self.route(db, None, text, false).await;
        }
        let conversation = conversations::Entity::find()
            .filter(conversations::Column::TiktokConversationId.eq(tiktok_conversation_id))
            .one(db)
            .await?;
        self.route(db, conversation.map(|c| c.id), text, false).await
    }

    /// [`Bot::respond`] with the text already routed ([`Bot::route_ahead`]).
    pub async fn respond_routed(
        &self,
        db: &impl ConnectionTrait,
        turn: Turn<'_>,
        routed: Routed,
    ) -> Result<Decision, BotError> {
        let conversation = turn.conversation;
        let mut released = false;
        if conversation.handoff_active {
            let quiet = Duration::hours(self.shop.handoff_quiet_hours as i64);
            match conversation.handoff_at {
                Some(at) if turn.now - at >= quiet => released = true,
                _ => return Ok(Decision { state: ConversationState::of(conversation), ..Default::default() }),
            }
        }
        let mut decision = self.decide(db, &turn, routed).await?;
        decision.handoff_released = released;
        Ok(decision)
    }

    /// The router chain: menu number and keywords, then the LLM when configured. The model's answer is
    /// used only when it is valid; its entities are completed by what the keywords found. `stored`: the
    /// message being answered is already stored (it is then not part of its own history).
    async fn route(
        &self,
        db: &impl ConnectionTrait,
        conversation_id: Option<i64>,
        text: &str,
        stored: bool,
    ) -> Result<Routed, BotError> {
        let (intent, entities) = self.router.route(text);
        let Some(llm) = &self.llm else { return Ok(Routed(intent, entities)) };
        if self.router.is_unambiguous(text) {
            return Ok(Routed(intent, entities));
        }
        let history = match conversation_id {
            Some(id) => self.history(db, id, stored).await?,
            None => Vec::new(),
        };
        match llm.classify(text, &history).await {
            Ok((llm_intent, llm_entities)) => Ok(Routed(
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
                Ok(Routed(intent, entities))
            }
        }
    }

    /// The last messages before this one, oldest first, for the model's context.
    async fn history(
        &self,
        db: &impl ConnectionTrait,
        conversation_id: i64,
        stored: bool,
    ) -> Result<Vec<(Speaker, String)>, BotError> {
        let mut recent = messages::Entity::find()
            .filter(messages::Column::ConversationId.eq(conversation_id))
            .filter(messages::Column::Text.is_not_null())
            .order_by_desc(messages::Column::Id)
            .limit(self.history_messages + 1)
            .all(db)
            .await?;
        recent.reverse();
        if stored {
            recent.pop(); // the message being answered, stored just before
        } else if recent.len() > self.history_messages as usize {
            recent.remove(0);
        }
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

    async fn decide(&self, db: &impl ConnectionTrait, turn: &Turn<'_>, routed: Routed) -> Result<Decision, BotError> {
        let Routed(intent, entities) = routed;
        let mut viewing = None;
        match ConversationState::of(turn.conversation) {
            ConversationState::ChoosingItem { candidates, more } => {
                if intent == Intent::More {
                    return match more {
                        Some(page) => self.drops(db, page.category, page.offset, turn.now).await,
                        None => Ok(Decision::say(self.replies.templates.drops_end.clone(), ConversationState::Idle)),
                    };
                }
                let position = self.router.menu_choice(turn.text).or(entities.item_position);
                if let Some(sku) = position.and_then(|n| candidates.get((n as usize).checked_sub(1)?)) {
                    let item = shop::item_by_sku(db, sku).await?;
                    return self.about_item(db, turn, &entities, item, purpose_of(&intent)).await;
                }
            }
            ConversationState::AwaitingOrderNumber if entities.order_number.is_some() => {
                return self.order_status(db, turn.user, &entities).await;
            }
            ConversationState::AwaitingItem { purpose } if entities.sku.is_some() => {
                let item = shop::item_by_sku(db, entities.sku.as_deref().unwrap_or_default()).await?;
                return self.about_item(db, turn, &entities, item, purpose).await;
            }
            ConversationState::ViewingItem { sku } => viewing = Some(sku),
            _ => {}
        }
        self.answer(db, turn, intent, entities, viewing).await
    }

    async fn answer(
        &self,
        db: &impl ConnectionTrait,
        turn: &Turn<'_>,
        intent: Intent,
        entities: Entities,
        viewing: Option<String>,
    ) -> Result<Decision, BotError> {
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
            Intent::NewDrops | Intent::More if entities.size.is_none() => {
                self.drops(db, entities.category.clone(), 0, turn.now).await?
            }
            // "Any jackets in M?": the available pieces of that size.
            Intent::NewDrops | Intent::More => {
                self.item_by_description(db, turn, &entities, ItemPurpose::Details, None).await?
            }
            Intent::CancelHold => self.cancel_holds(db, turn).await?,
            Intent::Checkout => self.checkout(db, turn).await?,
            Intent::Availability | Intent::Sizing | Intent::Reserve => {
                let purpose = purpose_of(&intent);
                match &entities.sku {
                    Some(sku) => {
                        let item = shop::item_by_sku(db, sku).await?;
                        self.about_item(db, turn, &entities, item, purpose).await?
                    }
                    None => self.item_by_description(db, turn, &entities, purpose, viewing).await?,
                }
            }
        })
    }

    /// An item the customer described instead of naming its SKU: "the one in your last video" is the
    /// newest drop; otherwise the words of the message are looked for in titles and brands, with the size
    /// and category named. One match is answered, several are listed to choose from. With nothing to go
    /// on, "it" is the piece just talked about (`viewing`), else the bot asks for the item number.
    async fn item_by_description(
        &self,
        db: &impl ConnectionTrait,
        turn: &Turn<'_>,
        entities: &Entities,
        purpose: ItemPurpose,
        viewing: Option<String>,
    ) -> Result<Decision, BotError> {
        let words = super::intent::normalize(turn.text);
        if self.router.means_newest_drop(&words) {
            let newest =
                shop::new_drops(db, entities.category.as_deref(), self.shop.drops_days, turn.now, 0, 1).await?;
            return self.about_item(db, turn, entities, newest.into_iter().next(), purpose).await;
        }
        // "Got any …?" is a search, even right after talking about a piece.
        let viewing = viewing.filter(|_| !self.router.is_search(&words));
        let meaningful: Vec<String> = words
            .into_iter()
            .filter(|w| w.len() >= 4 && !self.router.is_keyword(w) && !self.router.is_category_word(w))
            .collect();
        // "Any jackets in a medium?" names no piece: it is a search by category and size, not a sizing
        // question about one piece ("will the jacket fit an M?" about the piece just shown still is).
        let purpose = if purpose == ItemPurpose::Sizing
            && meaningful.is_empty()
            && entities.category.is_some()
            && viewing.is_none()
        {
            ItemPurpose::Details
        } else {
            purpose
        };
        // A size only narrows a search for a piece; in a sizing question it is the customer's own size.
        let size = entities.size.clone().filter(|_| purpose == ItemPurpose::Details);
        let search = Search {
            words: meaningful,
            size,
            category: entities.category.clone(),
            include_unavailable: purpose != ItemPurpose::Details || entities.category.is_none(),
        };
        let found = if search.words.is_empty() && viewing.is_some() {
            Vec::new()
        } else {
            shop::search(db, &self.chart, &search, 5).await?
        };
        Ok(match (found.len(), viewing) {
            (0, Some(sku)) => {
                let item = shop::item_by_sku(db, &sku).await?;
                self.about_item(db, turn, entities, item, purpose).await?
            }
            (0, None) if search.category.is_some() && purpose == ItemPurpose::Details => match &search.size {
                Some(size) => {
                    let category = search.category.as_deref().unwrap_or_default();
                    let text = render(&self.replies.templates.search_none, &[("category", category), ("size", size)]);
                    Decision::say(text, ConversationState::Idle)
                }
                None => self.drops(db, search.category.clone(), 0, turn.now).await?,
            },
            (0, None) => {
                Decision::say(self.replies.templates.item_ask.clone(), ConversationState::AwaitingItem { purpose })
            }
            (1, _) => self.about_item(db, turn, entities, found.into_iter().next(), purpose).await?,
            _ => self.item_list(found, None, false),
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
            render(&t.handoff_open, &[("closes", &self.replies.time.say_closing(self.shop.close_hour))])
        } else {
            let opens = self.replies.time.say_opening(hours.next_opening(now), self.shop.open_hour);
            render(&t.handoff_closed, &[("opens", &opens)])
        };
        Decision { handoff: Some(reason), ..Decision::say(text, ConversationState::Idle) }
    }

    async fn order_status(
        &self,
        db: &impl ConnectionTrait,
        user: &users::Model,
        entities: &Entities,
    ) -> Result<Decision, BotError> {
        let t = &self.replies.templates;
        let orders = match &entities.order_number {
            Some(number) => match shop_orders::order_of_customer(db, user.id, number).await? {
                Some(order) => vec![order],
                None => {
                    let text = render(&t.order_not_found, &[("order_number", number)]);
                    return Ok(Decision::say(text, ConversationState::Idle));
                }
            },
            None => shop_orders::latest_orders(db, user.id, 3).await?,
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
                let status = self.replies.order_statuses.say(status);
                let total = shop::price(order.total_minor, &self.shop.currency_symbol);
                render(&t.order_status, &[("order_number", &order.order_number), ("status", status), ("total", &total)])
            }
        }
    }

    /// A page of new drops, each with its photo; "more" shows the next page.
    async fn drops(
        &self,
        db: &impl ConnectionTrait,
        category: Option<String>,
        offset: u64,
        now: DateTime<Utc>,
    ) -> Result<Decision, BotError> {
        let t = &self.replies.templates;
        let per_page = self.shop.drops_per_page;
        let mut items =
            shop::new_drops(db, category.as_deref(), self.shop.drops_days, now, offset, per_page + 1).await?;
        if items.is_empty() {
            let text = if offset == 0 { &t.drops_none } else { &t.drops_end };
            return Ok(Decision::say(text.clone(), ConversationState::Idle));
        }
        let more = (items.len() as u64 > per_page).then(|| DropsPage { category, offset: offset + per_page });
        items.truncate(per_page as usize);
        Ok(self.item_list(items, more, true))
    }

    /// A numbered list of items to choose from (the next "2" picks the second), with each item's photo
    /// after it when `photos`.
    fn item_list(&self, items: Vec<items::Model>, more: Option<DropsPage>, photos: bool) -> Decision {
        let t = &self.replies.templates;
        let mut text = render(&t.drops_intro, &[("count", &items.len().to_string())]);
        for (i, item) in items.iter().enumerate() {
            let price = shop::price(item.price_minor, &self.shop.currency_symbol);
            let size = item.tag_size.as_deref().unwrap_or(&self.replies.words.no_size);
            let line = render(
                &t.drops_item,
                &[("position", &(i + 1).to_string()), ("title", &item.title), ("price", &price), ("size", size)],
            );
            text.push('\n');
            text.push_str(&line);
        }
        if more.is_some() {
            text.push('\n');
            text.push_str(&t.drops_more);
        }
        let mut replies = vec![Reply { text, image_url: None }];
        if photos {
            replies.extend(
                items
                    .iter()
                    .filter_map(|i| i.image_url.clone())
                    .map(|url| Reply { text: String::new(), image_url: Some(url) }),
            );
        }
        let candidates = items.into_iter().map(|item| item.sku).collect();
        Decision { replies, state: ConversationState::ChoosingItem { candidates, more }, ..Default::default() }
    }

    async fn about_item(
        &self,
        db: &impl ConnectionTrait,
        turn: &Turn<'_>,
        entities: &Entities,
        item: Option<items::Model>,
        purpose: ItemPurpose,
    ) -> Result<Decision, BotError> {
        let t = &self.replies.templates;
        let Some(item) = item else { return Ok(Decision::say(t.item_not_found.clone(), ConversationState::Idle)) };
        let viewing = ConversationState::ViewingItem { sku: item.sku.clone() };
        match purpose {
            // Sizing is answered whatever the status: a customer may ask about a piece they hold.
            ItemPurpose::Sizing => {
                Ok(Decision::say(self.fit_answer(&item, turn.text, entities), viewing).then(&t.menu_hint))
            }
            ItemPurpose::Reserve => self.reserve(db, turn, item).await,
            ItemPurpose::Details => match item.status {
                ItemStatus::Available => {
                    let reply = Reply { text: self.item_details(&item, turn.text), image_url: item.image_url.clone() };
                    Ok(Decision { replies: vec![reply], state: viewing, ..Default::default() })
                }
                ItemStatus::Reserved => {
                    if let Some(hold) = holds::active_hold(db, item.id).await?.filter(|h| h.user_id == turn.user.id) {
                        return Ok(self.already_yours(item, hold.expires_at, turn.now));
                    }
                    holds::join_waitlist(db, turn.user.id, item.id, turn.now).await?;
                    Ok(Decision::say(render(&t.item_on_hold, &[("title", &item.title)]), ConversationState::Idle))
                }
                ItemStatus::Sold if holds::wait_for_unpaid(db, turn.user.id, &item, turn.now).await? => {
                    Ok(self.in_pending_order(&item))
                }
                ItemStatus::Sold => Ok(self.sold(&item)),
            },
        }
    }

    /// The customer asks for a piece they already hold: the hold stands as it is.
    fn already_yours(&self, item: items::Model, until: DateTime<Utc>, now: DateTime<Utc>) -> Decision {
        let until = self.shop_time(until, now);
        let text = render(&self.replies.templates.hold_already, &[("title", &item.title), ("until", &until)]);
        Decision::say(text, ConversationState::ViewingItem { sku: item.sku })
    }

    fn sold(&self, item: &items::Model) -> Decision {
        let sold = &self.replies.words.sold;
        let text = render(&self.replies.templates.item_unavailable, &[("title", &item.title), ("status", sold)]);
        Decision::say(text, ConversationState::Idle)
    }

    /// "I'll take it": one conditional update decides who gets a one-of-a-kind piece.
    async fn reserve(
        &self,
        db: &impl ConnectionTrait,
        turn: &Turn<'_>,
        item: items::Model,
    ) -> Result<Decision, BotError> {
        let t = &self.replies.templates;
        Ok(match holds::reserve(db, turn.user, &item, turn.now, &HoldRules::of(&self.shop)).await? {
            HoldOutcome::Held { item, until } => {
                let price = shop::price(item.price_minor, &self.shop.currency_symbol);
                let until = self.shop_time(until, turn.now);
                let text = render(&t.hold_confirmed, &[("title", &item.title), ("price", &price), ("until", &until)]);
                Decision::say(text, ConversationState::ViewingItem { sku: item.sku })
            }
            HoldOutcome::AlreadyYours { item, until } => self.already_yours(item, until, turn.now),
            HoldOutcome::HeldByOther { item } => {
                Decision::say(render(&t.hold_taken, &[("title", &item.title)]), ConversationState::Idle)
            }
            HoldOutcome::Sold { item } => self.sold(&item),
            HoldOutcome::InPendingOrder { item } => self.in_pending_order(&item),
            HoldOutcome::TooManyHolds { item, held } => {
                let titles: Vec<&str> = held.iter().map(|i| i.title.as_str()).collect();
                let count = held.len().to_string();
                let text =
                    render(&t.hold_limit, &[("title", &item.title), ("count", &count), ("held", &titles.join(", "))]);
                Decision::say(text, ConversationState::ViewingItem { sku: item.sku })
            }
            HoldOutcome::WaitlistFirst { item, until } => {
                let until = self.shop_time(until, turn.now);
                let text = render(&t.hold_waitlist_first, &[("title", &item.title), ("until", &until)]);
                Decision::say(text, ConversationState::Idle)
            }
        })
    }

    /// A piece in another customer's unpaid order: reserved to everyone else, who wait for it.
    fn in_pending_order(&self, item: &items::Model) -> Decision {
        let text = render(&self.replies.templates.item_in_pending_order, &[("title", &item.title)]);
        Decision::say(text, ConversationState::Idle)
    }

    /// "Cancel": the customer's holds end, and whoever waits for those pieces is told.
    async fn cancel_holds(&self, db: &impl ConnectionTrait, turn: &Turn<'_>) -> Result<Decision, BotError> {
        let t = &self.replies.templates;
        let released = holds::release_holds(db, turn.user.id, turn.now).await?;
        if released.is_empty() {
            return Ok(Decision::say(t.cancel_none.clone(), ConversationState::Idle).then(&t.menu_hint));
        }
        let mut notices = Vec::new();
        for freed in &released {
            notices.extend(self.tell_item_free(db, freed, turn.now).await?);
        }
        let lines: Vec<String> = released.iter().map(|f| render(&t.cancel_done, &[("title", &f.item.title)])).collect();
        Ok(Decision { notices, ..Decision::say(lines.join("\n"), ConversationState::Idle).then(&t.menu_hint) })
    }

    /// "Checkout": the customer's holds become one order, with the payment instructions.
    async fn checkout(&self, db: &impl ConnectionTrait, turn: &Turn<'_>) -> Result<Decision, BotError> {
        let t = &self.replies.templates;
        let conversation = Some(turn.conversation.tiktok_conversation_id.as_str());
        let Some(new) = shop_orders::checkout(db, turn.user, conversation, &Shipping::of(&self.shop)).await? else {
            return Ok(Decision::say(t.checkout_nothing.clone(), ConversationState::Idle));
        };
        let number = new.order.order_number.as_str();
        let titles: Vec<&str> = new.items.iter().map(|i| i.title.as_str()).collect();
        let total = shop::price(new.order.total_minor, &self.shop.currency_symbol);
        let payment = render(&self.shop.payment_instructions, &[("order_number", number)]);
        let text = render(
            &t.checkout_done,
            &[("order_number", number), ("items", &titles.join(", ")), ("total", &total), ("payment", &payment)],
        );
        Ok(Decision::say(text, ConversationState::Idle))
    }

    /// An available item in full: price, tag size, how it really fits, measurements, condition, flaws.
    fn item_details(&self, item: &items::Model, text: &str) -> String {
        let (t, w) = (&self.replies.templates, &self.replies.words);
        let price = shop::price(item.price_minor, &self.shop.currency_symbol);
        let fit = match self.chart.assess(item, text, None) {
            Some(Assessment {
                fits_like: Some(fits_like),
                measured: Some(cm),
                true_to_size: false,
                measurement,
                ..
            }) => {
                let measured = w.say_measured(&Measured { name: measurement, cm });
                render(&t.fit_note, &[("measured", &measured), ("fits_like", &w.say_fits_like(&fits_like))])
            }
            _ => String::new(),
        };
        let flaws = match item.flaws.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
            Some(flaws) => render(&t.flaws_listed, &[("flaws", flaws.trim_end_matches('.'))]),
            None => t.no_flaws.clone(),
        };
        let measurements = w.say_measurements(&shop::measurements(item)).unwrap_or_else(|| t.no_measurements.clone());
        render(
            &t.item_available,
            &[
                ("title", &item.title),
                ("price", &price),
                ("size", item.tag_size.as_deref().unwrap_or(&w.no_size)),
                ("fit", &fit),
                ("measurements", &measurements),
                ("condition", &item.condition),
                ("flaws", &flaws),
            ],
        )
    }

    /// How a piece fits, from the size chart: the size it fits like, the length, and for a customer who
    /// said their usual size a yes, a no, snug or roomy. A missing measurement is named, never guessed.
    fn fit_answer(&self, item: &items::Model, text: &str, entities: &Entities) -> String {
        let (t, w) = (&self.replies.templates, &self.replies.words);
        let size = item.tag_size.as_deref().unwrap_or(&w.no_size);
        let measurements = w.say_measurements(&shop::measurements(item)).unwrap_or_else(|| t.no_measurements.clone());
        let Some(a) = self.chart.assess(item, text, entities.size.as_deref()) else {
            return render(&t.sizing, &[("title", &item.title), ("size", size), ("measurements", &measurements)]);
        };
        let Some(fits_like) = a.fits_like.as_ref().map(|f| w.say_fits_like(f)) else {
            let missing = a.missing.first().map_or(a.measurement.as_str(), String::as_str);
            return render(&t.fit_missing, &[("title", &item.title), ("missing", missing)]);
        };
        let fits_like = fits_like.as_str();
        let title = ("title", item.title.as_str());
        let mut sentences = vec![match a.measured {
            Some(cm) => {
                let measured = w.say_measured(&Measured { name: a.measurement.clone(), cm });
                match (&item.tag_size, a.true_to_size) {
                    (None, _) => render(&t.fit_untagged, &[title, ("measured", &measured), ("fits_like", fits_like)]),
                    (Some(_), true) => render(&t.fit_true, &[title, ("size", size), ("measured", &measured)]),
                    (Some(_), false) => render(
                        &t.fit_differs,
                        &[title, ("size", size), ("measured", &measured), ("fits_like", fits_like)],
                    ),
                }
            }
            None => render(&t.fit_staff, &[title, ("size", size), ("fits_like", fits_like)]),
        }];
        if let Some(length) = &a.length {
            sentences.push(w.say_length(length));
        }
        if let Some((customer_size, Some(verdict))) = &a.customer {
            let template = match verdict {
                Verdict::Fits => &t.fit_yes,
                Verdict::Snug => &t.fit_snug,
                Verdict::Roomy => &t.fit_roomy,
                Verdict::TooSmall => &t.fit_too_small,
                Verdict::TooBig => &t.fit_too_big,
            };
            let customer = w.say_size(customer_size);
            sentences.push(render(template, &[("customer_size", &customer), ("fits_like", fits_like)]));
        }
        for missing in a.missing.iter().filter(|m| **m != a.measurement) {
            sentences.push(render(&t.fit_missing_length, &[("missing", missing)]));
        }
        sentences.push(measurements);
        sentences.join(" ")
    }

    /// A moment in the shop's local time, as customers read it: "3:45 PM", "tomorrow 9:10 AM".
    fn shop_time(&self, at: DateTime<Utc>, now: DateTime<Utc>) -> String {
        let hours = BusinessHours(&self.shop);
        self.replies.time.say_moment(hours.local(at), hours.local(now))
    }
}

/// The team's opening hours, in the shop's local time.
struct BusinessHours<'a>(&'a ShopSettings);

impl BusinessHours<'_> {
    fn local(&self, now: DateTime<Utc>) -> chrono::NaiveDateTime {
        now.naive_utc() + Duration::hours(i64::from(self.0.utc_offset_hours))
    }

    fn open_on(&self, date: chrono::NaiveDate) -> bool {
        let day = date.weekday().to_string().to_ascii_lowercase();
        self.0.open_days.iter().any(|d| d.eq_ignore_ascii_case(&day))
    }

    fn is_open(&self, now: DateTime<Utc>) -> bool {
        let local = self.local(now);
        self.open_on(local.date()) && (self.0.open_hour..self.0.close_hour).contains(&local.hour())
    }

    /// The next day the team opens (at `open_hour`): how many days from today, and its date. `None` when
    /// no day of the week is an opening day.
    fn next_opening(&self, now: DateTime<Utc>) -> Option<(i64, chrono::NaiveDate)> {
        let local = self.local(now);
        (0..8)
            .map(|days| (days, local.date() + Duration::days(days)))
            .find(|(days, date)| self.open_on(*date) && !(*days == 0 && local.hour() >= self.0.open_hour))
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
        let shop = crate::config::Settings::defaults().shop; // Mon–Sat 10–19, UTC-5
        let time = super::super::Replies::load(std::path::Path::new("/nonexistent")).expect("built-in").time;
        let hours = BusinessHours(&shop);
        let opens = |now: &str| time.say_opening(hours.next_opening(at(now)), shop.open_hour);
        assert!(hours.is_open(at("2026-11-23T16:00:00Z")), "Monday 11:00 in New York");
        assert!(!hours.is_open(at("2026-11-23T02:00:00Z")), "Sunday 21:00 in New York");
        assert_eq!(opens("2026-11-23T02:00:00Z"), "tomorrow at 10:00");
        assert_eq!(opens("2026-11-23T12:00:00Z"), "today at 10:00");
        assert_eq!(opens("2026-11-22T12:00:00Z"), "tomorrow at 10:00", "Sunday morning");
        assert_eq!(opens("2026-11-29T01:00:00Z"), "on Monday at 10:00", "Saturday night");
        let mut closed_all_week = shop.clone();
        closed_all_week.open_days.clear();
        let never = BusinessHours(&closed_all_week).next_opening(at("2026-11-23T16:00:00Z"));
        assert_eq!(time.say_opening(never, shop.open_hour), "as soon as we can");
    }
}
