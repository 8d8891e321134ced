//! `philia-bot customers forget @handle`: a customer's data on request, in the database and in Redis.

use clap::Subcommand;
use sea_orm::TransactionTrait;

use super::desk::Desk;
use crate::shop::privacy;

#[derive(Subcommand)]
pub enum Action {
    /// Forget a customer: their messages lose their text, their holds end (the next customer waiting is
    /// told), their waitlist places, handle and phone go, queued jobs in Redis are deleted; orders keep
    /// number, amounts, status and dates, without the address. Refused while an order is unpaid or unshipped.
    Forget {
        /// `@handle`, or the TikTok user id.
        customer: String,
    },
}

pub async fn run(desk: &Desk, action: Action) -> anyhow::Result<()> {
    let Action::Forget { customer } = action;
    let state = desk.state();
    let tiktok_user_id = privacy::tiktok_user_id(&state.db, &customer).await?;
    // Redis first: a job still queued would otherwise bring the customer back after the database forgot.
    let queued = match (&state.redis, &tiktok_user_id) {
        (Some(redis), Some(id)) => privacy::forget_queued(redis, id).await?,
        _ => 0,
    };
    let now = chrono::Utc::now();
    let txn = state.db.begin().await?;
    let forgotten = privacy::forget(&txn, &customer, now).await?;
    let mut told = Vec::new();
    for freed in &forgotten.freed {
        told.extend(state.bot.tell_item_free(&txn, freed, now).await?);
    }
    txn.commit().await?;
    crate::worker::delivery::deliver_notices(state, &told).await;
    println!(
        "{customer}: forgotten ({} message text(s), {} hold(s) ended, {} waitlist place(s), {} order(s) kept \
         without the address, {queued} queued job(s) deleted)",
        forgotten.messages,
        forgotten.freed.len(),
        forgotten.waitlist,
        forgotten.orders
    );
    Ok(())
}
