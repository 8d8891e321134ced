//! A customer's data on request, and how long what customers write is kept. `forget` takes a customer
//! out of the shop's records: their messages lose their text, their holds end (the waitlist is told by
//! the caller), their waitlist places go, their name, handle and phone go, and their orders keep what
//! accounting needs (number, amounts, status, dates) without the address. `forget_queued` does the same
//! for the jobs Redis still holds. `apply_retention` is the retention rule the sweeper applies. The rows of
//! messages, conversations and customers are erased by `store::ledger` (the one writer of those tables);
//! this module decides what forgetting means and does the rest (holds, waitlist, orders, Redis).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use super::holds::{self, Freed};
use crate::redis_pool::Redis;
use crate::store::entities::orders::{self, OrderStatus};
use crate::store::entities::{users, waitlist};
use crate::store::ledger;

/// What `forget` changed.
#[derive(Debug, Default)]
pub struct Forgotten {
    /// Messages whose text (and media) were removed.
    pub messages: u64,
    /// Holds ended: their items are back on sale, and the next customer waiting may be told.
    pub freed: Vec<Freed>,
    /// Waitlist places removed.
    pub waitlist: u64,
    /// Orders kept for accounting, without the address.
    pub orders: u64,
}

/// Why a customer cannot be forgotten now.
#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    #[error("no customer {0} (give the TikTok handle, e.g. @kim, or the TikTok user id)")]
    NotFound(String),
    /// Orders the shop still has to ship or be paid for need the customer's address and conversation.
    #[error(
        "{customer} has open orders ({}): ship or cancel them first, then forget the customer",
        .orders.join(", ")
    )]
    OpenOrders { customer: String, orders: Vec<String> },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Why a customer's queued jobs could not be deleted from Redis (nothing is forgotten in the database then).
#[derive(Debug, thiserror::Error)]
pub enum ForgetQueuedError {
    /// No connection to Redis (the pool's error says why).
    #[error(transparent)]
    Connect(anyhow::Error),
    #[error("Redis {command} on the job streams")]
    Redis {
        command: &'static str,
        #[source]
        source: deadpool_redis::redis::RedisError,
    },
}

impl ForgetQueuedError {
    fn redis(command: &'static str) -> impl Fn(deadpool_redis::redis::RedisError) -> Self {
        move |source| Self::Redis { command, source }
    }
}

/// The customer named by `who`: `@handle` (or `handle`), or their TikTok user id.
pub async fn find_customer(db: &impl ConnectionTrait, who: &str) -> Result<Option<users::Model>, DbErr> {
    let handle = who.trim().trim_start_matches('@');
    if let Some(user) = users::Entity::find().filter(users::Column::Username.eq(handle)).one(db).await? {
        return Ok(Some(user));
    }
    users::Entity::find().filter(users::Column::TiktokUserId.eq(who.trim())).one(db).await
}

/// Forgets `who` in the database, in the caller's transaction (all or nothing). Refused while the
/// customer has an order that is unpaid or not yet shipped.
pub async fn forget(db: &impl ConnectionTrait, who: &str, now: DateTime<Utc>) -> Result<Forgotten, ForgetError> {
    let user = find_customer(db, who).await?.ok_or_else(|| ForgetError::NotFound(who.to_owned()))?;
    let open: Vec<String> = orders::Entity::find()
        .filter(orders::Column::UserId.eq(user.id))
        .filter(orders::Column::Status.is_in([OrderStatus::Pending, OrderStatus::Paid]))
        .all(db)
        .await?
        .into_iter()
        .map(|order| order.order_number)
        .collect();
    if !open.is_empty() {
        return Err(ForgetError::OpenOrders { customer: who.to_owned(), orders: open });
    }
    let mut forgotten = Forgotten { freed: holds::release_holds(db, user.id, now).await?, ..Default::default() };
    forgotten.waitlist =
        waitlist::Entity::delete_many().filter(waitlist::Column::UserId.eq(user.id)).exec(db).await?.rows_affected;
    // Their messages and conversations: unsent replies are not sent, texts go, the TikTok ids are replaced.
    forgotten.messages = ledger::forget_conversations(db, user.id, now).await?;
    forgotten.orders = orders::Entity::update_many()
        .col_expr(orders::Column::TiktokConversationId, Expr::value(Option::<String>::None))
        .col_expr(orders::Column::ShipName, Expr::value(Option::<String>::None))
        .col_expr(orders::Column::ShipLine1, Expr::value(Option::<String>::None))
        .col_expr(orders::Column::ShipLine2, Expr::value(Option::<String>::None))
        .col_expr(orders::Column::ShipCity, Expr::value(Option::<String>::None))
        .col_expr(orders::Column::ShipRegion, Expr::value(Option::<String>::None))
        .col_expr(orders::Column::ShipPostalCode, Expr::value(Option::<String>::None))
        .col_expr(orders::Column::UpdatedAt, Expr::value(now))
        .filter(orders::Column::UserId.eq(user.id))
        .exec(db)
        .await?
        .rows_affected;
    // The row stays (orders point at it), opted out so nothing is ever sent to it again.
    ledger::forget_customer(db, user.id, now).await?;
    Ok(forgotten)
}

/// The TikTok user id of `who`, to find their queued jobs (read before `forget` replaces it).
pub async fn tiktok_user_id(db: &impl ConnectionTrait, who: &str) -> Result<Option<String>, DbErr> {
    Ok(find_customer(db, who).await?.map(|user| user.tiktok_user_id))
}

/// Deletes the jobs of `tiktok_user_id` from the job stream and the dead letters (their payload holds
/// the customer's text until every consumer has acknowledged and the stream is trimmed). Returns how
/// many. The key names are the queue's (`jobs/redis.rs`): `{prefix}:jobs`, `:dead`, `:job-errors`.
pub async fn forget_queued(redis: &Redis, tiktok_user_id: &str) -> Result<u64, ForgetQueuedError> {
    use deadpool_redis::redis::cmd;
    use deadpool_redis::redis::streams::StreamRangeReply;
    let mut conn = redis.connection().await.map_err(ForgetQueuedError::Connect)?;
    // The id as a JSON string, bare or inside the envelope's escaped `content` string.
    let quoted = [format!("\"{tiktok_user_id}\""), format!("\\\"{tiktok_user_id}\\\"")];
    let mut deleted = 0;
    for stream in [redis.key("jobs"), redis.key("dead")] {
        let mut start = "-".to_owned();
        loop {
            let page: StreamRangeReply = cmd("XRANGE")
                .arg(&stream)
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await
                .map_err(ForgetQueuedError::redis("XRANGE"))?;
            let Some(last) = page.ids.last().map(|entry| entry.id.clone()) else { break };
            let theirs: Vec<String> = page
                .ids
                .iter()
                .filter(|entry| {
                    entry.map.values().any(|value| match value {
                        deadpool_redis::redis::Value::BulkString(bytes) => {
                            let text = String::from_utf8_lossy(bytes);
                            quoted.iter().any(|q| text.contains(q.as_str()))
                        }
                        _ => false,
                    })
                })
                .map(|entry| entry.id.clone())
                .collect();
            if !theirs.is_empty() {
                let removed: u64 = cmd("XDEL")
                    .arg(&stream)
                    .arg(&theirs)
                    .query_async(&mut conn)
                    .await
                    .map_err(ForgetQueuedError::redis("XDEL"))?;
                let _: u64 = cmd("HDEL")
                    .arg(redis.key("job-errors"))
                    .arg(&theirs)
                    .query_async(&mut conn)
                    .await
                    .map_err(ForgetQueuedError::redis("HDEL"))?;
                deleted += removed;
            }
            if page.ids.len() < 500 {
                break;
            }
            start = format!("({last}");
        }
    }
    Ok(deleted)
}

/// The retention rule (`shop.message_retention_days`) at `now`, as the sweeper runs it; nothing when unset.
pub async fn apply_retention(db: &impl ConnectionTrait, days: Option<u64>, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let Some(days) = days else { return Ok(0) };
    // Texts of settled messages older than that go; a reply still waiting to be sent keeps its text.
    let dropped = ledger::drop_settled_texts(db, now - chrono::Duration::days(days as i64)).await?;
    if dropped > 0 {
        tracing::info!(messages = dropped, days, "retention: texts of older messages removed");
    }
    Ok(dropped)
}
