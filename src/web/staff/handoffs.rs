//! The handoffs screen: conversations waiting for a human, longest wait first, with the customer's last
//! messages, why the bot handed over, how long they have waited, a way to the conversation in TikTok,
//! and "give back to the bot" (`bot::handoff::release`, as `philia-bot handoff release`).

use actix_web::HttpResponse;
use chrono::Utc;
use maud::html;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Deserialize;

use super::audit;
use super::layout::{self, Screen, csrf, lines, see_other};
use super::session::{Checked, ConsoleError, Signed};
use crate::bot::handoff;
use crate::store::entities::messages::{self, Direction};
use crate::store::entities::{conversations, users};

/// How many of a conversation's last messages the page shows.
const LAST_MESSAGES: u64 = 4;

/// A wait in words: "3 min", "2 h 5 min", "1 d 4 h".
pub fn waited(minutes: i64) -> String {
    let minutes = minutes.max(0);
    match (minutes / 1440, minutes % 1440 / 60, minutes % 60) {
        (0, 0, m) => format!("{m} min"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

/// `GET /staff/handoffs`.
pub async fn page(signed: Signed) -> Result<HttpResponse, ConsoleError> {
    let db = &signed.state.db;
    let waiting = handoff::list(db).await?;
    let now = Utc::now();
    let mut cards = Vec::new();
    for h in &waiting {
        let found = conversations::Entity::find()
            .filter(conversations::Column::TiktokConversationId.eq(&h.conversation))
            .find_also_related(users::Entity)
            .one(db)
            .await?;
        let Some((conversation, customer)) = found else { continue };
        let mut last = messages::Entity::find()
            .filter(messages::Column::ConversationId.eq(conversation.id))
            .order_by_desc(messages::Column::Id)
            .limit(LAST_MESSAGES)
            .all(db)
            .await?;
        last.reverse();
        let username = customer.as_ref().and_then(|c| c.username.clone());
        cards.push(html! {
            article.card {
                header {
                    strong { "@" (h.customer) }
                    @if let Some(since) = h.since {
                        span.when { "waiting " (waited((now - since).num_minutes())) " · since " (signed.local(since)) }
                    }
                }
                p { "Why: " (h.reason.as_deref().unwrap_or("asked for a person")) }
                @for m in &last {
                    div class={ "bubble " (if m.direction == Direction::In { "in" } else { "out" }) } {
                        (lines(m.text.as_deref().unwrap_or("[picture]")))
                    }
                }
                div.actions {
                    // TikTok documents no link to one conversation: the customer's profile (where
                    // "Message" opens it) when their username is known, else the inbox.
                    @match &username {
                        Some(name) => a href={ "https://www.tiktok.com/@" (name) } target="_blank" rel="noopener" { "Open @" (name) " in TikTok" },
                        None => a href="https://www.tiktok.com/messages" target="_blank" rel="noopener" { "Open TikTok messages" },
                    }
                    form.inline method="post" action="/staff/handoffs/release" {
                        (csrf(&signed))
                        input type="hidden" name="conversation" value=(h.conversation);
                        button type="submit" { "Give back to the bot" }
                    }
                }
            }
        });
    }
    let body = html! {
        p.hint {
            (waiting.len()) " conversation(s) waiting for a person, longest wait first. The bot stays silent in them; answer in the TikTok app, then give them back."
        }
        @for card in cards { (card) }
    };
    layout::page(&signed, Screen::Handoffs, "Handoffs", body).await
}

#[derive(Deserialize)]
pub struct ReleaseForm {
    conversation: String,
}

/// `POST /staff/handoffs/release`: the bot answers this conversation again.
pub async fn release(checked: Checked<ReleaseForm>) -> Result<HttpResponse, ConsoleError> {
    let Checked { signed, form } = checked;
    let said = if handoff::release(&signed.state.db, &form.conversation).await? {
        audit::record(&signed.state.db, &signed.account.name, "gave back to the bot", &form.conversation, None).await?;
        "The conversation is back with the bot.".to_owned()
    } else {
        "That conversation is not waiting for a person any more.".to_owned()
    };
    signed.flash(&said).await?;
    Ok(see_other("/staff/handoffs"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_said_in_minutes_hours_and_days() {
        assert_eq!(waited(-2), "0 min");
        assert_eq!(waited(7), "7 min");
        assert_eq!(waited(125), "2 h 5 min");
        assert_eq!(waited(1440 + 250), "1 d 4 h");
    }
}
