//! The shop's facts, straight from the database: items, new drops, a customer's own orders and holds.
//! The bot answers from these and nothing else (the LLM never decides a price or a stock level).

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::store::entities::items::{self, ItemStatus};
use crate::store::entities::orders;
use crate::store::entities::reservations::{self, ReservationStatus};

/// An item by its SKU. SKUs are kept in upper case, so customers may write them in any case.
pub async fn item_by_sku(db: &impl ConnectionTrait, sku: &str) -> Result<Option<items::Model>, DbErr> {
    items::Entity::find().filter(items::Column::Sku.eq(sku.to_uppercase())).one(db).await
}

/// Items by SKU, in the order given (unknown SKUs are left out).
pub async fn items_by_skus(db: &impl ConnectionTrait, skus: &[String]) -> Result<Vec<items::Model>, DbErr> {
    let found = items::Entity::find().filter(items::Column::Sku.is_in(skus.iter().cloned())).all(db).await?;
    Ok(skus.iter().filter_map(|sku| found.iter().find(|i| &i.sku == sku).cloned()).collect())
}

/// Items whose title contains every one of `words` (case-insensitive), available ones first, newest
/// first. Words are matched as given: callers pass the meaningful words of a customer's message.
pub async fn search_titles(
    db: &impl ConnectionTrait,
    words: &[String],
    limit: u64,
) -> Result<Vec<items::Model>, DbErr> {
    if words.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = items::Entity::find();
    for word in words {
        let pattern = format!("%{}%", word.to_lowercase().replace(['%', '_'], ""));
        query = query.filter(Expr::expr(Func::lower(Expr::col(items::Column::Title))).like(pattern));
    }
    let mut found = query.order_by_desc(items::Column::DroppedAt).limit(limit).all(db).await?;
    found.sort_by_key(|item| item.status != ItemStatus::Available);
    Ok(found)
}

/// The newest available items: dropped within `days`, of `category` when given, newest first.
pub async fn new_drops(
    db: &impl ConnectionTrait,
    category: Option<&str>,
    days: i64,
    limit: u64,
) -> Result<Vec<items::Model>, DbErr> {
    let mut query = items::Entity::find()
        .filter(items::Column::Status.eq(ItemStatus::Available))
        .filter(items::Column::DroppedAt.gte(Utc::now() - chrono::Duration::days(days)));
    if let Some(category) = category {
        query = query.filter(items::Column::Category.eq(category));
    }
    query.order_by_desc(items::Column::DroppedAt).order_by_asc(items::Column::Id).limit(limit).all(db).await
}

/// One of this customer's orders by its number; another customer's order is never found.
pub async fn order_of_customer(
    db: &impl ConnectionTrait,
    user_id: i64,
    order_number: &str,
) -> Result<Option<orders::Model>, DbErr> {
    orders::Entity::find()
        .filter(orders::Column::UserId.eq(user_id))
        .filter(orders::Column::OrderNumber.eq(order_number.to_uppercase()))
        .one(db)
        .await
}

/// This customer's latest orders, newest first.
pub async fn latest_orders(db: &impl ConnectionTrait, user_id: i64, limit: u64) -> Result<Vec<orders::Model>, DbErr> {
    orders::Entity::find()
        .filter(orders::Column::UserId.eq(user_id))
        .order_by_desc(orders::Column::CreatedAt)
        .limit(limit)
        .all(db)
        .await
}

/// Releases this customer's active holds and puts the items back on sale; returns the items.
pub async fn release_holds(db: &impl ConnectionTrait, user_id: i64) -> Result<Vec<items::Model>, DbErr> {
    let holds = reservations::Entity::find()
        .filter(reservations::Column::UserId.eq(user_id))
        .filter(reservations::Column::Status.eq(ReservationStatus::Active))
        .all(db)
        .await?;
    let mut released = Vec::new();
    for hold in holds {
        reservations::Entity::update_many()
            .col_expr(reservations::Column::Status, ReservationStatus::Released.into())
            .col_expr(reservations::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(reservations::Column::Id.eq(hold.id))
            .filter(reservations::Column::Status.eq(ReservationStatus::Active))
            .exec(db)
            .await?;
        // Only a reserved item goes back on sale: a sold one stays sold.
        items::Entity::update_many()
            .col_expr(items::Column::Status, ItemStatus::Available.into())
            .col_expr(items::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(items::Column::Id.eq(hold.item_id))
            .filter(items::Column::Status.eq(ItemStatus::Reserved))
            .exec(db)
            .await?;
        if let Some(item) = items::Entity::find_by_id(hold.item_id).one(db).await? {
            released.push(item);
        }
    }
    Ok(released)
}

/// A price in minor units as customers read it: `$85` or `$85.50`.
pub fn price(minor: i64, symbol: &str) -> String {
    if minor % 100 == 0 {
        format!("{symbol}{}", minor / 100)
    } else {
        format!("{symbol}{}.{:02}", minor / 100, minor % 100)
    }
}

/// An item's measurements as one sentence, e.g. "Measures 58 cm pit to pit, 70 cm length."
pub fn measurements(item: &items::Model) -> String {
    let Some(map) = item.measurements.as_object().filter(|m| !m.is_empty()) else {
        return "No measurements listed yet: reply 3 and a human will measure it for you.".into();
    };
    let parts: Vec<String> = map
        .iter()
        .filter_map(|(name, value)| {
            value.as_f64().map(|cm| format!("{} cm {}", trim_number(cm), name.replace('_', " ")))
        })
        .collect();
    format!("Measures {}.", parts.join(", "))
}

fn trim_number(value: f64) -> String {
    if value.fract() == 0.0 { format!("{value:.0}") } else { format!("{value:.1}") }
}
