//! Finding items: by SKU, by words of the title or brand, by size and category, and the newest drops.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr, ExprTrait, Func};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::fit::{Measured, SizeChart, readable};
use crate::store::entities::items::{self, ItemStatus};

/// An item by its SKU. SKUs are kept in upper case, so customers may write them in any case.
pub async fn item_by_sku(db: &impl ConnectionTrait, sku: &str) -> Result<Option<items::Model>, DbErr> {
    items::Entity::find().filter(items::Column::Sku.eq(sku.trim().to_uppercase())).one(db).await
}

/// What a customer (or staff) is looking for. Every field given must match.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// Words that must all appear in the title or the brand (case-insensitive).
    pub words: Vec<String>,
    /// The tag size or the fits-like size, e.g. "M".
    pub size: Option<String>,
    pub category: Option<String>,
    /// Reserved and sold items too (listed after the available ones).
    pub include_unavailable: bool,
}

impl Search {
    fn is_empty(&self) -> bool {
        self.words.is_empty() && self.size.is_none() && self.category.is_none()
    }
}

fn lower_like(column: items::Column, needle: &str) -> sea_orm::sea_query::SimpleExpr {
    let pattern = format!("%{}%", needle.to_lowercase().replace(['%', '_'], ""));
    Expr::expr(Func::lower(Expr::col(column))).like(pattern)
}

/// How many candidates a size search looks through: sizes are matched in code, against the tag and the
/// fits-like size (staff's, or computed from the measurements with the chart).
const SIZE_SCAN: u64 = 500;

/// Items matching `search`, available first, newest first. An empty search finds nothing.
pub async fn search(
    db: &impl ConnectionTrait,
    chart: &SizeChart,
    search: &Search,
    limit: u64,
) -> Result<Vec<items::Model>, DbErr> {
    if search.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = items::Entity::find();
    for word in &search.words {
        query = query.filter(
            Condition::any().add(lower_like(items::Column::Title, word)).add(lower_like(items::Column::Brand, word)),
        );
    }
    if let Some(category) = &search.category {
        query = query.filter(items::Column::Category.eq(category.to_lowercase()));
    }
    if !search.include_unavailable {
        query = query.filter(items::Column::Status.eq(ItemStatus::Available));
    }
    let scan = if search.size.is_some() { SIZE_SCAN } else { limit };
    let mut found =
        query.order_by_desc(items::Column::DroppedAt).order_by_asc(items::Column::Id).limit(scan).all(db).await?;
    if let Some(size) = &search.size {
        found.retain(|item| fits_size(chart, item, size));
        found.truncate(limit as usize);
    }
    found.sort_by_key(|item| item.status != ItemStatus::Available);
    Ok(found)
}

/// The one item a ranking names clearly: the only one found, or one scoring above every other.
pub fn clear_best(ranked: &[Ranked]) -> Option<&items::Model> {
    match ranked {
        [only] => Some(&only.item),
        [best, next, ..] if best.score > next.score => Some(&best.item),
        _ => None,
    }
}

/// How many items a ranked search looks through: a thrift shop's stock, scored in code.
const RANK_SCAN: u64 = 2_000;

/// An item and how well it matches the customer's words.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub score: u32,
    pub item: items::Model,
}

/// Items scored by the customer's `words` (already free of filler and with staff's synonyms applied)
/// against each item's title, brand and category: a word found as it is scores 3, with one typo (words of
/// six letters or more; two from nine) or as the start of a longer word ("levi" in "levis") 2, and an item of `category` 1 more.
/// Best first, available before unavailable at the same score; items matching no word are left out.
pub async fn rank(
    db: &impl ConnectionTrait,
    words: &[String],
    category: Option<&str>,
    include_unavailable: bool,
) -> Result<Vec<Ranked>, DbErr> {
    if words.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = items::Entity::find();
    if !include_unavailable {
        query = query.filter(items::Column::Status.eq(ItemStatus::Available));
    }
    let all =
        query.order_by_desc(items::Column::DroppedAt).order_by_asc(items::Column::Id).limit(RANK_SCAN).all(db).await?;
    let mut ranked: Vec<Ranked> = all
        .into_iter()
        .filter_map(|item| {
            let text = format!("{} {} {}", item.title, item.brand.as_deref().unwrap_or(""), item.category);
            let haystack = words_of(&text);
            let mut score: u32 = words.iter().map(|w| word_score(w, &haystack)).sum();
            if score == 0 {
                return None;
            }
            if category.is_some_and(|c| c.eq_ignore_ascii_case(&item.category)) {
                score += 1;
            }
            Some(Ranked { score, item })
        })
        .collect();
    ranked.sort_by_key(|r| (std::cmp::Reverse(r.score), r.item.status != ItemStatus::Available));
    Ok(ranked)
}

/// Lower case words of letters and digits, apostrophes dropped ("Levi's" → "levis").
fn words_of(text: &str) -> Vec<String> {
    text.to_lowercase()
        .chars()
        .filter(|c| !matches!(c, '\'' | '’'))
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// How well one customer word matches the words of an item.
fn word_score(word: &str, haystack: &[String]) -> u32 {
    let len = word.chars().count();
    haystack
        .iter()
        .map(|h| {
            if h == word {
                3
            } else if (len >= 4 && (h.starts_with(word) || (word.starts_with(h.as_str()) && h.chars().count() >= 4)))
                || (len >= 6 && strsim::damerau_levenshtein(word, h) <= if len >= 9 { 2 } else { 1 })
            {
                2
            } else {
                0
            }
        })
        .max()
        .unwrap_or(0)
}

/// Whether an item is tagged `size` or fits like it.
pub fn fits_size(chart: &SizeChart, item: &items::Model, size: &str) -> bool {
    let same = |label: &str| match chart.chart_for(&item.category) {
        Some(c) => c.find(label).is_some() && c.find(label) == c.find(size),
        None => label.eq_ignore_ascii_case(size),
    };
    item.tag_size.as_deref().is_some_and(same) || chart.fits_like(item).as_deref().is_some_and(same)
}

/// The newest available items: dropped within `days` of `now`, of `category` when given, newest first,
/// `limit` of them after skipping `offset` (for "more").
pub async fn new_drops(
    db: &impl ConnectionTrait,
    category: Option<&str>,
    days: i64,
    now: DateTime<Utc>,
    offset: u64,
    limit: u64,
) -> Result<Vec<items::Model>, DbErr> {
    let mut query = items::Entity::find()
        .filter(items::Column::Status.eq(ItemStatus::Available))
        .filter(items::Column::DroppedAt.gte(now - chrono::Duration::days(days)));
    if let Some(category) = category {
        query = query.filter(items::Column::Category.eq(category));
    }
    query
        .order_by_desc(items::Column::DroppedAt)
        .order_by_asc(items::Column::Id)
        .offset(offset)
        .limit(limit)
        .all(db)
        .await
}

/// An item's measurements, in the inventory file's column order (pit to pit before length), then any
/// others; empty when it has none yet.
pub fn measurements(item: &items::Model) -> Vec<Measured> {
    let Some(map) = item.measurements.as_object() else { return Vec::new() };
    let known = super::inventory::MEASUREMENT_COLUMNS;
    let mut named: Vec<(&String, &serde_json::Value)> = map.iter().collect();
    named.sort_by_key(|(name, _)| known.iter().position(|k| k == name).unwrap_or(known.len()));
    named
        .into_iter()
        .filter_map(|(name, value)| {
            let cm = value.as_f64().or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))?;
            Some(Measured { name: readable(name), cm })
        })
        .collect()
}
