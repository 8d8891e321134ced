//! `conversations`: one TikTok DM thread, its bot state and whether a human has taken it over.

use crate::columns::*;
use crate::m20261122_000001_create_users::Users;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Conversations::Table)
                    .col(id(Conversations::Id))
                    .col(string(Conversations::TiktokConversationId).unique_key())
                    .col(reference(Conversations::UserId))
                    .col(json(Conversations::State))
                    .col(ColumnDef::new(Conversations::HandoffActive).boolean().not_null().default(false))
                    .col(timestamp_null(Conversations::HandoffAt))
                    .col(string_null(Conversations::HandoffReason))
                    .col(json(Conversations::Metadata))
                    .col(timestamp_null(Conversations::LastMessageAt))
                    .col(timestamp(Conversations::CreatedAt))
                    .col(timestamp(Conversations::UpdatedAt))
                    .foreign_key(&mut foreign_key(
                        Conversations::Table,
                        Conversations::UserId,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .take(),
            )
            .await?;
        manager.create_index(index("idx_conversations_user", Conversations::Table, &[Conversations::UserId])).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Conversations::Table).take()).await
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub enum Conversations {
    Table,
    Id,
    TiktokConversationId,
    UserId,
    State,
    HandoffActive,
    HandoffAt,
    HandoffReason,
    Metadata,
    LastMessageAt,
    CreatedAt,
    UpdatedAt,
}
