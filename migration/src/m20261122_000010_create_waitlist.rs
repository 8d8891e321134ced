//! `waitlist`: customers who asked for an item while someone else held it, told in order when it frees up.

use crate::columns::*;
use crate::m20261122_000001_create_users::Users;
use crate::m20261122_000004_create_items::Items;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Waitlist::Table)
                    .col(id(Waitlist::Id))
                    .col(reference(Waitlist::ItemId))
                    .col(reference(Waitlist::UserId))
                    .col(timestamp(Waitlist::CreatedAt))
                    .col(timestamp_null(Waitlist::NotifiedAt))
                    .foreign_key(&mut foreign_key(
                        Waitlist::Table,
                        Waitlist::ItemId,
                        Items::Table,
                        Items::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        Waitlist::Table,
                        Waitlist::UserId,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .take(),
            )
            .await?;
        // A customer waits for an item once; when it frees up the earliest of them is told first.
        manager
            .create_index(
                index("uq_waitlist_item_user", Waitlist::Table, &[Waitlist::ItemId, Waitlist::UserId]).unique().take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Waitlist::Table).take()).await
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub enum Waitlist {
    Table,
    Id,
    ItemId,
    UserId,
    CreatedAt,
    NotifiedAt,
}
