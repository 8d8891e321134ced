//! `processed_events`: the durable idempotency guard, one row per webhook event whose effects are stored.

use crate::columns::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ProcessedEvents::Table)
                    .col(id(ProcessedEvents::Id))
                    .col(string(ProcessedEvents::IdempotencyKey).unique_key())
                    .col(string(ProcessedEvents::EventType))
                    .col(timestamp(ProcessedEvents::ReceivedAt))
                    .col(timestamp_null(ProcessedEvents::ProcessedAt))
                    .col(string_null(ProcessedEvents::Outcome))
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ProcessedEvents::Table).take()).await
    }
}

#[derive(DeriveIden)]
pub enum ProcessedEvents {
    Table,
    Id,
    IdempotencyKey,
    EventType,
    ReceivedAt,
    ProcessedAt,
    Outcome,
}
