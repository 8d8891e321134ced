//! Holds on one-of-a-kind items. A hold is one conditional UPDATE (`… WHERE status = 'available'`), so
//! of any number of customers asking at once exactly one wins; the partial unique index on active
//! reservations backs it up. Holds lapse on their own (the sweeper), or the customer cancels; either way
//! the next customer on the item's waitlist is the one to tell.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::locks::{lock_customer, lock_item};
use super::window::ReplyWindow;
use crate::config::ShopSettings;
use crate::store::entities::items::{self, ItemStatus};
use crate::store::entities::reservations::{self, ReservationStatus};
use crate::store::entities::{users, waitlist};

/// The shop's rules for holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldRules {
    /// How long a hold lasts (never past the customer's reply window).
    pub hold_for: Duration,
    /// Pieces one customer may hold at once.
    pub max_holds: u64,
    /// How long a customer told from the waitlist has to answer before the customer whose hold lapsed
    /// may take the piece again.
    pub waitlist_claim: Duration,
}

impl HoldRules {
    pub fn of(shop: &ShopSettings) -> Self {
        HoldRules {
            hold_for: Duration::minutes(shop.hold_minutes as i64),
            max_holds: shop.max_holds_per_customer,
            waitlist_claim: Duration::minutes(shop.waitlist_claim_minutes as i64),
        }
    }
}

/// What "I'll take it" came to.
#[derive(Debug, Clone, PartialEq)]
pub enum HoldOutcome {
    /// The item is this customer's until `until`.
    Held {
        item: items::Model,
        until: DateTime<Utc>,
    },
    /// They held it already (asking twice does not extend it).
    AlreadyYours {
        item: items::Model,
        until: DateTime<Utc>,
    },
    /// Someone else holds it; this customer is on its waitlist and is told if it frees up.
    HeldByOther {
        item: items::Model,
    },
    /// It is in another customer's order that is not paid yet: reserved to everyone else. This customer
    /// is on its waitlist and is told if the order is cancelled.
    InPendingOrder {
        item: items::Model,
    },
    Sold {
        item: items::Model,
    },
    /// The customer already holds as many pieces as one customer may (`held`, soonest to lapse first).
    TooManyHolds {
        item: items::Model,
        held: Vec<items::Model>,
    },
    /// Their own hold on it lapsed and a customer from its waitlist was told it is free: that customer
    /// has until `until` to answer first. This customer is on the waitlist after them.
    WaitlistFirst {
        item: items::Model,
        until: DateTime<Utc>,
    },
}

/// Reserves `item` for `customer` by `rules`. Run it inside a transaction: the customer's lock, the
/// item's conditional update and the reservation row commit together.
pub async fn reserve(
    db: &impl ConnectionTrait,
    customer: &users::Model,
    item: &items::Model,
    now: DateTime<Utc>,
    rules: &HoldRules,
) -> Result<HoldOutcome, DbErr> {
    // One customer's holds are decided one at a time: ten at once must not all pass the limit.
    lock_customer(db, customer.id).await?;
    let held = holds_of(db, customer.id).await?;
    if let Some((hold, _)) = held.iter().find(|(hold, _)| hold.item_id == item.id) {
        let current = items::Entity::find_by_id(item.id).one(db).await?.unwrap_or_else(|| item.clone());
        return Ok(HoldOutcome::AlreadyYours { item: current, until: hold.expires_at });
    }
    if held.len() as u64 >= rules.max_holds {
        return Ok(HoldOutcome::TooManyHolds { item: item.clone(), held: held.into_iter().map(|(_, i)| i).collect() });
    }
    if let Some(until) = waitlist_has_first_claim(db, customer.id, item.id, now, rules.waitlist_claim).await? {
        join_waitlist(db, customer.id, item.id, now).await?;
        return Ok(HoldOutcome::WaitlistFirst { item: item.clone(), until });
    }
    let won = items::Entity::update_many()
        .col_expr(items::Column::Status, ItemStatus::Reserved.into())
        .col_expr(items::Column::UpdatedAt, Expr::value(now))
        .filter(items::Column::Id.eq(item.id))
        .filter(items::Column::Status.eq(ItemStatus::Available))
        .exec(db)
        .await?;
    if won.rows_affected == 1 {
        let until = ReplyWindow::of(customer).hold_ends_by(now, rules.hold_for);
        reservations::Entity::insert(reservations::ActiveModel {
            item_id: Set(item.id),
            user_id: Set(customer.id),
            expires_at: Set(until),
            status: Set(ReservationStatus::Active),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec_without_returning(db)
        .await?;
        let item = items::Model { status: ItemStatus::Reserved, updated_at: now, ..item.clone() };
        return Ok(HoldOutcome::Held { item, until });
    }
    let current = items::Entity::find_by_id(item.id).one(db).await?.unwrap_or_else(|| item.clone());
    match current.status {
        ItemStatus::Sold if super::claims::pending_order_of_item(db, item.id).await?.is_some() => {
            join_waitlist(db, customer.id, item.id, now).await?;
            Ok(HoldOutcome::InPendingOrder { item: current })
        }
        ItemStatus::Sold => Ok(HoldOutcome::Sold { item: current }),
        _ => {
            join_waitlist(db, customer.id, item.id, now).await?;
            Ok(HoldOutcome::HeldByOther { item: current })
        }
    }
}

/// When this customer's own hold on the piece ended and someone else from its waitlist was told it is
/// free within `claim` and has not written since: until when that customer goes first.
async fn waitlist_has_first_claim(
    db: &impl ConnectionTrait,
    user_id: i64,
    item_id: i64,
    now: DateTime<Utc>,
    claim: Duration,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    let had_it = reservations::Entity::find()
        .filter(reservations::Column::ItemId.eq(item_id))
        .filter(reservations::Column::UserId.eq(user_id))
        .filter(reservations::Column::Status.eq(ReservationStatus::Released))
        .count(db)
        .await?
        > 0;
    if !had_it {
        return Ok(None);
    }
    let told = waitlist::Entity::find()
        .filter(waitlist::Column::ItemId.eq(item_id))
        .filter(waitlist::Column::UserId.ne(user_id))
        .filter(waitlist::Column::NotifiedAt.gt(now - claim))
        .find_also_related(users::Entity)
        .all(db)
        .await?;
    Ok(told
        .into_iter()
        .filter_map(|(entry, user)| {
            let notified = entry.notified_at?;
            // Any message from them since they were told is their answer, whatever it said.
            let answered = user?.last_inbound_at.is_some_and(|wrote| wrote > notified);
            (!answered).then_some(notified + claim)
        })
        .max())
}

/// A customer asks about a piece that is sold: when it is in another customer's order that is not paid
/// yet, it is only reserved to them, and this customer joins its waitlist (told if the order is
/// cancelled). True when so.
pub async fn wait_for_unpaid(
    db: &impl ConnectionTrait,
    user_id: i64,
    item: &items::Model,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    if item.status != ItemStatus::Sold || super::claims::pending_order_of_item(db, item.id).await?.is_none() {
        return Ok(false);
    }
    join_waitlist(db, user_id, item.id, now).await?;
    Ok(true)
}

/// The active hold on an item, if any.
pub async fn active_hold(db: &impl ConnectionTrait, item_id: i64) -> Result<Option<reservations::Model>, DbErr> {
    reservations::Entity::find()
        .filter(reservations::Column::ItemId.eq(item_id))
        .filter(reservations::Column::Status.eq(ReservationStatus::Active))
        .one(db)
        .await
}

/// This customer's active holds with their items, soonest to lapse first.
pub async fn holds_of(
    db: &impl ConnectionTrait,
    user_id: i64,
) -> Result<Vec<(reservations::Model, items::Model)>, DbErr> {
    let rows = reservations::Entity::find()
        .filter(reservations::Column::UserId.eq(user_id))
        .filter(reservations::Column::Status.eq(ReservationStatus::Active))
        .order_by_asc(reservations::Column::ExpiresAt)
        .find_also_related(items::Entity)
        .all(db)
        .await?;
    Ok(rows.into_iter().filter_map(|(hold, item)| item.map(|item| (hold, item))).collect())
}

/// Puts a customer on an item's waitlist, keeping their place when they are on it already. Asking again
/// makes them someone to tell again: a customer told once who missed their chance is not skipped next
/// time.
pub async fn join_waitlist(
    db: &impl ConnectionTrait,
    user_id: i64,
    item_id: i64,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    waitlist::Entity::insert(waitlist::ActiveModel {
        item_id: Set(item_id),
        user_id: Set(user_id),
        created_at: Set(now),
        notified_at: Set(None),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([waitlist::Column::ItemId, waitlist::Column::UserId])
            .update_column(waitlist::Column::NotifiedAt)
            .to_owned(),
    )
    .exec_without_returning(db)
    .await
    .map(drop)
}

/// An item back on sale, and the customer to tell (the earliest on its waitlist who can still be
/// messaged: reply window open, not opted out); they are marked told.
#[derive(Debug, Clone, PartialEq)]
pub struct Freed {
    pub item: items::Model,
    pub tell: Option<users::Model>,
}

/// Puts an item back on sale if it is in one of the `from` statuses (one conditional update: a hold's end
/// frees only a still-reserved item, an order's cancellation only a sold one), and picks who on the
/// waitlist to tell. `None` when it was not in those statuses.
pub async fn free_item(
    db: &impl ConnectionTrait,
    item_id: i64,
    from: &[ItemStatus],
    now: DateTime<Utc>,
) -> Result<Option<Freed>, DbErr> {
    let freed = items::Entity::update_many()
        .col_expr(items::Column::Status, ItemStatus::Available.into())
        .col_expr(items::Column::UpdatedAt, Expr::value(now))
        .filter(items::Column::Id.eq(item_id))
        .filter(items::Column::Status.is_in(from.iter().copied()))
        .exec(db)
        .await?;
    if freed.rows_affected == 0 {
        return Ok(None);
    }
    let Some(item) = items::Entity::find_by_id(item_id).one(db).await? else { return Ok(None) };
    let next = waitlist::Entity::find()
        .filter(waitlist::Column::ItemId.eq(item_id))
        .filter(waitlist::Column::NotifiedAt.is_null())
        .find_also_related(users::Entity)
        .filter(users::Column::OptedOut.eq(false))
        .filter(ReplyWindow::is_open_condition(now))
        .order_by_asc(waitlist::Column::CreatedAt)
        .order_by_asc(waitlist::Column::Id)
        .limit(1)
        .one(db)
        .await?;
    let tell = match next {
        Some((entry, Some(user))) => {
            waitlist::Entity::update_many()
                .col_expr(waitlist::Column::NotifiedAt, Expr::value(now))
                .filter(waitlist::Column::Id.eq(entry.id))
                .exec(db)
                .await?;
            Some(user)
        }
        _ => None,
    };
    Ok(Some(Freed { item, tell }))
}

/// Ends one active hold (a lapse or a cancel) and frees its item; `None` when it was no longer active
/// (another sweeper, or the customer, got there first). Run it in a transaction with whatever tells the
/// waitlist.
pub async fn end_hold(
    db: &impl ConnectionTrait,
    hold: &reservations::Model,
    now: DateTime<Utc>,
) -> Result<Option<Freed>, DbErr> {
    lock_item(db, hold.item_id).await?;
    if !release_without_freeing(db, hold, now).await? {
        return Ok(None);
    }
    // Only a reserved item goes back on sale through a hold: one that was sold meanwhile stays sold.
    free_item(db, hold.item_id, &[ItemStatus::Reserved], now).await
}

/// Marks an active hold released, leaving its item as it is; false when it was no longer active.
pub async fn release_without_freeing(
    db: &impl ConnectionTrait,
    hold: &reservations::Model,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let ended = reservations::Entity::update_many()
        .col_expr(reservations::Column::Status, ReservationStatus::Released.into())
        .col_expr(reservations::Column::UpdatedAt, Expr::value(now))
        .filter(reservations::Column::Id.eq(hold.id))
        .filter(reservations::Column::Status.eq(ReservationStatus::Active))
        .exec(db)
        .await?;
    Ok(ended.rows_affected == 1)
}

/// "Cancel": releases this customer's active holds; returns each freed item and whom to tell.
pub async fn release_holds(db: &impl ConnectionTrait, user_id: i64, now: DateTime<Utc>) -> Result<Vec<Freed>, DbErr> {
    let mut released = Vec::new();
    for (hold, _) in holds_of(db, user_id).await? {
        if let Some(freed) = end_hold(db, &hold, now).await? {
            released.push(freed);
        }
    }
    Ok(released)
}

/// Active holds past their expiry, oldest first (for the sweeper).
pub async fn expired_holds(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<reservations::Model>, DbErr> {
    reservations::Entity::find()
        .filter(reservations::Column::Status.eq(ReservationStatus::Active))
        .filter(reservations::Column::ExpiresAt.lte(now))
        .order_by_asc(reservations::Column::ExpiresAt)
        .limit(limit)
        .all(db)
        .await
}
