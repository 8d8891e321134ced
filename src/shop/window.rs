//! TikTok's reply window, the one place its rules live: after each message a customer writes, the shop may
//! write to them for 48 hours, and send them at most 10 messages; each new message restarts the window
//! and gives the 10 back. The worker sends nothing outside the window nor past the quota, notices go only
//! while both allow, and a hold ends before the window closes (or the customer could not be told the hold
//! lapsed, nor the next customer that the piece is theirs).
//!
//! The quota is a counter per customer in `reply_quota`, next to the customer's message it belongs to
//! (`window_at`, a copy of `users.last_inbound_at`). A message is taken from it by one conditional upsert
//! that reads the customer's window from `users` in the same statement: it counts only while the window
//! is open and fewer than 10 were sent, and starts again at 1 when the customer wrote since. One statement
//! is atomic on PostgreSQL (row lock) and SQLite (one writer), so workers on any number of processes never
//! send an 11th message, and the inbound path need not reset anything.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::SimpleExpr;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, Statement, Value};

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
    /// How many messages the shop may send after each customer message.
    pub const QUOTA: i64 = 10;

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

/// The SQL of `sql` for the connection's backend: `$n` placeholders on PostgreSQL, `?` on SQLite (each
/// parameter appears once, in order).
fn statement(db: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> Statement {
    let backend = db.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Postgres => sql.to_owned(),
        _ => {
            let mut plain = String::with_capacity(sql.len());
            let mut chars = sql.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                    while chars.peek().is_some_and(char::is_ascii_digit) {
                        chars.next();
                    }
                    plain.push('?');
                } else {
                    plain.push(c);
                }
            }
            plain
        }
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// Takes one message from the customer's quota at `now`: true when the window is open and fewer than
/// [`ReplyWindow::QUOTA`] were sent since their last message (now one more is counted), false otherwise
/// (nothing counted: the message must not be sent).
pub async fn take_quota(db: &impl ConnectionTrait, user_id: i64, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let taken = db
        .execute_raw(statement(
            db,
            "INSERT INTO reply_quota (user_id, window_at, sent) \
             SELECT id, last_inbound_at, 1 FROM users WHERE id = $1 AND last_inbound_at > $2 \
             ON CONFLICT (user_id) DO UPDATE SET \
               sent = CASE WHEN reply_quota.window_at = excluded.window_at THEN reply_quota.sent + 1 ELSE 1 END, \
               window_at = excluded.window_at \
             WHERE reply_quota.window_at <> excluded.window_at OR reply_quota.sent < $3",
            vec![user_id.into(), (now - ReplyWindow::LENGTH).into(), ReplyWindow::QUOTA.into()],
        ))
        .await?;
    Ok(taken.rows_affected() == 1)
}

/// Gives back a message taken with [`take_quota`] that TikTok certainly did not deliver (refused, or never
/// reached), while the customer has not written since.
pub async fn give_back_quota(db: &impl ConnectionTrait, user_id: i64) -> Result<(), DbErr> {
    db.execute_raw(statement(
        db,
        "UPDATE reply_quota SET sent = sent - 1 WHERE user_id = $1 AND sent > 0 \
         AND window_at = (SELECT last_inbound_at FROM users WHERE id = $2)",
        vec![user_id.into(), user_id.into()],
    ))
    .await?;
    Ok(())
}

/// Counts a message someone else on the shop's side sent (staff in the TikTok app): TikTok counts it too.
pub async fn count_sent_by_staff(db: &impl ConnectionTrait, user_id: i64) -> Result<(), DbErr> {
    db.execute_raw(statement(
        db,
        "INSERT INTO reply_quota (user_id, window_at, sent) \
         SELECT id, last_inbound_at, 1 FROM users WHERE id = $1 AND last_inbound_at IS NOT NULL \
         ON CONFLICT (user_id) DO UPDATE SET \
           sent = CASE WHEN reply_quota.window_at = excluded.window_at THEN reply_quota.sent + 1 ELSE 1 END, \
           window_at = excluded.window_at",
        vec![user_id.into()],
    ))
    .await?;
    Ok(())
}

/// How many messages the customer may still be sent since their last message (0 when the window is
/// closed or they never wrote).
pub async fn quota_left(db: &impl ConnectionTrait, user_id: i64, now: DateTime<Utc>) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(statement(
            db,
            "SELECT CAST(CASE WHEN q.window_at = u.last_inbound_at THEN q.sent ELSE 0 END AS BIGINT) AS sent \
             FROM users u LEFT JOIN reply_quota q ON q.user_id = u.id \
             WHERE u.id = $1 AND u.last_inbound_at > $2",
            vec![user_id.into(), (now - ReplyWindow::LENGTH).into()],
        ))
        .await?;
    let Some(row) = row else { return Ok(0) };
    let sent: Option<i64> = row.try_get("", "sent").ok().flatten();
    Ok((ReplyWindow::QUOTA - sent.unwrap_or(0)).max(0))
}

/// One message of a turn as [`fit`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub id: i64,
    /// A picture (`None`), or a text.
    pub text: Option<String>,
}

/// What becomes of a turn's messages when it must fit in the quota left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fitted {
    /// Sent, in order; a text with `Some(new text)` carries the texts merged into it.
    pub send: Vec<(i64, Option<String>)>,
    /// Texts that went out inside an earlier message of `send`.
    pub merged: Vec<i64>,
    /// Not sent: no quota left for them (pictures first, then what no merging could fit).
    pub dropped: Vec<i64>,
}

/// Composes a turn within `left` messages: as it is when it fits; else its pictures are dropped (from the
/// last), then neighbouring texts merged (a blank line between, at most `max_text` characters each), then
/// what still does not fit is dropped from the end. Order is kept.
pub fn fit(parts: &[Part], left: usize, max_text: usize) -> Fitted {
    let mut fitted = Fitted::default();
    let mut kept: Vec<&Part> = parts.iter().collect();
    while kept.len() > left {
        let Some(last_picture) = kept.iter().rposition(|p| p.text.is_none()) else { break };
        fitted.dropped.push(kept.remove(last_picture).id);
    }
    // Groups of texts sent as one message: (the message's id, the ids merged into it, its text).
    let mut groups: Vec<(i64, Vec<i64>, Option<String>)> = Vec::new();
    if kept.len() > left {
        // Only texts are left: neighbours are merged while they fit in one message.
        for part in &kept {
            let text = part.text.clone().unwrap_or_default();
            match groups.last_mut() {
                Some((head, members, joined)) => {
                    let current = joined.get_or_insert_with(|| {
                        parts.iter().find(|p| p.id == *head).and_then(|p| p.text.clone()).unwrap_or_default()
                    });
                    if current.chars().count() + 2 + text.chars().count() <= max_text {
                        current.push_str("\n\n");
                        current.push_str(&text);
                        members.push(part.id);
                        continue;
                    }
                    if members.is_empty() {
                        *joined = None;
                    }
                    groups.push((part.id, Vec::new(), None));
                }
                None => groups.push((part.id, Vec::new(), None)),
            }
        }
        if let Some((_, members, joined)) = groups.last_mut()
            && members.is_empty()
        {
            *joined = None;
        }
    } else {
        groups = kept.iter().map(|p| (p.id, Vec::new(), None)).collect();
    }
    while groups.len() > left {
        let (head, members, _) = groups.pop().expect("more than left, so not empty");
        fitted.dropped.push(head);
        fitted.dropped.extend(members);
    }
    let send: Vec<(i64, Option<String>)> = groups
        .into_iter()
        .map(|(head, members, joined)| {
            fitted.merged.extend(&members);
            (head, joined)
        })
        .collect();
    fitted.send = send;
    fitted.dropped.sort_unstable();
    fitted
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

    fn text(id: i64, body: &str) -> Part {
        Part { id, text: Some(body.to_owned()) }
    }

    fn picture(id: i64) -> Part {
        Part { id, text: None }
    }

    #[test]
    fn a_turn_that_fits_is_sent_as_it_is() {
        let parts = [text(1, "a"), picture(2), text(3, "b")];
        let fitted = fit(&parts, 3, 6_000);
        assert_eq!(fitted.send, [(1, None), (2, None), (3, None)]);
        assert!(fitted.merged.is_empty() && fitted.dropped.is_empty());
    }

    #[test]
    fn pictures_go_first_then_texts_are_merged_then_the_rest_is_dropped() {
        let parts = [text(1, "one"), picture(2), text(3, "two"), picture(4), text(5, "three")];
        let fitted = fit(&parts, 3, 6_000);
        assert_eq!(fitted.send, [(1, None), (3, None), (5, None)], "both pictures dropped");
        assert_eq!(fitted.dropped, [2, 4]);

        let fitted = fit(&parts, 1, 6_000);
        assert_eq!(fitted.send, [(1, Some("one\n\ntwo\n\nthree".to_owned()))]);
        assert_eq!((fitted.merged, fitted.dropped), (vec![3, 5], vec![2, 4]));

        // Texts too long to merge: what does not fit is dropped from the end.
        let long = "x".repeat(4_000);
        let parts = [text(1, &long), text(2, &long), text(3, &long)];
        let fitted = fit(&parts, 2, 6_000);
        assert_eq!(fitted.send, [(1, None), (2, None)]);
        assert_eq!(fitted.dropped, [3]);

        // Two merged messages, room for one: the second goes with everything merged into it.
        let half = "y".repeat(2_900);
        let parts = [text(1, &half), text(2, &half), text(3, &half), text(4, &half)];
        let fitted = fit(&parts, 1, 6_000);
        assert_eq!(fitted.send, [(1, Some(format!("{half}\n\n{half}")))]);
        assert_eq!((fitted.merged, fitted.dropped), (vec![2], vec![3, 4]));

        let fitted = fit(&[text(1, "a"), picture(2)], 0, 6_000);
        assert!(fitted.send.is_empty());
        assert_eq!(fitted.dropped, [1, 2], "nothing left: nothing is sent");
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
