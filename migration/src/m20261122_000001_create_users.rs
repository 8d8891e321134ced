//! `users`: one row per TikTok customer the shop has talked to.

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
                    .table(Users::Table)
                    .col(id(Users::Id))
                    .col(string(Users::TiktokUserId).unique_key())
                    .col(string_null(Users::Username))
                    .col(string_null(Users::Phone))
                    .col(timestamp_null(Users::LastInboundAt))
                    .col(ColumnDef::new(Users::OptedOut).boolean().not_null().default(false))
                    .col(timestamp(Users::CreatedAt))
                    .col(timestamp(Users::UpdatedAt))
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Users::Table).take()).await
    }
}

#[derive(DeriveIden)]
pub enum Users {
    Table,
    Id,
    TiktokUserId,
    Username,
    Phone,
    LastInboundAt,
    OptedOut,
    CreatedAt,
    UpdatedAt,
}
