//! TikTok's reply window, the one place its rule lives: after each message a customer writes, the shop may
//! write to them for 48 hours, and each new message restarts the window. The worker sends nothing outside
//! it, notices go only while it is open, and a hold ends before it closes (or the customer could not be
//! told the hold lapsed, nor the next customer that the piece is theirs).

use chrono::{DateTime, Duration, Utc};
use sea_orm::ColumnTrait;
use sea_orm::sea_query::SimpleExpr;

use crate::store::entities::users;

/// A customer's reply window, read from their row: it opened with their last message
/// (`users.last_inbound_at`, stored in the same transaction as the message). Everything TikTok limits
/// about writing to a customer between two of their messages is decided by this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyWindow {
    opened_at: Option<DateTime<Utc>>,
}

impl ReplyWindow {
    /// How long the shop may write after the customer's last message.
    pub const LENGTH: Duration = Duration::hours(48);

    /// The window of this customer now: opened by their last message, closed if they never wrote.
    pub fn of(customer: &users::Model) -> Self {
        Self { opened_at: customer.last_inbound_at }
    }

    /// The window a message written at `at` opens.
    pub fn opened_at(at: DateTime<Utc>) -> Self {
        Self { opened_at: Some(at) }
    }

    /// When it opened (the customer's last message); `None` when they never wrote.
    pub fn opened(&self) -> Option<DateTime<Utc>> {
        self.opened_at
    }

    /// When it closes; `None` when it never opened.
    pub fn closes(&self) -> Option<DateTime<Utc>> {
        self.opened_at.map(|opened| opened + Self::LENGTH)
    }

    /// Whether the shop may write to the customer at `at`.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        self.closes().is_some_and(|closes| at < closes)
    }

    /// When a hold taken at `now` for `hold_for` must end: `hold_for` later, but never after the window
    /// closes.
    pub fn hold_ends_by(&self, now: DateTime<Utc>, hold_for: Duration) -> DateTime<Utc> {
        let wanted = now + hold_for;
        self.closes().map_or(wanted, |closes| wanted.min(closes))
    }

    /// [`ReplyWindow::is_open`] at `at` as a condition on `users` rows, for queries that pick customers the
    /// shop may still write to.
    pub fn is_open_condition(at: DateTime<Utc>) -> SimpleExpr {
        users::Column::LastInboundAt.gt(at - Self::LENGTH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(wrote_ago: Duration) -> users::Model {
        let now = Utc::now();
        users::Model {
            id: 1,
            tiktok_user_id: "u".into(),
            username: None,
            phone: None,
            last_inbound_at: Some(now - wrote_ago),
            opted_out: false,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn a_hold_never_outlasts_the_reply_window() {
        let now = Utc::now();
        let thirty = Duration::minutes(30);
        let fresh = customer(Duration::minutes(1));
        assert_eq!(ReplyWindow::of(&fresh).hold_ends_by(now, thirty), now + thirty);
        let late = customer(Duration::hours(47) + Duration::minutes(50));
        let window_end = late.last_inbound_at.unwrap() + Duration::hours(48);
        assert_eq!(ReplyWindow::of(&late).hold_ends_by(now, thirty), window_end, "10 minutes of window left");
    }

    #[test]
    fn the_window_is_open_for_48_hours_after_the_customer_wrote() {
        let wrote = Utc::now();
        let window = ReplyWindow::opened_at(wrote);
        assert_eq!(window.opened(), Some(wrote));
        assert!(window.is_open(wrote + Duration::hours(47)));
        assert!(!window.is_open(wrote + Duration::hours(48)), "it closes at 48 hours");
        let never = ReplyWindow::of(&users::Model { last_inbound_at: None, ..customer(Duration::zero()) });
        assert!(!never.is_open(wrote), "a customer who never wrote cannot be written to");
        assert_eq!(never.hold_ends_by(wrote, Duration::minutes(30)), wrote + Duration::minutes(30));
    }
}
