//! Row locks that put concurrent changes to one piece, or to one customer's holds, in a line. Each is a
//! no-op `UPDATE` of the row, so it works the same on both engines: on PostgreSQL it takes the row's lock
//! until the transaction ends (and later reads in it see what the previous holder committed); on SQLite
//! it takes the database's write lock at once, so the transaction never reads a snapshot it cannot then
//! write from. Everything that changes a piece locks the item before its hold or order lines, so two
//! such transactions never wait on each other in a circle.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use crate::store::entities::{items, users};

/// Locks one piece's row until the transaction ends.
pub async fn lock_item(db: &impl ConnectionTrait, item_id: i64) -> Result<(), DbErr> {
    items::Entity::update_many()
        .col_expr(items::Column::UpdatedAt, Expr::col(items::Column::UpdatedAt))
        .filter(items::Column::Id.eq(item_id))
        .exec(db)
        .await
        .map(drop)
}

/// Locks one customer's row until the transaction ends: their holds and checkouts happen one at a time,
/// so a limit on how many they hold cannot be passed by asking for several at once.
/// It sets `updated_at` to itself and so changes nothing: a lock, not a write (`store::ledger` stays the
/// one module that writes `users`), kept here with [`lock_item`] because the order of the locks is the rule.
pub async fn lock_customer(db: &impl ConnectionTrait, user_id: i64) -> Result<(), DbErr> {
    users::Entity::update_many()
        .col_expr(users::Column::UpdatedAt, Expr::col(users::Column::UpdatedAt))
        .filter(users::Column::Id.eq(user_id))
        .exec(db)
        .await
        .map(drop)
}
