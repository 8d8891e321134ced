//! `orders`: the shipping name and address a label needs, collected in the conversation at checkout and
//! changeable by the customer until the order ships. Nullable: orders placed before this had none.

use crate::columns::*;
use crate::m20261122_000006_create_orders::Orders;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The address columns, in label order. SQLite takes one column per `ALTER TABLE`, so each is its own
/// statement.
const COLUMNS: [ShippingAddress; 7] = [
    ShippingAddress::ShipName,
    ShippingAddress::ShipLine1,
    ShippingAddress::ShipLine2,
    ShippingAddress::ShipCity,
    ShippingAddress::ShipRegion,
    ShippingAddress::ShipPostalCode,
    ShippingAddress::ShipCountry,
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in COLUMNS {
            manager.alter_table(Table::alter().table(Orders::Table).add_column(string_null(column)).take()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in COLUMNS.into_iter().rev() {
            manager.alter_table(Table::alter().table(Orders::Table).drop_column(column).take()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum ShippingAddress {
    ShipName,
    ShipLine1,
    ShipLine2,
    ShipCity,
    /// State, province or county.
    ShipRegion,
    ShipPostalCode,
    /// ISO 3166-1 alpha-2 country code ("US").
    ShipCountry,
}
