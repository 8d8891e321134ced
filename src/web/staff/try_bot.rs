//! "Try the bot": the `chat` simulator in the page. A temporary copy of the bot (this server's
//! `config/`, a copy of the shop's inventory, its own database) answers as it would on TikTok; it is
//! marked as a test everywhere and never sends anything. Each staff member writes as their own test
//! customer; "Start over" reads the bot's files again, so an edit to replies or the FAQ shows at once.

use actix_web::HttpResponse;
use maud::html;
use serde::Deserialize;

use super::layout::{self, Screen, csrf, lines, see_other};
use super::orders::staff_of;
use super::session::{Checked, ConsoleError, Signed};

/// The pretend customer a staff member writes as.
fn customer(signed: &Signed) -> String {
    format!("test-{}", signed.account.name)
}

/// Starts the try-out with a copy of the shop's inventory, unless it runs.
async fn ensure_started(signed: &Signed, again: bool) -> Result<(), ConsoleError> {
    let try_out = &signed.console.try_out;
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
    let transcript = signed.console.try_out.transcript(&customer(&signed)).await?;
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
    if !signed.console.try_out.say(&customer(&signed), text.trim()).await? {
        signed.flash("The test bot did not answer within 30 seconds.").await?;
    }
    Ok(see_other("/staff/try"))
}
