//! The staff's commands on the shop (`philia-bot inventory …`, `philia-bot orders …`): each opens the
//! database, does one thing in one transaction and says what it did, customers told included.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, bail};
use chrono::Utc;
use sea_orm::{DatabaseConnection, TransactionTrait};

use crate::bot::Bot;
use crate::config::Settings;
use crate::shop::{self, inventory, orders};
use crate::store::entities::items::ItemStatus;
use crate::store::entities::orders::OrderStatus;
use crate::store::entities::status_name;

/// The database and the bot (for the notices staff changes send), as `serve` would open them.
pub struct Staff {
    pub db: DatabaseConnection,
    pub bot: Bot,
    settings: Settings,
}

impl Staff {
    pub async fn open(settings: Settings) -> anyhow::Result<Self> {
        // Staff commands are short-lived: what they measure is not served anywhere.
        let bot = crate::startup::build_bot(&settings, &crate::metrics::Metrics::new())?;
        let db = crate::startup::open_database(&settings).await?;
        Ok(Staff { db, bot, settings })
    }

    /// Staff commands on a running application's database and bot.
    pub fn of(state: &crate::startup::AppState) -> Self {
        Staff { db: state.db.clone(), bot: state.bot.clone(), settings: (*state.settings).clone() }
    }

    /// Validates the whole file, then upserts every row by SKU (or, with `dry_run`, says what it would do).
    /// Any bad row stops the import with nothing written, and every problem is listed.
    pub async fn import(&self, file: &Path, dry_run: bool) -> anyhow::Result<String> {
        let reader = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
        self.import_from(reader, &file.display().to_string(), dry_run).await
    }

    /// [`Staff::import`] from any reader; `source` names it in every line said.
    pub async fn import_from(&self, reader: impl Read, source: &str, dry_run: bool) -> anyhow::Result<String> {
        let rows = match inventory::parse_csv(reader, &self.settings.shop.currency) {
            Ok(rows) => rows,
            Err(errors) => {
                let lines: Vec<String> = errors.iter().map(|e| format!("{source}: {e}")).collect();
                bail!("{} problem(s), nothing imported:\n{}", errors.len(), lines.join("\n"));
            }
        };
        let txn = self.db.begin().await?;
        let report = inventory::import(&txn, rows, Utc::now()).await.context("importing")?;
        if dry_run {
            txn.rollback().await?;
        } else {
            txn.commit().await?;
        }
        let verb = if dry_run { "would import" } else { "imported" };
        let mut out = format!(
            "{source}: {verb} {} item(s): {} new, {} updated",
            report.inserted.len() + report.updated.len(),
            report.inserted.len(),
            report.updated.len()
        );
        if !report.kept_on_hold.is_empty() {
            out.push_str(&format!(
                "\nkept on hold (a customer holds them; their file status applies when the hold ends): {}",
                report.kept_on_hold.join(", ")
            ));
        }
        if dry_run {
            out.push_str("\ndry run: nothing was written");
        }
        Ok(out)
    }

    /// Writes every item as CSV, in the import file's shape.
    pub async fn export(&self, output: impl Write) -> anyhow::Result<usize> {
        inventory::export(&self.db, output).await
    }

    /// One line per item: SKU, status, price, sizes, title.
    pub async fn list_items(&self, status: Option<ItemStatus>) -> anyhow::Result<String> {
        let items = inventory::list(&self.db, status).await?;
        let chart = self.bot.size_chart();
        let mut out = format!("{:<10} {:<9} {:>9}  {:<6} {:<6}  {}", "SKU", "STATUS", "PRICE", "TAG", "FITS", "TITLE");
        for item in &items {
            let fits = item.fits_like_size.clone().or_else(|| chart.computed_fits_like(item)).unwrap_or_default();
            out.push_str(&format!(
                "\n{:<10} {:<9} {:>9}  {:<6} {:<6}  {}",
                item.sku,
                status_name(item.status),
                shop::price(item.price_minor, &self.settings.shop.currency_symbol),
                item.tag_size.as_deref().unwrap_or("-"),
                fits,
                item.title
            ));
        }
        out.push_str(&format!("\n{} item(s)", items.len()));
        Ok(out)
    }

    /// Sets an item available or sold by hand; the next customer waiting for it is told when it frees up.
    pub async fn set_item_status(&self, sku: &str, status: ItemStatus) -> anyhow::Result<String> {
        let now = Utc::now();
        let txn = self.db.begin().await?;
        let (item, freed) = inventory::set_status(&txn, sku, status, now).await?;
        let told = match &freed {
            Some(freed) => self.bot.tell_item_free(&txn, freed, now).await?,
            None => Vec::new(),
        };
        txn.commit().await?;
        let mut out = format!("{}: {} ({})", item.sku, status_name(item.status), item.title);
        if let Some(customer) = freed.as_ref().and_then(|f| f.tell.as_ref()).filter(|_| !told.is_empty()) {
            out.push_str(&format!("\ntold @{} it is available again (sent by the running bot)", who(customer)));
        }
        Ok(out)
    }

    pub async fn list_orders(&self, status: Option<OrderStatus>) -> anyhow::Result<String> {
        let views = orders::list(&self.db, status).await?;
        let mut out =
            format!("{:<10} {:<9} {:>9}  {:<16} {:<17} {}", "ORDER", "STATUS", "TOTAL", "CUSTOMER", "CREATED", "ITEMS");
        for view in &views {
            let skus: Vec<&str> = view.items.iter().map(|i| i.sku.as_str()).collect();
            let mut line = format!(
                "\n{:<10} {:<9} {:>9}  {:<16} {:<17} {}",
                view.order.order_number,
                status_name(view.order.status),
                shop::price(view.order.total_minor, &self.settings.shop.currency_symbol),
                format!("@{}", who(&view.customer)),
                view.order.created_at.format("%Y-%m-%d %H:%M"),
                skus.join(" ")
            );
            if let (Some(carrier), Some(tracking)) = (&view.order.carrier, &view.order.tracking_number) {
                line.push_str(&format!("  [{carrier} {tracking}]"));
            }
            out.push_str(&line);
        }
        out.push_str(&format!("\n{} order(s)", views.len()));
        Ok(out)
    }

    /// Moves an order and tells the customer (when TikTok lets the shop message them).
    pub async fn set_order_status(
        &self,
        number: &str,
        status: OrderStatus,
        carrier: Option<&str>,
        tracking: Option<&str>,
    ) -> anyhow::Result<String> {
        let now = Utc::now();
        let shipping = match (carrier, tracking) {
            (Some(c), Some(t)) => Some((c, t)),
            _ => None,
        };
        let txn = self.db.begin().await?;
        let moved = orders::set_status(&txn, number, status, shipping, now).await?;
        let told = self.bot.tell_order_moved(&txn, &moved, now).await?;
        txn.commit().await?;
        let mut out = format!("{}: {}", moved.order.order_number, status_name(moved.order.status));
        if crate::bot::notices::can_message(&moved.customer, now) && !told.is_empty() {
            out.push_str(&format!("\ntold @{} (sent by the running bot)", who(&moved.customer)));
        } else {
            out.push_str(&format!(
                "\n@{} not told: their 48-hour reply window is closed (or they opted out); tell them when they write",
                who(&moved.customer)
            ));
        }
        for freed in &moved.freed {
            out.push_str(&format!("\n{} is back on sale", freed.item.sku));
            if let Some(customer) = &freed.tell {
                out.push_str(&format!(", told @{} (on its waitlist)", who(customer)));
            }
        }
        Ok(out)
    }
}

fn who(customer: &crate::store::entities::users::Model) -> &str {
    customer.username.as_deref().unwrap_or(&customer.tiktok_user_id)
}
