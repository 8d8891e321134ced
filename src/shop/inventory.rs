//! The staff's inventory file: CSV import (every row validated first; an error names its row and column
//! and nothing is imported; upsert by SKU), export in the same shape, and status changes by hand. An
//! import creates pieces, updates what describes them and may mark them sold; it never moves a piece out
//! of `sold` or `reserved` (a day-old file must not put sold pieces back on sale), and every status it
//! changes is changed on condition of the status it read.

use std::collections::HashMap;
use std::io::{Read, Write};

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::{Map, Value};

use super::holds::{self, Freed};
use super::locks::lock_item;
use crate::store::entities::items::{self, ItemStatus};
use crate::store::entities::{orders, reservations, status_name, users};

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
/// Every column in the order of the example file (`examples/inventory.csv`), then the ones it leaves
/// out: the export's header.
pub const EXPORT_COLUMNS: &[&str] = &[
    "sku",
    "title",
    "brand",
    "category",
    "tag_size",
    "fits_like",
    "price",
    "condition",
    "flaws",
    "pit_to_pit",
    "length",
    "shoulders",
    "sleeve",
    "waist",
    "inseam",
    "rise",
    "insole",
    "status",
    "image_url",
    "dropped_at",
    "leg_opening",
    "currency",
];

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

/// The shop's money, as prices in the file may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money<'a> {
    /// The currency of rows that name none (ISO code).
    pub currency: &'a str,
    /// The symbol the shop writes before prices ("$").
    pub symbol: &'a str,
}

/// A whole file, read and valid.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedFile {
    pub rows: Vec<ItemRow>,
    /// The separator the file uses, when it is not a comma ("semicolon", "tab").
    pub separator: Option<&'static str>,
    /// Columns nothing reads, ignored (a `notes` column, a trailing empty one).
    pub ignored_columns: Vec<String>,
}

/// What spreadsheets write that is not UTF-8 text, and how to say so.
const NOT_UTF8: &str = "the file is not UTF-8 text: save it as \"CSV UTF-8 (Comma delimited)\" and import that";

/// Reads and validates a whole file. Either every row is good, or every problem found is returned.
pub fn parse_csv(mut input: impl Read, money: Money<'_>) -> Result<ParsedFile, Vec<RowError>> {
    let file_error = |row: u64, column: &str, message: String| vec![RowError { row, column: column.into(), message }];
    let mut bytes = Vec::new();
    if let Err(e) = input.read_to_end(&mut bytes) {
        return Err(file_error(1, "(file)", format!("cannot read the file: {e}")));
    }
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(file_error(1, "(file)", format!("{NOT_UTF8} (this one is UTF-16, \"Unicode text\")")));
    }
    let text = match std::str::from_utf8(&bytes) {
        Ok(text) => text.trim_start_matches('\u{feff}'),
        Err(e) => {
            let row = bytes[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count() as u64 + 1;
            return Err(file_error(row, "(file)", NOT_UTF8.into()));
        }
    };
    let (delimiter, separator) = separator_of(text.lines().next().unwrap_or(""));
    let mut reader =
        csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(true).delimiter(delimiter).from_reader(text.as_bytes());
    let header_error = |column: &str, message: String| RowError { row: 1, column: column.into(), message };
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_lowercase).collect(),
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
    let mut ignored_columns = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        if !known(h) {
            ignored_columns.push(if h.is_empty() { format!("(empty, column {})", i + 1) } else { h.clone() });
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
                let row = e.position().map_or(0, csv::Position::line);
                errors.push(RowError { row, column: "(row)".into(), message: e.to_string() });
                continue;
            }
        };
        let row = record.position().map_or(0, csv::Position::line);
        if record.iter().all(str::is_empty) {
            continue; // a blank line between rows
        }
        if record.len() < headers.len() {
            let missing: Vec<&str> = headers[record.len()..].iter().map(String::as_str).filter(|h| known(h)).collect();
            if !missing.is_empty() {
                errors.push(RowError {
                    row,
                    column: "(row)".into(),
                    message: format!(
                        "{} value(s) where the header has {}: missing {}",
                        record.len(),
                        headers.len(),
                        missing.join(", ")
                    ),
                });
                continue;
            }
        }
        let cells: HashMap<&str, &str> = headers.iter().map(String::as_str).zip(record.iter()).collect();
        match parse_row(row, &cells, money) {
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
    if errors.is_empty() { Ok(ParsedFile { rows, separator, ignored_columns }) } else { Err(errors) }
}

/// The separator of a file from its header: a comma, unless the header has none and has semicolons
/// (spreadsheets in countries that write a decimal comma) or tabs.
fn separator_of(header: &str) -> (u8, Option<&'static str>) {
    if header.contains(',') {
        (b',', None)
    } else if header.contains(';') {
        (b';', Some("semicolon"))
    } else if header.contains('\t') {
        (b'\t', Some("tab"))
    } else {
        (b',', None)
    }
}

fn parse_row(row: u64, cells: &HashMap<&str, &str>, money: Money<'_>) -> Result<ItemRow, Vec<RowError>> {
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
    let currency = optional("currency").unwrap_or_else(|| money.currency.to_owned()).to_uppercase();
    let price_minor = match parse_price(cell("price"), &currency, money) {
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
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
        fail("currency", format!("{currency:?} is not a 3-letter currency code (like USD)"));
    }
    let image_url = optional("image_url");
    if let Some(url) = &image_url
        && url::Url::parse(url).map_or(true, |u| !matches!(u.scheme(), "http" | "https"))
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

/// Currency symbols staff write before or after a price, and the currency each stands for.
const SYMBOLS: &[(&str, &str)] = &[("€", "EUR"), ("£", "GBP"), ("¥", "JPY"), ("$", "USD")];

/// A price cell in minor units, for an item in `currency`: "85", "85.5", "$85", "1,250.00", "85,50" (a
/// decimal comma, when that is the only way to read it), "1.250,00". A symbol or code of another currency
/// than the item's (`€80` in a USD shop) is refused, as are a number that reads two ways ("1.250"),
/// zero, negative and malformed prices.
pub fn parse_price(text: &str, currency: &str, money: Money<'_>) -> Result<i64, String> {
    let refuse = || format!("{text:?} is not a price (write 85 or 85.50)");
    let mut number = text.trim();
    let mut named = None;
    for (symbol, code) in SYMBOLS.iter().copied().chain([(money.symbol, money.currency)]) {
        if symbol.is_empty() {
            continue;
        }
        if let Some(rest) = number.strip_prefix(symbol).or_else(|| number.strip_suffix(symbol)) {
            // The shop's own symbol means the shop's currency, whatever else shares it.
            named = Some(if symbol == money.symbol { money.currency } else { code });
            number = rest.trim();
            break;
        }
    }
    if let Some((code, rest)) =
        number.split_once(' ').filter(|(c, _)| c.len() == 3 && c.chars().all(|c| c.is_ascii_alphabetic()))
    {
        named = Some(code);
        number = rest.trim();
    } else if let Some((rest, code)) =
        number.rsplit_once(' ').filter(|(_, c)| c.len() == 3 && c.chars().all(|c| c.is_ascii_alphabetic()))
    {
        named = Some(code);
        number = rest.trim();
    }
    if let Some(named) = named.filter(|named| !named.eq_ignore_ascii_case(currency)) {
        return Err(format!("{text:?} is in {}, but the piece is priced in {currency}", named.to_uppercase()));
    }
    let (whole, cents) = split_decimal(number).ok_or_else(|| {
        if number.rsplit(['.', ',']).next().is_some_and(|tail| tail.len() == 3) {
            format!("{text:?} reads two ways: write 1250 or 1250.00 (or 1.25)")
        } else {
            refuse()
        }
    })?;
    if whole.is_empty() || !whole.chars().all(|c| c.is_ascii_digit()) || !cents.chars().all(|c| c.is_ascii_digit()) {
        return Err(refuse());
    }
    let minor = whole.parse::<i64>().map_err(|_| refuse())?.checked_mul(100).ok_or_else(refuse)?
        + format!("{cents:0<2}").parse::<i64>().map_err(|_| refuse())?;
    if minor <= 0 {
        return Err(format!("{text:?}: a price must be more than 0"));
    }
    Ok(minor)
}

/// Splits a number written with thousands groups and a decimal point or comma into its whole digits
/// and its cents (0–2 digits). `None` when it can be read two ways ("1.250", "1,250" with a decimal
/// comma elsewhere) or is malformed.
fn split_decimal(number: &str) -> Option<(String, String)> {
    let last = number.rfind(['.', ',']);
    let Some(at) = last else { return Some((number.to_owned(), String::new())) };
    let (head, tail) = (&number[..at], &number[at + 1..]);
    let mark = number[at..].chars().next()?;
    let other = if mark == '.' { ',' } else { '.' };
    let groups_ok = |head: &str, sep: char| {
        let mut groups = head.split(sep);
        let first = groups.next().unwrap_or("");
        (1..=3).contains(&first.len()) && groups.all(|g| g.len() == 3)
    };
    match tail.len() {
        // "85.5", "85,50", "1,250.00", "1.250,00": the last mark is the decimal one.
        1 | 2 => {
            if head.contains(mark) {
                return None;
            }
            let whole = if head.contains(other) {
                groups_ok(head, other).then(|| head.replace(other, ""))?
            } else {
                head.to_owned()
            };
            Some((whole, tail.to_owned()))
        }
        // "1,250" (thousands) or "1,250,000"; "1.250" alone could be 1.25 or 1250.
        3 if mark == ',' && !head.contains('.') && groups_ok(number, ',') => {
            Some((number.replace(',', ""), String::new()))
        }
        3 if mark == '.' && head.contains('.') && groups_ok(number, '.') => {
            Some((number.replace('.', ""), String::new()))
        }
        _ => None,
    }
}

fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).map(|d| d.with_timezone(&Utc)).ok().or_else(|| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(12, 0, 0)).map(|d| d.and_utc())
    })
}

/// A status an import changes, or would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub row: u64,
    pub sku: String,
    pub from: ItemStatus,
    pub to: ItemStatus,
}

/// A row whose status the import does not apply (its other fields are still updated), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptStatus {
    pub row: u64,
    pub sku: String,
    pub status: ItemStatus,
    /// Why it stays: who holds it until when, or the order it was sold in.
    pub because: Kept,
}

/// Why a piece keeps its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    /// A customer holds it.
    Held { by: String, until: DateTime<Utc> },
    /// It is in an order that claims it.
    InOrder { order_number: String, order_status: orders::OrderStatus, at: DateTime<Utc> },
    /// Staff marked it sold (or it was sold outside an order), at this time.
    Sold { at: DateTime<Utc> },
}

/// A price an import changes, or would (minor units).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceChange {
    pub row: u64,
    pub sku: String,
    pub from: i64,
    pub to: i64,
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub inserted: Vec<String>,
    /// Existing pieces whose fields or status the file changed.
    pub changed: Vec<String>,
    /// Existing pieces the file says nothing new about.
    pub unchanged: Vec<String>,
    pub status_changes: Vec<StatusChange>,
    /// Existing pieces whose price the file changes (a console's preview lists them).
    pub price_changes: Vec<PriceChange>,
    /// Rows whose status is not applied.
    pub kept: Vec<KeptStatus>,
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
        let Some(item) = known.remove(&row.sku) else {
            let sku = row.sku.clone();
            let mut model = items::ActiveModel {
                sku: Set(sku.clone()),
                status: Set(row.status),
                created_at: Set(now),
                dropped_at: Set(Some(row.dropped_at.unwrap_or(now))),
                ..Default::default()
            };
            describe(&mut model, &row, now);
            model.insert(db).await?;
            report.inserted.push(sku);
            continue;
        };
        let mut changed = false;
        // What describes the piece is updated whatever its status; the status column is not touched here,
        // so a hold taken since the read above is never overwritten.
        if item.price_minor != row.price_minor {
            report.price_changes.push(PriceChange {
                row: row.row,
                sku: row.sku.clone(),
                from: item.price_minor,
                to: row.price_minor,
            });
        }
        if describes_differently(&item, &row) {
            let mut model = items::ActiveModel { id: sea_orm::ActiveValue::Unchanged(item.id), ..Default::default() };
            describe(&mut model, &row, now);
            model.update(db).await?;
            changed = true;
        }
        match (item.status, row.status) {
            (from, to) if from == to => {}
            (ItemStatus::Available, ItemStatus::Sold) => {
                if mark_sold_if_available(db, item.id, now).await? {
                    report.status_changes.push(StatusChange {
                        row: row.row,
                        sku: row.sku.clone(),
                        from: item.status,
                        to: row.status,
                    });
                    changed = true;
                } else {
                    // Held (or sold) since the read: the hold stands.
                    let current = items::Entity::find_by_id(item.id).one(db).await?.unwrap_or(item.clone());
                    report.kept.push(kept(db, &row, &current).await?);
                }
            }
            _ => report.kept.push(kept(db, &row, &item).await?),
        }
        if changed { report.changed.push(row.sku) } else { report.unchanged.push(row.sku) }
    }
    Ok(report)
}

/// Why a piece keeps its status against a row.
async fn kept(db: &impl ConnectionTrait, row: &ItemRow, item: &items::Model) -> Result<KeptStatus, DbErr> {
    let because = match item.status {
        ItemStatus::Reserved => match holds::active_hold(db, item.id).await? {
            Some(hold) => {
                let by = users::Entity::find_by_id(hold.user_id).one(db).await?;
                Kept::Held { by: by.map(|u| u.handle().to_owned()).unwrap_or_default(), until: hold.expires_at }
            }
            None => Kept::Sold { at: item.updated_at },
        },
        _ => match super::claims::order_of_item(db, item.id).await? {
            Some(order) => {
                Kept::InOrder { order_number: order.order_number, order_status: order.status, at: order.created_at }
            }
            None => Kept::Sold { at: item.updated_at },
        },
    };
    Ok(KeptStatus { row: row.row, sku: row.sku.clone(), status: item.status, because })
}

/// Sets the fields that describe a piece (everything but its status) from a row.
fn describe(model: &mut items::ActiveModel, row: &ItemRow, now: DateTime<Utc>) {
    model.title = Set(row.title.clone());
    model.brand = Set(row.brand.clone());
    model.category = Set(row.category.clone());
    model.tag_size = Set(row.tag_size.clone());
    model.fits_like_size = Set(row.fits_like.clone());
    model.measurements = Set(Value::Object(row.measurements.clone()));
    model.condition = Set(row.condition.clone());
    model.flaws = Set(row.flaws.clone());
    model.price_minor = Set(row.price_minor);
    model.currency = Set(row.currency.clone());
    model.image_url = Set(row.image_url.clone());
    if let Some(at) = row.dropped_at {
        model.dropped_at = Set(Some(at));
    }
    model.updated_at = Set(now);
}

/// Whether a row says anything about a piece that differs from what is stored (its status aside).
fn describes_differently(item: &items::Model, row: &ItemRow) -> bool {
    let measurements_differ = match item.measurements.as_object() {
        Some(stored) => {
            stored.len() != row.measurements.len()
                || row
                    .measurements
                    .iter()
                    .any(|(name, value)| stored.get(name).and_then(Value::as_f64) != value.as_f64())
        }
        None => !row.measurements.is_empty(),
    };
    item.title != row.title
        || item.brand != row.brand
        || item.category != row.category
        || item.tag_size != row.tag_size
        || item.fits_like_size != row.fits_like
        || measurements_differ
        || item.condition != row.condition
        || item.flaws != row.flaws
        || item.price_minor != row.price_minor
        || item.currency != row.currency
        || item.image_url != row.image_url
        // The file keeps whole seconds.
        || row.dropped_at.is_some_and(|at| item.dropped_at.map(|d| d.timestamp()) != Some(at.timestamp()))
}

/// Takes an available piece off sale; false when it is not available any more.
async fn mark_sold_if_available(db: &impl ConnectionTrait, item_id: i64, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let sold = items::Entity::update_many()
        .col_expr(items::Column::Status, ItemStatus::Sold.into())
        .col_expr(items::Column::UpdatedAt, Expr::value(now))
        .filter(items::Column::Id.eq(item_id))
        .filter(items::Column::Status.eq(ItemStatus::Available))
        .exec(db)
        .await?;
    Ok(sold.rows_affected == 1)
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

/// Every item, in the import file's shape (the example file's column order), SKU order.
pub async fn export(db: &impl ConnectionTrait, output: impl Write) -> Result<usize, ExportError> {
    let mut writer = csv::Writer::from_writer(output);
    writer.write_record(EXPORT_COLUMNS)?;
    let all = items::Entity::find().order_by_asc(items::Column::Sku).all(db).await?;
    for item in &all {
        let record: Vec<String> = EXPORT_COLUMNS.iter().map(|column| export_cell(item, column)).collect();
        writer.write_record(&record)?;
    }
    writer.flush()?;
    Ok(all.len())
}

fn export_cell(item: &items::Model, column: &str) -> String {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    match column {
        "sku" => item.sku.clone(),
        "title" => item.title.clone(),
        "brand" => text(&item.brand),
        "category" => item.category.clone(),
        "tag_size" => text(&item.tag_size),
        "fits_like" => text(&item.fits_like_size),
        "price" => super::price(item.price_minor, ""),
        "condition" => item.condition.clone(),
        "flaws" => text(&item.flaws),
        // A hold is not a file status: a held item is exported as available (it is, to the file; an
        // import never takes a hold away).
        "status" => status_name(if item.status == ItemStatus::Sold { ItemStatus::Sold } else { ItemStatus::Available }),
        "image_url" => text(&item.image_url),
        "dropped_at" => {
            item.dropped_at.map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default()
        }
        "currency" => item.currency.clone(),
        measurement => super::fit::measurement(item, measurement).map(super::fit::trim_number).unwrap_or_default(),
    }
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
    /// Relisting a piece an order claims would sell it twice.
    #[error("{sku} is in order {order_number} ({}); cancel the order (or record its return) first", status_name(*order_status))]
    InOrder { sku: String, order_number: String, order_status: orders::OrderStatus },
    /// A customer holds it: it is not for sale to anyone else already, and goes back on sale when the
    /// hold ends.
    #[error("{sku} is on hold for @{by} until {until}; it goes back on sale by itself if they do not order it")]
    Held { sku: String, by: String, until: DateTime<Utc> },
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

/// A piece after staff set its status: when it went back on sale, whom on its waitlist to tell; when a
/// customer's hold on it ended, who held it.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusSet {
    pub item: items::Model,
    pub freed: Option<Freed>,
    pub hold_ended: Option<(reservations::Model, users::Model)>,
}

/// Sets an item available or sold by hand. Sold ends a customer's hold on it (they are told); available
/// relists a sold piece unless an order claims it (the next customer on its waitlist is told). The
/// piece is locked first, so a checkout at the same moment either finishes before (and the relist is
/// refused) or after (and finds no hold). Run it in a transaction with whatever tells them.
pub async fn set_status(
    db: &impl ConnectionTrait,
    sku: &str,
    status: ItemStatus,
    now: DateTime<Utc>,
) -> Result<StatusSet, SetStatusError> {
    if status == ItemStatus::Reserved {
        return Err(SetStatusError::Reserved);
    }
    let sku = sku.trim().to_uppercase();
    let found = super::item_by_sku(db, &sku).await?.ok_or_else(|| SetStatusError::NotFound(sku.clone()))?;
    lock_item(db, found.id).await?;
    let item =
        items::Entity::find_by_id(found.id).one(db).await?.ok_or_else(|| SetStatusError::NotFound(sku.clone()))?;
    let hold = holds::active_hold(db, item.id).await?;
    let mut result = StatusSet { item: item.clone(), freed: None, hold_ended: None };
    match status {
        ItemStatus::Sold => {
            if let Some(hold) = hold
                && holds::release_without_freeing(db, &hold, now).await?
                && let Some(holder) = users::Entity::find_by_id(hold.user_id).one(db).await?
            {
                result.hold_ended = Some((hold, holder));
            }
            items::Entity::update_many()
                .col_expr(items::Column::Status, ItemStatus::Sold.into())
                .col_expr(items::Column::UpdatedAt, Expr::value(now))
                .filter(items::Column::Id.eq(item.id))
                .filter(items::Column::Status.eq(item.status))
                .exec(db)
                .await?;
        }
        _ => {
            if let Some(order) = super::claims::order_of_item(db, item.id).await? {
                return Err(SetStatusError::InOrder {
                    sku,
                    order_number: order.order_number,
                    order_status: order.status,
                });
            }
            if let Some(hold) = hold {
                let by = users::Entity::find_by_id(hold.user_id).one(db).await?;
                let by = by.map(|u| u.handle().to_owned()).unwrap_or_default();
                return Err(SetStatusError::Held { sku, by, until: hold.expires_at });
            }
            // A piece left reserved without a hold (nothing should leave one so) goes back on sale too.
            result.freed = holds::free_item(db, item.id, &[ItemStatus::Sold, ItemStatus::Reserved], now).await?;
        }
    }
    result.item = items::Entity::find_by_id(item.id).one(db).await?.ok_or(SetStatusError::NotFound(sku))?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "sku,title,category,condition,price,tag_size,pit_to_pit,status";
    const USD: Money<'static> = Money { currency: "USD", symbol: "$" };

    fn parse_file(text: &str) -> Result<ParsedFile, Vec<RowError>> {
        parse_csv(text.as_bytes(), USD)
    }

    fn parse(body: &str) -> Result<Vec<ItemRow>, Vec<RowError>> {
        parse_file(&format!("{HEADER}\n{body}")).map(|file| file.rows)
    }

    fn said(errors: Vec<RowError>) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
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
        let expect = [
            "row 3, column price: \"eighty\" is not a price (write 85 or 85.50)",
            "row 4, column sku: JKT-1 is already on row 2: each SKU once",
            "row 5, column status: unknown status \"gone\" (use available or sold)",
            "row 6, column status: reserved is set by a customer's hold, not by import (use available or sold)",
            "row 7, column price: \"0\": a price must be more than 0",
            "row 8, column pit_to_pit: \"wide\" is not a measurement in cm (write 52 or 52.5)",
            "row 9, column title: must not be empty",
        ];
        assert_eq!(said(errors), expect);
    }

    #[test]
    fn a_missing_column_is_reported_and_unknown_ones_are_ignored_with_a_warning() {
        let errors = parse_file("sku,title,category,condition,colour\nA-1,T,tee,ok,red\n").unwrap_err();
        assert_eq!(said(errors), ["row 1, column price: missing column (required)"]);
        let file = parse_file("sku,title,category,condition,price,notes,\nA-1,T,tee,ok,12,call kim,\n").unwrap();
        assert_eq!(file.rows.len(), 1);
        assert_eq!(file.ignored_columns, ["notes", "(empty, column 7)"]);
    }

    #[test]
    fn a_short_row_names_its_row_and_the_missing_columns() {
        let errors =
            parse_file("sku,title,category,condition,price,tag_size\nA-1,Tee,tee,ok,12,M\nA-2,Tee,tee\n").unwrap_err();
        assert_eq!(
            said(errors),
            ["row 3, column (row): 3 value(s) where the header has 6: missing condition, price, tag_size"]
        );
    }

    #[test]
    fn a_semicolon_file_is_read_as_such_with_its_decimal_commas() {
        let file =
            parse_file("sku;title;category;condition;price\nA-1;Tee;tee;ok;85,50\nA-2;Coat;jacket;ok;1.250,00\n")
                .unwrap();
        assert_eq!(file.separator, Some("semicolon"));
        let prices: Vec<i64> = file.rows.iter().map(|r| r.price_minor).collect();
        assert_eq!(prices, [8_550, 125_000]);
    }

    #[test]
    fn a_file_that_is_not_utf8_says_how_to_save_it() {
        let mut latin1 = b"sku,title,category,condition,price\nA-1,Caf".to_vec();
        latin1.extend([0xE9, b',', b't', b',', b'o', b',', b'5', b'\n']);
        let errors = parse_csv(latin1.as_slice(), USD).unwrap_err();
        assert_eq!(said(errors), [format!("row 2, column (file): {NOT_UTF8}")]);
        let utf16 = [0xFF, 0xFE, b's', 0];
        assert!(said(parse_csv(utf16.as_slice(), USD).unwrap_err())[0].contains("UTF-16"));
    }

    #[test]
    fn prices_are_read_exactly_and_only_one_way() {
        let price = |text: &str| parse_price(text, "USD", USD);
        assert_eq!(price("85"), Ok(8_500));
        assert_eq!(price("85.5"), Ok(8_550));
        assert_eq!(price("$1,250.05"), Ok(125_005));
        assert_eq!(price("85,50"), Ok(8_550), "a decimal comma");
        assert_eq!(price("85,5"), Ok(8_550));
        assert_eq!(price("1.250,00"), Ok(125_000));
        assert_eq!(price("1,250"), Ok(125_000), "three digits after a comma are thousands");
        assert_eq!(price("85 USD"), Ok(8_500));
        assert_eq!(price("1.250"), Err("\"1.250\" reads two ways: write 1250 or 1250.00 (or 1.25)".into()));
        assert_eq!(price("€80"), Err("\"€80\" is in EUR, but the piece is priced in USD".into()));
        assert_eq!(price("80 GBP"), Err("\"80 GBP\" is in GBP, but the piece is priced in USD".into()));
        assert_eq!(parse_price("€80", "EUR", USD), Ok(8_000), "a row in euros may say so");
        for bad in ["", "85.505", "-5", "1e3", "12.", "abc", "1,2,3"] {
            assert!(price(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_example_inventory_is_valid_and_the_export_keeps_its_column_order() {
        let file = std::fs::File::open(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/inventory.csv")).unwrap();
        let rows = parse_csv(file, USD).expect("examples/inventory.csv is valid").rows;
        assert!(rows.len() >= 30, "{} items", rows.len());
        for category in ["jacket", "denim", "tee", "sneakers"] {
            assert!(rows.iter().filter(|r| r.category == category).count() >= 4, "{category}");
        }
        assert!(
            rows.iter()
                .all(|r| !r.measurements.is_empty() || r.sku == "JKT-007" || r.sku == "TEE-005" || r.sku == "SNK-005")
        );
        let example_header: Vec<&str> = DEMO_INVENTORY.lines().next().unwrap().split(',').collect();
        assert_eq!(&EXPORT_COLUMNS[..example_header.len()], example_header.as_slice());
        let every: Vec<&str> =
            REQUIRED_COLUMNS.iter().chain(OPTIONAL_COLUMNS).chain(MEASUREMENT_COLUMNS).copied().collect();
        assert_eq!(EXPORT_COLUMNS.len(), every.len());
        assert!(every.iter().all(|c| EXPORT_COLUMNS.contains(c)));
    }
}
