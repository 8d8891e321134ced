//! `items`: the shop's one-of-a-kind stock, with tag size and real measurements.

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
                    .table(Items::Table)
                    .col(id(Items::Id))
                    .col(string(Items::Sku).unique_key())
                    .col(string(Items::Title))
                    .col(string_null(Items::Brand))
                    .col(string(Items::Category))
                    .col(string_null(Items::TagSize))
                    .col(string_null(Items::FitsLikeSize))
                    .col(json(Items::Measurements))
                    .col(string(Items::Condition))
                    .col(text_null(Items::Flaws))
                    .col(money(Items::PriceMinor))
                    .col(ColumnDef::new(Items::Currency).string_len(3).not_null())
                    .col(string(Items::Status))
                    .col(text_null(Items::ImageUrl))
                    .col(string_null(Items::TiktokMediaId))
                    .col(timestamp_null(Items::DroppedAt))
                    .col(timestamp(Items::CreatedAt))
                    .col(timestamp(Items::UpdatedAt))
                    .take(),
            )
            .await?;
        // "New drops" lists available items newest first; the others serve size and category searches.
        for (name, cols) in [
            ("idx_items_status_dropped_at", &[Items::Status, Items::DroppedAt][..]),
            ("idx_items_category", &[Items::Category]),
            ("idx_items_tag_size", &[Items::TagSize]),
            ("idx_items_fits_like_size", &[Items::FitsLikeSize]),
        ] {
            manager.create_index(index(name, Items::Table, cols)).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Items::Table).take()).await
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub enum Items {
    Table,
    Id,
    Sku,
    Title,
    Brand,
    Category,
    TagSize,
    FitsLikeSize,
    Measurements,
    Condition,
    Flaws,
    PriceMinor,
    Currency,
    Status,
    ImageUrl,
    TiktokMediaId,
    DroppedAt,
    CreatedAt,
    UpdatedAt,
}
