//! "Try the bot": the `chat` simulator in the page. A temporary copy of the bot (this server's
//! `config/`, a copy of the shop's inventory, its own database) answers as it would on TikTok; it is
//! marked as a test everywhere and never sends anything. Each staff member writes as their own test
//! customer; "Start over" reads the bot's files again, so an edit to replies or the FAQ shows at once.

use std::sync::Arc;

use actix_web::HttpResponse;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use maud::html;
use serde::Deserialize;

use super::layout::{self, Screen, csrf, lines, see_other};
use super::orders::staff_of;
use super::session::{Checked, ConsoleError, Signed};

/// The copy of the bot this page drives. The sandbox runs one (a whole application of its own, on a thread
/// of its own); `serve` hands it to the server, so the web layer never builds an application itself.
pub trait TryOutBot: Send + Sync {
    /// Whether it runs (so the console copies the inventory only to start it).
    fn is_started(&self) -> bool;
    /// Starts it over: a new temporary database with `inventory` (CSV), the bot's files read again.
    fn restart(&self, inventory: Vec<u8>) -> BoxFuture<'_, anyhow::Result<()>>;
    /// `customer` writes `text`; false when the bot did not finish within its patience.
    fn say<'a>(&'a self, customer: &'a str, text: &'a str) -> BoxFuture<'a, anyhow::Result<bool>>;
    /// `customer`'s conversation so far, oldest first.
    fn transcript<'a>(&'a self, customer: &'a str) -> BoxFuture<'a, anyhow::Result<Vec<Line>>>;
}

/// The try-out a console has, when the process that serves it can run one.
pub type TryOut = Option<Arc<dyn TryOutBot>>;

/// One message of a try-out conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Written by the (pretend) customer; else the bot's.
    pub from_customer: bool,
    pub text: String,
    pub at: DateTime<Utc>,
}

/// The console's try-out, or the error that says this process has none.
fn try_out(signed: &Signed) -> Result<&dyn TryOutBot, ConsoleError> {
    signed.console.try_out.as_deref().ok_or_else(|| {
        ConsoleError::Internal("this process cannot run a try-out of the bot (start it with `philia-bot serve`)".into())
    })
}

/// The pretend customer a staff member writes as.
fn customer(signed: &Signed) -> String {
    format!("test-{}", signed.account.name)
}

/// Starts the try-out with a copy of the shop's inventory, unless it runs.
async fn ensure_started(signed: &Signed, again: bool) -> Result<(), ConsoleError> {
    let try_out = try_out(signed)?;
    if try_out.is_started() && !again {
        return Ok(());
    }
    let mut sheet = Vec::new();
    staff_of(signed).export(&mut sheet).await.map_err(|e| ConsoleError::Internal(e.to_string()))?;
    try_out.restart(sheet).await?;
    Ok(())
}

/// `GET /staff/try`.
pub async fn page(signed: Signed) -> Result<HttpResponse, ConsoleError> {
    ensure_started(&signed, false).await?;
    let transcript = try_out(&signed)?.transcript(&customer(&signed)).await?;
    let body = html! {
        div.chat {
            p.test-mark { "TEST · nothing here is sent to TikTok or touches the shop's orders and stock." }
            p.hint { "A copy of the bot with this server's replies, FAQ and a copy of today's inventory. You write as the customer " code { (customer(&signed)) } "." }
            @if transcript.is_empty() { p.hint { "Say hi, ask about a piece, try \"I'll take it\"." } }
            @for line in &transcript {
                div class={ "bubble " (if line.from_customer { "out" } else { "in" }) } {
                    (lines(&line.text))
                }
            }
            form method="post" action="/staff/try" {
                (csrf(&signed))
                label { "Write as the customer" input name="text" autocomplete="off" required autofocus; }
                button type="submit" { "Send (test)" }
            }
            form method="post" action="/staff/try" {
                (csrf(&signed))
                input type="hidden" name="restart" value="1";
                button.link type="submit" { "Start over (reads the bot's files again)" }
            }
        }
    };
    layout::page(&signed, Screen::Try, "Try the bot", body).await
}

#[derive(Deserialize)]
pub struct SayForm {
    text: Option<String>,
    restart: Option<String>,
}

/// `POST /staff/try`: a line to the test bot, or start over.
pub async fn say(checked: Checked<SayForm>) -> Result<HttpResponse, ConsoleError> {
    let Checked { signed, form } = checked;
    if form.restart.is_some() {
        ensure_started(&signed, true).await?;
        signed.flash("Started over: a fresh test conversation with the bot's files as they are now.").await?;
        return Ok(see_other("/staff/try"));
    }
    let text = form.text.unwrap_or_default();
    if text.trim().is_empty() {
        return Ok(see_other("/staff/try"));
    }
    ensure_started(&signed, false).await?;
    if !try_out(&signed)?.say(&customer(&signed), text.trim()).await? {
        signed.flash("The test bot did not answer within 30 seconds.").await?;
    }
    Ok(see_other("/staff/try"))
}
