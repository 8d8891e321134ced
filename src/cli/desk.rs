//! The staff desk every staff command (inventory, orders, handoff) opens: it says on standard error which
//! database it uses, refuses to create a fresh embedded database by accident, delivers the notices a
//! staff change causes at once (through the worker's own delivery: claimed, sent or printed, recorded)
//! and says honestly what became of each, and prints tables in the shop's local time.

use anyhow::bail;
use chrono::{DateTime, Utc};
use comfy_table::{ContentArrangement, Table, presets};

use crate::bot::staff::{Notified, Staff};
use crate::config::Settings;
use crate::state::AppState;
use crate::{startup, worker};

/// The shop opened for one staff command.
pub struct Desk {
    pub staff: Staff,
    state: AppState,
}

impl Desk {
    /// Opens the shop's database as `serve` would, after saying which one it is. With no `DATABASE_URL`
    /// the embedded SQLite file is used, and when it does not exist yet this refuses unless `create`: a
    /// staff laptop without the production URL would otherwise show a fresh, empty shop ("0 orders").
    pub async fn open(settings: Settings, create: bool) -> anyhow::Result<Desk> {
        let database = &settings.database;
        eprintln!("database: {}", database.describe());
        if database.is_embedded() && !database.sqlite_path.exists() {
            if !create {
                bail!(
                    "no database at {path}: DATABASE_URL is not set, so this would create a new, empty shop there. \
                     Set DATABASE_URL to the shop's database, or pass --create to start a new local one",
                    path = database.sqlite_path.display()
                );
            }
            eprintln!("creating a new, empty shop database at {}", database.sqlite_path.display());
        }
        let state = startup::staff_state(settings).await?;
        let staff = Staff::new(state.db.clone(), state.bot.clone(), state.settings.shop.clone());
        Ok(Desk { staff, state })
    }

    /// Closes the database.
    pub async fn close(self) -> anyhow::Result<()> {
        drop(self.staff);
        self.state.db.close().await?;
        Ok(())
    }

    /// Everything the shop runs on (database, Redis, bot, sending), for commands that reach past the
    /// staff's own moves (`customers forget`).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The database connection, for commands that need no more than it.
    pub fn db(&self) -> &sea_orm::DatabaseConnection {
        &self.state.db
    }

    /// Sends the notices of `notified` now, as the worker would (each claimed first, so the running bot
    /// never sends one twice; one that fails is retried by its sweeper), and says for each customer what
    /// became of it.
    pub async fn deliver(&self, notified: &[Notified]) -> anyhow::Result<Vec<String>> {
        worker::delivery::deliver_notices(&self.state, &Notified::messages_of(notified)).await;
        Ok(Notified::said_deliveries(&self.state.db, notified).await?)
    }

    /// A moment in the shop's time zone (`shop.time_zone`), as staff tables show it.
    pub fn local(&self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.state.settings.shop.tz()).format("%Y-%m-%d %H:%M").to_string()
    }

    /// A moment in the shop's time with its zone as it was called then, for a time said in a sentence
    /// rather than under a table header that names the zone: `2026-12-01 19:43 EST`.
    pub fn local_with_zone(&self, at: DateTime<Utc>) -> String {
        format!("{} {}", self.local(at), zone_name(self.state.settings.shop.tz(), at))
    }

    /// The shop's zone as table headers name it, as it is now: `EST` (`EDT` in summer).
    pub fn zone(&self) -> String {
        zone_name(self.state.settings.shop.tz(), Utc::now())
    }
}

/// What `zone` is called at `at`: `EST`, `EDT`, `UTC`.
fn zone_name(zone: chrono_tz::Tz, at: DateTime<Utc>) -> String {
    at.with_timezone(&zone).format("%Z").to_string()
}

/// A staff table with `headers`: columns sized by the width text shows at (wide sizes and emoji line
/// up), Markdown-style so it also pastes into a note.
pub fn table(headers: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(presets::ASCII_MARKDOWN).set_content_arrangement(ContentArrangement::Disabled).set_header(headers);
    table
}

/// Prints `value` as pretty JSON (the `--json` output of a staff command).
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_are_named_as_they_are_at_the_time() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let new_york = chrono_tz::America::New_York;
        assert_eq!(zone_name(new_york, at("2026-12-01T12:00:00Z")), "EST");
        assert_eq!(zone_name(new_york, at("2026-07-01T12:00:00Z")), "EDT");
        assert_eq!(zone_name(chrono_tz::UTC, at("2026-07-01T12:00:00Z")), "UTC");
    }

    #[test]
    fn a_table_lines_up_wide_sizes() {
        let mut t = table(&["SKU", "TAG", "TITLE"]);
        t.add_row(["DNM-001", "W32 L30", "Levi's 501"]);
        t.add_row(["SNK-001", "US 10.5 (EU 44.5, UK 9.5)", "Dunk Low"]);
        let lines: Vec<String> = t.to_string().lines().map(str::to_owned).collect();
        let bars = |line: &str| {
            line.char_indices().filter(|(_, c)| *c == '|').map(|(i, _)| line[..i].chars().count()).collect::<Vec<_>>()
        };
        assert_eq!(bars(&lines[2]), bars(&lines[3]), "{lines:#?}");
        assert_eq!(bars(&lines[0]), bars(&lines[2]), "{lines:#?}");
    }
}
