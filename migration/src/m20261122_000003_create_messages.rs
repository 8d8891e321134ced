//! `messages`: every message in and out of a conversation, with its delivery outcome.

use crate::columns::*;
use crate::m20261122_000002_create_conversations::Conversations;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .col(id(Messages::Id))
                    .col(reference(Messages::ConversationId))
                    .col(string(Messages::Direction))
                    .col(string(Messages::Role))
                    // Unique when present: TikTok's id is how echoes and redeliveries are matched.
                    .col(string_null(Messages::TiktokMessageId).unique_key())
                    .col(string(Messages::MessageType))
                    .col(text_null(Messages::Text))
                    .col(string_null(Messages::MediaId))
                    .col(string_null(Messages::DeliveryStatus))
                    .col(ColumnDef::new(Messages::ErrorCode).big_integer().null())
                    .col(json(Messages::Metadata))
                    .col(timestamp(Messages::CreatedAt))
                    .foreign_key(&mut foreign_key(
                        Messages::Table,
                        Messages::ConversationId,
                        Conversations::Table,
                        Conversations::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_messages_conversation_time",
                Messages::Table,
                &[Messages::ConversationId, Messages::CreatedAt],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Messages::Table).take()).await
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub enum Messages {
    Table,
    Id,
    ConversationId,
    Direction,
    Role,
    TiktokMessageId,
    MessageType,
    Text,
    MediaId,
    DeliveryStatus,
    ErrorCode,
    Metadata,
    CreatedAt,
}
