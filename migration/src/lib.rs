//! Schema migrations of philia-bot: one migration per file, the same statements on SQLite and PostgreSQL.
// `MigrationTrait` is an async_trait whose signatures take `&SchemaManager` without a lifetime; naming it in
// the implementations would no longer match the trait.
#![allow(elided_lifetimes_in_paths)]

pub use sea_orm_migration::prelude::*;

mod columns;
mod m20261122_000001_create_users;
mod m20261122_000002_create_conversations;
mod m20261122_000003_create_messages;
mod m20261122_000004_create_items;
mod m20261122_000005_create_reservations;
mod m20261122_000006_create_orders;
mod m20261122_000007_create_order_items;
mod m20261122_000008_create_processed_events;
mod m20261122_000009_create_tiktok_tokens;
mod m20261122_000010_create_waitlist;
mod m20261201_000011_add_order_shipping_address;
mod m20261215_000012_one_order_per_piece;
mod m20261216_000013_create_staff_console;
mod m20261220_000013_tiktok_account_and_quota;

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_users::Migration),
            Box::new(m20261122_000002_create_conversations::Migration),
            Box::new(m20261122_000003_create_messages::Migration),
            Box::new(m20261122_000004_create_items::Migration),
            Box::new(m20261122_000005_create_reservations::Migration),
            Box::new(m20261122_000006_create_orders::Migration),
            Box::new(m20261122_000007_create_order_items::Migration),
            Box::new(m20261122_000008_create_processed_events::Migration),
            Box::new(m20261122_000009_create_tiktok_tokens::Migration),
            Box::new(m20261122_000010_create_waitlist::Migration),
            Box::new(m20261201_000011_add_order_shipping_address::Migration),
            Box::new(m20261215_000012_one_order_per_piece::Migration),
            Box::new(m20261216_000013_create_staff_console::Migration),
            Box::new(m20261220_000013_tiktok_account_and_quota::Migration),
        ]
    }
}
