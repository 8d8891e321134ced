//! `reservations`: holds on items, with at most one active hold per item enforced by the database.

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
                    .table(Reservations::Table)
                    .col(id(Reservations::Id))
                    .col(reference(Reservations::ItemId))
                    .col(reference(Reservations::UserId))
                    .col(timestamp(Reservations::ExpiresAt))
                    .col(string(Reservations::Status))
                    .col(timestamp(Reservations::CreatedAt))
                    .col(timestamp(Reservations::UpdatedAt))
                    .foreign_key(&mut foreign_key(
                        Reservations::Table,
                        Reservations::ItemId,
                        Items::Table,
                        Items::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        Reservations::Table,
                        Reservations::UserId,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .take(),
            )
            .await?;
        // The sweeper looks for active holds past their expiry; customers list their own holds.
        manager
            .create_index(index(
                "idx_reservations_status_expires_at",
                Reservations::Table,
                &[Reservations::Status, Reservations::ExpiresAt],
            ))
            .await?;
        manager.create_index(index("idx_reservations_user", Reservations::Table, &[Reservations::UserId])).await?;
        // A partial unique index (same syntax on SQLite and PostgreSQL): a second active hold on one item
        // is refused by the database itself, whatever the code above it does.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX uq_reservations_active_item ON reservations (item_id) WHERE status = 'active'",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Reservations::Table).take()).await
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub enum Reservations {
    Table,
    Id,
    ItemId,
    UserId,
    ExpiresAt,
    Status,
    CreatedAt,
    UpdatedAt,
}
