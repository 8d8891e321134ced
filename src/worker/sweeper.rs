//! The worker role's sweeper: every `shop.sweep_interval_secs` it lets lapsed holds go (telling the next
//! customer waiting for each piece), reminds customers of unpaid orders and cancels the ones not paid in
//! time (their pieces back on sale, the waitlist told), settles sends whose outcome TikTok left unknown
//! (or whose worker died mid-send), and sends every message left pending (a notice or a reply whose
//! delivery right after its commit failed, a dead-lettered job's reply) while the window allows.
//! Every step is a conditional update, so sweepers of several worker processes never double up.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::TransactionTrait;
use tokio_util::sync::CancellationToken;

use super::delivery::{self, deliver_notices};
use crate::jobs::JobError;
use crate::shop::{holds, orders};
use crate::state::AppState;

/// Holds released per sweep at most; the next sweep takes the rest.
const BATCH: u64 = 200;
/// A message pending this long lost its first delivery (a send right after its commit takes well under it).
const PENDING_GRACE: chrono::Duration = chrono::Duration::seconds(30);

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Lapsed holds released (their items are on sale again).
    pub released: usize,
    /// Notices stored for customers on a waitlist.
    pub told: usize,
    /// Customers reminded to pay an order.
    pub reminded: usize,
    /// Unpaid orders cancelled after `shop.payment_expiry_hours`.
    pub expired: usize,
    /// Messages left pending, sent now.
    pub retried: usize,
    /// Sends of unknown outcome settled: found in the conversation, sent again, or unprovable.
    pub settled: delivery::Settled,
}

/// One sweep at `now`.
pub async fn sweep(state: &AppState, now: DateTime<Utc>) -> Result<Sweep, JobError> {
    let mut done = Sweep::default();
    for hold in holds::expired_holds(&state.db, now, BATCH).await? {
        let txn = state.db.begin().await?;
        let Some(freed) = holds::end_hold(&txn, &hold, now).await? else {
            txn.rollback().await?;
            continue; // released meanwhile (the customer cancelled, or another sweeper)
        };
        let ids = state.bot.tell_item_free(&txn, &freed, now).await?;
        txn.commit().await?;
        tracing::info!(sku = %freed.item.sku, told = ids.len(), "hold lapsed: item back on sale");
        done.released += 1;
        done.told += usize::from(!ids.is_empty());
        deliver_notices(state, &ids).await;
    }
    let shop = &state.settings.shop;
    let remind_after = chrono::Duration::hours(shop.payment_reminder_hours as i64);
    for (order, customer) in orders::unpaid_to_remind(&state.db, now, remind_after, BATCH).await? {
        let txn = state.db.begin().await?;
        if !orders::mark_reminded(&txn, order.id, now).await? {
            txn.rollback().await?;
            continue; // paid, cancelled or reminded meanwhile
        }
        let ids = state.bot.remind_to_pay(&txn, &order, &customer, now).await?;
        txn.commit().await?;
        tracing::info!(order = %order.order_number, "unpaid order: customer reminded to pay");
        done.reminded += 1;
        deliver_notices(state, &ids).await;
    }
    let expire_after = chrono::Duration::hours(shop.payment_expiry_hours as i64);
    for order in orders::unpaid_to_expire(&state.db, now, expire_after, BATCH).await? {
        let txn = state.db.begin().await?;
        let Some(moved) = orders::expire(&txn, &order, now).await? else {
            txn.rollback().await?;
            continue; // paid or cancelled meanwhile
        };
        let ids = state.bot.tell_order_moved(&txn, &moved, now).await?;
        txn.commit().await?;
        tracing::info!(order = %order.order_number, freed = moved.freed.len(), "unpaid order cancelled: pieces back on sale");
        done.expired += 1;
        deliver_notices(state, &ids).await;
    }
    crate::shop::privacy::apply_retention(&state.db, shop.message_retention_days, now).await?;
    done.settled = delivery::settle_unknown(state, now, BATCH).await?;
    done.retried = delivery::send_left_pending(state, now - PENDING_GRACE, BATCH).await?;
    // What TikTok's pause (40064) held back, once it is over.
    match super::sending_rules::release_throttled(state, now).await {
        Ok(released) => {
            deliver_notices(state, &released).await;
            done.retried += released.len();
        }
        Err(e) => tracing::warn!(error = %e, "could not resume messages TikTok's pause held back"),
    }
    Ok(done)
}

/// Sweeps every `interval` until `shutdown`.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let interval = Duration::from_secs(state.settings.shop.sweep_interval_secs);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        if let Err(e) = sweep(&state, Utc::now()).await {
            tracing::warn!(error = %e, "sweep failed; trying again next interval");
        }
    }
}
