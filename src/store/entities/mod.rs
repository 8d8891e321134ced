//! sea-orm entities, one per table; the schema itself lives in the `migration` crate.

pub mod conversations;
pub mod items;
pub mod messages;
pub mod order_items;
pub mod orders;
pub mod processed_events;
pub mod reservations;
pub mod tiktok_tokens;
pub mod users;
pub mod waitlist;
