//! `philia-bot inventory import|export|list|set-status`: the shop's stock, as tables and lines staff read.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::bot::staff::{ImportError, ItemMoved, Staff, Stocked};
use crate::shop::{self, inventory::ImportReport, inventory::SetStatusError};
use crate::store::entities::items::ItemStatus;
use crate::store::entities::{parse_status, status_name};

#[derive(Subcommand)]
pub enum Action {
    /// Load a CSV file (see examples/inventory.csv): every row is checked first, problems are listed by
    /// row and column and nothing is imported until all are fixed; items are upserted by SKU.
    Import {
        file: PathBuf,
        /// Check the file and say what would change, without writing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write every item as CSV, in the import file's shape (standard output unless --output).
    Export {
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// List items, newest drop first.
    List {
        /// Only items of this status: available, reserved or sold.
        #[arg(long, value_parser = item_status)]
        status: Option<ItemStatus>,
    },
    /// Put an item on sale (`available`) or take it off (`sold`). A hold on it ends.
    SetStatus {
        sku: String,
        #[arg(value_parser = item_status)]
        status: ItemStatus,
    },
}

fn item_status(text: &str) -> Result<ItemStatus, String> {
    parse_status(text).ok_or_else(|| format!("{text:?} is not an item status (available, reserved, sold)"))
}

pub async fn run(staff: &Staff, action: Action) -> anyhow::Result<()> {
    let symbol = staff.shop().currency_symbol.as_str();
    match action {
        Action::Import { file, dry_run } => {
            let reader = std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
            println!("{}", import(staff, reader, &file.display().to_string(), dry_run).await?);
        }
        // The CSV itself is the output: nothing else goes to standard output.
        Action::Export { output: None } => {
            staff.export(std::io::stdout().lock()).await?;
        }
        Action::Export { output: Some(path) } => {
            let count = staff.export(std::fs::File::create(&path)?).await?;
            println!("{}: exported {count} item(s)", path.display());
        }
        Action::List { status } => println!("{}", items_table(&staff.items(status).await?, symbol)),
        Action::SetStatus { sku, status } => {
            let moved = staff.set_item_status(&sku, status).await.map_err(with_hint)?;
            println!("{}", item_moved(&moved));
        }
    }
    Ok(())
}

/// Imports an inventory file and says what it did, naming `source`; a file with bad rows is refused
/// with every row's problem, one per line.
pub(super) async fn import(staff: &Staff, reader: impl Read, source: &str, dry_run: bool) -> anyhow::Result<String> {
    match staff.import(reader, dry_run).await {
        Ok(report) => Ok(import_said(source, &report, dry_run)),
        Err(ImportError::Rows(errors)) => {
            let lines: Vec<String> = errors.iter().map(|e| format!("{source}: {e}")).collect();
            anyhow::bail!("{} problem(s), nothing imported:\n{}", errors.len(), lines.join("\n"))
        }
        Err(e) => Err(anyhow::Error::new(e).context("importing")),
    }
}

fn import_said(source: &str, report: &ImportReport, dry_run: bool) -> String {
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
    out
}

/// One line per item (SKU, status, price, tag and fits-like sizes, title) under a header, and the count.
fn items_table(items: &[Stocked], symbol: &str) -> String {
    let mut out = format!("{:<10} {:<9} {:>9}  {:<6} {:<6}  {}", "SKU", "STATUS", "PRICE", "TAG", "FITS", "TITLE");
    for Stocked { item, fits_like } in items {
        out.push_str(&format!(
            "\n{:<10} {:<9} {:>9}  {:<6} {:<6}  {}",
            item.sku,
            status_name(item.status),
            shop::price(item.price_minor, symbol),
            item.tag_size.as_deref().unwrap_or("-"),
            fits_like.as_deref().unwrap_or_default(),
            item.title
        ));
    }
    out.push_str(&format!("\n{} item(s)", items.len()));
    out
}

fn item_moved(moved: &ItemMoved) -> String {
    let item = &moved.item;
    let mut out = format!("{}: {} ({})", item.sku, status_name(item.status), item.title);
    if let Some(customer) = &moved.told {
        out.push_str(&format!("\ntold @{} it is available again (sent by the running bot)", customer.handle()));
    }
    out
}

/// The domain's error, with the command that shows what exists.
fn with_hint(error: SetStatusError) -> anyhow::Error {
    match error {
        SetStatusError::NotFound(sku) => anyhow::anyhow!("no item {sku} (see `philia-bot inventory list`)"),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_run_says_what_it_would_import_and_that_nothing_was_written() {
        let report = ImportReport {
            inserted: vec!["A-1".into()],
            updated: vec!["B-2".into(), "C-3".into()],
            kept_on_hold: vec!["C-3".into()],
        };
        assert_eq!(
            import_said("stock.csv", &report, true),
            "stock.csv: would import 3 item(s): 1 new, 2 updated\n\
             kept on hold (a customer holds them; their file status applies when the hold ends): C-3\n\
             dry run: nothing was written"
        );
    }

    #[test]
    fn an_unknown_sku_names_the_command_that_lists_items() {
        let said = with_hint(SetStatusError::NotFound("NOPE-1".into())).to_string();
        assert_eq!(said, "no item NOPE-1 (see `philia-bot inventory list`)");
    }
}
