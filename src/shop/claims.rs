//! Which order claims a piece: one live order line per piece (the partial unique index on
//! `order_items.active`). Its own module because holds, inventory and orders all ask it, and orders also
//! use holds: here, neither has to import the other to ask.

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use crate::store::entities::order_items;
use crate::store::entities::orders::{self, OrderStatus};

/// The order that claims a piece (pending, paid, shipped or delivered), if any.
pub async fn order_of_item(db: &impl ConnectionTrait, item_id: i64) -> Result<Option<orders::Model>, DbErr> {
    let line = order_items::Entity::find()
        .filter(order_items::Column::ItemId.eq(item_id))
        .filter(order_items::Column::Active.eq(true))
        .find_also_related(orders::Entity)
        .one(db)
        .await?;
    Ok(line.and_then(|(_, order)| order))
}

/// The pending (unpaid) order that claims a piece, if any: to other customers the piece is reserved.
pub async fn pending_order_of_item(db: &impl ConnectionTrait, item_id: i64) -> Result<Option<orders::Model>, DbErr> {
    Ok(order_of_item(db, item_id).await?.filter(|o| o.status == OrderStatus::Pending))
}
