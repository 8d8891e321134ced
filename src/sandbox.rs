//! The bot tried out before customers see it: the whole system (ingress, queue, worker, bot) on a
//! temporary SQLite database, the in-process queue and the dry-run sender, with this server's `config/`;
//! each line becomes a real TikTok `im_receive_msg` webhook posted to its ingress, so it takes exactly
//! the production path, and nothing is ever sent to TikTok. `philia-bot chat` runs one in the terminal;
//! [`TryOut`] runs one on a thread of its own for the staff console.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use futures_util::future::BoxFuture;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::bot::staff::Staff;
use crate::config::{Environment, Settings};
use crate::role::Role;
use crate::startup::{Application, StartOptions};
use crate::state::AppState;
use crate::store::entities::messages::{self, Direction};
use crate::store::entities::{conversations, processed_events};
use crate::web::staff::{Line, TryOutBot};

/// The settings a try-out runs with: the config folder's texts, keywords, chart, shop rules and LLM, on the
/// embedded default, never sending to TikTok, quiet logs (the transcript is the output).
pub fn settings_for(mut settings: Settings, database: Option<&str>, temp_dir: &std::path::Path) -> Settings {
    settings.environment = Environment::Local;
    settings.database.url = Some(SecretString::from(
        database.map_or_else(|| format!("sqlite://{}?mode=rwc", temp_dir.join("chat.db").display()), str::to_owned),
    ));
    settings.redis.url = None;
    settings.tiktok.access_token = None;
    settings.tiktok.refresh_token = None;
    settings.tiktok.client_key = None;
    settings.tiktok.client_secret = None;
    settings.server.host = "127.0.0.1".into();
    settings.server.port = 0;
    if std::env::var_os("RUST_LOG").is_none() {
        settings.log.level = "error".into();
    }
    settings
}

/// A customer of a try-out: their TikTok ids are derived from their name.
pub struct Customer {
    pub name: String,
}

impl Customer {
    pub fn user_id(&self) -> String {
        format!("chat-{}", self.name)
    }

    pub fn conversation_id(&self) -> String {
        format!("chat-conversation-{}", self.name)
    }
}

/// Posts one customer line as TikTok's `im_receive_msg` webhook; returns the event's idempotency key.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    secret: Option<&SecretString>,
    customer: &Customer,
    text: &str,
) -> anyhow::Result<String> {
    let message_id = format!("chat-{}", uuid::Uuid::new_v4().simple());
    let content = json!({
        "conversation_id": customer.conversation_id(),
        "message_id": message_id,
        "timestamp": Utc::now().timestamp_millis(),
        "type": "text",
        "text": {"body": text},
        "from": customer.name,
        "from_user": {"id": customer.user_id(), "role": "personal_account"},
        "to_user": {"id": "philia-chat", "role": "business_account"},
    });
    let body = json!({
        "client_key": "chat",
        "event": "im_receive_msg",
        "create_time": Utc::now().timestamp(),
        "user_openid": "philia-chat",
        "content": content.to_string(),
    })
    .to_string();
    let mut request = client.post(url).header("Content-Type", "application/json");
    if let Some(secret) = secret {
        let signature =
            crate::tiktok::signature::sign(secret.expose_secret().as_bytes(), Utc::now().timestamp(), body.as_bytes());
        request = request.header("TikTok-Signature", signature);
    }
    let response = request.body(body).send().await.context("posting to the try-out's webhook")?;
    let status = response.status();
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!("the webhook answered {status}: {answer}");
    }
    Ok(format!("im_receive_msg:{message_id}"))
}

/// Waits until the bot has finished the event `key`; false after `patience`.
pub async fn processed(state: &AppState, key: &str, patience: Duration) -> anyhow::Result<bool> {
    let started = tokio::time::Instant::now();
    loop {
        let event = processed_events::Entity::find()
            .filter(processed_events::Column::IdempotencyKey.eq(key))
            .one(&state.db)
            .await?;
        if event.is_some_and(|e| e.processed_at.is_some()) {
            return Ok(true);
        }
        if started.elapsed() > patience {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How long a try-out turn may take (an LLM may be slow).
const PATIENCE: Duration = Duration::from_secs(30);

enum Request {
    /// Starts (or starts over) with `inventory` (the shop's sheet, CSV) and the config folder as it is now.
    Restart {
        inventory: Vec<u8>,
        answer: oneshot::Sender<anyhow::Result<()>>,
    },
    Say {
        customer: String,
        text: String,
        answer: oneshot::Sender<anyhow::Result<bool>>,
    },
    Transcript {
        customer: String,
        answer: oneshot::Sender<anyhow::Result<Vec<Line>>>,
    },
}

/// A try-out for the staff console: it runs on a thread of its own (its own runtime, ingress and
/// worker), started on first use, and answers one request at a time.
pub struct TryOut {
    requests: mpsc::Sender<Request>,
    started: AtomicBool,
}

impl TryOut {
    /// The try-out of a server with `settings`; nothing runs until [`TryOutBot::restart`].
    pub fn new(settings: Settings) -> TryOut {
        let (requests, mut inbox) = mpsc::channel::<Request>(16);
        std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(e) => return tracing::error!(error = %e, "the try-out cannot start a runtime"),
            };
            runtime.block_on(async move {
                let mut running: Option<Running> = None;
                while let Some(request) = inbox.recv().await {
                    match request {
                        Request::Restart { inventory, answer } => {
                            if let Some(old) = running.take() {
                                old.stop().await;
                            }
                            let started = Running::start(settings.clone(), &inventory).await;
                            let _ = answer.send(started.map(|r| running = Some(r)));
                        }
                        Request::Say { customer, text, answer } => {
                            let _ = answer.send(match &running {
                                Some(r) => r.say(&Customer { name: customer }, &text).await,
                                None => Err(anyhow::anyhow!("the try-out is not started")),
                            });
                        }
                        Request::Transcript { customer, answer } => {
                            let _ = answer.send(match &running {
                                Some(r) => r.transcript(&Customer { name: customer }).await,
                                None => Ok(Vec::new()),
                            });
                        }
                    }
                }
                if let Some(old) = running.take() {
                    old.stop().await;
                }
            });
        });
        TryOut { requests, started: AtomicBool::new(false) }
    }

    async fn ask(&self, request: Request) -> anyhow::Result<()> {
        self.requests.send(request).await.map_err(|_| anyhow::anyhow!("the try-out stopped"))
    }
}

impl TryOutBot for TryOut {
    fn is_started(&self) -> bool {
        self.started.load(Ordering::SeqCst)
    }

    fn restart(&self, inventory: Vec<u8>) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let (answer, answered) = oneshot::channel();
            self.ask(Request::Restart { inventory, answer }).await?;
            answered.await.context("the try-out stopped")??;
            self.started.store(true, Ordering::SeqCst);
            Ok(())
        })
    }

    fn say<'a>(&'a self, customer: &'a str, text: &'a str) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move {
            let (answer, answered) = oneshot::channel();
            self.ask(Request::Say { customer: customer.to_owned(), text: text.to_owned(), answer }).await?;
            answered.await.context("the try-out stopped")?
        })
    }

    fn transcript<'a>(&'a self, customer: &'a str) -> BoxFuture<'a, anyhow::Result<Vec<Line>>> {
        Box::pin(async move {
            let (answer, answered) = oneshot::channel();
            self.ask(Request::Transcript { customer: customer.to_owned(), answer }).await?;
            answered.await.context("the try-out stopped")?
        })
    }
}

/// A running try-out.
struct Running {
    state: AppState,
    url: String,
    secret: Option<SecretString>,
    client: reqwest::Client,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// Holds the temporary database until the try-out stops.
    _folder: tempfile::TempDir,
}

impl Running {
    async fn start(settings: Settings, inventory: &[u8]) -> anyhow::Result<Running> {
        let folder = tempfile::tempdir().context("creating a folder for the try-out's database")?;
        let mut settings = settings_for(settings, None, folder.path());
        // A try-out's handoff is no reason to call staff.
        settings.shop.staff_webhook_url = None;
        settings.staff.enabled = false;
        // One person types into it: a thread and a few tasks are plenty.
        settings.server.http_workers = 1;
        settings.worker.concurrency = 2;
        let secret = settings.tiktok.webhook_secret.clone();
        let app = Application::build(settings, StartOptions::new(Role::All, true)).await?;
        let port = app.port().context("the try-out's ingress has no port")?;
        let state = app.state().clone();
        let shutdown = app.shutdown_token();
        let task = tokio::spawn(app.run_until_stopped());
        let staff = Staff::new(state.db.clone(), state.bot.clone(), state.settings.shop.clone());
        staff.import(inventory, false).await.map_err(|e| anyhow::anyhow!("copying the inventory: {e}"))?;
        Ok(Running {
            state,
            url: format!("http://127.0.0.1:{port}/webhook/tiktok"),
            secret,
            client: reqwest::Client::new(),
            shutdown,
            task,
            _folder: folder,
        })
    }

    async fn say(&self, customer: &Customer, text: &str) -> anyhow::Result<bool> {
        let key = post(&self.client, &self.url, self.secret.as_ref(), customer, text).await?;
        processed(&self.state, &key, PATIENCE).await
    }

    async fn transcript(&self, customer: &Customer) -> anyhow::Result<Vec<Line>> {
        let Some(conversation) = conversations::Entity::find()
            .filter(conversations::Column::TiktokConversationId.eq(customer.conversation_id()))
            .one(&self.state.db)
            .await?
        else {
            return Ok(Vec::new());
        };
        let stored = messages::Entity::find()
            .filter(messages::Column::ConversationId.eq(conversation.id))
            .order_by_asc(messages::Column::Id)
            .all(&self.state.db)
            .await?;
        Ok(stored
            .into_iter()
            .map(|m| Line {
                from_customer: m.direction == Direction::In,
                text: match (&m.text, m.metadata["image_url"].as_str()) {
                    (Some(text), _) => text.clone(),
                    (None, Some(url)) => format!("[picture] {url}"),
                    (None, None) => format!("[{}]", m.message_type),
                },
                at: m.created_at,
            })
            .collect())
    }

    async fn stop(self) {
        self.shutdown.cancel();
        if let Ok(Err(e)) = self.task.await {
            tracing::warn!(error = %e, "the try-out stopped with an error");
        }
    }
}
