//! `tiktok_tokens`: the shop's TikTok access and refresh tokens, kept across restarts and refreshes.

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
                    .table(TiktokTokens::Table)
                    .col(id(TiktokTokens::Id))
                    // One row per connected business account.
                    .col(string(TiktokTokens::Account).unique_key())
                    .col(ColumnDef::new(TiktokTokens::AccessToken).text().not_null())
                    .col(timestamp(TiktokTokens::AccessExpiresAt))
                    .col(text_null(TiktokTokens::RefreshToken))
                    .col(timestamp_null(TiktokTokens::RefreshExpiresAt))
                    .col(string_null(TiktokTokens::Scope))
                    .col(timestamp(TiktokTokens::UpdatedAt))
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(TiktokTokens::Table).take()).await
    }
}

#[derive(DeriveIden)]
pub enum TiktokTokens {
    Table,
    Id,
    Account,
    AccessToken,
    AccessExpiresAt,
    RefreshToken,
    RefreshExpiresAt,
    Scope,
    UpdatedAt,
}
