//! sea-orm entities, one per table; the schema itself lives in the `migration` crate.

use sea_orm::ActiveEnum;

pub mod conversations;
pub mod items;
pub mod messages;
pub mod oauth_states;
pub mod order_items;
pub mod orders;
pub mod processed_events;
pub mod reservations;
pub mod staff_accounts;
pub mod staff_audit;
pub mod staff_sessions;
pub mod tiktok_tokens;
pub mod unparsed_webhooks;
pub mod users;
pub mod waitlist;

/// The name a status is stored under ("available", "shipped"), from the entity's own enum mapping.
pub fn status_name<E: ActiveEnum<Value = String>>(status: E) -> String {
    status.to_value()
}

/// A status by its stored name, in any case.
pub fn parse_status<E: ActiveEnum<Value = String>>(name: &str) -> Option<E> {
    E::try_from_value(&name.trim().to_lowercase()).ok()
}
