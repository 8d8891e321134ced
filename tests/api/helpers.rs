//! The test harness: every test gets its own database (a fresh PostgreSQL database or SQLite file), its
//! own Redis key prefix, and a running `Application` on a free port.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Once;

use philia_bot::config::Settings;
use philia_bot::jobs::JobQueue;
use philia_bot::role::Role;
use philia_bot::startup::{Application, StartOptions};
use philia_bot::state::AppState;
use philia_bot::store::entities::messages::{self, DeliveryStatus, Direction};
use philia_bot::tiktok::signature;
use sea_orm::{EntityTrait, QueryOrder};
use secrecy::SecretString;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Runs an `async fn(TestDatabase)` once on SQLite and once on PostgreSQL, as `NAME::sqlite` and
/// `NAME::postgres`. The PostgreSQL run is skipped (and says so) without `TEST_DATABASE_URL`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::helpers::TestDatabase::sqlite()).await
            }

            #[tokio::test]
            async fn postgres() {
                let path = concat!(module_path!(), "::postgres");
                let test = path.strip_prefix("api::").unwrap_or(path);
                if let Some(db) = $crate::helpers::TestDatabase::postgres(test).await {
                    super::$name(db).await
                }
            }
        }
    )+};
}

/// Runs an `async fn(TestDatabase, Option<TestRedis>)` on every database × queue backend:
/// `NAME::sqlite_memory`, `NAME::sqlite_redis`, `NAME::postgres_memory`, `NAME::postgres_redis`.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            fn test(suffix: &str) -> String {
                let path = module_path!();
                format!("{}::{suffix}", path.strip_prefix("api::").unwrap_or(path))
            }

            #[tokio::test]
            async fn sqlite_memory() {
                super::$name($crate::helpers::TestDatabase::sqlite(), None).await
            }

            #[tokio::test]
            async fn sqlite_redis() {
                if let Some(redis) = $crate::helpers::TestRedis::new(&test("sqlite_redis")) {
                    super::$name($crate::helpers::TestDatabase::sqlite(), Some(redis)).await
                }
            }

            #[tokio::test]
            async fn postgres_memory() {
                if let Some(db) = $crate::helpers::TestDatabase::postgres(&test("postgres_memory")).await {
                    super::$name(db, None).await
                }
            }

            #[tokio::test]
            async fn postgres_redis() {
                let name = test("postgres_redis");
                if let Some(redis) = $crate::helpers::TestRedis::new(&name)
                    && let Some(db) = $crate::helpers::TestDatabase::postgres(&name).await
                {
                    super::$name(db, Some(redis)).await
                }
            }
        }
    )+};
}

/// Runs an `async fn(Option<TestRedis>)` on the in-process queue and on Redis: `NAME::memory`, `NAME::redis`.
#[macro_export]
macro_rules! on_both_queues {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn memory() {
                super::$name(None).await
            }

            #[tokio::test]
            async fn redis() {
                let path = concat!(module_path!(), "::redis");
                if let Some(redis) = $crate::helpers::TestRedis::new(path.strip_prefix("api::").unwrap_or(path)) {
                    super::$name(Some(redis)).await
                }
            }
        }
    )+};
}

/// Says on the terminal that a test did not run. Written to the real stderr, not the captured one,
/// so `cargo test` shows it even when the test passes.
pub fn report_skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// Whether a missing service must fail the test (CI sets `PHILIA_REQUIRE_SERVICES=1`).
fn services_required() -> bool {
    std::env::var("PHILIA_REQUIRE_SERVICES").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Reads a service URL for tests; `None` (after reporting the skip) when it is not set.
fn service_url(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if services_required() => panic!("{test}: {var} is not set but PHILIA_REQUIRE_SERVICES=1"),
        _ => {
            report_skip(test, &format!("{var} is not set"));
            None
        }
    }
}

/// A database that belongs to one test and is removed after it.
pub struct TestDatabase {
    pub url: String,
    pub kind: &'static str,
    /// Keeps the SQLite file's folder alive for the test.
    _dir: Option<tempfile::TempDir>,
    /// Drops the PostgreSQL database when the test ends.
    _postgres: Option<PostgresDropGuard>,
}

impl TestDatabase {
    /// A new SQLite file in a temporary folder.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path: PathBuf = dir.path().join("philia-test.db");
        Self { url: format!("sqlite://{}?mode=rwc", path.display()), kind: "sqlite", _dir: Some(dir), _postgres: None }
    }

    /// A freshly created, randomly named PostgreSQL database on the `TEST_DATABASE_URL` server.
    pub async fn postgres(test: &str) -> Option<Self> {
        let admin_url = service_url("TEST_DATABASE_URL", test)?;
        let name = format!("philia_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sea_orm::Database::connect(&admin_url).await.expect("connect to TEST_DATABASE_URL");
        use sea_orm::ConnectionTrait;
        admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.expect("create test database");
        admin.close().await.expect("close admin connection");
        let mut url = url::Url::parse(&admin_url).expect("TEST_DATABASE_URL is a URL");
        url.set_path(&name);
        Some(Self {
            url: url.to_string(),
            kind: "postgres",
            _dir: None,
            _postgres: Some(PostgresDropGuard { admin_url, name }),
        })
    }
}

struct PostgresDropGuard {
    admin_url: String,
    name: String,
}

impl Drop for PostgresDropGuard {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot block on async work: use a thread of its own.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                use sea_orm::ConnectionTrait;
                let admin = sea_orm::Database::connect(&admin_url).await?;
                admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            let _ = writeln!(std::io::stderr(), "warning: could not drop test database {}", self.name);
        }
    }
}

/// A Redis key prefix that belongs to one test, on the `TEST_REDIS_URL` server.
pub struct TestRedis {
    pub url: String,
    pub prefix: String,
}

impl TestRedis {
    pub fn new(test: &str) -> Option<Self> {
        let url = service_url("TEST_REDIS_URL", test)?;
        Some(Self { url, prefix: format!("philia-test-{}", uuid::Uuid::new_v4().simple()) })
    }
}

impl Drop for TestRedis {
    /// Deletes every key under the test's prefix, so test runs leave the shared server as they found it.
    fn drop(&mut self) {
        let (url, pattern) = (self.url.clone(), format!("{}:*", self.prefix));
        let cleaned = std::thread::spawn(move || -> Result<(), deadpool_redis::redis::RedisError> {
            use deadpool_redis::redis;
            let mut conn = redis::Client::open(url)?.get_connection()?;
            let keys: Vec<String> = redis::cmd("SCAN")
                .cursor_arg(0)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .clone()
                .iter(&mut conn)?
                .collect::<Result<_, _>>()?;
            for chunk in keys.chunks(500) {
                redis::cmd("DEL").arg(chunk).exec(&mut conn)?;
            }
            Ok(())
        })
        .join();
        if !matches!(cleaned, Ok(Ok(()))) {
            let _ = writeln!(std::io::stderr(), "warning: could not delete the Redis keys of {}", self.prefix);
        }
    }
}

/// The webhook secret every test app verifies signatures with.
pub const WEBHOOK_SECRET: &str = "test-webhook-secret";

/// Settings for a test: a free port, the test's database, no Redis, the repository's config folder,
/// a webhook secret, quiet logs (`TEST_LOG=1` shows them).
pub fn test_settings(db: &TestDatabase) -> Settings {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        philia_bot::install_crypto_provider();
        if std::env::var_os("TEST_LOG").is_some() {
            philia_bot::telemetry::init(&Settings::defaults().log, Default::default());
        }
    });
    let mut settings =
        Settings { config_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config"), ..Settings::defaults() };
    settings.tiktok.webhook_secret = Some(SecretString::from(WEBHOOK_SECRET.to_owned()));
    settings.worker.concurrency = 4;
    settings.server.port = 0;
    settings.server.http_workers = 1;
    settings.database.url = Some(SecretString::from(db.url.clone()));
    settings.database.max_connections = 5;
    settings.worker.shutdown_grace_secs = 5;
    settings
}

/// A running application and what a test needs to talk to it.
pub struct TestApp {
    pub address: String,
    pub port: Option<u16>,
    pub state: AppState,
    pub client: reqwest::Client,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
    /// Keeps the test's database until the app is dropped.
    pub _database: TestDatabase,
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.address)).send().await.expect("request")
    }

    /// Posts `body` to the webhook, signed now with the test secret, as TikTok would.
    pub async fn post_webhook(&self, body: &str) -> reqwest::Response {
        let signature = signature::sign(WEBHOOK_SECRET.as_bytes(), chrono::Utc::now().timestamp(), body.as_bytes());
        self.webhook_request()
            .header("TikTok-Signature", signature)
            .body(body.to_owned())
            .send()
            .await
            .expect("request")
    }

    /// A JSON POST to the webhook, for tests that set their own headers.
    pub fn webhook_request(&self) -> reqwest::RequestBuilder {
        self.client.post(format!("{}/webhook/tiktok", self.address)).header("Content-Type", "application/json")
    }

    /// Jobs the queue has ever accepted (Redis: entries in the stream; in-process: ids handed out).
    pub async fn enqueued(&self) -> u64 {
        self.state.queue.enqueued_total().await.expect("queue answers")
    }

    /// Stored messages, oldest first.
    pub async fn messages(&self) -> Vec<messages::Model> {
        messages::Entity::find().order_by_asc(messages::Column::Id).all(&self.state.db).await.expect("messages")
    }

    /// The messages the shop sent or is to send, oldest first.
    pub async fn replies(&self) -> Vec<messages::Model> {
        self.messages().await.into_iter().filter(|m| m.direction == Direction::Out).collect()
    }

    /// Whether [`TestApp::drain`] can run this app's jobs to completion (it has the in-process queue).
    pub fn drains(&self) -> bool {
        matches!(self.state.queue, JobQueue::Memory(_))
    }

    /// Runs every job queued so far to completion: returns once the in-process queue has nothing waiting
    /// or in flight, every job acknowledged or dead (a failed job's retries included). The queue wakes it
    /// as each job settles, so nothing polls or sleeps; the limit only turns a hung job into a failure.
    pub async fn drain(&self) {
        let JobQueue::Memory(queue) = &self.state.queue else {
            panic!("drain() runs the in-process queue; on Redis wait for the effect instead");
        };
        tokio::time::timeout(DRAIN_LIMIT, queue.until_idle())
            .await
            .unwrap_or_else(|_| panic!("the queued jobs did not finish within {DRAIN_LIMIT:?}"));
    }

    /// Waits until every job queued so far is finished: drained on the in-process queue; on Redis, waited
    /// for until the stream has nothing unread or pending.
    pub async fn finish_jobs(&self) {
        if self.drains() {
            return self.drain().await;
        }
        wait_for("the queue to drain", PATIENCE, || async {
            (self.state.queue.backlog().await.ok()? == 0).then_some(())
        })
        .await;
    }

    /// Stops the application as SIGTERM would and returns what `run_until_stopped` returned.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await.expect("application task")
    }
}

/// How long [`TestApp::drain`] lets the queued jobs take before failing the test.
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a test on Redis waits for its replies.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(15);

/// The shop's messages to customers, oldest first, once at least `n` of them are settled: neither
/// waiting to be sent nor being sent. On the in-process queue the jobs are drained first, so the count is
/// checked once; on Redis it is waited for.
pub async fn settled_replies(app: &TestApp, n: usize) -> Vec<messages::Model> {
    let settled = |replies: &[messages::Model]| {
        replies
            .iter()
            .filter(|m| !matches!(m.delivery_status, Some(DeliveryStatus::Pending | DeliveryStatus::Sending)))
            .count()
    };
    if app.drains() {
        app.drain().await;
        let replies = app.replies().await;
        assert!(settled(&replies) >= n, "{n} settled replies expected once the queue drained: {replies:#?}");
        return replies;
    }
    wait_for(&format!("{n} settled replies"), PATIENCE, || async {
        let replies = app.replies().await;
        (settled(&replies) >= n).then_some(replies)
    })
    .await
}

/// Points `settings` at the test's Redis, when it has one.
pub fn use_redis(settings: &mut Settings, redis: Option<&TestRedis>) {
    if let Some(redis) = redis {
        settings.redis.url = Some(SecretString::from(redis.url.clone()));
        settings.redis.key_prefix = redis.prefix.clone();
    }
}

/// A TikTok `im_receive_msg` webhook body, in TikTok's real envelope (`content` is a JSON string).
pub fn tiktok_message(message_id: &str, user: &str, text: &str) -> String {
    tiktok_event("im_receive_msg", message_id, user, text)
}

/// The `im_send_msg` echo of a message the shop sent to `user`.
pub fn tiktok_echo(message_id: &str, user: &str, text: &str) -> String {
    tiktok_event("im_send_msg", message_id, user, text)
}

fn tiktok_event(event: &str, message_id: &str, user: &str, text: &str) -> String {
    let customer = serde_json::json!({"id": format!("open-{user}"), "role": "personal_account"});
    let shop = serde_json::json!({"id": "biz_open_id", "role": "business_account"});
    let (from, from_user, to_user) =
        if event == "im_send_msg" { ("philia.thrifts", shop, customer) } else { (user, customer, shop) };
    let content = serde_json::json!({
        "conversation_id": format!("conv-{user}"),
        "message_id": message_id,
        "timestamp": chrono::Utc::now().timestamp_millis(),
        "type": "text",
        "text": {"body": text},
        "from": from,
        "from_user": from_user,
        "to_user": to_user,
    });
    serde_json::json!({
        "client_key": "app_key",
        "event": event,
        "create_time": chrono::Utc::now().timestamp(),
        "user_openid": "biz_open_id",
        "content": content.to_string(),
    })
    .to_string()
}

/// How a test request to the webhook is signed.
pub enum Signed {
    /// Correctly, over the body sent, at the time it is sent.
    Valid,
    /// Not at all.
    Missing,
    /// With this header value (one that is not a valid header value is sent as `unsendable`).
    As(String),
}

/// A request to the webhook and the status it must get: the rows of the bad-request tables.
pub struct WebhookCase {
    pub case: &'static str,
    pub content_type: Option<&'static str>,
    pub content_encoding: Option<&'static str>,
    pub signed: Signed,
    pub body: Vec<u8>,
    pub status: u16,
}

impl WebhookCase {
    /// A JSON request, validly signed, that must get `status`.
    pub fn new(case: &'static str, body: impl Into<Vec<u8>>, status: u16) -> Self {
        let (content_type, content_encoding, signed) = (Some("application/json"), None, Signed::Valid);
        Self { case, content_type, content_encoding, signed, body: body.into(), status }
    }

    /// A request whose signature header must be refused with 401.
    pub fn signature(case: &'static str, body: impl Into<Vec<u8>>, signed: Signed) -> Self {
        Self { signed, ..Self::new(case, body, 401) }
    }

    pub fn content_type(self, content_type: Option<&'static str>) -> Self {
        Self { content_type, ..self }
    }

    pub fn content_encoding(self, encoding: &'static str) -> Self {
        Self { content_encoding: Some(encoding), ..self }
    }

    /// The request, posted to `url` by `client`.
    pub fn request(&self, client: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
        let mut request = client.post(url).body(self.body.clone());
        if let Some(content_type) = self.content_type {
            request = request.header("Content-Type", content_type);
        }
        if let Some(encoding) = self.content_encoding {
            request = request.header("Content-Encoding", encoding);
        }
        let header = match &self.signed {
            Signed::Valid => signature::sign(WEBHOOK_SECRET.as_bytes(), chrono::Utc::now().timestamp(), &self.body),
            Signed::Missing => return request,
            Signed::As(header) => header.clone(),
        };
        let header = reqwest::header::HeaderValue::from_bytes(header.as_bytes())
            .unwrap_or(reqwest::header::HeaderValue::from_static("unsendable"));
        request.header("TikTok-Signature", header)
    }
}

/// Polls `check` every 25 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: std::time::Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// Builds and starts the application with `settings` and `role`.
pub async fn spawn_app_with(db: TestDatabase, settings: Settings, role: Role) -> TestApp {
    let mut options = StartOptions::new(role, true);
    if settings.staff.enabled {
        options.try_out = Some(std::sync::Arc::new(philia_bot::sandbox::TryOut::new(settings.clone())));
    }
    let app = Application::build(settings, options).await.expect("application builds");
    run_built(app, db)
}

/// Runs an application built by the test (which may queue jobs before any worker runs) on its database.
pub fn run_built(app: Application, db: TestDatabase) -> TestApp {
    let port = app.port();
    let state = app.state().clone();
    let shutdown = app.shutdown_token();
    let task = tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{}", port.unwrap_or(0)),
        port,
        state,
        client: reqwest::Client::new(),
        shutdown,
        task,
        _database: db,
    }
}

/// A copy of the shipped `config/` folder, for a test that edits one of its files.
pub fn shipped_config_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}

/// The whole application (`--role all`) on the test's own database.
pub async fn spawn_app(db: TestDatabase) -> TestApp {
    let settings = test_settings(&db);
    spawn_app_with(db, settings, Role::All).await
}

/// A Redis server of the test's own, on a free port, for tests that stop it or wipe it whole
/// (FLUSHALL, restarts) without touching other tests' keys. Killed when dropped.
pub struct PrivateRedis {
    pub url: String,
    port: u16,
    child: std::process::Child,
    /// Where a durable server keeps its append-only file (survives a stop and start).
    dir: Option<tempfile::TempDir>,
}

impl PrivateRedis {
    /// Starts `redis-server`; `None` (reported) when it is not installed and services are not required.
    pub async fn start(test: &str) -> Option<Self> {
        Self::start_with(test, None).await
    }

    /// Like [`PrivateRedis::start`], with the append-only file on and fsynced on every write, as a
    /// production Redis holding the queue should be: a restart keeps every job it acknowledged.
    pub async fn start_durable(test: &str) -> Option<Self> {
        Self::start_with(test, Some(tempfile::tempdir().expect("a folder for the AOF"))).await
    }

    async fn start_with(test: &str, mut dir: Option<tempfile::TempDir>) -> Option<Self> {
        // redis-server cannot be told to pick a port: it gets one found free a moment before, which another
        // test may bind meanwhile. It then exits at once, and is started again on another port.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
            let child = match Self::spawn(port, dir.as_ref().map(tempfile::TempDir::path)) {
                Ok(child) => child,
                Err(e) if services_required() => panic!("{test}: cannot start redis-server: {e}"),
                Err(e) => {
                    report_skip(test, &format!("cannot start redis-server: {e}"));
                    return None;
                }
            };
            let mut server = Self { url: format!("redis://127.0.0.1:{port}"), port, child, dir: dir.take() };
            if server.wait_until_up().await {
                return Some(server);
            }
            server.stop();
            dir = server.dir.take();
        }
        panic!("{test}: redis-server did not start on any of five free ports");
    }

    fn spawn(port: u16, dir: Option<&std::path::Path>) -> std::io::Result<std::process::Child> {
        let mut command = std::process::Command::new("redis-server");
        command.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""]);
        match dir {
            Some(dir) => command.args(["--appendonly", "yes", "--appendfsync", "always", "--dir"]).arg(dir),
            None => command.args(["--appendonly", "no"]),
        };
        command.stdout(std::process::Stdio::null()).spawn()
    }

    /// Waits until the server answers (`true`), or has exited (`false`: it could not bind its port).
    async fn wait_until_up(&mut self) -> bool {
        let url = self.url.clone();
        let child = &mut self.child;
        let mut up = || {
            let url = url.clone();
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            async move {
                if exited {
                    return Some(false);
                }
                redis_cli(&url, &["PING"]).await.filter(|r| r == "PONG").map(|_| true)
            }
        };
        wait_for("the private redis-server to answer", std::time::Duration::from_secs(10), &mut up).await
    }

    /// Stops the server (without `start_durable` its data is gone: it keeps nothing on disk).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port.
    pub async fn start_again(&mut self) {
        self.child =
            Self::spawn(self.port, self.dir.as_ref().map(tempfile::TempDir::path)).expect("redis-server starts again");
        assert!(self.wait_until_up().await, "redis-server exited: port {} was taken while it was stopped", self.port);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one Redis command over a fresh connection and returns a simple reply as text.
pub async fn redis_cli(url: &str, args: &[&str]) -> Option<String> {
    use deadpool_redis::redis;
    let client = redis::Client::open(url).ok()?;
    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    let value: redis::Value = command.query_async(&mut conn).await.ok()?;
    match value {
        redis::Value::Okay => Some("OK".into()),
        redis::Value::SimpleString(s) => Some(s),
        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        redis::Value::Int(n) => Some(n.to_string()),
        other => Some(format!("{other:?}")),
    }
}
