//! One turn of the conversation: from what the customer wrote, the conversation's state and the shop's
//! facts, decide what the bot says, what it waits for next, and whether a human takes over.

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};

use super::address::{self, Draft, Field};
use super::intent::{ComplaintKind, Entities, Intent, normalize};
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

/// The FAQ topic (`faq.toml`) of shipping questions, answered per country when one is named.
const SHIPPING: &str = "shipping";

/// What the bot is waiting for in a conversation, stored as JSON in `conversations.state`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConversationState {
    #[default]
    Idle,
    /// The bot asked for an order number.
    AwaitingOrderNumber,
    /// The bot showed a numbered list of items: "2" means the second of these SKUs; "more" shows `more`.
    /// `asked` is a question about "it" asked while the list was shown ("how much?"), which the number
    /// then answers.
    ChoosingItem {
        candidates: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        more: Option<DropsPage>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        asked: Option<ItemPurpose>,
    },
    /// The customer asked about a piece without naming it; the bot asked which.
    AwaitingItem { purpose: ItemPurpose },
    /// The bot just talked about this piece: "I'll take it" or "will it fit?" means it.
    ViewingItem { sku: String },
    /// Checkout: the bot asked where to ship, for a new order or (with `order`) to change that order's
    /// address; `draft` holds what the customer gave so far.
    AwaitingAddress {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        order: Option<String>,
        #[serde(default)]
        draft: Draft,
    },
    /// The bot showed the address back and waits for a yes (or a corrected address).
    ConfirmingAddress {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        order: Option<String>,
        draft: Draft,
    },
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
    Price,
    Offer,
    /// Flaws, authenticity, pictures: facts other than the fit.
    Facts,
    Waitlist,
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
        Intent::Price => ItemPurpose::Price,
        Intent::Offer => ItemPurpose::Offer,
        Intent::Details => ItemPurpose::Facts,
        Intent::Waitlist => ItemPurpose::Waitlist,
        _ => ItemPurpose::Details,
    }
}

/// "ill take 2", "is 3 still available" right after a list of `len`: the one number of the message, when it
/// is a place in the list and not a size ("size 2"), a price or an item number.
fn number_in_list(words: &[String], len: usize, entities: &Entities) -> Option<u32> {
    if entities.amount_minor.is_some() || entities.sku.is_some() || entities.order_number.is_some() {
        return None;
    }
    const BEFORE_A_SIZE: &[&str] = &["size", "sz", "us", "eu", "uk", "w", "l", "x", "waist", "inseam", "in"];
    let mut numbers = words.iter().enumerate().filter(|(_, w)| w.chars().all(|c| c.is_ascii_digit()));
    let (at, number) = numbers.next()?;
    if numbers.next().is_some() || (at > 0 && BEFORE_A_SIZE.contains(&words[at - 1].as_str())) {
        return None;
    }
    let n: u32 = number.parse().ok()?;
    (1..=len as u32).contains(&n).then_some(n)
}

/// Whether every mention of `size` in the words is the piece's, not the customer's: "will the L fit",
/// "would the xxl be too big", "does it run small". Only a size said as their own ("im an L", "i wear
/// a large") gets a fit verdict; one read from the piece's tag would be a verdict on a size nobody wears.
fn names_the_pieces_size(words: &[String], size: &str) -> bool {
    const THE_PIECES: &[&str] = &["the", "this", "that", "its", "tagged", "run", "runs", "running", "fits", "fit"];
    const SPELLED: &[(&str, &str)] = &[("small", "s"), ("medium", "m"), ("large", "l"), ("big", "l")];
    let size = size.to_lowercase();
    let mentions: Vec<usize> = words
        .iter()
        .enumerate()
        .filter(|(_, w)| **w == size || SPELLED.iter().any(|(word, s)| *w == word && *s == size))
        .map(|(at, _)| at)
        .collect();
    !mentions.is_empty() && mentions.iter().all(|&at| at > 0 && THE_PIECES.contains(&words[at - 1].as_str()))
}

/// Answers that leave the piece in view (or the list just shown) where it was: a side question, small
/// talk, a message the bot did not understand.
fn keeps_view(intent: &Intent) -> bool {
    matches!(
        intent,
        Intent::Faq(_)
            | Intent::Unknown
            | Intent::Thanks
            | Intent::Greeting
            | Intent::Human
            | Intent::OrderStatus
            | Intent::Complaint
            | Intent::OtherLanguage
            | Intent::Offer
            | Intent::Price
            | Intent::Details
            | Intent::Sizing
            | Intent::Availability
            | Intent::Waitlist
    )
}

/// What the bot keeps answering after a customer asked for a person, until one from the shop writes:
/// the shop's own questions, which need no person.
fn answered_while_waiting(intent: &Intent) -> bool {
    matches!(
        intent,
        Intent::Availability
            | Intent::Price
            | Intent::Offer
            | Intent::Sizing
            | Intent::Details
            | Intent::Reserve
            | Intent::Waitlist
            | Intent::Swap
            | Intent::CancelHold
            | Intent::CancelOrder
            | Intent::Checkout
            | Intent::Address
            | Intent::OrderStatus
            | Intent::NewDrops
            | Intent::More
            | Intent::Faq(_)
            | Intent::Thanks
            | Intent::OptOut
    )
}

impl Bot {
    /// Decides one turn. Facts (items, prices, orders, holds) come from `db`, only for this customer.
    /// In a handoff the bot is silent once a person from the shop has written; until then it keeps
    /// answering the shop's own questions (stock, price, holds, checkout, orders).
    pub async fn respond(&self, db: &impl ConnectionTrait, turn: Turn<'_>) -> Result<Decision, BotError> {
        let routed = self.route(db, Some(turn.conversation.id), turn.text, true).await?;
        self.respond_routed(db, turn, routed).await
    }

    /// Whether routing `text` asks the model (an LLM is configured and the keywords are not sure): only
    /// then is it worth finding a redelivered event done before routing.
    pub fn asks_the_model(&self, text: &str) -> bool {
        self.llm.is_some() && !self.router.is_unambiguous(text)
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
        if !self.asks_the_model(text) {
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
        let mut waiting_for_person = false;
        if conversation.handoff_active {
            let quiet = Duration::hours(self.shop.handoff_quiet_hours as i64);
            match conversation.handoff_at {
                Some(at) if turn.now - at >= quiet => released = true,
                _ if self.staff_wrote(db, conversation).await? => {
                    return Ok(Decision { state: ConversationState::of(conversation), ..Default::default() });
                }
                _ => waiting_for_person = true,
            }
        }
        let (mut decision, intent) = self.decide(db, &turn, routed).await?;
        if waiting_for_person {
            if !answered_while_waiting(&intent) {
                let state = ConversationState::of(conversation);
                // Asking for a person again is told they are coming; anything else waits for them.
                if matches!(intent, Intent::Human | Intent::Complaint) {
                    return Ok(Decision::say(self.replies.templates.handoff_waiting.clone(), state));
                }
                return Ok(Decision { state, ..Default::default() });
            }
            // Already handed over: no second notice to staff.
            decision.handoff = None;
        }
        decision.handoff_released = released;
        Ok(decision)
    }

    /// Whether a person from the shop has written in the conversation since it was handed over.
    async fn staff_wrote(
        &self,
        db: &impl ConnectionTrait,
        conversation: &conversations::Model,
    ) -> Result<bool, BotError> {
        if conversation.handoff_reason.as_deref() == Some(super::handoff::STAFF_TOOK_OVER) {
            return Ok(true);
        }
        let mut query = messages::Entity::find()
            .filter(messages::Column::ConversationId.eq(conversation.id))
            .filter(messages::Column::Role.eq(messages::Role::Staff));
        if let Some(at) = conversation.handoff_at {
            query = query.filter(messages::Column::CreatedAt.gte(at));
        }
        Ok(query.one(db).await?.is_some())
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
                    amount_minor: entities.amount_minor,
                },
            )),
            // Skipped by the circuit breaker: said once, when it opened.
            Err(super::llm::LlmError::CircuitOpen) => Ok(Routed(intent, entities)),
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

    /// One turn: what the conversation waits for first (an address, its confirmation, a pick from a
    /// list), then the intent. Returns the intent too, for the handoff rules.
    async fn decide(
        &self,
        db: &impl ConnectionTrait,
        turn: &Turn<'_>,
        routed: Routed,
    ) -> Result<(Decision, Intent), BotError> {
        let previous = ConversationState::of(turn.conversation);
        match &previous {
            ConversationState::AwaitingAddress { order, draft } => {
                if let Some(decision) = self.address_given(turn, order.clone(), draft, false) {
                    return Ok((decision, Intent::Address));
                }
            }
            ConversationState::ConfirmingAddress { order, draft } => {
                if let Some(decision) = self.address_confirmed(db, turn, order.clone(), draft).await? {
                    return Ok((decision, Intent::Address));
                }
            }
            _ => {}
        }
        let Routed(intent, entities) = routed;
        let mut viewing = None;
        match &previous {
            ConversationState::ChoosingItem { candidates, more, asked } => {
                if intent == Intent::More {
                    let decision = match more {
                        Some(page) => self.drops(db, page.category.clone(), page.offset, turn.now).await?,
                        None => Decision::say(self.replies.templates.drops_end.clone(), ConversationState::Idle),
                    };
                    return Ok((decision, intent));
                }
                let position = self
                    .router
                    .menu_choice(turn.text)
                    .or(entities.item_position)
                    .or_else(|| number_in_list(&normalize(turn.text), candidates.len(), &entities));
                let picked = match position.and_then(|n| candidates.get((n as usize).checked_sub(1)?)) {
                    Some(sku) => Some(sku.clone()),
                    None => self.named_in_list(db, turn.text, candidates, &intent).await?,
                };
                if let Some(sku) = picked {
                    let item = shop::item_by_sku(db, &sku).await?;
                    // A bare number answers the question asked about "it" while the list was shown.
                    let purpose = match (asked, purpose_of(&intent)) {
                        (Some(asked), ItemPurpose::Details) => *asked,
                        (_, purpose) => purpose,
                    };
                    let decision = self.about_item(db, turn, &entities, item, purpose).await?;
                    return Ok((decision, intent));
                }
            }
            ConversationState::AwaitingOrderNumber if entities.order_number.is_some() => {
                return Ok((self.order_status(db, turn.user, &entities).await?, intent));
            }
            ConversationState::AwaitingItem { purpose } if entities.sku.is_some() => {
                let item = shop::item_by_sku(db, entities.sku.as_deref().unwrap_or_default()).await?;
                return Ok((self.about_item(db, turn, &entities, item, *purpose).await?, intent));
            }
            // "yes" / "ok bet" after the bot's "Want it?" about the piece in view takes it; a message the
            // router read as something else (a price, a question) is that.
            ConversationState::ViewingItem { sku }
                if matches!(intent, Intent::Unknown | Intent::Thanks | Intent::Greeting)
                    && self.router.takes_it(&normalize(turn.text)) =>
            {
                let item = shop::item_by_sku(db, sku).await?;
                let decision = self.about_item(db, turn, &entities, item, ItemPurpose::Reserve).await?;
                return Ok((decision, Intent::Reserve));
            }
            ConversationState::ViewingItem { sku } => viewing = Some(sku.clone()),
            _ => {}
        }
        let mut decision = self.answer(db, turn, intent.clone(), entities, viewing).await?;
        // "How much?" or "will it fit?" right after a list means one of the list: ask which by its number
        // and keep the list, instead of asking for an item number and losing it ("2" would then be the
        // menu's "new drops").
        if let (ConversationState::ChoosingItem { candidates, more, .. }, ConversationState::AwaitingItem { purpose }) =
            (&previous, &decision.state)
        {
            let text = render(&self.replies.templates.item_pick, &[("count", &candidates.len().to_string())]);
            let state = ConversationState::ChoosingItem {
                candidates: candidates.clone(),
                more: more.clone(),
                asked: Some(*purpose),
            };
            return Ok((Decision::say(text, state), intent));
        }
        // The piece in view, or the list just shown, stays across side questions and small talk, until
        // the customer moves to another piece.
        let in_view =
            matches!(previous, ConversationState::ViewingItem { .. } | ConversationState::ChoosingItem { .. });
        if decision.state == ConversationState::Idle && in_view && keeps_view(&intent) {
            decision.state = previous;
        }
        Ok((decision, intent))
    }

    /// The pieces a message names one by one ("the champion hoodie and the acg half zip"): each part
    /// between "and", "&", "+" or a comma names one piece better than any other. `None` unless there are
    /// two or more, all different.
    async fn several_named(
        &self,
        db: &impl ConnectionTrait,
        text: &str,
    ) -> Result<Option<Vec<items::Model>>, BotError> {
        let lower = text.to_lowercase();
        let parts: Vec<&str> =
            lower.split([',', '&', '+']).flat_map(|p| p.split(" and ")).filter(|p| !p.trim().is_empty()).collect();
        if parts.len() < 2 {
            return Ok(None);
        }
        let mut items: Vec<items::Model> = Vec::new();
        for part in parts {
            let naming = self.router.naming_words(&normalize(part));
            let ranked = shop::rank(db, &naming, None, true).await?;
            match shop::clear_best(&ranked) {
                Some(item) => items.push(item.clone()),
                None => return Ok(None),
            }
        }
        let mut skus: Vec<&str> = items.iter().map(|i| i.sku.as_str()).collect();
        skus.sort_unstable();
        skus.dedup();
        Ok((skus.len() == items.len()).then_some(items))
    }

    /// "the carhartt one" right after a list: the one piece of the list the words name best, when no
    /// piece outside the list matches them better (then it is a new search).
    async fn named_in_list(
        &self,
        db: &impl ConnectionTrait,
        text: &str,
        candidates: &[String],
        intent: &Intent,
    ) -> Result<Option<String>, BotError> {
        let about_a_piece = matches!(intent, Intent::Unknown)
            || purpose_of(intent) != ItemPurpose::Details
            || *intent == Intent::Availability;
        let naming = self.router.naming_words(&normalize(text));
        if !about_a_piece || naming.is_empty() {
            return Ok(None);
        }
        let ranked = shop::rank(db, &naming, None, true).await?;
        let Some(top) = ranked.first().map(|r| r.score) else { return Ok(None) };
        let mut best = ranked.iter().filter(|r| r.score == top && candidates.contains(&r.item.sku));
        Ok(match (best.next(), best.next()) {
            (Some(only), None) => Some(only.item.sku.clone()),
            _ => None,
        })
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
            Intent::Unknown => self.unclear(db, turn).await?,
            Intent::Thanks => Decision::say(t.thanks.clone(), ConversationState::Idle),
            Intent::OptOut => Decision { opt_out: true, ..Decision::say(t.opt_out.clone(), ConversationState::Idle) },
            // "How much to ship to Canada?": that country's rate, or a person's quote, never "message us
            // your country" to someone who just named it.
            Intent::Faq(topic)
                if topic == SHIPPING
                    && let Some((code, country)) = self.abroad(turn.text) =>
            {
                self.shipping_abroad(turn, &code, &country)
            }
            Intent::Faq(topic) => match self.router.faq_answer(&topic) {
                // "Do you ship to Texas, and is the fleece still available?": both are answered.
                Some(answer) => match self.router.also_about_a_piece(turn.text) {
                    Some(also)
                        if entities.sku.is_some() || !self.router.naming_words(&normalize(turn.text)).is_empty() =>
                    {
                        let mut decision = match &entities.sku {
                            Some(sku) => {
                                let item = shop::item_by_sku(db, sku).await?;
                                self.about_item(db, turn, &entities, item, purpose_of(&also)).await?
                            }
                            None => self.item_by_description(db, turn, &entities, purpose_of(&also), None).await?,
                        };
                        decision.replies.insert(0, Reply { text: answer.to_owned(), image_url: None });
                        decision
                    }
                    _ => Decision::say(answer.to_owned(), ConversationState::Idle),
                },
                None => self.menu_decision(Some(t.unknown.clone())),
            },
            Intent::Human => self.handoff(turn.now, self.replies.staff.asked_person.clone()),
            Intent::Complaint => {
                let mut decision = self.handoff(turn.now, self.complaint_reason(turn.text));
                if let Some(reply) = decision.replies.first_mut() {
                    reply.text = format!("{} {}", t.complaint, reply.text);
                }
                decision
            }
            Intent::OtherLanguage => {
                let reason = render(&self.replies.staff.other_language, &[("message", &quoted(turn.text))]);
                let mut decision = self.handoff(turn.now, reason);
                if let Some(reply) = decision.replies.first_mut() {
                    reply.text = t.other_language.clone();
                }
                decision
            }
            Intent::OrderStatus => self.order_status(db, turn.user, &entities).await?,
            Intent::NewDrops | Intent::More if entities.size.is_none() => {
                self.drops(db, entities.category.clone(), 0, turn.now).await?
            }
            // "Any jackets in M?": the available pieces of that size.
            Intent::NewDrops | Intent::More => {
                self.item_by_description(db, turn, &entities, ItemPurpose::Details, None).await?
            }
            // "When does my hold end?" asks; it never releases the hold.
            Intent::CancelHold if self.router.asks_when(&normalize(turn.text)) => {
                self.hold_status(db, turn, viewing).await?
            }
            Intent::CancelHold => self.cancel_holds(db, turn).await?,
            Intent::CancelOrder => self.cancel_order(db, turn, &entities).await?,
            Intent::Checkout => self.checkout(db, turn).await?,
            Intent::Address => self.change_address(db, turn).await?,
            Intent::Swap => self.swap(db, turn, &entities, viewing).await?,
            // "i want the champion hoodie and the acg half zip": both, each named clearly on its own.
            Intent::Reserve
                if entities.sku.is_none()
                    && let Some(items) = self.several_named(db, turn.text).await? =>
            {
                let mut decision = Decision::default();
                for item in items {
                    let one = self.about_item(db, turn, &entities, Some(item), ItemPurpose::Reserve).await?;
                    decision.replies.extend(one.replies);
                    decision.notices.extend(one.notices);
                    decision.state = one.state;
                }
                decision
            }
            Intent::Availability
            | Intent::Sizing
            | Intent::Reserve
            | Intent::Price
            | Intent::Offer
            | Intent::Details
            | Intent::Waitlist => {
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

    /// A message the bot did not understand: the menu, but the second in a row offers a person instead
    /// of the same menu again.
    async fn unclear(&self, db: &impl ConnectionTrait, turn: &Turn<'_>) -> Result<Decision, BotError> {
        let t = &self.replies.templates;
        let last = messages::Entity::find()
            .filter(messages::Column::ConversationId.eq(turn.conversation.id))
            .filter(messages::Column::Direction.eq(messages::Direction::Out))
            .filter(messages::Column::Text.is_not_null())
            .order_by_desc(messages::Column::Id)
            .one(db)
            .await?;
        if last.and_then(|m| m.text).is_some_and(|text| text.starts_with(t.unknown.as_str())) {
            return Ok(Decision::say(t.unclear_twice.clone(), ConversationState::Idle));
        }
        Ok(self.menu_decision(Some(t.unknown.clone())))
    }

    /// An item the customer described instead of naming its SKU: "the one in your last video" is the
    /// newest drop; otherwise the words of the message (with staff's synonyms, typos tolerated) are
    /// scored against titles, brands and categories. One clear match is answered, several are listed to
    /// choose from; a size that none of them has says so and lists the nearest. With nothing to go on,
    /// "it" is the piece in view (`viewing`), else the bot asks for the item number.
    async fn item_by_description(
        &self,
        db: &impl ConnectionTrait,
        turn: &Turn<'_>,
        entities: &Entities,
        purpose: ItemPurpose,
        viewing: Option<String>,
    ) -> Result<Decision, BotError> {
        let t = &self.replies.templates;
        let words = normalize(turn.text);
        if self.router.means_newest_drop(&words) {
            let newest =
                shop::new_drops(db, entities.category.as_deref(), self.shop.drops_days, turn.now, 0, 1).await?;
            return self.about_item(db, turn, entities, newest.into_iter().next(), purpose).await;
        }
        let mut naming = self.router.naming_words(&words);
        // Words that name no piece at all ("gift for my bf, hes a medium. what tees do u have") do not
        // narrow a search by category: the tees in M are the answer, not "none in M".
        if entities.category.is_some() && !naming.is_empty() && shop::rank(db, &naming, None, true).await?.is_empty() {
            naming.clear();
        }
        // "Got any jackets?" is a search, even right after talking about a piece; "any stains?" is not.
        let looks_elsewhere = !naming.is_empty() || entities.category.is_some();
        let viewing = viewing.filter(|_| !(self.router.is_search(&words) && looks_elsewhere));
        // "Any jackets in a medium?" names no piece: it is a search by category and size, not a sizing
        // question about one piece ("will the jacket fit an M?" about the piece just shown still is).
        let purpose = if purpose == ItemPurpose::Sizing
            && naming.is_empty()
            && entities.category.is_some()
            && viewing.is_none()
        {
            ItemPurpose::Details
        } else {
            purpose
        };
        // A size only narrows a search for a piece; in a sizing question it is the customer's own size.
        let size = entities.size.clone().filter(|_| purpose == ItemPurpose::Details);
        if naming.is_empty() {
            if let Some(sku) = viewing {
                let item = shop::item_by_sku(db, &sku).await?;
                return self.about_item(db, turn, entities, item, purpose).await;
            }
            let Some(category) = entities.category.clone() else {
                return Ok(Decision::say(t.item_ask.clone(), ConversationState::AwaitingItem { purpose }));
            };
            if purpose != ItemPurpose::Details {
                return Ok(Decision::say(t.item_ask.clone(), ConversationState::AwaitingItem { purpose }));
            }
            let Some(size) = size else { return self.drops(db, Some(category), 0, turn.now).await };
            let search =
                Search { words: Vec::new(), size: None, category: Some(category.clone()), include_unavailable: false };
            let all = shop::search(db, &self.chart, &search, 200).await?;
            return self.sized(db, turn, entities, all, &size, Some(&category)).await;
        }
        let include_unavailable = purpose != ItemPurpose::Details || entities.category.is_none();
        let ranked = shop::rank(db, &naming, entities.category.as_deref(), include_unavailable).await?;
        if let Some(size) = &size {
            let available: Vec<items::Model> =
                ranked.into_iter().map(|r| r.item).filter(|i| i.status == ItemStatus::Available).collect();
            return self.sized(db, turn, entities, available, size, entities.category.as_deref()).await;
        }
        // Only a near miss ("aight" ~ "light") while a piece is in view: the customer means that piece.
        let weak = ranked.first().is_some_and(|best| best.score < 3);
        let ranked = if weak && viewing.is_some() { Vec::new() } else { ranked };
        if ranked.is_empty() {
            return match viewing {
                Some(sku) => {
                    let item = shop::item_by_sku(db, &sku).await?;
                    self.about_item(db, turn, entities, item, purpose).await
                }
                None => Ok(Decision::say(t.item_not_found.clone(), ConversationState::Idle)),
            };
        }
        if let Some(item) = shop::clear_best(&ranked) {
            return self.about_item(db, turn, entities, Some(item.clone()), purpose).await;
        }
        let top = ranked[0].score;
        let tied: Vec<items::Model> = ranked.into_iter().filter(|r| r.score == top).take(5).map(|r| r.item).collect();
        Ok(self.item_list(tied, None, false, &t.search_intro))
    }

    /// The pieces of `size` among `found` (to choose from, or the one directly); none of that size says so
    /// and lists the nearest sizes there are, never the others as if they matched.
    async fn sized(
        &self,
        db: &impl ConnectionTrait,
        turn: &Turn<'_>,
        entities: &Entities,
        found: Vec<items::Model>,
        size: &str,
        category: Option<&str>,
    ) -> Result<Decision, BotError> {
        let t = &self.replies.templates;
        let (mut fitting, others): (Vec<items::Model>, Vec<items::Model>) =
            found.into_iter().partition(|item| shop::fits_size(&self.chart, item, size));
        if fitting.len() == 1 {
            let only = fitting.pop();
            return self.about_item(db, turn, entities, only, ItemPurpose::Details).await;
        }
        if !fitting.is_empty() {
            fitting.truncate(5);
            return Ok(self.item_list(fitting, None, false, &t.search_intro));
        }
        let what = category.unwrap_or(&self.replies.words.pieces);
        if others.is_empty() {
            let text = render(&t.search_none, &[("category", what), ("size", size)]);
            return Ok(Decision::say(text, ConversationState::Idle));
        }
        let mut nearest = others;
        nearest.sort_by_key(|item| self.size_distance(item, size));
        nearest.truncate(3);
        let intro = render(&t.search_nearest, &[("category", what), ("size", size)]);
        Ok(self.item_list(nearest, None, false, &intro))
    }

    /// How far an item's size is from the size asked for, in steps of its size chart (unknown: far).
    fn size_distance(&self, item: &items::Model, size: &str) -> usize {
        let Some(chart) = self.chart.chart_for(&item.category) else { return usize::MAX };
        let wanted = chart.find(size);
        let has = item.tag_size.as_deref().and_then(|t| chart.find(t));
        match (wanted, has) {
            (Some(a), Some(b)) => a.abs_diff(b),
            _ => usize::MAX,
        }
    }

    /// The one piece the message clearly names, if any (for a swap).
    async fn find_one(
        &self,
        db: &impl ConnectionTrait,
        turn: &Turn<'_>,
        entities: &Entities,
    ) -> Result<Option<items::Model>, BotError> {
        let naming = self.router.naming_words(&normalize(turn.text));
        let ranked = shop::rank(db, &naming, entities.category.as_deref(), true).await?;
        Ok(shop::clear_best(&ranked).cloned())
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

    /// Why a complaint goes to a person, for the staff notice: what it is about and the customer's words.
    fn complaint_reason(&self, text: &str) -> String {
        let staff = &self.replies.staff;
        let kind = match self.router.complaint_kind(text) {
            ComplaintKind::Refund => &staff.complaint_refund,
            ComplaintKind::Missing => &staff.complaint_missing,
            ComplaintKind::NotAsDescribed => &staff.complaint_not_as_described,
            ComplaintKind::Upset => &staff.complaint_upset,
        };
        render(&staff.complaint, &[("kind", kind), ("message", &quoted(text))])
    }

    /// The country abroad a message names (its code and name), if it names one other than the shop's own.
    fn abroad(&self, text: &str) -> Option<(String, String)> {
        self.router.country_named(text).filter(|(code, _)| !code.eq_ignore_ascii_case(&self.shop.home_country))
    }

    /// Shipping to a country abroad: the shop's rate for it (`shop.international_shipping_minor`), or the
    /// conversation handed to a person for a quote.
    fn shipping_abroad(&self, turn: &Turn<'_>, code: &str, country: &str) -> Decision {
        let t = &self.replies.templates;
        if let Some(&rate) = self.shop.international_shipping_minor.get(&code.to_uppercase()) {
            let rate = shop::price(rate, &self.shop.currency_symbol);
            let text = render(&t.shipping_abroad_rate, &[("country", country), ("rate", &rate)]);
            return Decision::say(text, ConversationState::Idle);
        }
        let reason =
            render(&self.replies.staff.shipping_quote, &[("country", country), ("message", &quoted(turn.text))]);
        let mut decision = self.handoff(turn.now, reason);
        if let Some(reply) = decision.replies.first_mut() {
            let said = render(&t.shipping_abroad_quote, &[("country", country)]);
            reply.text = format!("{said} {}", reply.text);
        }
        decision
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
        Ok(self.item_list(items, more, true, &t.drops_intro))
    }

    /// A numbered list of items to choose from (the next "2" picks the second), with each item's photo
    /// after it when `photos`.
    fn item_list(&self, items: Vec<items::Model>, more: Option<DropsPage>, photos: bool, intro: &str) -> Decision {
        let t = &self.replies.templates;
        let mut text = render(intro, &[("count", &items.len().to_string())]);
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
        Decision {
            replies,
            state: ConversationState::ChoosingItem { candidates, more, asked: None },
            ..Default::default()
        }
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
            ItemPurpose::Price => {
                let price = shop::price(item.price_minor, &self.shop.currency_symbol);
                let text = render(&t.price, &[("title", &item.title), ("price", &price)]);
                let decision = Decision::say(text, viewing);
                Ok(self.unless_available(db, turn, &item, decision).await?)
            }
            ItemPurpose::Offer => Ok(self.offer(turn, entities, &item)),
            ItemPurpose::Facts => Ok(self.facts(turn.text, &item)),
            ItemPurpose::Waitlist => match item.status {
                ItemStatus::Available => {
                    let text = render(&t.waitlist_available, &[("title", &item.title)]);
                    Ok(Decision::say(text, viewing))
                }
                _ => {
                    if let Some(hold) = holds::active_hold(db, item.id).await?.filter(|h| h.user_id == turn.user.id) {
                        return Ok(self.already_yours(item, hold.expires_at, turn.now));
                    }
                    holds::join_waitlist(db, turn.user.id, item.id, turn.now).await?;
                    Ok(Decision::say(render(&t.waitlist_joined, &[("title", &item.title)]), viewing))
                }
            },
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
                    Ok(Decision::say(render(&t.item_on_hold, &[("title", &item.title)]), viewing))
                }
                ItemStatus::Sold if holds::wait_for_unpaid(db, turn.user.id, &item, turn.now).await? => {
                    Ok(self.in_pending_order(&item))
                }
                ItemStatus::Sold => Ok(self.sold(&item)),
            },
        }
    }

    /// A price or fact answer about a piece that is no longer on sale says so instead.
    async fn unless_available(
        &self,
        db: &impl ConnectionTrait,
        turn: &Turn<'_>,
        item: &items::Model,
        answer: Decision,
    ) -> Result<Decision, BotError> {
        if item.status == ItemStatus::Available {
            return Ok(answer);
        }
        // Boxed: about_item is what called this.
        Box::pin(self.about_item(db, turn, &Entities::default(), Some(item.clone()), ItemPurpose::Details)).await
    }

    /// An offer below the price: honest about it. Firm prices say so and ask whether the customer wants
    /// it at the price (nothing is held); a shop that takes offers passes it to a person.
    fn offer(&self, turn: &Turn<'_>, entities: &Entities, item: &items::Model) -> Decision {
        let t = &self.replies.templates;
        let price = shop::price(item.price_minor, &self.shop.currency_symbol);
        let viewing = ConversationState::ViewingItem { sku: item.sku.clone() };
        // "45 shipped?" for a $38 piece is no haggle: the price, and what shipping adds.
        if entities.amount_minor.is_some_and(|offer| offer >= item.price_minor) {
            let shipping = Shipping::of(&self.shop).for_subtotal(item.price_minor);
            if shipping == 0 {
                return Decision::say(
                    render(&t.offer_at_price_free, &[("title", &item.title), ("price", &price)]),
                    viewing,
                );
            }
            let total = shop::price(item.price_minor + shipping, &self.shop.currency_symbol);
            let shipping = shop::price(shipping, &self.shop.currency_symbol);
            let text = render(
                &t.offer_at_price,
                &[("title", &item.title), ("price", &price), ("shipping", &shipping), ("total", &total)],
            );
            return Decision::say(text, viewing);
        }
        if !self.shop.accept_offers {
            return Decision::say(render(&t.offer_firm, &[("title", &item.title), ("price", &price)]), viewing);
        }
        let offer = entities.amount_minor.map(|m| shop::price(m, &self.shop.currency_symbol));
        let said = offer.clone().unwrap_or_else(|| self.replies.words.your_offer.clone());
        let reason = render(
            &self.replies.staff.offer,
            &[
                ("offer", &said),
                ("title", &item.title),
                ("sku", &item.sku),
                ("price", &price),
                ("message", &quoted(turn.text)),
            ],
        );
        let mut decision = self.handoff(turn.now, reason);
        decision.state = viewing;
        if let Some(reply) = decision.replies.first_mut() {
            reply.text = render(&t.offer_passed, &[("title", &item.title), ("price", &price), ("offer", &said)]);
        }
        decision
    }

    /// Flaws, authenticity, pictures, other facts: from the item's data; what is not on file is offered to
    /// a person, never guessed.
    fn facts(&self, text: &str, item: &items::Model) -> Decision {
        let t = &self.replies.templates;
        let words = normalize(text);
        let viewing = ConversationState::ViewingItem { sku: item.sku.clone() };
        let title = ("title", item.title.as_str());
        let mut sentences = Vec::new();
        if self.router.asks_about(&words, "authenticity") {
            sentences.push(render(&t.authentic, &[title]));
        }
        if self.router.asks_about(&words, "pictures") {
            sentences.push(match &item.image_url {
                Some(url) => render(&t.photos, &[title, ("photo", url)]),
                None => render(&t.photos_none, &[title]),
            });
        }
        if self.router.asks_about(&words, "flaws")
            || sentences.is_empty() && self.router.asks_about(&words, "condition")
        {
            let flaws = match item.flaws.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
                Some(flaws) => render(&t.flaws_listed, &[("flaws", flaws.trim_end_matches('.'))]),
                None => t.no_flaws.clone(),
            };
            sentences.push(render(&t.condition, &[title, ("condition", &item.condition), ("flaws", &flaws)]));
        }
        if sentences.is_empty() {
            sentences.push(render(&t.fact_unknown, &[title]));
        }
        Decision::say(sentences.join(" "), viewing)
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
        Decision::say(text, ConversationState::ViewingItem { sku: item.sku.clone() })
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
                let mut text =
                    render(&t.hold_confirmed, &[("title", &item.title), ("price", &price), ("until", &until)]);
                // "Hold it till Friday": the hold is as long as the shop's rule, and the reply says so.
                if self.router.asks_for_later(&normalize(turn.text)) {
                    text = format!("{} {text}", t.hold_length);
                }
                Decision::say(text, ConversationState::ViewingItem { sku: item.sku })
            }
            HoldOutcome::AlreadyYours { item, until } => self.already_yours(item, until, turn.now),
            HoldOutcome::HeldByOther { item } => {
                let viewing = ConversationState::ViewingItem { sku: item.sku.clone() };
                Decision::say(render(&t.hold_taken, &[("title", &item.title)]), viewing)
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
        Decision::say(text, ConversationState::ViewingItem { sku: item.sku.clone() })
    }

    /// "Cancel": the customer's holds end, and whoever waits for those pieces is told.
    async fn cancel_holds(&self, db: &impl ConnectionTrait, turn: &Turn<'_>) -> Result<Decision, BotError> {
        let t = &self.replies.templates;
        let released = holds::release_holds(db, turn.user.id, turn.now).await?;
        if released.is_empty() {
            // Right after checkout the holds are an order: "nvm i dont want it anymore can i cancel" means it.
            let latest = shop_orders::latest_orders(db, turn.user.id, 1).await?.into_iter().next();
            if latest.is_some_and(|order| order.status == OrderStatus::Pending) {
                return self.cancel_order(db, turn, &Entities::default()).await;
            }
            return Ok(Decision::say(t.cancel_none.clone(), ConversationState::Idle).then(&t.menu_hint));
        }
        let mut notices = Vec::new();
        for freed in &released {
            notices.extend(self.tell_item_free(db, freed, turn.now).await?);
        }
        let lines: Vec<String> = released.iter().map(|f| render(&t.cancel_done, &[("title", &f.item.title)])).collect();
        Ok(Decision { notices, ..Decision::say(lines.join("\n"), ConversationState::Idle).then(&t.menu_hint) })
    }

    /// "When does the hold end?": until when the customer's own holds last (the piece in view first); for
    /// a customer without one, until when someone else holds the piece in view, with their place on its
    /// waitlist kept.
    async fn hold_status(
        &self,
        db: &impl ConnectionTrait,
        turn: &Turn<'_>,
        viewing: Option<String>,
    ) -> Result<Decision, BotError> {
        let t = &self.replies.templates;
        let mut own = holds::holds_of(db, turn.user.id).await?;
        if !own.is_empty() {
            own.sort_by_key(|(_, item)| Some(&item.sku) != viewing.as_ref());
            let sku = own[0].1.sku.clone();
            let lines: Vec<String> = own
                .into_iter()
                .map(|(hold, item)| {
                    let until = self.shop_time(hold.expires_at, turn.now);
                    render(&t.hold_already, &[("title", &item.title), ("until", &until)])
                })
                .collect();
            return Ok(Decision::say(lines.join("\n"), ConversationState::ViewingItem { sku }));
        }
        if let Some(sku) = viewing
            && let Some(item) = shop::item_by_sku(db, &sku).await?
            && let Some(hold) = holds::active_hold(db, item.id).await?
        {
            holds::join_waitlist(db, turn.user.id, item.id, turn.now).await?;
            let until = self.shop_time(hold.expires_at, turn.now);
            let text = render(&t.hold_other_until, &[("title", &item.title), ("until", &until)]);
            return Ok(Decision::say(text, ConversationState::ViewingItem { sku: item.sku }));
        }
        Ok(Decision::say(t.cancel_none.clone(), ConversationState::Idle).then(&t.menu_hint))
    }

    /// "Checkout": the customer's holds become one order at once (so no hold lapses while they type an
    /// address), with the payment instructions; then the bot asks where to ship it.
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
        let state = ConversationState::AwaitingAddress { order: Some(number.to_owned()), draft: Draft::default() };
        Ok(Decision::say(format!("{text}\n\n{}", t.address_ask), state))
    }

    /// "Can I change my address?": for the customer's latest order while it has not shipped (pending or
    /// paid); a shipped one goes to a person. Without an order, the address is for the next checkout.
    async fn change_address(&self, db: &impl ConnectionTrait, turn: &Turn<'_>) -> Result<Decision, BotError> {
        let t = &self.replies.templates;
        let latest = shop_orders::latest_orders(db, turn.user.id, 1).await?.into_iter().next();
        let order = match latest {
            Some(order) if matches!(order.status, OrderStatus::Pending | OrderStatus::Paid) => Some(order),
            Some(order) if order.status == OrderStatus::Shipped => {
                let reason = render(&self.replies.staff.address_shipped, &[("order_number", &order.order_number)]);
                let mut decision = self.handoff(turn.now, reason);
                if let Some(reply) = decision.replies.first_mut() {
                    let said = render(&t.address_too_late, &[("order_number", &order.order_number)]);
                    reply.text = format!("{said} {}", reply.text);
                }
                return Ok(decision);
            }
            _ => None,
        };
        let Some(order) = order else {
            return Ok(Decision::say(t.address_no_order.clone(), ConversationState::Idle));
        };
        let number = Some(order.order_number);
        // The name on the order stays unless a new one is given.
        let named = Draft { name: order.ship_name, ..Draft::default() };
        if let Some(decision) = self.address_given(turn, number.clone(), &named, true) {
            return Ok(decision);
        }
        // "can i change my address to 99 elm st dallas tx 75201": the address from its house number on.
        let words: Vec<&str> = turn.text.split_whitespace().collect();
        if let Some(at) = words.iter().position(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
            && at > 0
        {
            let from_street = words[at..].join(" ");
            let inline = Turn { text: &from_street, ..*turn };
            if let Some(decision) = self.address_given(&inline, number.clone(), &named, true) {
                return Ok(decision);
            }
        }
        Ok(Decision::say(t.address_ask.clone(), ConversationState::AwaitingAddress { order: number, draft: named }))
    }

    /// The customer sent (part of) a name and address. `None` when the message is no address at all
    /// (the turn is routed as usual). With everything a label needs it is shown back to confirm; a
    /// missing field is asked for by name.
    fn address_given(
        &self,
        turn: &Turn<'_>,
        order: Option<String>,
        earlier: &Draft,
        only_complete_parts: bool,
    ) -> Option<Decision> {
        let t = &self.replies.templates;
        let parsed = Draft::parse(turn.text, |w| self.router.country(w));
        if parsed.is_empty() {
            return None;
        }
        // In the middle of a checkout message ("checkout pls") a lone name is no address.
        if only_complete_parts && parsed.line1.is_none() {
            return None;
        }
        // A name alone while the bot waits for an address, unless the words mean something else. A city,
        // state and ZIP code are the address's, whatever the router makes of them ("San Antonio, TX
        // 78212" is not Spanish).
        if parsed.line1.is_none() && parsed.postal_code.is_none() && self.router.route(turn.text).0 != Intent::Unknown {
            return None;
        }
        // Asked for the city, "Montreal" alone is the city, not a new name; typed without commas, the
        // street held it too ("88 rue Saint-Denis Montreal").
        let mut parsed = parsed;
        let city_asked = earlier.missing() == [Field::City] && parsed.line1.is_none() && parsed.city.is_none();
        if city_asked {
            parsed.city = parsed.name.take();
        }
        let mut draft = parsed.or(earlier);
        if let (true, Some(city), Some(line1)) = (city_asked, &draft.city, &draft.line1) {
            // Cut on a character boundary only: "… Montréal" against "Montreal" differs in byte length.
            let at = line1.len().saturating_sub(city.len());
            if line1.is_char_boundary(at) {
                let (street, last) = line1.split_at(at);
                if last.eq_ignore_ascii_case(city) && street.ends_with(' ') {
                    draft.line1 = Some(street.trim_end().to_owned());
                }
            }
        }
        let missing = draft.missing();
        if !missing.is_empty() {
            let w = &self.replies.words;
            let said: Vec<&str> = missing
                .iter()
                .map(|f| match f {
                    Field::Name => w.field_name.as_str(),
                    Field::Street => w.field_street.as_str(),
                    Field::City => w.field_city.as_str(),
                    Field::State => w.field_state.as_str(),
                    Field::Zip => w.field_zip.as_str(),
                })
                .collect();
            let text = render(&t.address_missing, &[("missing", &said.join(", "))]);
            return Some(Decision::say(text, ConversationState::AwaitingAddress { order, draft }));
        }
        let shown = draft.complete().map(|a| address::say(&a)).unwrap_or_default();
        let text = render(&t.address_confirm, &[("address", &shown)]);
        Some(Decision::say(text, ConversationState::ConfirmingAddress { order, draft }))
    }

    /// The customer answered the address shown back: yes places the order (or changes the address); a
    /// corrected address is shown back again; no asks for it again. `None`: the turn is about something
    /// else and is routed as usual (the address waits).
    async fn address_confirmed(
        &self,
        db: &impl ConnectionTrait,
        turn: &Turn<'_>,
        order: Option<String>,
        draft: &Draft,
    ) -> Result<Option<Decision>, BotError> {
        let t = &self.replies.templates;
        let words = normalize(turn.text);
        if self.router.is_no(&words) {
            let state = ConversationState::AwaitingAddress { order, draft: Draft::default() };
            return Ok(Some(Decision::say(t.address_ask.clone(), state)));
        }
        if !self.router.is_yes(&words) {
            return Ok(self.address_given(turn, order, &Draft::default(), true));
        }
        let Some(address) = draft.complete() else {
            let state = ConversationState::AwaitingAddress { order, draft: draft.clone() };
            return Ok(Some(Decision::say(t.address_ask.clone(), state)));
        };
        let Some(number) = order else {
            // Addresses are collected for an order; without one there is nothing to ship yet.
            return Ok(Some(Decision::say(t.address_no_order.clone(), ConversationState::Idle)));
        };
        let Some(existing) = shop_orders::order_of_customer(db, turn.user.id, &number).await? else {
            let text = render(&t.order_not_found, &[("order_number", &number)]);
            return Ok(Some(Decision::say(text, ConversationState::Idle)));
        };
        let stored = match shop_orders::set_address(db, &existing, &address, turn.now).await {
            Ok(order) => order,
            Err(shop_orders::AddressError::Db(e)) => return Err(e.into()),
            Err(_) => {
                let reason = render(&self.replies.staff.address_locked, &[("order_number", &number)]);
                let mut decision = self.handoff(turn.now, reason);
                if let Some(reply) = decision.replies.first_mut() {
                    let said = render(&t.address_too_late, &[("order_number", &number)]);
                    reply.text = format!("{said} {}", reply.text);
                }
                return Ok(Some(decision));
            }
        };
        let shown = address::say(&address);
        let text = render(&t.address_updated, &[("order_number", &number), ("address", &shown)]);
        if address.country.eq_ignore_ascii_case(&self.shop.home_country) {
            return Ok(Some(Decision::say(text, ConversationState::Idle)));
        }
        // Abroad: the shop's rate for that country, else a person quotes it.
        let rate = self.shop.international_shipping_minor.get(&address.country.to_uppercase()).copied();
        let repriced = match rate {
            Some(rate) if stored.status == OrderStatus::Pending => {
                shop_orders::set_shipping(db, &stored, rate, turn.now).await?
            }
            _ => None,
        };
        Ok(Some(match repriced {
            Some(order) => {
                let total = shop::price(order.total_minor, &self.shop.currency_symbol);
                let shipping = shop::price(order.shipping_minor, &self.shop.currency_symbol);
                let said = render(
                    &t.address_international_rate,
                    &[("country", &address.country), ("shipping", &shipping), ("total", &total)],
                );
                Decision::say(format!("{text}\n{said}"), ConversationState::Idle)
            }
            None => {
                let reason = render(
                    &self.replies.staff.international,
                    &[("order_number", &number), ("country", &address.country)],
                );
                let mut decision = self.handoff(turn.now, reason);
                if let Some(reply) = decision.replies.first_mut() {
                    let said = render(&t.address_international, &[("country", &address.country)]);
                    reply.text = format!("{text}\n{said} {}", reply.text);
                }
                decision
            }
        }))
    }

    /// "Cancel my order": the customer's own unpaid order is cancelled and its pieces go back on sale
    /// (whoever waits for them is told); a paid or shipped one goes to a person, who handles the money.
    async fn cancel_order(
        &self,
        db: &impl ConnectionTrait,
        turn: &Turn<'_>,
        entities: &Entities,
    ) -> Result<Decision, BotError> {
        let t = &self.replies.templates;
        let order = match &entities.order_number {
            Some(number) => shop_orders::order_of_customer(db, turn.user.id, number).await?,
            None => shop_orders::latest_orders(db, turn.user.id, 1).await?.into_iter().next(),
        };
        let Some(order) = order.filter(|o| !matches!(o.status, OrderStatus::Cancelled | OrderStatus::Returned)) else {
            return Ok(Decision::say(t.order_cancel_none.clone(), ConversationState::Idle));
        };
        if order.status != OrderStatus::Pending {
            let status = self.replies.order_statuses.say(order.status);
            let reason =
                render(&self.replies.staff.cancel_order, &[("order_number", &order.order_number), ("status", status)]);
            let mut decision = self.handoff(turn.now, reason);
            if let Some(reply) = decision.replies.first_mut() {
                let said = render(&t.order_cancel_human, &[("order_number", &order.order_number), ("status", status)]);
                reply.text = format!("{said} {}", reply.text);
            }
            return Ok(decision);
        }
        let moved = match shop_orders::set_status(
            db,
            &order.order_number,
            shop_orders::Move::to(OrderStatus::Cancelled),
            turn.now,
        )
        .await
        {
            Ok(moved) => moved,
            Err(shop_orders::StatusError::Db(e)) => return Err(e.into()),
            // Paid or cancelled by staff a moment ago: a person sorts it out.
            Err(e) => {
                let reason = render(
                    &self.replies.staff.cancel_failed,
                    &[("order_number", &order.order_number), ("error", &e.to_string())],
                );
                let mut decision = self.handoff(turn.now, reason);
                if let Some(reply) = decision.replies.first_mut() {
                    let status = self.replies.order_statuses.say(order.status);
                    let said =
                        render(&t.order_cancel_human, &[("order_number", &order.order_number), ("status", status)]);
                    reply.text = format!("{said} {}", reply.text);
                }
                return Ok(decision);
            }
        };
        let mut notices = Vec::new();
        for freed in &moved.freed {
            notices.extend(self.tell_item_free(db, freed, turn.now).await?);
        }
        let text = render(&t.order_cancelled, &[("order_number", &order.order_number)]);
        Ok(Decision { notices, ..Decision::say(text, ConversationState::Idle) })
    }

    /// "Swap it for the X": the hold in view (or the customer's only hold) is released and the piece named
    /// held instead; when that piece is not available, nothing changes.
    async fn swap(
        &self,
        db: &impl ConnectionTrait,
        turn: &Turn<'_>,
        entities: &Entities,
        viewing: Option<String>,
    ) -> Result<Decision, BotError> {
        let t = &self.replies.templates;
        let held = holds::holds_of(db, turn.user.id).await?;
        let old = held
            .iter()
            .find(|(_, item)| viewing.as_deref() == Some(item.sku.as_str()))
            .or_else(|| if held.len() == 1 { held.first() } else { None })
            .cloned();
        let Some((hold, old_item)) = old else {
            // Nothing to swap: it is a plain "I'll take the X".
            return self.item_by_description(db, turn, entities, ItemPurpose::Reserve, None).await;
        };
        let wanted = match &entities.sku {
            Some(sku) => shop::item_by_sku(db, sku).await?,
            None => self.find_one(db, turn, entities).await?,
        };
        let Some(wanted) = wanted.filter(|w| w.id != old_item.id) else {
            return Ok(Decision::say(t.swap_which.clone(), ConversationState::ViewingItem { sku: old_item.sku }));
        };
        if wanted.status != ItemStatus::Available {
            // Taken or sold: the customer keeps what they hold and hears about the one they wanted.
            return Box::pin(self.about_item(db, turn, entities, Some(wanted), ItemPurpose::Details)).await;
        }
        // The old hold ends first, as the hold limit counts it; the piece wanted was just seen available.
        let mut notices = Vec::new();
        if let Some(freed) = holds::end_hold(db, &hold, turn.now).await? {
            notices.extend(self.tell_item_free(db, &freed, turn.now).await?);
        }
        let mut decision = self.reserve(db, turn, wanted).await?;
        if let Some(reply) = decision.replies.first_mut() {
            reply.text = format!("{} {}", render(&t.swap_released, &[("title", &old_item.title)]), reply.text);
        }
        decision.notices.extend(notices);
        Ok(decision)
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
        let own_size = entities.size.as_deref().filter(|size| !names_the_pieces_size(&normalize(text), size));
        let Some(a) = self.chart.assess(item, text, own_size) else {
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
            let customer = match &a.customer_measured {
                Some(measured) => render(&w.from_body, &[("size", &w.say_size(customer_size)), ("measured", measured)]),
                None => w.say_size(customer_size),
            };
            sentences.push(render(template, &[("customer_size", &customer), ("fits_like", fits_like)]));
        }
        // Height or weight alone ("I'm 6'2"), or only the piece's size ("would the xxl be too big on me"):
        // nothing to compare yet, so the bot asks for what it needs.
        let only_the_pieces_size = entities.size.is_some() && own_size.is_none();
        if a.customer.is_none() && (only_the_pieces_size || self.router.names_body(text, &normalize(text))) {
            sentences.push(render(&t.size_ask, &[title]));
        }
        for missing in a.missing.iter().filter(|m| **m != a.measurement) {
            sentences.push(render(&t.fit_missing_length, &[("missing", missing)]));
        }
        sentences.push(measurements);
        sentences.join(" ")
    }

    /// A moment in the shop's time zone, as customers read it: "3:45 PM EST today", "9:10 AM EDT tomorrow".
    fn shop_time(&self, at: DateTime<Utc>, now: DateTime<Utc>) -> String {
        let zone = self.shop.tz();
        self.replies.time.say_moment(&at.with_timezone(&zone), &now.with_timezone(&zone))
    }
}

/// A customer's words as a staff notice quotes them: the first 200 characters.
fn quoted(text: &str) -> String {
    text.chars().take(200).collect()
}

/// The team's opening hours, in the shop's local time.
struct BusinessHours<'a>(&'a ShopSettings);

impl BusinessHours<'_> {
    /// The shop's wall clock at `now`, daylight saving included.
    fn local(&self, now: DateTime<Utc>) -> chrono::NaiveDateTime {
        now.with_timezone(&self.0.tz()).naive_local()
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

    #[test]
    fn the_shop_clock_follows_daylight_saving() {
        let shop = crate::config::Settings::defaults().shop; // America/New_York
        let hours = BusinessHours(&shop);
        // Monday 6 July 2026, 14:30 UTC: 10:30 in New York (EDT, UTC-4), not 9:30.
        assert!(hours.is_open(at("2026-07-06T14:30:00Z")), "open at 10:30 EDT");
        assert!(!hours.is_open(at("2026-07-06T23:30:00Z")), "closed at 19:30 EDT");
        // Monday 23 November 2026, 14:30 UTC: 9:30 in New York (EST, UTC-5).
        assert!(!hours.is_open(at("2026-11-23T14:30:00Z")), "closed at 9:30 EST");
    }
}
