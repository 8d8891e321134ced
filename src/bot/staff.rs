//! The staff's work on the shop, for any console (the CLI today): import and export the inventory file,
//! list items and orders, put an item on or off sale, move an order, correct its tracking or address. A
//! change and the notices it sends customers are stored in one transaction; the notices' ids come back
//! with the change, so the console can deliver them at once. Everything returns data; the console words
//! it.

use std::io::{Read, Write};

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

use super::Bot;
use crate::config::ShopSettings;
use crate::shop::holds::Freed;
use crate::shop::inventory::{self, ExportError, ImportReport, Money, RowError, SetStatusError};
use crate::shop::orders::{self, Address, AddressError, Move, Moved, OrderView, StatusError};
use crate::store::entities::items::{self, ItemStatus};
use crate::store::entities::messages::{self, DeliveryStatus};
use crate::store::entities::orders::OrderStatus;
use crate::store::entities::{reservations, users};

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

/// What an import did, and how the file was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub report: ImportReport,
    /// The file's separator when it is not a comma ("semicolon").
    pub separator: Option<&'static str>,
    /// Columns the file has that nothing reads (ignored).
    pub ignored_columns: Vec<String>,
}

/// An item as staff list it: with the size it fits like (staff's, or computed from the size chart), and
/// who holds it until when.
#[derive(Debug, Clone, PartialEq)]
pub struct Stocked {
    pub item: items::Model,
    pub fits_like: Option<String>,
    pub held_by: Option<(users::Model, DateTime<Utc>)>,
}

/// Why a customer is told something after a staff change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Their order moved.
    Order,
    /// A piece they wait for is free again.
    Waitlist { sku: String },
    /// Staff took a piece they held off sale.
    HoldEnded { sku: String },
}

/// A customer a staff change concerns, and the notices stored for them (none when TikTok does not let
/// the shop write to them now: reply window closed, or they opted out).
#[derive(Debug, Clone, PartialEq)]
pub struct Notified {
    pub customer: users::Model,
    pub about: Notice,
    pub messages: Vec<i64>,
}

/// An item after staff set its status, and the customers told.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemMoved {
    pub item: items::Model,
    pub notified: Vec<Notified>,
}

/// An order after staff moved it (with the pieces that went back on sale), and the customers told.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderMoved {
    pub moved: Moved,
    pub notified: Vec<Notified>,
}

impl Notified {
    /// Every notice stored by these changes, in order: what a console delivers.
    pub fn messages_of(all: &[Notified]) -> Vec<i64> {
        all.iter().flat_map(|n| n.messages.iter().copied()).collect()
    }

    /// What became of each customer's notices (once a console delivered them), in staff's words: one
    /// line per customer, the same in every console.
    pub async fn said_deliveries(db: &impl sea_orm::ConnectionTrait, all: &[Notified]) -> Result<Vec<String>, DbErr> {
        let stored =
            messages::Entity::find().filter(messages::Column::Id.is_in(Self::messages_of(all))).all(db).await?;
        Ok(all
            .iter()
            .map(|n| {
                let first = n.messages.first().and_then(|id| stored.iter().find(|m| m.id == *id));
                said_delivery(n, first.and_then(|m| m.delivery_status), first.and_then(|m| m.error_code))
            })
            .collect())
    }
}

/// What became of the notices for one customer, in staff's words.
fn said_delivery(notified: &Notified, status: Option<DeliveryStatus>, code: Option<i64>) -> String {
    let who = format!("@{}", notified.customer.handle());
    let what = match &notified.about {
        Notice::Order => "about their order".to_owned(),
        Notice::Waitlist { sku } => format!("that {sku} is available again (next on its waitlist)"),
        Notice::HoldEnded { sku } => format!("that their hold on {sku} ended"),
    };
    match status {
        None => format!(
            "{who} not told {what}: TikTok lets the shop write only within 48 hours of their last message (or they \
             opted out); tell them when they write"
        ),
        Some(DeliveryStatus::Sent) => format!("told {who} {what}: sent"),
        Some(DeliveryStatus::DryRun) => {
            format!(
                "told {who} {what}: dry run (no TikTok credentials), printed in the log on standard error, not sent"
            )
        }
        Some(DeliveryStatus::OutsideWindow) => format!("{who} not told {what}: their reply window has closed"),
        Some(DeliveryStatus::Pending) => format!(
            "{who} not told {what} yet: TikTok did not take it (code {}); the running bot's sweeper sends it again",
            code.map_or("none".into(), |c| c.to_string())
        ),
        Some(DeliveryStatus::Sending) => format!("{who}: the notice {what} is being sent"),
        Some(DeliveryStatus::Unknown) => format!(
            "{who}: TikTok did not answer whether the notice {what} arrived; the running bot's sweeper checks the \
             conversation and sends it again only if it did not"
        ),
        Some(DeliveryStatus::Failed) => format!(
            "sending to {who} {what} failed (TikTok code {}); it is not sent again",
            code.map_or("none".into(), |c| c.to_string())
        ),
        Some(DeliveryStatus::QuotaExhausted) => {
            format!("{who} not told {what}: the shop has sent them the 10 messages TikTok allows since they last wrote")
        }
        Some(DeliveryStatus::Throttled) => format!(
            "{who} not told {what} yet: TikTok paused the account's sending (40064); sent when the pause is over"
        ),
        Some(DeliveryStatus::NotConnected) => {
            format!("{who} not told {what}: the TikTok account is not connected (see `philia-bot tiktok status`)")
        }
        Some(DeliveryStatus::Skipped | DeliveryStatus::Merged) => format!("told {who} {what}: sent"),
    }
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
    pub async fn import(&self, reader: impl Read, dry_run: bool) -> Result<Imported, ImportError> {
        let money = Money { currency: &self.shop.currency, symbol: &self.shop.currency_symbol };
        let file = inventory::parse_csv(reader, money).map_err(ImportError::Rows)?;
        let txn = crate::store::begin_write(&self.db).await?;
        let report = inventory::import(&txn, file.rows, Utc::now()).await?;
        if dry_run {
            txn.rollback().await?;
        } else {
            txn.commit().await?;
        }
        Ok(Imported { report, separator: file.separator, ignored_columns: file.ignored_columns })
    }

    /// Writes every item as CSV, in the import file's shape; returns how many.
    pub async fn export(&self, output: impl Write) -> Result<usize, ExportError> {
        inventory::export(&self.db, output).await
    }

    /// Items, newest drop first, of one status when given.
    pub async fn items(&self, status: Option<ItemStatus>) -> Result<Vec<Stocked>, DbErr> {
        let chart = self.bot.size_chart();
        let items = inventory::list(&self.db, status).await?;
        let holds = reservations::Entity::find()
            .filter(reservations::Column::Status.eq(reservations::ReservationStatus::Active))
            .find_also_related(users::Entity)
            .all(&self.db)
            .await?;
        Ok(items
            .into_iter()
            .map(|item| {
                let held_by = holds
                    .iter()
                    .find(|(hold, _)| hold.item_id == item.id)
                    .and_then(|(hold, user)| Some((user.clone()?, hold.expires_at)));
                Stocked { fits_like: chart.fits_like(&item), item, held_by }
            })
            .collect())
    }

    /// Sets an item available or sold by hand: its holder (sold) or the next customer waiting for it
    /// (available) is told.
    pub async fn set_item_status(&self, sku: &str, status: ItemStatus) -> Result<ItemMoved, SetStatusError> {
        let now = Utc::now();
        let txn = crate::store::begin_write(&self.db).await?;
        let set = inventory::set_status(&txn, sku, status, now).await?;
        let mut notified = Vec::new();
        if let Some((_, holder)) = &set.hold_ended {
            let messages = self.bot.tell_hold_ended(&txn, &set.item, holder, now).await?;
            notified.push(Notified {
                customer: holder.clone(),
                about: Notice::HoldEnded { sku: set.item.sku.clone() },
                messages,
            });
        }
        if let Some(freed) = &set.freed {
            notified.extend(self.tell_waitlist(&txn, freed, now).await?);
        }
        txn.commit().await?;
        Ok(ItemMoved { item: set.item, notified })
    }

    async fn tell_waitlist(
        &self,
        db: &impl sea_orm::ConnectionTrait,
        freed: &Freed,
        now: DateTime<Utc>,
    ) -> Result<Option<Notified>, DbErr> {
        let Some(customer) = &freed.tell else { return Ok(None) };
        let messages = self.bot.tell_item_free(db, freed, now).await?;
        Ok(Some(Notified {
            customer: customer.clone(),
            about: Notice::Waitlist { sku: freed.item.sku.clone() },
            messages,
        }))
    }

    /// Orders, newest first, of one status when given.
    pub async fn orders(&self, status: Option<OrderStatus>) -> Result<Vec<OrderView>, DbErr> {
        orders::list(&self.db, status).await
    }

    /// One order by its number.
    pub async fn order(&self, number: &str) -> Result<Option<OrderView>, DbErr> {
        orders::find(&self.db, number).await
    }

    /// Moves an order by `step` and tells the customer (when TikTok lets the shop message them), and
    /// whoever waits for pieces it let go of.
    pub async fn set_order_status(&self, number: &str, step: Move<'_>) -> Result<OrderMoved, StatusError> {
        let now = Utc::now();
        let txn = crate::store::begin_write(&self.db).await?;
        let moved = orders::set_status(&txn, number, step, now).await?;
        let notified = self.tell_order(&txn, &moved, now).await?;
        txn.commit().await?;
        Ok(OrderMoved { moved, notified })
    }

    /// Corrects a shipped order's carrier and tracking number, and tells the customer.
    pub async fn set_tracking(&self, number: &str, carrier: &str, tracking: &str) -> Result<OrderMoved, StatusError> {
        let now = Utc::now();
        let txn = crate::store::begin_write(&self.db).await?;
        let moved = orders::set_tracking(&txn, number, carrier, tracking, now).await?;
        let notified = self.tell_order(&txn, &moved, now).await?;
        txn.commit().await?;
        Ok(OrderMoved { moved, notified })
    }

    async fn tell_order(
        &self,
        db: &impl sea_orm::ConnectionTrait,
        moved: &Moved,
        now: DateTime<Utc>,
    ) -> Result<Vec<Notified>, DbErr> {
        let messages = self.bot.tell_order_customer(db, moved, now).await?;
        let mut notified = vec![Notified { customer: moved.customer.clone(), about: Notice::Order, messages }];
        for freed in &moved.freed {
            notified.extend(self.tell_waitlist(db, freed, now).await?);
        }
        Ok(notified)
    }

    /// Sets where an order ships (until it ships).
    pub async fn set_address(&self, number: &str, address: &Address) -> Result<OrderView, AddressError> {
        let order = orders::find(&self.db, number)
            .await?
            .ok_or_else(|| AddressError::NotFound(number.trim().to_uppercase()))?;
        orders::set_address(&self.db, &order.order, address, Utc::now()).await?;
        orders::find(&self.db, number).await?.ok_or_else(|| AddressError::NotFound(number.trim().to_uppercase()))
    }
}
