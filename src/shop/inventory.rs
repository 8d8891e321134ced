//! The staff's inventory file: CSV import (every row validated first; an error names its row and column
//! and nothing is imported; upsert by SKU), export in the same shape, and status changes by hand.

use std::collections::HashMap;
use std::io::{Read, Write};

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::{Map, Value};

use super::holds::{self, Freed};
use crate::store::entities::items::{self, ItemStatus};
use crate::store::entities::status_name;

/// The demo inventory (`examples/inventory.csv`), compiled in so `philia-bot chat` has stock anywhere.
pub const DEMO_INVENTORY: &str = include_str!("../../examples/inventory.csv");

/// Columns every file must have.
pub const REQUIRED_COLUMNS: &[&str] = &["sku", "title", "category", "condition", "price"];
/// Measurement columns, in centimetres, taken flat; stored under these names.
pub const MEASUREMENT_COLUMNS: &[&str] =
    &["pit_to_pit", "length", "shoulders", "sleeve", "waist", "inseam", "rise", "leg_opening", "insole"];
/// Other optional columns.
pub const OPTIONAL_COLUMNS: &[&str] =
    &["brand", "tag_size", "fits_like", "flaws", "currency", "status", "image_url", "dropped_at"];

/// One problem with the file: the CSV line (the header is row 1), the column and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("row {row}, column {column}: {message}")]
pub struct RowError {
    pub row: u64,
    pub column: String,
    pub message: String,
}

/// A valid row, ready to upsert.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRow {
    pub row: u64,
    pub sku: String,
    pub title: String,
    pub brand: Option<String>,
    pub category: String,
    pub tag_size: Option<String>,
    pub fits_like: Option<String>,
    pub measurements: Map<String, Value>,
    pub condition: String,
    pub flaws: Option<String>,
    pub price_minor: i64,
    pub currency: String,
    pub status: ItemStatus,
    pub image_url: Option<String>,
    pub dropped_at: Option<DateTime<Utc>>,
}

/// Reads and validates a whole file. Either every row is good, or every problem found is returned.
pub fn parse_csv(input: impl Read, default_currency: &str) -> Result<Vec<ItemRow>, Vec<RowError>> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(false).from_reader(input);
    let header_error = |column: &str, message: String| RowError { row: 1, column: column.into(), message };
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|h| h.trim_start_matches('\u{feff}').to_lowercase()).collect(),
        Err(e) => return Err(vec![header_error("(header)", format!("cannot read the header: {e}"))]),
    };
    let mut errors = Vec::new();
    for column in REQUIRED_COLUMNS {
        if !headers.iter().any(|h| h == column) {
            errors.push(header_error(column, "missing column (required)".into()));
        }
    }
    let known =
        |h: &str| REQUIRED_COLUMNS.contains(&h) || MEASUREMENT_COLUMNS.contains(&h) || OPTIONAL_COLUMNS.contains(&h);
    for (i, h) in headers.iter().enumerate() {
        if !known(h) {
            let message = format!(
                "unknown column (known: {}, {}, {})",
                REQUIRED_COLUMNS.join(", "),
                OPTIONAL_COLUMNS.join(", "),
                MEASUREMENT_COLUMNS.join(", ")
            );
            errors.push(header_error(if h.is_empty() { "(empty)" } else { h }, message));
        } else if headers[..i].contains(h) {
            errors.push(header_error(h, "column appears twice".into()));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut rows = Vec::new();
    let mut first_row_of: HashMap<String, u64> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let row = e.position().map_or(0, |p| p.line());
                errors.push(RowError { row, column: "(row)".into(), message: e.to_string() });
                continue;
            }
        };
        let row = record.position().map_or(0, |p| p.line());
        if record.iter().all(str::is_empty) {
            continue; // a blank line between rows
        }
        let cells: HashMap<&str, &str> = headers.iter().map(String::as_str).zip(record.iter()).collect();
        match parse_row(row, &cells, default_currency) {
            Ok(item) => {
                if let Some(first) = first_row_of.get(&item.sku) {
                    errors.push(RowError {
                        row,
                        column: "sku".into(),
                        message: format!("{} is already on row {first}: each SKU once", item.sku),
                    });
                } else {
                    first_row_of.insert(item.sku.clone(), row);
                    rows.push(item);
                }
            }
            Err(mut row_errors) => errors.append(&mut row_errors),
        }
    }
    if errors.is_empty() { Ok(rows) } else { Err(errors) }
}

fn parse_row(row: u64, cells: &HashMap<&str, &str>, default_currency: &str) -> Result<ItemRow, Vec<RowError>> {
    let mut errors = Vec::new();
    let mut fail = |column: &str, message: String| errors.push(RowError { row, column: column.into(), message });
    let cell = |name: &str| cells.get(name).copied().unwrap_or("");
    let optional = |name: &str| Some(cell(name).to_owned()).filter(|v| !v.is_empty());
    let mut required = |name: &str| {
        let value = cell(name);
        if value.is_empty() {
            fail(name, "must not be empty".into());
        }
        value.to_owned()
    };
    let sku = required("sku").to_uppercase();
    let title = required("title");
    let category = required("category").to_lowercase();
    let condition = required("condition");
    if !sku.is_empty() && !sku.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        fail("sku", format!("{sku:?}: only letters, digits, - and _"));
    }
    let price_minor = match parse_price(cell("price")) {
        Ok(minor) => minor,
        Err(message) => {
            fail("price", message);
            0
        }
    };
    let mut measurements = Map::new();
    for name in MEASUREMENT_COLUMNS {
        let value = cell(name);
        if value.is_empty() {
            continue;
        }
        match value.trim_end_matches("cm").trim().parse::<f64>() {
            Ok(cm) if cm.is_finite() && cm > 0.0 && cm < 500.0 => {
                measurements
                    .insert((*name).into(), serde_json::Number::from_f64(cm).map_or(Value::Null, Value::Number));
            }
            _ => fail(name, format!("{value:?} is not a measurement in cm (write 52 or 52.5)")),
        }
    }
    let status = match cell("status").to_lowercase().as_str() {
        "" | "available" => ItemStatus::Available,
        "sold" => ItemStatus::Sold,
        "reserved" => {
            fail("status", "reserved is set by a customer's hold, not by import (use available or sold)".into());
            ItemStatus::Available
        }
        other => {
            fail("status", format!("unknown status {other:?} (use available or sold)"));
            ItemStatus::Available
        }
    };
    let currency = optional("currency").unwrap_or_else(|| default_currency.to_owned()).to_uppercase();
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
        fail("currency", format!("{currency:?} is not a 3-letter currency code (like USD)"));
    }
    let image_url = optional("image_url");
    if let Some(url) = &image_url
        && url::Url::parse(url).map(|u| !matches!(u.scheme(), "http" | "https")).unwrap_or(true)
    {
        fail("image_url", format!("{url:?} is not an http(s) URL"));
    }
    let dropped_at = match optional("dropped_at") {
        None => None,
        Some(text) => match parse_date(&text) {
            Some(at) => Some(at),
            None => {
                fail("dropped_at", format!("{text:?} is not a date (write 2026-11-20 or 2026-11-20T18:00:00Z)"));
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ItemRow {
        row,
        sku,
        title,
        brand: optional("brand"),
        category,
        tag_size: optional("tag_size"),
        fits_like: optional("fits_like"),
        measurements,
        condition,
        flaws: optional("flaws"),
        price_minor,
        currency,
        status,
        image_url,
        dropped_at,
    })
}

/// "85", "85.5", "85.50", "$85", "1,250.00" → minor units; zero, negative or malformed prices are refused.
pub fn parse_price(text: &str) -> Result<i64, String> {
    let refuse = || format!("{text:?} is not a price (write 85 or 85.50)");
    let digits = text.trim().trim_start_matches(['$', '€', '£']).replace(',', "");
    let (whole, cents) = match digits.split_once('.') {
        Some((whole, cents)) if (1..=2).contains(&cents.len()) => (whole, format!("{cents:0<2}")),
        Some(_) => return Err(refuse()),
        None => (digits.as_str(), "00".to_owned()),
    };
    if whole.is_empty() || !whole.chars().all(|c| c.is_ascii_digit()) || !cents.chars().all(|c| c.is_ascii_digit()) {
        return Err(refuse());
    }
    let minor = whole.parse::<i64>().map_err(|_| refuse())?.checked_mul(100).ok_or_else(refuse)?
        + cents.parse::<i64>().map_err(|_| refuse())?;
    if minor <= 0 {
        return Err(format!("{text:?}: a price must be more than 0"));
    }
    Ok(minor)
}

fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).map(|d| d.with_timezone(&Utc)).ok().or_else(|| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(12, 0, 0)).map(|d| d.and_utc())
    })
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub inserted: Vec<String>,
    pub updated: Vec<String>,
    /// SKUs whose file status was not applied because a customer holds the item right now.
    pub kept_on_hold: Vec<String>,
}

/// Upserts every row by SKU. Run it in a transaction (rolled back for a dry run).
pub async fn import(db: &impl ConnectionTrait, rows: Vec<ItemRow>, now: DateTime<Utc>) -> Result<ImportReport, DbErr> {
    let mut report = ImportReport::default();
    // The items the file updates, read a thousand SKUs at a time rather than one row at a time (chunks
    // keep each query well under the databases' limits on bound parameters).
    let mut known: HashMap<String, items::Model> = HashMap::new();
    for chunk in rows.chunks(1_000) {
        let found =
            items::Entity::find().filter(items::Column::Sku.is_in(chunk.iter().map(|r| r.sku.clone()))).all(db).await?;
        known.extend(found.into_iter().map(|item| (item.sku.clone(), item)));
    }
    for row in rows {
        let existing = known.remove(&row.sku);
        let mut model = match &existing {
            Some(item) => items::ActiveModel::from(item.clone()),
            None => items::ActiveModel {
                sku: Set(row.sku.clone()),
                created_at: Set(now),
                dropped_at: Set(Some(row.dropped_at.unwrap_or(now))),
                ..Default::default()
            },
        };
        model.title = Set(row.title);
        model.brand = Set(row.brand);
        model.category = Set(row.category);
        model.tag_size = Set(row.tag_size);
        model.fits_like_size = Set(row.fits_like);
        model.measurements = Set(Value::Object(row.measurements));
        model.condition = Set(row.condition);
        model.flaws = Set(row.flaws);
        model.price_minor = Set(row.price_minor);
        model.currency = Set(row.currency);
        model.image_url = Set(row.image_url);
        if let Some(at) = row.dropped_at {
            model.dropped_at = Set(Some(at));
        }
        model.updated_at = Set(now);
        match &existing {
            // A held item stays held: the customer was promised it until the hold ends.
            Some(item) if item.status == ItemStatus::Reserved => {
                if row.status != ItemStatus::Reserved {
                    report.kept_on_hold.push(row.sku.clone());
                }
            }
            _ => model.status = Set(row.status),
        }
        match existing {
            Some(_) => {
                model.update(db).await?;
                report.updated.push(row.sku);
            }
            None => {
                model.insert(db).await?;
                report.inserted.push(row.sku);
            }
        }
    }
    Ok(report)
}

/// Why the inventory could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    #[error("writing the file: {0}")]
    Csv(#[from] csv::Error),
    #[error("writing the file: {0}")]
    Io(#[from] std::io::Error),
}

/// Every item, in the import file's shape, SKU order.
pub async fn export(db: &impl ConnectionTrait, output: impl Write) -> Result<usize, ExportError> {
    let mut writer = csv::Writer::from_writer(output);
    let mut header: Vec<&str> = REQUIRED_COLUMNS.to_vec();
    header.extend(OPTIONAL_COLUMNS);
    header.extend(MEASUREMENT_COLUMNS);
    writer.write_record(&header)?;
    let all = items::Entity::find().order_by_asc(items::Column::Sku).all(db).await?;
    for item in &all {
        let mut record: Vec<String> = vec![
            item.sku.clone(),
            item.title.clone(),
            item.category.clone(),
            item.condition.clone(),
            super::price(item.price_minor, ""),
            item.brand.clone().unwrap_or_default(),
            item.tag_size.clone().unwrap_or_default(),
            item.fits_like_size.clone().unwrap_or_default(),
            item.flaws.clone().unwrap_or_default(),
            item.currency.clone(),
            // A hold is not a file status: a held item is exported as available (it is, to the file).
            status_name(if item.status == ItemStatus::Sold { ItemStatus::Sold } else { ItemStatus::Available }),
            item.image_url.clone().unwrap_or_default(),
            item.dropped_at.map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default(),
        ];
        for name in MEASUREMENT_COLUMNS {
            record.push(super::fit::measurement(item, name).map(super::fit::trim_number).unwrap_or_default());
        }
        writer.write_record(&record)?;
    }
    writer.flush()?;
    Ok(all.len())
}

/// Items for staff, newest drop first, of one status when given.
pub async fn list(db: &impl ConnectionTrait, status: Option<ItemStatus>) -> Result<Vec<items::Model>, DbErr> {
    let mut query = items::Entity::find().order_by_desc(items::Column::DroppedAt).order_by_asc(items::Column::Sku);
    if let Some(status) = status {
        query = query.filter(items::Column::Status.eq(status));
    }
    query.all(db).await
}

/// Why staff could not set an item's status.
#[derive(Debug, thiserror::Error)]
pub enum SetStatusError {
    #[error("no item {0}")]
    NotFound(String),
    #[error("reserved is set by a customer's hold; use available or sold")]
    Reserved,
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

/// Sets an item available or sold by hand. A customer's hold on it ends (they are not sold an item staff
/// took off sale); made available, the next customer on its waitlist is the one to tell. Run it in a
/// transaction with whatever tells them.
pub async fn set_status(
    db: &impl ConnectionTrait,
    sku: &str,
    status: ItemStatus,
    now: DateTime<Utc>,
) -> Result<(items::Model, Option<Freed>), SetStatusError> {
    if status == ItemStatus::Reserved {
        return Err(SetStatusError::Reserved);
    }
    let sku = sku.trim().to_uppercase();
    let item = super::item_by_sku(db, &sku).await?.ok_or_else(|| SetStatusError::NotFound(sku.clone()))?;
    let hold = holds::active_hold(db, item.id).await?;
    let freed = match status {
        ItemStatus::Sold => {
            // Taken off sale: a hold on it ends, and nobody on the waitlist is told it is free.
            if let Some(hold) = hold {
                holds::release_without_freeing(db, &hold, now).await?;
            }
            let mut update: items::ActiveModel = item.clone().into();
            update.status = Set(ItemStatus::Sold);
            update.updated_at = Set(now);
            update.update(db).await?;
            None
        }
        _ => match hold {
            Some(hold) => holds::end_hold(db, &hold, now).await?,
            // No hold: a sold piece (or one left reserved without a hold) goes back on sale.
            None => holds::free_item(db, item.id, &[ItemStatus::Sold, ItemStatus::Reserved], now).await?,
        },
    };
    let item = super::item_by_sku(db, &sku).await?.ok_or(SetStatusError::NotFound(sku))?;
    Ok((item, freed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "sku,title,category,condition,price,tag_size,pit_to_pit,status";

    fn parse(body: &str) -> Result<Vec<ItemRow>, Vec<RowError>> {
        parse_csv(format!("{HEADER}\n{body}").as_bytes(), "USD")
    }

    #[test]
    fn good_rows_are_read_with_their_measurements() {
        let rows = parse("jkt-1,Carhartt jacket,Jacket,great,85.5,L,52,\nTEE-2,Tee,tee,good,$40,M,,sold\n").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].sku.as_str(), rows[0].category.as_str()), ("JKT-1", "jacket"));
        assert_eq!(rows[0].price_minor, 8_550);
        assert_eq!(rows[0].measurements.get("pit_to_pit").and_then(Value::as_f64), Some(52.0));
        assert_eq!((rows[1].price_minor, rows[1].status), (4_000, ItemStatus::Sold));
        assert!(rows[1].measurements.is_empty());
        assert_eq!(rows[1].row, 3, "the header is row 1");
    }

    #[test]
    fn each_bad_row_is_reported_with_its_row_and_column() {
        let errors = parse(
            "JKT-1,Good one,jacket,great,85,L,52,\n\
             JKT-2,Bad price,jacket,great,eighty,L,52,\n\
             JKT-1,Same SKU again,jacket,great,20,L,52,\n\
             JKT-3,Wrong status,jacket,great,20,L,52,gone\n\
             JKT-4,Held by hand,jacket,great,20,L,52,reserved\n\
             JKT-5,Free,jacket,great,0,L,52,\n\
             JKT-6,Bad p2p,jacket,great,20,L,wide,\n\
             JKT-7,,jacket,great,20,L,50,\n",
        )
        .unwrap_err();
        let said: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let expect = [
            "row 3, column price: \"eighty\" is not a price (write 85 or 85.50)",
            "row 4, column sku: JKT-1 is already on row 2: each SKU once",
            "row 5, column status: unknown status \"gone\" (use available or sold)",
            "row 6, column status: reserved is set by a customer's hold, not by import (use available or sold)",
            "row 7, column price: \"0\": a price must be more than 0",
            "row 8, column pit_to_pit: \"wide\" is not a measurement in cm (write 52 or 52.5)",
            "row 9, column title: must not be empty",
        ];
        assert_eq!(said, expect);
    }

    #[test]
    fn a_missing_or_unknown_column_is_reported_on_the_header() {
        let errors =
            parse_csv("sku,title,category,condition,colour\nA-1,T,tee,ok,red\n".as_bytes(), "USD").unwrap_err();
        let said: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(said[0], "row 1, column price: missing column (required)");
        assert!(said[1].starts_with("row 1, column colour: unknown column (known: sku, title"), "{}", said[1]);
        assert_eq!(said.len(), 2);
    }

    #[test]
    fn prices_are_read_exactly() {
        assert_eq!(parse_price("85"), Ok(8_500));
        assert_eq!(parse_price("85.5"), Ok(8_550));
        assert_eq!(parse_price("$1,250.05"), Ok(125_005));
        for bad in ["", "85.505", "-5", "1e3", "12.", "abc"] {
            assert!(parse_price(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_example_inventory_is_valid() {
        let file = std::fs::File::open(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/inventory.csv")).unwrap();
        let rows = parse_csv(file, "USD").expect("examples/inventory.csv is valid");
        assert!(rows.len() >= 30, "{} items", rows.len());
        for category in ["jacket", "denim", "tee", "sneakers"] {
            assert!(rows.iter().filter(|r| r.category == category).count() >= 4, "{category}");
        }
        assert!(
            rows.iter()
                .all(|r| !r.measurements.is_empty() || r.sku == "JKT-007" || r.sku == "TEE-005" || r.sku == "SNK-005")
        );
    }
}
