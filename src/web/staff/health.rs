//! The health screen: is the bot answering, in words a shop owner reads at a glance. Sending mode, the
//! TikTok connection and when its tokens run out, the queue and its dead letters, replies sent and
//! failed today (and a week's bars), TikTok's quota refusals and the LLM's fallbacks; dead letters are
//! replayed or dropped from here. The numbers are
//! the ones `/metrics` has; those kept in the database (sends) count every process, the LLM's count
//! this one.

use actix_web::HttpResponse;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use maud::{Markup, html};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use serde::Deserialize;

use super::audit;
use super::handoffs::waited;
use super::layout::{self, Screen, csrf, see_other};
use super::session::{Checked, ConsoleError, Signed};
use crate::store::entities::messages::{self, DeliveryStatus, Direction};
use crate::store::entities::tiktok_tokens;
use crate::tiktok::api::codes;

/// Days of the sends chart.
const CHART_DAYS: i64 = 7;

/// A refresh token that runs out within this many days is a warning: the owner reconnects before.
const RECONNECT_WARNING_DAYS: i64 = 7;

/// What one shop day's replies came to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Day {
    pub sent: u64,
    pub failed: u64,
    pub dry_run: u64,
    pub outside_window: u64,
    pub waiting: u64,
    pub quota_refusals: u64,
}

/// The shop's local day of `at`.
fn shop_day(at: DateTime<Utc>, zone: Tz) -> NaiveDate {
    at.with_timezone(&zone).date_naive()
}

/// Counts outbound messages per shop day, today last.
pub fn by_day(
    rows: &[(DateTime<Utc>, Option<DeliveryStatus>, Option<i64>)],
    today: NaiveDate,
    zone: Tz,
) -> Vec<(NaiveDate, Day)> {
    let mut days: Vec<(NaiveDate, Day)> =
        (0..CHART_DAYS).rev().map(|back| (today - Duration::days(back), Day::default())).collect();
    for (at, status, code) in rows {
        let Some((_, day)) = days.iter_mut().find(|(d, _)| *d == shop_day(*at, zone)) else { continue };
        match status {
            Some(DeliveryStatus::Sent) => day.sent += 1,
            Some(DeliveryStatus::Failed) => day.failed += 1,
            Some(DeliveryStatus::DryRun) => day.dry_run += 1,
            Some(DeliveryStatus::OutsideWindow) => day.outside_window += 1,
            // Unknown and throttled replies are still on their way: settled by the echo, or sent after the pause.
            Some(
                DeliveryStatus::Pending | DeliveryStatus::Sending | DeliveryStatus::Unknown | DeliveryStatus::Throttled,
            ) => {
                day.waiting += 1;
            }
            Some(DeliveryStatus::QuotaExhausted) => day.quota_refusals += 1,
            Some(DeliveryStatus::NotConnected) => day.failed += 1,
            // Not messages of their own: a photo skipped by choice, a text merged into the one before.
            Some(DeliveryStatus::Skipped | DeliveryStatus::Merged) | None => {}
        }
        if *code == Some(codes::RATE_LIMITED) {
            day.quota_refusals += 1;
        }
    }
    days
}

/// `GET /staff/health`.
pub async fn page(signed: Signed) -> Result<HttpResponse, ConsoleError> {
    let state = &signed.state;
    let settings = &state.settings;
    let zone = settings.shop.tz();
    let now = Utc::now();
    let today = shop_day(now, zone);
    let since = now - Duration::days(CHART_DAYS + 1);
    let rows: Vec<(DateTime<Utc>, Option<DeliveryStatus>, Option<i64>)> = messages::Entity::find()
        .select_only()
        .column(messages::Column::CreatedAt)
        .column(messages::Column::DeliveryStatus)
        .column(messages::Column::ErrorCode)
        .filter(messages::Column::Direction.eq(Direction::Out))
        .filter(messages::Column::CreatedAt.gte(since))
        .into_tuple()
        .all(&state.db)
        .await?;
    let days = by_day(&rows, today, zone);
    let (_, this_day) = days.last().copied().unwrap_or_default();
    let tokens = tiktok_tokens::Entity::find().all(&state.db).await?;
    let queue = state.queue.stats().await;
    let dead = state.queue.dead_jobs().await;
    let dry_run = settings.tiktok.is_dry_run();
    let llm_on = settings.llm.api_key.is_some();
    let (llm_ok, llm_fallbacks) = (state.metrics.llm_calls("ok"), state.metrics.llm_calls("fallback"));

    let mut worries: Vec<String> = Vec::new();
    if this_day.failed > 0 {
        worries.push(format!("{} repl(ies) failed to send today.", this_day.failed));
    }
    if let Ok(dead) = &dead
        && !dead.is_empty()
    {
        worries.push(format!("{} message(s) could not be processed and wait in the dead letters.", dead.len()));
    }
    if let Ok(stats) = &queue
        && stats.oldest_pending.as_secs() > 60
    {
        worries.push(format!("The oldest message in the queue has waited {} s.", stats.oldest_pending.as_secs()));
    }
    if queue.is_err() {
        worries.push("The queue does not answer.".into());
    }
    for token in &tokens {
        if let Some(refresh) = token.refresh_expires_at
            && refresh - now < Duration::days(RECONNECT_WARNING_DAYS)
        {
            worries.push(format!(
                "TikTok's connection for {} runs out on {}: reconnect the account before then.",
                token.account,
                signed.local(refresh)
            ));
        }
    }

    let body = html! {
        @if worries.is_empty() {
            div.flash role="status" { p { strong { "All good." } " The bot is answering." } }
        } @else {
            div.flash.bad role="alert" { @for w in &worries { p { (w) } } }
        }
        div.stats {
            (stat("Sending", if dry_run { "dry run" } else { "live" },
                if dry_run { "Replies are stored and logged, never sent to TikTok (no credentials)." } else { "Replies go to TikTok." }, !dry_run))
            @if dry_run {
                (stat("Written today", &this_day.dry_run.to_string(), "replies and notices (dry run: stored, not sent)", true))
            } @else {
                (stat("Sent today", &this_day.sent.to_string(), "replies and notices TikTok took", true))
            }
            (stat("Failed today", &this_day.failed.to_string(), "TikTok refused them; not sent again", this_day.failed == 0))
            (stat("Quota refusals today", &this_day.quota_refusals.to_string(), "not sent for volume: a customer's message quota used up, or TikTok asked to slow down", this_day.quota_refusals == 0))
            (stat("Reply window closed", &this_day.outside_window.to_string(), "not sent: the customer wrote over 48 h ago", true))
            @match &queue {
                Ok(q) => (stat("Queue", &(q.waiting + q.pending).to_string(), &format!("{} waiting, {} being handled", q.waiting, q.pending), q.oldest_pending.as_secs() <= 60)),
                Err(_) => (stat("Queue", "?", "does not answer", false)),
            }
            @match &dead {
                Ok(d) => (stat("Dead letters", &d.len().to_string(), "messages that failed every try", d.is_empty())),
                Err(_) => (stat("Dead letters", "?", "the queue does not answer", false)),
            }
            @if llm_on {
                (stat("AI fallbacks", &llm_fallbacks.to_string(), &format!("the AI did not answer, the keywords did ({llm_ok} answered by the AI, since this process started)"), llm_fallbacks == 0))
            } @else {
                (stat("AI classifier", "off", "keywords only (no OPENAI_API_KEY)", true))
            }
        }
        h2 { "TikTok connection" }
        @if tokens.is_empty() {
            p { @if dry_run { "Not connected: the bot runs as a dry run." } @else { "Connected with the token from the environment (TIKTOK_ACCESS_TOKEN); its expiry is not known here." } }
        }
        @for token in &tokens {
            p {
                "Account " code { (token.account) } ": the access token is valid until " (signed.local(token.access_expires_at))
                " (renewed by itself)"
                @if let Some(refresh) = token.refresh_expires_at { "; the connection lasts until " (signed.local(refresh)) " (" (waited((refresh - now).num_minutes())) " from now)" }
                "."
            }
        }
        h2 { "Replies, last " (CHART_DAYS) " days" }
        (chart(&days))
        @if let Ok(dead) = &dead {
            @if !dead.is_empty() {
                h2 { "Dead letters" }
                p.hint { "Replay once the cause is fixed (a message already answered is not answered twice), or drop it." }
                table {
                    tr { th { "Job" } th { "Tries" } th { "Last error" } th {} }
                    @for job in dead {
                        tr {
                            td { code { (job.entry) } } td { (job.deliveries) } td { (job.error) }
                            td {
                                @for (action, label) in [("replay", "Replay"), ("drop", "Drop")] {
                                    form.inline method="post" action="/staff/health/dead" {
                                        (csrf(&signed))
                                        input type="hidden" name="entry" value=(job.entry);
                                        input type="hidden" name="action" value=(action);
                                        button type="submit" class=[(action == "drop").then_some("danger")] { (label) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        p.hint { "Times are the shop's (" (zone.name()) "). The same numbers, for monitoring, are at /metrics." }
    };
    layout::page(&signed, Screen::Health, "Health", body).await
}

#[derive(Deserialize)]
pub struct DeadForm {
    entry: String,
    action: String,
}

/// `POST /staff/health/dead`: a dead letter replayed (back on the queue as a new job) or dropped, as
/// `philia-bot jobs dead replay|drop` does.
pub async fn dead_letter(checked: Checked<DeadForm>) -> Result<HttpResponse, ConsoleError> {
    let Checked { signed, form } = checked;
    let queue = &signed.state.queue;
    let failed = |e: crate::jobs::QueueError| ConsoleError::Internal(format!("the queue: {e}"));
    let said = match form.action.as_str() {
        "replay" => match queue.replay_dead(&form.entry).await.map_err(failed)? {
            Some(job) => format!("{}: back on the queue as job {job}.", form.entry),
            None => format!("There is no dead letter {} any more.", form.entry),
        },
        "drop" => {
            if queue.drop_dead(&form.entry).await.map_err(failed)? {
                format!("{}: dropped.", form.entry)
            } else {
                format!("There is no dead letter {} any more.", form.entry)
            }
        }
        other => return Err(ConsoleError::BadForm(format!("{other:?} is not replay or drop"))),
    };
    let action = if form.action == "replay" { "replayed a dead letter" } else { "dropped a dead letter" };
    audit::record(&signed.state.db, &signed.account.name, action, &form.entry, Some(&said)).await?;
    signed.flash(&said).await?;
    Ok(see_other("/staff/health"))
}

fn stat(name: &str, value: &str, words: &str, good: bool) -> Markup {
    html! {
        div class={ "stat " (if good { "good" } else { "bad" }) } {
            span { (name) } b { (value) } span.hint { (words) }
        }
    }
}

/// One bar per day: sent (green) and failed (red), scaled to the busiest day.
fn chart(days: &[(NaiveDate, Day)]) -> Markup {
    let most = days.iter().map(|(_, d)| d.sent + d.failed + d.dry_run).max().unwrap_or(0).max(1);
    let width = |n: u64| format!("width: {}%", n * 100 / most);
    html! {
        div.bars role="img" aria-label="Replies sent and failed per day" {
            @for (date, day) in days {
                div.bar {
                    span { (date.format("%a %-d")) }
                    span.track {
                        i style=(width(day.sent + day.dry_run)) {}
                        i.failed style=(width(day.failed)) {}
                    }
                    span { (day.sent + day.dry_run) @if day.failed > 0 { " / " (day.failed) "✗" } }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_shops_day_follows_daylight_saving() {
        let new_york = chrono_tz::America::New_York;
        // 04:30 UTC on Jul 1 is 00:30 EDT (UTC-4): already Jul 1 in the shop, though a fixed UTC-5 said Jun 30.
        assert_eq!(shop_day(at("2026-07-01T04:30:00Z"), new_york), NaiveDate::from_ymd_opt(2026, 7, 1).unwrap());
        assert_eq!(shop_day(at("2026-12-01T04:30:00Z"), new_york), NaiveDate::from_ymd_opt(2026, 11, 30).unwrap());
    }

    #[test]
    fn sends_are_counted_by_the_shops_day() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let rows = [
            // 02:00 UTC on Dec 1 is still Nov 30 in New York (UTC-5).
            (at("2026-12-01T02:00:00Z"), Some(DeliveryStatus::Sent), None),
            (at("2026-12-01T15:00:00Z"), Some(DeliveryStatus::Sent), None),
            (at("2026-12-01T16:00:00Z"), Some(DeliveryStatus::Failed), Some(codes::RATE_LIMITED)),
            (at("2026-11-10T16:00:00Z"), Some(DeliveryStatus::Sent), None),
        ];
        let days = by_day(&rows, today, chrono_tz::America::New_York);
        assert_eq!(days.len(), 7);
        assert_eq!(days[6], (today, Day { sent: 1, failed: 1, quota_refusals: 1, ..Day::default() }));
        assert_eq!(days[5].1.sent, 1, "yesterday in the shop's time");
        assert_eq!(days.iter().map(|(_, d)| d.sent).sum::<u64>(), 2, "older days are not charted");
    }
}
