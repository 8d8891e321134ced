//! Orders: a customer's held items become an order (`pending`, with a number they can quote); staff move
//! it along `pending → paid → shipped → delivered`, or to `returned` (the pieces go back on sale only when
//! staff say so) or `cancelled` from pending or paid (the pieces go back on sale). An unpaid order is
//! reminded once and expires. Lookups by a customer are always for that customer: another customer's
//! order is never found. A piece is in at most one order that claims it (`order_items.active`, enforced
//! by a partial unique index).

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

pub use super::claims::{order_of_item, pending_order_of_item};
use super::holds::{self, Freed};
use super::locks::{lock_customer, lock_item};
use super::window::ReplyWindow;
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

/// What an order charges for shipping: flat, or nothing once the items reach the free-shipping amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shipping {
    pub flat_minor: i64,
    pub free_over_minor: Option<i64>,
}

impl Shipping {
    pub fn of(shop: &crate::config::ShopSettings) -> Self {
        Shipping { flat_minor: shop.shipping_minor, free_over_minor: shop.free_shipping_over_minor }
    }

    /// Shipping for items adding up to `subtotal`.
    pub fn for_subtotal(&self, subtotal: i64) -> i64 {
        if self.free_over_minor.is_some_and(|over| subtotal >= over) { 0 } else { self.flat_minor }
    }
}

/// A new order and what is in it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    pub order: orders::Model,
    pub items: Vec<items::Model>,
}

/// Turns the customer's active holds into one pending order: the holds become `converted`, their items
/// `sold`. Only a hold this checkout converts sells its item, and a hold counts only while it has not
/// lapsed by the database's clock at this moment (not by a time taken before the turn began): a lapsed
/// hold is the sweeper's to free, and its piece may be someone else's by now. `None` when nothing is
/// held. Run it in a transaction.
pub async fn checkout(
    db: &impl ConnectionTrait,
    customer: &users::Model,
    conversation: Option<&str>,
    shipping: &Shipping,
) -> Result<Option<NewOrder>, DbErr> {
    lock_customer(db, customer.id).await?;
    let now = crate::store::database_now(db).await?;
    let mut taken = Vec::new();
    for (hold, item) in holds::holds_of(db, customer.id).await? {
        lock_item(db, item.id).await?;
        let converted = reservations::Entity::update_many()
            .col_expr(reservations::Column::Status, ReservationStatus::Converted.into())
            .col_expr(reservations::Column::UpdatedAt, Expr::value(now))
            .filter(reservations::Column::Id.eq(hold.id))
            .filter(reservations::Column::Status.eq(ReservationStatus::Active))
            .filter(reservations::Column::ExpiresAt.gt(now))
            .exec(db)
            .await?;
        if converted.rows_affected == 0 {
            continue; // lapsed (or released meanwhile): never sell what this customer no longer holds
        }
        let sold = items::Entity::update_many()
            .col_expr(items::Column::Status, ItemStatus::Sold.into())
            .col_expr(items::Column::UpdatedAt, Expr::value(now))
            .filter(items::Column::Id.eq(item.id))
            .filter(items::Column::Status.eq(ItemStatus::Reserved))
            .exec(db)
            .await?;
        if sold.rows_affected == 0 {
            // An active hold on a piece that is not reserved breaks the shop's own rule: stop, roll back.
            return Err(DbErr::Custom(format!(
                "{} was held by customer {} but is not reserved",
                item.sku, customer.id
            )));
        }
        taken.push(items::Model { status: ItemStatus::Sold, updated_at: now, ..item });
    }
    let Some(first) = taken.first() else { return Ok(None) };
    let subtotal: i64 = taken.iter().map(|i| i.price_minor).sum();
    let shipping_minor = shipping.for_subtotal(subtotal);
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
            Err(DbErr::RecordNotInserted) => {}
            other => break other?,
        }
    };
    for item in &taken {
        // The partial unique index refuses this line if another live order claims the piece.
        order_items::ActiveModel {
            order_id: Set(order.id),
            item_id: Set(item.id),
            price_minor: Set(item.price_minor),
            created_at: Set(now),
            active: Set(true),
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

/// One order by its number, for staff.
pub async fn find(db: &impl ConnectionTrait, order_number: &str) -> Result<Option<OrderView>, DbErr> {
    let number = order_number.trim().to_uppercase();
    let found = orders::Entity::find()
        .filter(orders::Column::OrderNumber.eq(&number))
        .find_also_related(users::Entity)
        .one(db)
        .await?;
    let Some((order, Some(customer))) = found else { return Ok(None) };
    let items = items_of(db, order.id).await?;
    Ok(Some(OrderView { order, customer, items }))
}

async fn items_of(db: &impl ConnectionTrait, order_id: i64) -> Result<Vec<items::Model>, DbErr> {
    let lines = order_items::Entity::find().filter(order_items::Column::OrderId.eq(order_id)).all(db).await?;
    let ids: Vec<i64> = lines.iter().map(|l| l.item_id).collect();
    items::Entity::find().filter(items::Column::Id.is_in(ids)).order_by_asc(items::Column::Id).all(db).await
}

/// Where an order ships: what a label needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Address {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    /// State, province or county.
    pub region: Option<String>,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code ("US").
    pub country: String,
}

impl Address {
    /// The address stored on an order, when it has one.
    pub fn of(order: &orders::Model) -> Option<Self> {
        Some(Address {
            name: order.ship_name.clone()?,
            line1: order.ship_line1.clone()?,
            line2: order.ship_line2.clone(),
            city: order.ship_city.clone()?,
            region: order.ship_region.clone(),
            postal_code: order.ship_postal_code.clone()?,
            country: order.ship_country.clone()?,
        })
    }

    /// The fields a label cannot do without that are blank.
    pub fn missing(&self) -> Vec<&'static str> {
        let required = [
            ("name", &self.name),
            ("line1", &self.line1),
            ("city", &self.city),
            ("postal_code", &self.postal_code),
            ("country", &self.country),
        ];
        required.into_iter().filter(|(_, value)| value.trim().is_empty()).map(|(name, _)| name).collect()
    }
}

/// Why an order's address could not be set.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    #[error("no order {0}")]
    NotFound(String),
    #[error("order {number} is {}: its address can change only until it ships", status_name(*status))]
    TooLate { number: String, status: OrderStatus },
    #[error("the address needs: {}", .0.join(", "))]
    Incomplete(Vec<&'static str>),
    #[error("the country must be a two-letter code like US, not {0:?}")]
    Country(String),
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

/// Sets (or changes) where an order ships; allowed while it is pending or paid. One conditional update
/// on the status read, so it cannot land on an order that shipped meanwhile.
pub async fn set_address(
    db: &impl ConnectionTrait,
    order: &orders::Model,
    address: &Address,
    now: DateTime<Utc>,
) -> Result<orders::Model, AddressError> {
    let missing = address.missing();
    if !missing.is_empty() {
        return Err(AddressError::Incomplete(missing));
    }
    let country = address.country.trim().to_uppercase();
    if country.len() != 2 || !country.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(AddressError::Country(address.country.clone()));
    }
    let too_late = || AddressError::TooLate { number: order.order_number.clone(), status: order.status };
    if !matches!(order.status, OrderStatus::Pending | OrderStatus::Paid) {
        return Err(too_late());
    }
    let clean = |text: &str| text.trim().to_owned();
    let optional = |text: &Option<String>| text.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
    let changed = orders::Entity::update_many()
        .col_expr(orders::Column::ShipName, Expr::value(clean(&address.name)))
        .col_expr(orders::Column::ShipLine1, Expr::value(clean(&address.line1)))
        .col_expr(orders::Column::ShipLine2, Expr::value(optional(&address.line2)))
        .col_expr(orders::Column::ShipCity, Expr::value(clean(&address.city)))
        .col_expr(orders::Column::ShipRegion, Expr::value(optional(&address.region)))
        .col_expr(orders::Column::ShipPostalCode, Expr::value(clean(&address.postal_code)))
        .col_expr(orders::Column::ShipCountry, Expr::value(country))
        .col_expr(orders::Column::UpdatedAt, Expr::value(now))
        .filter(orders::Column::Id.eq(order.id))
        .filter(orders::Column::Status.is_in([OrderStatus::Pending, OrderStatus::Paid]))
        .exec(db)
        .await?;
    let current = orders::Entity::find_by_id(order.id)
        .one(db)
        .await?
        .ok_or_else(|| AddressError::NotFound(order.order_number.clone()))?;
    if changed.rows_affected == 0 {
        return Err(AddressError::TooLate { number: current.order_number, status: current.status });
    }
    Ok(current)
}

/// Sets an unpaid order's shipping charge (an address abroad has its own rate), and its total with it.
/// `None` when the order is no longer pending (paid meanwhile: a person settles the difference).
pub async fn set_shipping(
    db: &impl ConnectionTrait,
    order: &orders::Model,
    shipping_minor: i64,
    now: DateTime<Utc>,
) -> Result<Option<orders::Model>, DbErr> {
    let changed = orders::Entity::update_many()
        .col_expr(orders::Column::ShippingMinor, Expr::value(shipping_minor))
        .col_expr(orders::Column::TotalMinor, Expr::value(order.subtotal_minor + shipping_minor))
        .col_expr(orders::Column::UpdatedAt, Expr::value(now))
        .filter(orders::Column::Id.eq(order.id))
        .filter(orders::Column::Status.eq(OrderStatus::Pending))
        .exec(db)
        .await?;
    if changed.rows_affected == 0 {
        return Ok(None);
    }
    orders::Entity::find_by_id(order.id).one(db).await
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
    /// Shipping an order that is not paid needs staff to say so.
    #[error("order {0} is not paid yet: ship it unpaid only on purpose")]
    Unpaid(String),
    /// Only a shipped (or delivered) order has a carrier and tracking number to correct.
    #[error("order {number} is {}: only a shipped order's tracking can be corrected", status_name(*status))]
    NotShipped { number: String, status: OrderStatus },
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

/// A staff move of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move<'a> {
    pub to: OrderStatus,
    /// Carrier and tracking number: shipped needs them.
    pub shipping: Option<(&'a str, &'a str)>,
    /// Ship a pending (unpaid) order on purpose.
    pub unpaid: bool,
    /// A return puts its pieces back on sale.
    pub restock: bool,
}

impl Move<'_> {
    pub fn to(to: OrderStatus) -> Self {
        Move { to, shipping: None, unpaid: false, restock: false }
    }
}

/// What changed about an order, so the customer can be told the right thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Staff moved it to its current status.
    Status,
    /// Staff corrected a shipped order's carrier or tracking number.
    Tracking,
    /// It was not paid in time and was cancelled.
    Expired,
}

/// An order after it moved, with the pieces that went back on sale (and whom on their waitlists to
/// tell).
#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    pub order: orders::Model,
    pub customer: users::Model,
    pub change: Change,
    pub freed: Vec<Freed>,
}

/// The moves an order can make: pending → paid, paid → shipped (pending → shipped only on purpose),
/// shipped → delivered, shipped/delivered → returned, pending/paid → cancelled.
fn allowed(from: OrderStatus, to: OrderStatus) -> bool {
    use OrderStatus::*;
    matches!(
        (from, to),
        (Pending, Paid)
            | (Pending | Paid, Shipped | Cancelled)
            | (Shipped, Delivered)
            | (Shipped | Delivered, Returned)
    )
}

async fn order_with_customer(
    db: &impl ConnectionTrait,
    order_number: &str,
) -> Result<(orders::Model, users::Model), StatusError> {
    let number = order_number.trim().to_uppercase();
    orders::Entity::find()
        .filter(orders::Column::OrderNumber.eq(&number))
        .find_also_related(users::Entity)
        .one(db)
        .await?
        .and_then(|(order, customer)| customer.map(|c| (order, c)))
        .ok_or(StatusError::NotFound(number))
}

/// Moves an order by staff's `step`. Cancelled and returned orders stop claiming their pieces; a
/// cancellation puts them back on sale, a return only with `restock`. Run it in a transaction with
/// whatever tells the customer.
pub async fn set_status(
    db: &impl ConnectionTrait,
    order_number: &str,
    step: Move<'_>,
    now: DateTime<Utc>,
) -> Result<Moved, StatusError> {
    let (order, customer) = order_with_customer(db, order_number).await?;
    if !allowed(order.status, step.to) {
        return Err(StatusError::NotAllowed { from: order.status, to: step.to });
    }
    if step.to == OrderStatus::Shipped && order.status == OrderStatus::Pending && !step.unpaid {
        return Err(StatusError::Unpaid(order.order_number));
    }
    let mut update = orders::ActiveModel { status: Set(step.to), updated_at: Set(now), ..Default::default() };
    match step.to {
        OrderStatus::Paid => update.paid_at = Set(Some(now)),
        OrderStatus::Shipped => {
            let (carrier, tracking) = tracking(step.shipping)?;
            update.carrier = Set(Some(carrier));
            update.tracking_number = Set(Some(tracking));
            update.shipped_at = Set(Some(now));
        }
        OrderStatus::Delivered => update.delivered_at = Set(Some(now)),
        OrderStatus::Returned => update.returned_at = Set(Some(now)),
        OrderStatus::Cancelled => update.cancelled_at = Set(Some(now)),
        OrderStatus::Pending => {}
    }
    let freed = apply(db, &order, update, step.to == OrderStatus::Cancelled || step.restock, now).await?;
    let order = reread(db, &order).await?;
    Ok(Moved { order, customer, change: Change::Status, freed })
}

fn tracking(shipping: Option<(&str, &str)>) -> Result<(String, String), StatusError> {
    shipping
        .map(|(c, t)| (c.trim().to_owned(), t.trim().to_owned()))
        .filter(|(c, t)| !c.is_empty() && !t.is_empty())
        .ok_or(StatusError::MissingShipping)
}

/// Writes `update` on the order, conditional on the status read (two staff moving one order at once
/// cannot both win); an order that stops claiming its pieces lets go of them, and with `free_pieces`
/// they go back on sale.
async fn apply(
    db: &impl ConnectionTrait,
    order: &orders::Model,
    update: orders::ActiveModel,
    free_pieces: bool,
    now: DateTime<Utc>,
) -> Result<Vec<Freed>, StatusError> {
    let to = *update.status.as_ref();
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
    if order.status.claims_items() && !to.claims_items() {
        order_items::Entity::update_many()
            .col_expr(order_items::Column::Active, Expr::value(false))
            .filter(order_items::Column::OrderId.eq(order.id))
            .exec(db)
            .await?;
        if free_pieces {
            for item in items_of(db, order.id).await? {
                if let Some(f) = holds::free_item(db, item.id, &[ItemStatus::Sold], now).await? {
                    freed.push(f);
                }
            }
        }
    }
    Ok(freed)
}

async fn reread(db: &impl ConnectionTrait, order: &orders::Model) -> Result<orders::Model, StatusError> {
    Ok(orders::Entity::find_by_id(order.id).one(db).await?.ok_or(DbErr::RecordNotFound(order.order_number.clone()))?)
}

/// Corrects a shipped (or delivered) order's carrier and tracking number.
pub async fn set_tracking(
    db: &impl ConnectionTrait,
    order_number: &str,
    carrier: &str,
    tracking_number: &str,
    now: DateTime<Utc>,
) -> Result<Moved, StatusError> {
    let (order, customer) = order_with_customer(db, order_number).await?;
    if !matches!(order.status, OrderStatus::Shipped | OrderStatus::Delivered) {
        return Err(StatusError::NotShipped { number: order.order_number, status: order.status });
    }
    let (carrier, tracking_number) = tracking(Some((carrier, tracking_number)))?;
    let update = orders::ActiveModel {
        status: Set(order.status),
        carrier: Set(Some(carrier)),
        tracking_number: Set(Some(tracking_number)),
        updated_at: Set(now),
        ..Default::default()
    };
    apply(db, &order, update, false, now).await?;
    let order = reread(db, &order).await?;
    Ok(Moved { order, customer, change: Change::Tracking, freed: Vec::new() })
}

/// Unpaid orders placed at least `after` ago whose customer has not been reminded yet and can be
/// written to now (reply window open, not opted out), oldest first.
pub async fn unpaid_to_remind(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    after: Duration,
    limit: u64,
) -> Result<Vec<(orders::Model, users::Model)>, DbErr> {
    let due = orders::Entity::find()
        .filter(orders::Column::Status.eq(OrderStatus::Pending))
        .filter(orders::Column::PaymentRemindedAt.is_null())
        .filter(orders::Column::CreatedAt.lte(now - after))
        .find_also_related(users::Entity)
        .filter(users::Column::OptedOut.eq(false))
        .filter(ReplyWindow::is_open_condition(now))
        .order_by_asc(orders::Column::CreatedAt)
        .limit(limit)
        .all(db)
        .await?;
    Ok(due.into_iter().filter_map(|(order, user)| Some((order, user?))).collect())
}

/// Marks an unpaid order reminded; false when it was reminded (or paid, or cancelled) meanwhile.
pub async fn mark_reminded(db: &impl ConnectionTrait, order_id: i64, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let marked = orders::Entity::update_many()
        .col_expr(orders::Column::PaymentRemindedAt, Expr::value(now))
        .filter(orders::Column::Id.eq(order_id))
        .filter(orders::Column::Status.eq(OrderStatus::Pending))
        .filter(orders::Column::PaymentRemindedAt.is_null())
        .exec(db)
        .await?;
    Ok(marked.rows_affected == 1)
}

/// Unpaid orders placed at least `after` ago, oldest first: due to expire.
pub async fn unpaid_to_expire(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    after: Duration,
    limit: u64,
) -> Result<Vec<orders::Model>, DbErr> {
    orders::Entity::find()
        .filter(orders::Column::Status.eq(OrderStatus::Pending))
        .filter(orders::Column::CreatedAt.lte(now - after))
        .order_by_asc(orders::Column::CreatedAt)
        .limit(limit)
        .all(db)
        .await
}

/// Cancels an order that was not paid in time: its pieces go back on sale. `None` when it is no longer
/// pending (paid or cancelled meanwhile). Run it in a transaction with whatever tells the customers.
pub async fn expire(
    db: &impl ConnectionTrait,
    order: &orders::Model,
    now: DateTime<Utc>,
) -> Result<Option<Moved>, DbErr> {
    let Some(customer) = users::Entity::find_by_id(order.user_id).one(db).await? else { return Ok(None) };
    let update = orders::ActiveModel {
        status: Set(OrderStatus::Cancelled),
        cancelled_at: Set(Some(now)),
        updated_at: Set(now),
        ..Default::default()
    };
    let pending = orders::Model { status: OrderStatus::Pending, ..order.clone() };
    let freed = match apply(db, &pending, update, true, now).await {
        Ok(freed) => freed,
        Err(StatusError::NotAllowed { .. }) => return Ok(None),
        Err(StatusError::Db(e)) => return Err(e),
        Err(other) => return Err(DbErr::Custom(other.to_string())),
    };
    let order =
        orders::Entity::find_by_id(order.id).one(db).await?.ok_or(DbErr::RecordNotFound(order.order_number.clone()))?;
    Ok(Some(Moved { order, customer, change: Change::Expired, freed }))
}
