//! `philia-bot inventory import|export|list|set-status`: the shop's stock, as tables and lines staff read.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::desk::{Desk, print_json, table};
use crate::bot::staff::{ImportError, Imported, Staff, Stocked};
use crate::shop::inventory::{Kept, SetStatusError};
use crate::shop::{self};
use crate::store::entities::items::ItemStatus;
use crate::store::entities::{parse_status, status_name};

#[derive(Subcommand)]
pub enum Action {
    /// Load a CSV file (see examples/inventory.csv): every row is checked first, problems are listed by
    /// row and column and nothing is imported until all are fixed; items are upserted by SKU. A piece that
    /// is sold or on hold keeps its status whatever the file says (use set-status to relist).
    Import {
        file: PathBuf,
        /// Check the file and say what would change (every status change, every status kept), without
        /// writing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write every item as CSV, in the import file's shape (standard output unless --output).
    Export {
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// List items, newest drop first, with who holds a reserved piece and until when.
    List {
        /// Only items of this status: available, reserved or sold.
        #[arg(long, value_parser = item_status)]
        status: Option<ItemStatus>,
        /// Print JSON (for scripts) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Put an item on sale (`available`) or take it off (`sold`). Sold ends a hold on it (the customer is
    /// told); a piece in an order, or on hold, is not relisted.
    SetStatus {
        sku: String,
        #[arg(value_parser = item_status)]
        status: ItemStatus,
    },
}

fn item_status(text: &str) -> Result<ItemStatus, String> {
    parse_status(text).ok_or_else(|| format!("{text:?} is not an item status (available, reserved, sold)"))
}

pub async fn run(desk: &Desk, action: Action) -> anyhow::Result<()> {
    let staff = &desk.staff;
    match action {
        Action::Import { file, dry_run } => {
            let reader = std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
            println!(
                "{}",
                import(staff, reader, &file.display().to_string(), dry_run, |at| desk.local_with_zone(at)).await?
            );
        }
        // The CSV itself is the output: nothing else goes to standard output.
        Action::Export { output: None } => {
            staff.export(std::io::stdout().lock()).await?;
        }
        Action::Export { output: Some(path) } => {
            let count = staff.export(std::fs::File::create(&path)?).await?;
            println!("{}: exported {count} item(s)", path.display());
        }
        Action::List { status, json } => {
            let items = staff.items(status).await?;
            if json {
                print_json(&items_json(&items))?;
            } else {
                println!("{}", items_table(desk, &items));
            }
        }
        Action::SetStatus { sku, status } => {
            let moved = staff.set_item_status(&sku, status).await.map_err(|e| with_hint(e, desk))?;
            let item = &moved.item;
            println!("{}: {} ({})", item.sku, status_name(item.status), item.title);
            for line in desk.deliver(&moved.notified).await? {
                println!("{line}");
            }
        }
    }
    Ok(())
}

/// Imports an inventory file and says what it did, naming `source` (times said with `local`, which names
/// the zone: `Desk::local_with_zone`); a file with bad rows is refused with every row's problem, one per
/// line.
pub(super) async fn import(
    staff: &Staff,
    reader: impl Read,
    source: &str,
    dry_run: bool,
    local: impl Fn(chrono::DateTime<chrono::Utc>) -> String,
) -> anyhow::Result<String> {
    match staff.import(reader, dry_run).await {
        Ok(imported) => Ok(import_said(source, &imported, dry_run, local)),
        Err(ImportError::Rows(errors)) => {
            let lines: Vec<String> = errors.iter().map(|e| format!("{source}: {e}")).collect();
            anyhow::bail!("{} problem(s), nothing imported:\n{}", errors.len(), lines.join("\n"))
        }
        Err(e) => Err(anyhow::Error::new(e).context("importing")),
    }
}

fn import_said(
    source: &str,
    imported: &Imported,
    dry_run: bool,
    local: impl Fn(chrono::DateTime<chrono::Utc>) -> String,
) -> String {
    let report = &imported.report;
    let verb = if dry_run { "would import" } else { "imported" };
    let mut out = format!(
        "{source}: {verb} {} item(s): {} new, {} changed, {} unchanged",
        report.inserted.len() + report.changed.len() + report.unchanged.len(),
        report.inserted.len(),
        report.changed.len(),
        report.unchanged.len(),
    );
    if let Some(separator) = imported.separator {
        out.push_str(&format!(" (read as {separator}-separated)"));
    }
    if !imported.ignored_columns.is_empty() {
        out.push_str(&format!("\nwarning: ignored column(s) nothing reads: {}", imported.ignored_columns.join(", ")));
    }
    for change in &report.status_changes {
        let verb = if dry_run { "would become" } else { "is now" };
        out.push_str(&format!(
            "\nrow {}: {} {verb} {} (was {})",
            change.row,
            change.sku,
            status_name(change.to),
            status_name(change.from)
        ));
    }
    for kept in &report.kept {
        let why = match &kept.because {
            Kept::Held { by, until } => format!("is on hold for @{by} until {}", local(*until)),
            Kept::InOrder { order_number, order_status, at } => {
                format!("was sold in order {order_number} ({}) on {}", status_name(*order_status), local(*at))
            }
            Kept::Sold { at } => format!("was marked {} on {}", status_name(kept.status), local(*at)),
        };
        out.push_str(&format!(
            "\nrow {}: {} {why}; its status stays {} (use `philia-bot inventory set-status` to relist)",
            kept.row,
            kept.sku,
            status_name(kept.status)
        ));
    }
    if dry_run {
        out.push_str("\ndry run: nothing was written");
    }
    out
}

/// The items table: SKU, status, price, tag and fits-like sizes, who holds it until when, title.
fn items_table(desk: &Desk, items: &[Stocked]) -> String {
    let symbol = desk.staff.shop().currency_symbol.as_str();
    let held_until = format!("HELD UNTIL ({})", desk.zone());
    let mut t = table(&["SKU", "STATUS", "PRICE", "TAG", "FITS LIKE", "HELD BY", &held_until, "TITLE"]);
    for Stocked { item, fits_like, held_by } in items {
        t.add_row([
            item.sku.clone(),
            status_name(item.status),
            shop::price(item.price_minor, symbol),
            item.tag_size.clone().unwrap_or_default(),
            fits_like.clone().unwrap_or_default(),
            held_by.as_ref().map(|(u, _)| format!("@{}", u.handle())).unwrap_or_default(),
            held_by.as_ref().map(|(_, until)| desk.local(*until)).unwrap_or_default(),
            item.title.clone(),
        ]);
    }
    format!("{t}\n{} item(s)", items.len())
}

fn items_json(items: &[Stocked]) -> serde_json::Value {
    items
        .iter()
        .map(|Stocked { item, fits_like, held_by }| {
            json!({
                "sku": item.sku,
                "status": status_name(item.status),
                "price_minor": item.price_minor,
                "currency": item.currency,
                "tag_size": item.tag_size,
                "fits_like": fits_like,
                "held_by": held_by.as_ref().map(|(u, _)| u.handle()),
                "held_until": held_by.as_ref().map(|(_, until)| until.to_rfc3339()),
                "title": item.title,
            })
        })
        .collect()
}

/// The domain's error, with the command that shows what exists, and times in the shop's zone.
fn with_hint(error: SetStatusError, desk: &Desk) -> anyhow::Error {
    match error {
        SetStatusError::NotFound(sku) => anyhow::anyhow!("no item {sku} (see `philia-bot inventory list`)"),
        SetStatusError::InOrder { sku, order_number, order_status } => anyhow::anyhow!(
            "{sku} is in order {order_number} ({}): cancel it first (`philia-bot orders set-status {order_number} \
             cancelled`) or record its return with --restock",
            status_name(order_status)
        ),
        SetStatusError::Held { sku, by, until } => anyhow::anyhow!(
            "{sku} is on hold for @{by} until {} {}; it goes back on sale by itself if they do not order it",
            desk.local(until),
            desk.zone()
        ),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shop::inventory::{ImportReport, KeptStatus, StatusChange};

    fn at(text: &str) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&chrono::Utc)
    }

    #[test]
    fn a_dry_run_lists_every_status_change_and_every_status_kept() {
        let report = ImportReport {
            inserted: vec!["A-1".into()],
            changed: vec!["B-2".into()],
            unchanged: vec!["C-3".into(), "D-4".into()],
            status_changes: vec![StatusChange {
                row: 3,
                sku: "B-2".into(),
                from: ItemStatus::Available,
                to: ItemStatus::Sold,
            }],
            price_changes: vec![],
            kept: vec![
                KeptStatus {
                    row: 4,
                    sku: "C-3".into(),
                    status: ItemStatus::Sold,
                    because: Kept::InOrder {
                        order_number: "PH-ABC234".into(),
                        order_status: crate::store::entities::orders::OrderStatus::Paid,
                        at: at("2026-12-01T15:00:00Z"),
                    },
                },
                KeptStatus {
                    row: 5,
                    sku: "D-4".into(),
                    status: ItemStatus::Reserved,
                    because: Kept::Held { by: "kim".into(), until: at("2026-12-02T15:30:00Z") },
                },
            ],
        };
        let imported = Imported { report, separator: Some("semicolon"), ignored_columns: vec!["notes".into()] };
        let local = |at: chrono::DateTime<chrono::Utc>| at.format("%Y-%m-%d %H:%M UTC").to_string();
        assert_eq!(
            import_said("stock.csv", &imported, true, local),
            "stock.csv: would import 4 item(s): 1 new, 1 changed, 2 unchanged (read as semicolon-separated)\n\
             warning: ignored column(s) nothing reads: notes\n\
             row 3: B-2 would become sold (was available)\n\
             row 4: C-3 was sold in order PH-ABC234 (paid) on 2026-12-01 15:00 UTC; its status stays sold (use `philia-bot inventory set-status` to relist)\n\
             row 5: D-4 is on hold for @kim until 2026-12-02 15:30 UTC; its status stays reserved (use `philia-bot inventory set-status` to relist)\n\
             dry run: nothing was written"
        );
    }
}
