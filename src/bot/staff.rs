//! The staff's work on the shop, for any console (the CLI today): import and export the inventory file,
//! list items and orders, put an item on or off sale, move an order. A change and the notices it sends
//! customers are stored in one transaction. Everything returns data; the console words it.

use std::io::{Read, Write};

use chrono::Utc;
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};

use super::Bot;
use super::notices::can_message;
use crate::config::ShopSettings;
use crate::shop::inventory::{self, ExportError, ImportReport, RowError, SetStatusError};
use crate::shop::orders::{self, Moved, OrderView, StatusError};
use crate::store::entities::items::{self, ItemStatus};
use crate::store::entities::orders::OrderStatus;
use crate::store::entities::users;

/// The shop's database and the bot (for the notices staff changes send), as `serve` would open them.
pub struct Staff {
    pub db: DatabaseConnection,
    bot: Bot,
    shop: ShopSettings,
}

/// Why an inventory file was not imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file has bad rows (every one is listed); nothing was written.
    #[error("{} problem(s), nothing imported", .0.len())]
    Rows(Vec<RowError>),
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

/// An item as staff list it: with the size it fits like (staff's, or computed from the size chart).
#[derive(Debug, Clone, PartialEq)]
pub struct Stocked {
    pub item: items::Model,
    pub fits_like: Option<String>,
}

/// An item after staff set its status, and the customer from its waitlist told it is free again.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemMoved {
    pub item: items::Model,
    pub told: Option<users::Model>,
}

/// An order after staff moved it (with the items a cancellation put back on sale, and who on their
/// waitlists is told), and whether its customer was told: TikTok lets the shop message them only within
/// their reply window.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderMoved {
    pub moved: Moved,
    pub customer_told: bool,
}

impl Staff {
    /// `shop` gives the currency of imported rows that name none.
    pub fn new(db: DatabaseConnection, bot: Bot, shop: ShopSettings) -> Self {
        Staff { db, bot, shop }
    }

    /// The shop's settings (its currency, how prices are shown).
    pub fn shop(&self) -> &ShopSettings {
        &self.shop
    }

    /// Validates the whole file, then upserts every row by SKU in one transaction (with `dry_run`, rolled
    /// back: the report says what would change). Any bad row stops the import with nothing written.
    pub async fn import(&self, reader: impl Read, dry_run: bool) -> Result<ImportReport, ImportError> {
        let rows = inventory::parse_csv(reader, &self.shop.currency).map_err(ImportError::Rows)?;
        let txn = self.db.begin().await?;
        let report = inventory::import(&txn, rows, Utc::now()).await?;
        if dry_run {
            txn.rollback().await?;
        } else {
            txn.commit().await?;
        }
        Ok(report)
    }

    /// Writes every item as CSV, in the import file's shape; returns how many.
    pub async fn export(&self, output: impl Write) -> Result<usize, ExportError> {
        inventory::export(&self.db, output).await
    }

    /// Items, newest drop first, of one status when given.
    pub async fn items(&self, status: Option<ItemStatus>) -> Result<Vec<Stocked>, DbErr> {
        let chart = self.bot.size_chart();
        let items = inventory::list(&self.db, status).await?;
        Ok(items.into_iter().map(|item| Stocked { fits_like: chart.fits_like(&item), item }).collect())
    }

    /// Sets an item available or sold by hand; the next customer waiting for it is told when it frees up.
    pub async fn set_item_status(&self, sku: &str, status: ItemStatus) -> Result<ItemMoved, SetStatusError> {
        let now = Utc::now();
        let txn = self.db.begin().await?;
        let (item, freed) = inventory::set_status(&txn, sku, status, now).await?;
        let told = match &freed {
            Some(freed) => self.bot.tell_item_free(&txn, freed, now).await?,
            None => Vec::new(),
        };
        txn.commit().await?;
        let told = freed.and_then(|f| f.tell).filter(|_| !told.is_empty());
        Ok(ItemMoved { item, told })
    }

    /// Orders, newest first, of one status when given.
    pub async fn orders(&self, status: Option<OrderStatus>) -> Result<Vec<OrderView>, DbErr> {
        orders::list(&self.db, status).await
    }

    /// Moves an order and tells the customer (when TikTok lets the shop message them). `shipping` is the
    /// carrier and tracking number, which shipped requires.
    pub async fn set_order_status(
        &self,
        number: &str,
        status: OrderStatus,
        shipping: Option<(&str, &str)>,
    ) -> Result<OrderMoved, StatusError> {
        let now = Utc::now();
        let txn = self.db.begin().await?;
        let moved = orders::set_status(&txn, number, status, shipping, now).await?;
        let told = self.bot.tell_order_moved(&txn, &moved, now).await?;
        txn.commit().await?;
        let customer_told = can_message(&moved.customer, now) && !told.is_empty();
        Ok(OrderMoved { moved, customer_told })
    }
}
