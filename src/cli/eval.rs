//! `philia-bot eval`: how well the bot understands customers, measured on files staff can edit.
//! `eval routing FILE.tsv` runs the router over `message<TAB>intent` rows and prints the accuracy, a
//! confusion table and every miss; `eval conversations DIR` plays scripted conversations against the
//! whole bot (webhook, queue, worker, database) on the embedded default and prints every expectation the
//! bot's replies or state did not meet. Both exit 1 when the result is below what was asked, so CI runs them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;

use super::chat::load_inventory;
use crate::bot::ConversationState;
use crate::bot::intent::KeywordRouter;
use crate::config::Settings;
use crate::role::Role;
use crate::shop::holds;
use crate::startup::{Application, StartOptions};
use crate::state::AppState;
use crate::store::entities::messages::{self, Direction};
use crate::store::entities::{conversations, orders, processed_events, users};

/// How long one turn may take before the conversation counts it as unanswered.
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(clap::Subcommand)]
pub enum Action {
    /// Route every `message<TAB>intent` row of a TSV file (`a|b`: either is right; `faq`: any FAQ topic).
    Routing {
        file: PathBuf,
        /// Ask the configured LLM too (the keyword router alone otherwise).
        #[arg(long)]
        llm: bool,
        /// Exit 1 when fewer than this percentage of rows route right.
        #[arg(long, default_value_t = 0.0)]
        min: f64,
        /// Train the router's model on this `message<TAB>intent` file instead of the config folder's
        /// `examples.tsv`: to score a table with a model that never saw it (leave it out of the file).
        #[arg(long)]
        examples: Option<PathBuf>,
    },
    /// Play every `*.txt` conversation script of a folder against the whole bot.
    Conversations {
        dir: PathBuf,
        /// Only the scripts whose file name contains this.
        #[arg(long)]
        only: Option<String>,
    },
}

pub async fn run(settings: Settings, action: Action) -> anyhow::Result<()> {
    match action {
        Action::Routing { file, llm, min, examples } => routing(settings, &file, llm, min, examples.as_deref()).await,
        Action::Conversations { dir, only } => conversations(settings, &dir, only.as_deref()).await,
    }
}

/// One row of a routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub line: usize,
    pub message: String,
    /// Any of these is right.
    pub expected: Vec<String>,
}

/// Reads `message<TAB>intent` rows; lines starting with `#` and blank lines are skipped.
pub fn parse_routing(text: &str, source: &str) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((message, expected)) = line.rsplit_once('\t') else {
            bail!("{source}:{}: expected `message<TAB>intent`, found {line:?}", i + 1);
        };
        let expected: Vec<String> =
            expected.split('|').map(str::trim).filter(|e| !e.is_empty()).map(str::to_owned).collect();
        if expected.is_empty() || message.trim().is_empty() {
            bail!("{source}:{}: expected `message<TAB>intent`, found {line:?}", i + 1);
        }
        rows.push(Row { line: i + 1, message: message.trim().to_owned(), expected });
    }
    Ok(rows)
}

/// Whether the router's `got` answers a row expecting `expected` (`faq` is any topic).
pub fn matches(expected: &[String], got: &str) -> bool {
    expected.iter().any(|e| e == got || (e == "faq" && got.starts_with("faq:")))
}

/// The label a routed intent is counted under in the confusion table.
fn label(expected: &[String], got: &str) -> String {
    if expected.iter().any(|e| e == "faq") && got.starts_with("faq:") { "faq".into() } else { got.to_owned() }
}

/// The result of routing a table: how many right, and each miss.
pub struct RoutingReport {
    pub total: usize,
    pub right: usize,
    /// (expected, got) → count.
    pub confusion: BTreeMap<(String, String), usize>,
    pub misses: Vec<(Row, String)>,
}

impl RoutingReport {
    pub fn accuracy(&self) -> f64 {
        if self.total == 0 { 0.0 } else { 100.0 * self.right as f64 / self.total as f64 }
    }
}

/// Routes every row with the keyword router alone.
pub fn route_table(router: &KeywordRouter, rows: &[Row]) -> RoutingReport {
    let routed: Vec<String> = rows.iter().map(|row| router.route(&row.message).0.name()).collect();
    report(rows, routed)
}

fn report(rows: &[Row], routed: Vec<String>) -> RoutingReport {
    let mut confusion = BTreeMap::new();
    let mut misses = Vec::new();
    let mut right = 0;
    for (row, got) in rows.iter().zip(routed) {
        let expected = row.expected.join("|");
        *confusion.entry((expected, label(&row.expected, &got))).or_insert(0) += 1;
        if matches(&row.expected, &got) {
            right += 1;
        } else {
            misses.push((row.clone(), got));
        }
    }
    RoutingReport { total: rows.len(), right, confusion, misses }
}

async fn routing(settings: Settings, file: &Path, llm: bool, min: f64, examples: Option<&Path>) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let rows = parse_routing(&text, &file.display().to_string())?;
    let mut files = crate::bot::BotFiles::load(&settings.config_dir).map_err(crate::config::ConfigError)?;
    if let Some(path) = examples {
        if llm {
            bail!("--examples measures the keyword router's model; it does not go with --llm");
        }
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        files.router =
            files.router.with_examples(&text, &path.display().to_string()).map_err(crate::config::ConfigError)?;
    }
    let report = if llm {
        let metrics = crate::metrics::Metrics::new();
        let bot = crate::startup::build_bot(&settings, &metrics)?;
        if !bot.has_llm() {
            bail!("--llm: no LLM is configured (set OPENAI_API_KEY, and llm.base_url for another endpoint)");
        }
        let mut routed = Vec::new();
        for row in &rows {
            routed.push(bot.classify(&row.message).await.name());
        }
        report(&rows, routed)
    } else {
        route_table(&files.router, &rows)
    };
    print!(
        "{}",
        describe(
            &report,
            &file.display().to_string(),
            if llm { "keywords, then the LLM" } else { "keywords and examples" }
        )
    );
    if report.accuracy() + 1e-9 < min {
        bail!("{:.1}% routed right, below --min {min}%", report.accuracy());
    }
    Ok(())
}

/// The report as printed: accuracy, the confusion table (rows: expected, columns: routed), the misses.
pub fn describe(report: &RoutingReport, source: &str, router: &str) -> String {
    let mut out = format!(
        "{source}: {}/{} routed right ({:.1}%) by the {router} router\n",
        report.right,
        report.total,
        report.accuracy()
    );
    out.push_str("\nconfusion (expected → routed: count), wrong routes marked *\n");
    let mut by_expected: BTreeMap<&str, Vec<(&str, usize)>> = BTreeMap::new();
    for ((expected, got), count) in &report.confusion {
        by_expected.entry(expected).or_default().push((got, *count));
    }
    for (expected, routed) in by_expected {
        let cells: Vec<String> = routed
            .iter()
            .map(|(got, n)| {
                let wrong = !matches(&expected.split('|').map(str::to_owned).collect::<Vec<_>>(), got);
                format!("{}{got}: {n}", if wrong { "*" } else { "" })
            })
            .collect();
        out.push_str(&format!("  {expected:<28} → {}\n", cells.join(", ")));
    }
    if !report.misses.is_empty() {
        out.push_str(&format!("\nmisses ({})\n", report.misses.len()));
        for (row, got) in &report.misses {
            out.push_str(&format!(
                "  line {}: {:?} expected {}, got {got}\n",
                row.line,
                row.message,
                row.expected.join("|")
            ));
        }
    }
    out
}

/// One step of a conversation script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `> text`: the current customer writes.
    Say(String),
    /// `staff> text`: a person from the shop writes in the conversation from the TikTok app.
    Staff(String),
    /// `as NAME`: later lines are another customer's.
    As(String),
    /// `< text`: a reply to the last line contains this (case-insensitive); `< a|b`: one of these.
    Contains(String),
    /// `<! text`: no reply to the last line contains this.
    Lacks(String),
    /// `silent`: the last line got no reply.
    Silent,
    /// `state: …`: the conversation's state (`idle`, `viewing SKU`, `choosing`, `awaiting item`,
    /// `awaiting order`, `awaiting address`, `confirming address`).
    State(String),
    /// `handoff: yes|no`.
    Handoff(bool),
    /// `holds: SKU …` (or `holds: none`): exactly the customer's holds.
    Holds(Vec<String>),
    /// `order: TEXT`: the customer's latest order, described as `status name, address`, contains TEXT.
    Order(String),
    /// `opted out: yes|no`.
    OptedOut(bool),
}

/// A script: its steps, each with its line number.
pub fn parse_script(text: &str, source: &str) -> anyhow::Result<Vec<(usize, Step)>> {
    let mut steps = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let yes_no = |v: &str| match v.trim() {
            "yes" => Ok(true),
            "no" => Ok(false),
            other => bail!("{source}:{}: expected yes or no, found {other:?}", i + 1),
        };
        let step = if let Some(rest) = line.strip_prefix("staff>") {
            Step::Staff(rest.trim().to_owned())
        } else if let Some(rest) = line.strip_prefix("<!") {
            Step::Lacks(rest.trim().to_owned())
        } else if let Some(rest) = line.strip_prefix('<') {
            Step::Contains(rest.trim().to_owned())
        } else if let Some(rest) = line.strip_prefix('>') {
            Step::Say(rest.trim().to_owned())
        } else if let Some(rest) = line.strip_prefix("as ") {
            Step::As(rest.trim().to_owned())
        } else if line == "silent" {
            Step::Silent
        } else if let Some(rest) = line.strip_prefix("state:") {
            Step::State(rest.trim().to_owned())
        } else if let Some(rest) = line.strip_prefix("handoff:") {
            Step::Handoff(yes_no(rest)?)
        } else if let Some(rest) = line.strip_prefix("opted out:") {
            Step::OptedOut(yes_no(rest)?)
        } else if let Some(rest) = line.strip_prefix("holds:") {
            let skus: Vec<String> = rest.split_whitespace().filter(|s| *s != "none").map(str::to_owned).collect();
            Step::Holds(skus)
        } else if let Some(rest) = line.strip_prefix("order:") {
            Step::Order(rest.trim().to_owned())
        } else {
            bail!(
                "{source}:{}: unknown line {line:?} (lines start with >, staff>, <, <!, as, silent, state:, handoff:, holds:, order:, opted out:)",
                i + 1
            );
        };
        if matches!(step, Step::Contains(ref s) | Step::Lacks(ref s) | Step::Say(ref s) if s.is_empty()) {
            bail!("{source}:{}: {line:?} needs a text", i + 1);
        }
        steps.push((i + 1, step));
    }
    if !steps.iter().any(|(_, s)| matches!(s, Step::Say(_))) {
        bail!("{source}: the script has no customer line (`> …`)");
    }
    Ok(steps)
}

/// What the scripts of a folder did.
pub struct ConversationsReport {
    pub scripts: usize,
    pub passed: usize,
    pub expectations: usize,
    /// `file:line: what was expected, what happened`.
    pub failures: Vec<String>,
}

async fn conversations(settings: Settings, dir: &Path, only: Option<&str>) -> anyhow::Result<()> {
    let report = run_scripts(settings, dir, only).await?;
    for failure in &report.failures {
        println!("FAIL {failure}");
    }
    println!(
        "{}: {}/{} conversations passed, {} of {} expectations failed",
        dir.display(),
        report.passed,
        report.scripts,
        report.failures.len(),
        report.expectations
    );
    if report.passed < report.scripts {
        bail!("{} conversation(s) failed", report.scripts - report.passed);
    }
    Ok(())
}

/// Plays every `*.txt` script of `dir` (in name order), each against a fresh bot and database.
pub async fn run_scripts(settings: Settings, dir: &Path, only: Option<&str>) -> anyhow::Result<ConversationsReport> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .filter(|p| only.is_none_or(|o| p.file_name().is_some_and(|n| n.to_string_lossy().contains(o))))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{} holds no conversation script (*.txt)", dir.display());
    }
    let mut report = ConversationsReport { scripts: 0, passed: 0, expectations: 0, failures: Vec::new() };
    for file in files {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {name}"))?;
        let steps = parse_script(&text, &name)?;
        let failures = play(settings.clone(), &name, &steps).await?;
        report.scripts += 1;
        report.expectations +=
            steps.iter().filter(|(_, s)| !matches!(s, Step::Say(_) | Step::Staff(_) | Step::As(_))).count();
        if failures.is_empty() {
            report.passed += 1;
        }
        report.failures.extend(failures);
    }
    Ok(report)
}

/// Plays one script against a fresh bot: its own temporary SQLite database with the demo inventory.
async fn play(settings: Settings, name: &str, steps: &[(usize, Step)]) -> anyhow::Result<Vec<String>> {
    let temp = tempfile::tempdir().context("creating a temporary folder for the conversation")?;
    let settings = crate::sandbox::settings_for(settings, None, temp.path());
    let app = Application::build(settings, StartOptions::new(Role::All, true)).await?;
    let port = app.port().context("the ingress has no port")?;
    let state = app.state().clone();
    let shutdown = app.shutdown_token();
    let running = tokio::spawn(app.run_until_stopped());
    load_inventory(&state, None).await?;
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/webhook/tiktok");
    let mut customer = "kim".to_owned();
    let mut replies: Vec<String> = Vec::new();
    let mut last_said = String::new();
    let mut failures = Vec::new();
    for (line, step) in steps {
        let fail = |what: String| format!("{name}:{line}: after {last_said:?}: {what}");
        match step {
            Step::As(who) => customer = who.clone(),
            Step::Say(text) => {
                let key = post(&client, &url, "im_receive_msg", &customer, text).await?;
                replies = answer(&state, &key).await?;
                last_said = text.clone();
            }
            Step::Staff(text) => {
                let key = post(&client, &url, "im_send_msg", &customer, text).await?;
                wait(&state, &key).await?;
                replies.clear();
                last_said = format!("staff: {text}");
            }
            Step::Contains(text) => {
                if !contains_one_of(&replies, text) {
                    failures.push(fail(format!("expected a reply containing {text:?}, got {}", said(&replies))));
                }
            }
            Step::Lacks(text) => {
                if replies.iter().any(|r| r.to_lowercase().contains(&text.to_lowercase())) {
                    failures.push(fail(format!("expected no reply containing {text:?}, got {}", said(&replies))));
                }
            }
            Step::Silent => {
                if !replies.is_empty() {
                    failures.push(fail(format!("expected no reply, got {}", said(&replies))));
                }
            }
            Step::State(expected) => {
                let got = conversation(&state, &customer).await?.map(|c| describe_state(&ConversationState::of(&c)));
                let got = got.unwrap_or_else(|| "no conversation".into());
                let any_piece = expected == "viewing" && got.starts_with("viewing");
                if !(got.eq_ignore_ascii_case(expected) || any_piece) {
                    failures.push(fail(format!("expected state {expected:?}, got {got:?}")));
                }
            }
            Step::Handoff(expected) => {
                let got = conversation(&state, &customer).await?.is_some_and(|c| c.handoff_active);
                if got != *expected {
                    failures.push(fail(format!("expected handoff {expected}, got {got}")));
                }
            }
            Step::OptedOut(expected) => {
                let got = user(&state, &customer).await?.is_some_and(|u| u.opted_out);
                if got != *expected {
                    failures.push(fail(format!("expected opted out {expected}, got {got}")));
                }
            }
            Step::Holds(expected) => {
                let mut got = Vec::new();
                if let Some(user) = user(&state, &customer).await? {
                    got = holds::holds_of(&state.db, user.id).await?.into_iter().map(|(_, item)| item.sku).collect();
                }
                got.sort();
                let mut expected = expected.clone();
                expected.sort();
                if got != expected {
                    failures.push(fail(format!("expected holds {expected:?}, got {got:?}")));
                }
            }
            Step::Order(text) => {
                let got = match user(&state, &customer).await? {
                    Some(user) => orders::Entity::find()
                        .filter(orders::Column::UserId.eq(user.id))
                        .order_by_desc(orders::Column::Id)
                        .one(&state.db)
                        .await?
                        .map(|o| describe_order(&o)),
                    None => None,
                };
                let got = got.unwrap_or_else(|| "no order".into());
                if !got.to_lowercase().contains(&text.to_lowercase()) {
                    failures.push(fail(format!("expected the latest order to contain {text:?}, got {got:?}")));
                }
            }
        }
    }
    shutdown.cancel();
    running.await.context("the conversation's application task")??;
    Ok(failures)
}

/// Whether a reply contains one of `expected`'s `|`-separated texts (case-insensitive): "PM EST|PM EDT"
/// holds in winter and in summer.
fn contains_one_of(replies: &[String], expected: &str) -> bool {
    let wanted: Vec<String> = expected.split('|').map(|t| t.trim().to_lowercase()).filter(|t| !t.is_empty()).collect();
    replies.iter().any(|r| {
        let reply = r.to_lowercase();
        wanted.iter().any(|w| reply.contains(w.as_str()))
    })
}

fn said(replies: &[String]) -> String {
    if replies.is_empty() { "no reply".into() } else { format!("{:?}", replies.join(" / ")) }
}

/// A state as scripts name it.
pub fn describe_state(state: &ConversationState) -> String {
    match state {
        ConversationState::Idle => "idle".into(),
        ConversationState::AwaitingOrderNumber => "awaiting order".into(),
        ConversationState::ChoosingItem { .. } => "choosing".into(),
        ConversationState::AwaitingItem { .. } => "awaiting item".into(),
        ConversationState::ViewingItem { sku } => format!("viewing {sku}"),
        ConversationState::AwaitingAddress { .. } => "awaiting address".into(),
        ConversationState::ConfirmingAddress { .. } => "confirming address".into(),
    }
}

/// An order as `order:` lines match it: its status, then the shipping name and address.
fn describe_order(order: &orders::Model) -> String {
    let address = crate::shop::orders::Address::of(order).map(|a| crate::bot::address::say(&a).replace('\n', ", "));
    format!("{} {}", format!("{:?}", order.status).to_lowercase(), address.unwrap_or_default())
}

/// Posts one webhook as TikTok would: a customer's message (`im_receive_msg`) or the echo of a message
/// a person from the shop wrote in the TikTok app (`im_send_msg`). Returns the event's idempotency key.
async fn post(client: &reqwest::Client, url: &str, event: &str, customer: &str, text: &str) -> anyhow::Result<String> {
    let message_id = format!("eval-{}", uuid::Uuid::new_v4().simple());
    let (from, to) = if event == "im_send_msg" {
        (
            json!({"id": "philia-eval", "role": "business_account"}),
            json!({"id": format!("eval-{customer}"), "role": "personal_account"}),
        )
    } else {
        (
            json!({"id": format!("eval-{customer}"), "role": "personal_account"}),
            json!({"id": "philia-eval", "role": "business_account"}),
        )
    };
    let content = json!({
        "conversation_id": format!("eval-conversation-{customer}"),
        "message_id": message_id,
        "timestamp": Utc::now().timestamp_millis(),
        "type": "text",
        "text": {"body": text},
        "from": customer,
        "from_user": from,
        "to_user": to,
    });
    let body = json!({
        "client_key": "eval",
        "event": event,
        "create_time": Utc::now().timestamp(),
        "user_openid": "philia-eval",
        "content": content.to_string(),
    })
    .to_string();
    let response = client
        .post(url)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .context("posting to the webhook")?;
    let status = response.status();
    if !status.is_success() {
        bail!("the webhook answered {status}: {}", response.text().await.unwrap_or_default());
    }
    Ok(format!("{event}:{message_id}"))
}

/// Waits until the worker has finished the event.
async fn wait(state: &AppState, key: &str) -> anyhow::Result<()> {
    let started = tokio::time::Instant::now();
    loop {
        let event = processed_events::Entity::find()
            .filter(processed_events::Column::IdempotencyKey.eq(key))
            .one(&state.db)
            .await?;
        if event.is_some_and(|e| e.processed_at.is_some()) {
            return Ok(());
        }
        if started.elapsed() > PATIENCE {
            bail!("no answer to {key} after {} s", PATIENCE.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The texts the bot replied to the event with, in order.
async fn answer(state: &AppState, key: &str) -> anyhow::Result<Vec<String>> {
    wait(state, key).await?;
    let replies = messages::Entity::find()
        .filter(messages::Column::Direction.eq(Direction::Out))
        .order_by_asc(messages::Column::Id)
        .all(&state.db)
        .await?;
    Ok(replies.into_iter().filter(|m| m.metadata["in_reply_to"] == json!(key)).filter_map(|m| m.text).collect())
}

async fn conversation(state: &AppState, customer: &str) -> anyhow::Result<Option<conversations::Model>> {
    Ok(conversations::Entity::find()
        .filter(conversations::Column::TiktokConversationId.eq(format!("eval-conversation-{customer}")))
        .one(&state.db)
        .await?)
}

async fn user(state: &AppState, customer: &str) -> anyhow::Result<Option<users::Model>> {
    Ok(users::Entity::find().filter(users::Column::TiktokUserId.eq(format!("eval-{customer}"))).one(&state.db).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_rows_take_alternatives_and_any_faq() {
        let rows = parse_routing("# comment\nhow much\tprice\ncan u ship to canada\tfaq|human\n", "t.tsv").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].expected, ["faq", "human"]);
        assert!(matches(&rows[1].expected, "faq:shipping"));
        assert!(!matches(&rows[0].expected, "availability"));
        assert!(parse_routing("no tab here\n", "t.tsv").unwrap_err().to_string().contains("t.tsv:1"));
    }

    #[test]
    fn scripts_name_the_line_of_a_mistake() {
        let steps = parse_script("> hi\n< Hey\n<! menu\nstate: idle\nhandoff: no\nholds: none\n", "a.txt").unwrap();
        assert_eq!(steps.len(), 6);
        assert_eq!(steps[5].1, Step::Holds(vec![]));
        let error = parse_script("> hi\nexpect hello\n", "a.txt").unwrap_err().to_string();
        assert!(error.contains("a.txt:2"), "{error}");
        assert!(parse_script("< only expectations\n", "a.txt").is_err());
    }

    #[test]
    fn an_expectation_may_name_alternatives() {
        let replies = ["It's yours! On hold until 9:04 PM EDT today".to_owned()];
        assert!(contains_one_of(&replies, "PM EST|PM EDT"));
        assert!(!contains_one_of(&replies, "AM EST|AM EDT"));
        assert!(!contains_one_of(&["Sweet, we'll get it out".to_owned()], "PM EST|PM EDT|AM EST|AM EDT"));
    }
}
