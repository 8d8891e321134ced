//! Signed webhooks the bot cannot read (a content type it does not know, a missing field) are kept raw
//! with the reason and acknowledged: TikTok retries a refused webhook for 72 hours, and a body that does
//! not parse now never will. They are counted (`philia_webhook_requests_total{outcome="unparsed"}`) and
//! listed by `philia-bot tiktok status`.

use chrono::Utc;
use sea_orm::{ActiveValue::Set, DatabaseConnection, DbErr, EntityTrait};

use crate::store::entities::unparsed_webhooks;

/// The longest body kept (the webhook's own limit is smaller; this guards the table all the same).
const MAX_KEPT_BYTES: usize = 256 * 1024;

/// Keeps a body the bot could not read; returns the row's id.
pub async fn keep(db: &DatabaseConnection, body: &[u8], reason: &str) -> Result<i64, DbErr> {
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_KEPT_BYTES)]).into_owned();
    let event = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("event").and_then(|e| e.as_str()).map(|e| e.chars().take(100).collect()));
    let row = unparsed_webhooks::ActiveModel {
        received_at: Set(Utc::now()),
        event: Set(event),
        reason: Set(reason.to_owned()),
        body: Set(text),
        ..Default::default()
    };
    Ok(unparsed_webhooks::Entity::insert(row).exec(db).await?.last_insert_id)
}

/// Whether a body is a JSON object at all: one that is not is malformed and refused (400); one that is
/// but does not parse as an event is kept.
/// Read as the parser would (UTF-8 checked, nesting limited); only on this failure path.
pub fn is_json_object(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body).is_ok()
}
