//! `order_items`: the items of an order, at the price they were sold for.

use crate::columns::*;
use crate::m20261122_000004_create_items::Items;
use crate::m20261122_000006_create_orders::Orders;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OrderItems::Table)
                    .col(id(OrderItems::Id))
                    .col(reference(OrderItems::OrderId))
                    .col(reference(OrderItems::ItemId))
                    .col(money(OrderItems::PriceMinor))
                    .col(timestamp(OrderItems::CreatedAt))
                    .foreign_key(&mut foreign_key(
                        OrderItems::Table,
                        OrderItems::OrderId,
                        Orders::Table,
                        Orders::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        OrderItems::Table,
                        OrderItems::ItemId,
                        Items::Table,
                        Items::Id,
                        ForeignKeyAction::Restrict,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                index("uq_order_items_order_item", OrderItems::Table, &[OrderItems::OrderId, OrderItems::ItemId])
                    .unique()
                    .take(),
            )
            .await?;
        manager.create_index(index("idx_order_items_item", OrderItems::Table, &[OrderItems::ItemId])).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(OrderItems::Table).take()).await
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub enum OrderItems {
    Table,
    Id,
    OrderId,
    ItemId,
    PriceMinor,
    CreatedAt,
}
