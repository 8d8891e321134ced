//! One order per piece, enforced by the database, and the order lifecycle's moments. `order_items.active`
//! says an order line still claims its piece (its order is pending, paid, shipped or delivered); it is
//! kept with the order's status in the same transaction, and a partial unique index on it refuses a
//! second claiming line for one piece on SQLite and PostgreSQL alike (an index cannot join to `orders`
//! to read the status itself). `orders` gains when it was delivered or returned and when the customer
//! was reminded to pay.

use crate::columns::*;
use crate::m20261122_000006_create_orders::Orders;
use crate::m20261122_000007_create_order_items::OrderItems;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The new timestamps of `orders`. SQLite takes one column per `ALTER TABLE`.
const ORDER_MOMENTS: [Lifecycle; 3] = [Lifecycle::DeliveredAt, Lifecycle::ReturnedAt, Lifecycle::PaymentRemindedAt];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in ORDER_MOMENTS {
            manager.alter_table(Table::alter().table(Orders::Table).add_column(timestamp_null(column)).take()).await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(OrderItems::Table)
                    .add_column(ColumnDef::new(Lifecycle::Active).boolean().not_null().default(true))
                    .take(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "UPDATE order_items SET active = false \
             WHERE order_id IN (SELECT id FROM orders WHERE status = 'cancelled')",
        )
        .await?;
        // A piece already in two live orders (sold twice before this) cannot be settled by a migration:
        // staff decide which order keeps it. Say which, instead of failing on the index below.
        let twice = db
            .query_all_raw(Statement::from_string(
                manager.get_database_backend(),
                "SELECT i.sku, o.order_number FROM order_items oi \
                 JOIN items i ON i.id = oi.item_id JOIN orders o ON o.id = oi.order_id \
                 WHERE oi.active AND oi.item_id IN \
                   (SELECT item_id FROM order_items WHERE active GROUP BY item_id HAVING COUNT(*) > 1) \
                 ORDER BY i.sku, o.order_number",
            ))
            .await?;
        if !twice.is_empty() {
            let lines: Vec<String> = twice
                .iter()
                .map(|row| {
                    let sku: String = row.try_get("", "sku").unwrap_or_default();
                    let number: String = row.try_get("", "order_number").unwrap_or_default();
                    format!("{sku} in {number}")
                })
                .collect();
            return Err(DbErr::Migration(format!(
                "pieces sold in more than one order that is not cancelled ({}): cancel all but one of each \
                 (`philia-bot orders set-status NUMBER cancelled`) and migrate again",
                lines.join(", ")
            )));
        }
        db.execute_unprepared("CREATE UNIQUE INDEX uq_order_items_active_item ON order_items (item_id) WHERE active")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP INDEX uq_order_items_active_item").await?;
        manager.alter_table(Table::alter().table(OrderItems::Table).drop_column(Lifecycle::Active).take()).await?;
        for column in ORDER_MOMENTS.into_iter().rev() {
            manager.alter_table(Table::alter().table(Orders::Table).drop_column(column).take()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Lifecycle {
    DeliveredAt,
    ReturnedAt,
    PaymentRemindedAt,
    Active,
}
