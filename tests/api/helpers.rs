//! The test harness: every test gets its own database (a fresh PostgreSQL database or SQLite file), its
//! own Redis key prefix, and a running `Application` on a free port.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Once;

use philia_bot::config::{Role, Settings};
use philia_bot::startup::{AppState, Application, StartOptions};
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

/// Settings for a test: a free port, the test's database, no Redis, quiet logs.
pub fn test_settings(db: &TestDatabase) -> Settings {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        philia_bot::install_crypto_provider();
        if std::env::var_os("TEST_LOG").is_some() {
            philia_bot::telemetry::init(&Default::default(), Default::default());
        }
    });
    let mut settings = Settings::default();
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

    /// Stops the application as SIGTERM would and returns what `run_until_stopped` returned.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await.expect("application task")
    }
}

/// Builds and starts the application with `settings` and `role`.
pub async fn spawn_app_with(db: TestDatabase, settings: Settings, role: Role) -> TestApp {
    let app = Application::build(settings, StartOptions { role, migrate: true }).await.expect("application builds");
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

/// The whole application (`--role all`) on the test's own database.
pub async fn spawn_app(db: TestDatabase) -> TestApp {
    let settings = test_settings(&db);
    spawn_app_with(db, settings, Role::All).await
}
