//! `orders`: what a customer bought, its payment and shipping progress.

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
                    .table(Orders::Table)
                    .col(id(Orders::Id))
                    .col(string(Orders::OrderNumber).unique_key())
                    .col(reference(Orders::UserId))
                    .col(string(Orders::Status))
                    .col(money(Orders::SubtotalMinor))
                    .col(money(Orders::ShippingMinor))
                    .col(money(Orders::TotalMinor))
                    .col(ColumnDef::new(Orders::Currency).string_len(3).not_null())
                    .col(string_null(Orders::Carrier))
                    .col(string_null(Orders::TrackingNumber))
                    .col(string_null(Orders::TiktokConversationId))
                    .col(timestamp(Orders::CreatedAt))
                    .col(timestamp(Orders::UpdatedAt))
                    .col(timestamp_null(Orders::PaidAt))
                    .col(timestamp_null(Orders::ShippedAt))
                    .col(timestamp_null(Orders::CancelledAt))
                    .foreign_key(&mut foreign_key(
                        Orders::Table,
                        Orders::UserId,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::Restrict,
                    ))
                    .take(),
            )
            .await?;
        // "Where is my order?" without a number lists the customer's latest orders.
        manager
            .create_index(index("idx_orders_user_created_at", Orders::Table, &[Orders::UserId, Orders::CreatedAt]))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Orders::Table).take()).await
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub enum Orders {
    Table,
    Id,
    OrderNumber,
    UserId,
    Status,
    SubtotalMinor,
    ShippingMinor,
    TotalMinor,
    Currency,
    Carrier,
    TrackingNumber,
    TiktokConversationId,
    CreatedAt,
    UpdatedAt,
    PaidAt,
    ShippedAt,
    CancelledAt,
}
