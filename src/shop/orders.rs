//! Orders: a customer's held items become an order (`pending`, with a number they can quote); staff move
//! it to paid, shipped (carrier and tracking) or cancelled (the items go back on sale). Lookups are always
//! for one customer: another customer's order is never found.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::holds::{self, Freed};
use crate::store::entities::items::{self, ItemStatus};
use crate::store::entities::orders::{self, OrderStatus};
use crate::store::entities::reservations::{self, ReservationStatus};
use crate::store::entities::{order_items, status_name, users};

/// Letters and digits that cannot be misread for one another (no 0/O, 1/I/L).
const ORDER_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

/// A new order number: `PH-` and six characters of [`ORDER_ALPHABET`] (about 900 million of them).
pub fn new_order_number() -> String {
    let random = uuid::Uuid::new_v4();
    let code: String =
        random.as_bytes()[..6].iter().map(|b| ORDER_ALPHABET[*b as usize % ORDER_ALPHABET.len()] as char).collect();
    format!("PH-{code}")
}

/// A new order and what is in it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    pub order: orders::Model,
    pub items: Vec<items::Model>,
}

/// Turns the customer's active holds into one pending order: the holds become `converted`, the items
/// `sold`. `None` when they hold nothing (or every hold lapsed this very moment). Run it in a transaction.
pub async fn checkout(
    db: &impl ConnectionTrait,
    customer: &users::Model,
    conversation: Option<&str>,
    shipping_minor: i64,
    now: DateTime<Utc>,
) -> Result<Option<NewOrder>, DbErr> {
    let mut taken = Vec::new();
    for (hold, item) in holds::holds_of(db, customer.id).await? {
        if hold.expires_at <= now {
            continue; // lapsed: the sweeper frees it and tells the waitlist
        }
        let converted = reservations::Entity::update_many()
            .col_expr(reservations::Column::Status, ReservationStatus::Converted.into())
            .col_expr(reservations::Column::UpdatedAt, Expr::value(now))
            .filter(reservations::Column::Id.eq(hold.id))
            .filter(reservations::Column::Status.eq(ReservationStatus::Active))
            .exec(db)
            .await?;
        let sold = items::Entity::update_many()
            .col_expr(items::Column::Status, ItemStatus::Sold.into())
            .col_expr(items::Column::UpdatedAt, Expr::value(now))
            .filter(items::Column::Id.eq(item.id))
            .filter(items::Column::Status.eq(ItemStatus::Reserved))
            .exec(db)
            .await?;
        if converted.rows_affected == 1 && sold.rows_affected == 1 {
            taken.push(items::Model { status: ItemStatus::Sold, ..item });
        }
    }
    let Some(first) = taken.first() else { return Ok(None) };
    let subtotal: i64 = taken.iter().map(|i| i.price_minor).sum();
    let currency = first.currency.clone();
    // A number already taken (one in a few hundred million) is skipped by ON CONFLICT and another drawn:
    // a failed INSERT would abort the whole transaction on PostgreSQL.
    let order = loop {
        let attempt = orders::Entity::insert(orders::ActiveModel {
            order_number: Set(new_order_number()),
            user_id: Set(customer.id),
            status: Set(OrderStatus::Pending),
            subtotal_minor: Set(subtotal),
            shipping_minor: Set(shipping_minor),
            total_minor: Set(subtotal + shipping_minor),
            currency: Set(currency.clone()),
            tiktok_conversation_id: Set(conversation.map(str::to_owned)),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .on_conflict(OnConflict::column(orders::Column::OrderNumber).do_nothing().to_owned())
        .exec_with_returning(db)
        .await;
        match attempt {
            Err(DbErr::RecordNotInserted) => continue,
            other => break other?,
        }
    };
    for item in &taken {
        order_items::ActiveModel {
            order_id: Set(order.id),
            item_id: Set(item.id),
            price_minor: Set(item.price_minor),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(db)
        .await?;
    }
    Ok(Some(NewOrder { order, items: taken }))
}

/// One of this customer's orders by its number; another customer's order is never found.
pub async fn order_of_customer(
    db: &impl ConnectionTrait,
    user_id: i64,
    order_number: &str,
) -> Result<Option<orders::Model>, DbErr> {
    orders::Entity::find()
        .filter(orders::Column::UserId.eq(user_id))
        .filter(orders::Column::OrderNumber.eq(order_number.trim().to_uppercase()))
        .one(db)
        .await
}

/// This customer's latest orders, newest first.
pub async fn latest_orders(db: &impl ConnectionTrait, user_id: i64, limit: u64) -> Result<Vec<orders::Model>, DbErr> {
    orders::Entity::find()
        .filter(orders::Column::UserId.eq(user_id))
        .order_by_desc(orders::Column::CreatedAt)
        .order_by_desc(orders::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// An order as staff see it: with its customer and items.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderView {
    pub order: orders::Model,
    pub customer: users::Model,
    pub items: Vec<items::Model>,
}

/// Orders for staff, newest first, of one status when given.
pub async fn list(db: &impl ConnectionTrait, status: Option<OrderStatus>) -> Result<Vec<OrderView>, DbErr> {
    let mut query = orders::Entity::find().order_by_desc(orders::Column::CreatedAt).order_by_desc(orders::Column::Id);
    if let Some(status) = status {
        query = query.filter(orders::Column::Status.eq(status));
    }
    let mut views = Vec::new();
    for (order, customer) in query.find_also_related(users::Entity).all(db).await? {
        let Some(customer) = customer else { continue };
        let items = items_of(db, order.id).await?;
        views.push(OrderView { order, customer, items });
    }
    Ok(views)
}

async fn items_of(db: &impl ConnectionTrait, order_id: i64) -> Result<Vec<items::Model>, DbErr> {
    let lines = order_items::Entity::find().filter(order_items::Column::OrderId.eq(order_id)).all(db).await?;
    let ids: Vec<i64> = lines.iter().map(|l| l.item_id).collect();
    items::Entity::find().filter(items::Column::Id.is_in(ids)).order_by_asc(items::Column::Id).all(db).await
}

/// Why an order could not be moved.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("no order {0}")]
    NotFound(String),
    /// The move is not one an order can make (e.g. shipped → paid).
    #[error("an order that is {} cannot become {}", status_name(*from), status_name(*to))]
    NotAllowed { from: OrderStatus, to: OrderStatus },
    #[error("shipped needs a carrier and a tracking number")]
    MissingShipping,
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

/// An order after staff moved it, with the items a cancellation put back on sale.
#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    pub order: orders::Model,
    pub customer: users::Model,
    pub freed: Vec<Freed>,
}

/// Moves an order: pending → paid, pending/paid → shipped (with carrier and tracking), pending/paid →
/// cancelled (its items go back on sale). Run it in a transaction with whatever tells the customer.
pub async fn set_status(
    db: &impl ConnectionTrait,
    order_number: &str,
    to: OrderStatus,
    shipping: Option<(&str, &str)>,
    now: DateTime<Utc>,
) -> Result<Moved, StatusError> {
    let number = order_number.trim().to_uppercase();
    let (order, customer) = orders::Entity::find()
        .filter(orders::Column::OrderNumber.eq(&number))
        .find_also_related(users::Entity)
        .one(db)
        .await?
        .and_then(|(order, customer)| customer.map(|c| (order, c)))
        .ok_or_else(|| StatusError::NotFound(number.clone()))?;
    use OrderStatus::*;
    let allowed =
        matches!((order.status, to), (Pending, Paid) | (Pending | Paid, Shipped) | (Pending | Paid, Cancelled));
    if !allowed {
        return Err(StatusError::NotAllowed { from: order.status, to });
    }
    let mut update: orders::ActiveModel = order.clone().into();
    update.status = Set(to);
    update.updated_at = Set(now);
    match to {
        Paid => update.paid_at = Set(Some(now)),
        Shipped => {
            let (carrier, tracking) = shipping
                .filter(|(c, t)| !c.trim().is_empty() && !t.trim().is_empty())
                .ok_or(StatusError::MissingShipping)?;
            update.carrier = Set(Some(carrier.trim().to_owned()));
            update.tracking_number = Set(Some(tracking.trim().to_owned()));
            update.shipped_at = Set(Some(now));
        }
        Cancelled => update.cancelled_at = Set(Some(now)),
        Pending => {}
    }
    // Conditional on the status read above, so two staff moving one order at once cannot both win.
    let result = orders::Entity::update_many()
        .set(update)
        .filter(orders::Column::Id.eq(order.id))
        .filter(orders::Column::Status.eq(order.status))
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        let now_is = orders::Entity::find_by_id(order.id).one(db).await?.map_or(order.status, |o| o.status);
        return Err(StatusError::NotAllowed { from: now_is, to });
    }
    let mut freed = Vec::new();
    if to == Cancelled {
        for item in items_of(db, order.id).await? {
            if let Some(f) = holds::free_item(db, item.id, &[ItemStatus::Sold], now).await? {
                freed.push(f);
            }
        }
    }
    let order = orders::Entity::find_by_id(order.id).one(db).await?.ok_or(DbErr::RecordNotFound(number))?;
    Ok(Moved { order, customer, freed })
}
