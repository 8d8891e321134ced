//! Misconfiguration fails loudly, and production keeps its doors closed: each test is a failure an
//! on-call engineer met (issue 17), reproduced through the binary or a running app.

use std::process::Output;

use philia_bot::config::Settings;
use secrecy::SecretString;

use crate::cli::{philia, repo_config_dir, text};
use crate::helpers::{PrivateRedis, TestDatabase, spawn_app, spawn_app_with, test_settings};

/// A production environment that passes every check but the one a test is about: PostgreSQL and Redis
/// named (not connected by `config check`), a long webhook secret, an access token and business id.
const PRODUCTION: &[(&str, &str)] = &[
    ("ENVIRONMENT", "production"),
    ("DATABASE_URL", "postgres://philia@127.0.0.1:1/philia"),
    ("REDIS_URL", "redis://127.0.0.1:1"),
    ("TIKTOK_WEBHOOK_SECRET", "a-webhook-secret-of-32-characters"),
    ("TIKTOK_ACCESS_TOKEN", "an-access-token-of-some-length"),
    ("TIKTOK_BUSINESS_ID", "7000000000000000001"),
];

/// `philia-bot ARGS` in an empty folder with the production environment minus `without`, plus `with`.
fn run_production(args: &[&str], without: &[&str], with: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut command = philia(dir.path());
    command.args(args).arg("--config-dir").arg(repo_config_dir());
    for (name, value) in PRODUCTION.iter().filter(|(name, _)| !without.contains(name)) {
        command.env(name, value);
    }
    command.envs(with.iter().copied());
    command.output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn production_without_credentials_is_refused_unless_the_dry_run_is_asked_for() {
    let output = run_production(&["config", "check"], &[], &[]);
    assert_eq!(stdout(&output).trim(), "ok", "the baseline passes: {}", text(&output));

    let output = run_production(&["config", "check"], &["TIKTOK_ACCESS_TOKEN", "TIKTOK_BUSINESS_ID"], &[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(stdout(&output).contains("production: tiktok.access_token: no TikTok credentials"), "{}", text(&output));
    assert!(stdout(&output).contains("PHILIA_TIKTOK__DRY_RUN=true"), "{}", text(&output));
    let serve = run_production(&["serve"], &["TIKTOK_ACCESS_TOKEN", "TIKTOK_BUSINESS_ID"], &[]);
    assert!(!serve.status.success(), "serve starts no dry run by itself in production");
    assert!(text(&serve).contains("no TikTok credentials"), "{}", text(&serve));

    let explicit = [("PHILIA_TIKTOK__DRY_RUN", "true")];
    let output = run_production(&["config", "check"], &["TIKTOK_ACCESS_TOKEN", "TIKTOK_BUSINESS_ID"], &explicit);
    assert_eq!(stdout(&output).trim(), "ok", "an explicit dry run is allowed: {}", text(&output));
}

#[tokio::test]
async fn ready_reports_the_sending_mode() {
    let app = spawn_app(TestDatabase::sqlite()).await;
    let body: serde_json::Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(body["sending"], "dry_run", "{body}");
    app.stop().await.unwrap();

    let db = TestDatabase::sqlite();
    let mut settings = test_settings(&db);
    settings.tiktok.access_token = Some(SecretString::from("an-access-token".to_owned()));
    settings.tiktok.business_id = Some("7000000000000000001".into());
    let app = spawn_app_with(db, settings, philia_bot::role::Role::All).await;
    let body: serde_json::Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(body["sending"], "live", "{body}");
    app.stop().await.unwrap();
}

#[test]
fn a_misspelt_environment_variable_is_an_error_naming_the_setting_it_resembles() {
    let typo = [("PHILIA_WORKER__CONCURENCY", "4"), ("PHILIA_TIKTOK_DRY_RUN", "true")];
    let output = run_production(&["config", "check"], &[], &typo);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let said = stdout(&output);
    assert!(
        said.contains(
            "PHILIA_WORKER__CONCURENCY: (environment): names no setting; did you mean PHILIA_WORKER__CONCURRENCY?"
        ),
        "{said}"
    );
    assert!(said.contains("did you mean PHILIA_TIKTOK__DRY_RUN?"), "{said}");
    // The variables the bot reads besides its settings are known.
    let output = run_production(&["config", "check"], &[], &[("PHILIA_ROLE", "all"), ("PHILIA_REQUIRE_SERVICES", "1")]);
    assert_eq!(stdout(&output).trim(), "ok", "{}", text(&output));
}

#[test]
fn a_blank_variable_is_unset() {
    // A blank access token is no credential (production then asks for one), a blank number is the default.
    let blanks = [("TIKTOK_ACCESS_TOKEN", " "), ("PHILIA_WORKER__CONCURRENCY", ""), ("DATABASE_URL", "")];
    let output = run_production(&["config", "check"], &["DATABASE_URL"], &blanks);
    let said = stdout(&output);
    assert!(said.contains("production: tiktok.access_token: no TikTok credentials"), "{said}");
    assert!(!said.contains("worker.concurrency") && !said.contains("must start with postgres"), "{said}");
}

#[test]
fn a_log_level_that_is_no_level_is_an_error() {
    for (name, value) in [("LOG_LEVEL", "verbose"), ("RUST_LOG", "info,loud")] {
        let output = run_production(&["config", "check"], &[], &[(name, value)]);
        assert_eq!(output.status.code(), Some(1), "{name}={value}: {}", text(&output));
        assert!(stdout(&output).contains("log.level: not a log filter"), "{}", text(&output));
        let serve = run_production(&["serve"], &[], &[(name, value)]);
        assert!(!serve.status.success(), "{name}={value} starts: {}", text(&serve));
    }
    let output = run_production(&["config", "check"], &[], &[("LOG_LEVEL", "philia_bot=debug,warn")]);
    assert_eq!(stdout(&output).trim(), "ok", "{}", text(&output));
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A fatal error: one `error: …` line on standard error (a configuration's problems follow it, one a
/// line), nothing on standard output, no cause twice.
fn assert_one_fatal_line(output: &Output, code: i32, needle: &str) {
    let said = stderr(output);
    assert_eq!(output.status.code(), Some(code), "{}", text(output));
    assert!(stdout(output).trim().is_empty(), "fatal errors are not on stdout: {}", text(output));
    let lines: Vec<&str> = said.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(lines.len(), 1, "{said}");
    assert!(said.contains(needle), "{needle:?} missing from {said}");
    let parts: Vec<&str> = lines[0].split(": ").collect();
    for (i, part) in parts.iter().enumerate() {
        assert!(!parts[i + 1..].contains(part), "{part:?} said twice: {said}");
    }
}

#[test]
fn an_explicit_config_folder_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let output = philia(dir.path()).args(["config", "check", "--config-dir", "/no/such/folder"]).output().unwrap();
    assert_one_fatal_line(&output, 3, "/no/such/folder is not a folder");
    let output = philia(dir.path()).args(["serve"]).env("PHILIA_CONFIG_DIR", "confg").output().unwrap();
    assert_one_fatal_line(&output, 3, "confg is not a folder");
    assert!(!dir.path().join("data").exists(), "nothing is created");
    // Left unset, a missing ./config is the built-in texts, as before.
    let output = philia(dir.path()).args(["config", "check"]).output().unwrap();
    assert_eq!(stdout(&output).trim(), "ok", "{}", text(&output));
}

#[test]
fn fatal_errors_have_one_style_and_a_code_per_class() {
    // Production logs JSON on stdout; a fatal error is still human text on stderr.
    let refused =
        [("DATABASE_URL", "postgres://philia@127.0.0.1:1/philia"), ("PHILIA_DATABASE__CONNECT_TIMEOUT_SECS", "1")];
    let output = run_production(&["migrate", "status"], &[], &refused);
    assert_one_fatal_line(
        &output,
        4,
        "cannot connect to the database at 127.0.0.1:1: connection refused at 127.0.0.1:1",
    );
    let output = run_production(&["serve"], &[], &refused);
    assert_one_fatal_line(&output, 4, "connection refused at 127.0.0.1:1");

    let output = run_production(&["serve"], &[], &[("PHILIA_WORKER__CONCURRENCY", "none")]);
    assert_one_fatal_line(&output, 3, "invalid configuration");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let output = philia(dir.path()).args(["serve"]).env("PHILIA_SERVER__PORT", &port).output().unwrap();
    let said = stderr(&output);
    assert_eq!(output.status.code(), Some(6), "{said}");
    assert!(said.contains(&format!("error: binding 127.0.0.1:{port}: Address already in use")), "{said}");
}

#[test]
fn production_requires_secrets_of_sixteen_characters() {
    let output = run_production(&["config", "check"], &[], &[("TIKTOK_WEBHOOK_SECRET", "hunter2")]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        stdout(&output).contains("production: tiktok.webhook_secret: TIKTOK_WEBHOOK_SECRET is shorter than 16"),
        "{}",
        text(&output)
    );
    assert!(!text(&output).contains("hunter2"), "the secret itself is never said");
}

#[test]
fn a_menu_option_with_no_intent_behind_it_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).unwrap();
    let replies = std::fs::read_to_string(repo_config_dir().join("replies.toml")).unwrap();
    let four = replies.replace(
        r#"options = ["Order status", "New drops", "Talk to a human"]"#,
        r#"options = ["Order status", "New drops", "Talk to a human", "Returns"]"#,
    );
    assert_ne!(four, replies, "the shipped menu changed: update this test");
    std::fs::write(config.join("replies.toml"), four).unwrap();
    let output = philia(dir.path()).args(["config", "check"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        stdout(&output).contains(r#"replies.toml: menu.options[3]: option 4 ("Returns") has no intent behind it"#),
        "{}",
        text(&output)
    );
    let serve = philia(dir.path()).args(["serve"]).env("PHILIA_SERVER__PORT", "0").output().unwrap();
    assert_one_fatal_line(&serve, 3, "option 4 (\"Returns\") has no intent behind it");
    assert!(!dir.path().join("data").exists(), "nothing is created");
}

/// GET `path` on `port` of this machine, with an optional bearer token: the status and the body.
async fn get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    philia_bot::install_crypto_provider();
    let mut request = reqwest::Client::new().get(format!("http://127.0.0.1:{port}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Production needs PostgreSQL: this runs where it is (and says SKIPPED where it is not).
#[tokio::test]
async fn production_serves_metrics_only_on_the_metrics_port_or_to_the_token_bearer() {
    let Some(db) = TestDatabase::postgres("hardening::production_serves_metrics_only…").await else { return };
    let Some(redis) = crate::helpers::TestRedis::new("hardening::production_serves_metrics_only…") else { return };
    let mut settings = test_settings(&db);
    crate::helpers::use_redis(&mut settings, Some(&redis));
    settings.environment = philia_bot::config::Environment::Production;
    settings.tiktok.dry_run = Some(true);
    settings.server.metrics_port = Some(0);
    let app = spawn_app_with(db, settings.clone(), philia_bot::role::Role::All).await;
    let port = app.port.unwrap();
    let (status, body) = get(port, "/metrics", None).await;
    assert_eq!(status, 404, "the public port hides them: {body}");
    assert!(body.contains("server.metrics_port"), "{body}");
    let (status, _) = get(port, "/ready", None).await;
    assert_eq!(status, 200);
    app.stop().await.unwrap();

    // The same through the running process, whose metrics port is its own listener.
    let db = TestDatabase::postgres("hardening::production_serves_metrics_only…").await.unwrap();
    let mut settings = Settings { database: test_settings(&db).database, ..settings };
    settings.server.metrics_token = Some(SecretString::from("a-metrics-token-of-24-chars".to_owned()));
    let app = philia_bot::startup::Application::build(
        settings,
        philia_bot::startup::StartOptions::new(philia_bot::role::Role::All, true),
    )
    .await
    .unwrap();
    let (port, operations) = (app.port().unwrap(), app.operations_port().expect("a metrics listener"));
    assert_ne!(port, operations);
    let shutdown = app.shutdown_token();
    let running = tokio::spawn(app.run_until_stopped());
    assert_eq!(get(port, "/metrics", None).await.0, 401, "no token");
    assert_eq!(get(port, "/metrics", Some("a-metrics-token-of-24-charz")).await.0, 401, "a wrong token");
    let (status, body) = get(port, "/metrics", Some("a-metrics-token-of-24-chars")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("philia_webhook_duration_seconds_count"), "{body}");
    let (status, body) = get(operations, "/metrics", None).await;
    assert_eq!(status, 200, "the metrics port needs no token: {body}");
    assert_eq!(get(operations, "/webhook/tiktok", None).await.0, 404, "the metrics port takes no webhooks");
    shutdown.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_worker_metrics_listener_binds_the_configured_host_and_says_whether_redis_is_up() {
    let Some(mut redis) = PrivateRedis::start("hardening::the_worker_metrics_listener…").await else { return };
    let db = TestDatabase::sqlite();
    let mut settings = test_settings(&db);
    settings.redis.url = Some(SecretString::from(redis.url.clone()));
    settings.server.host = "0.0.0.0".into();
    settings.server.metrics_port = Some(0);
    let app = philia_bot::startup::Application::build(
        settings,
        philia_bot::startup::StartOptions::new(philia_bot::role::Role::Worker, true),
    )
    .await
    .unwrap();
    let port = app.port().unwrap();
    assert!(app.describe().contains(&format!("http=0.0.0.0:{port} (metrics and health only)")), "{}", app.describe());
    let shutdown = app.shutdown_token();
    let running = tokio::spawn(app.run_until_stopped());
    let (_, body) = get(port, "/metrics", None).await;
    assert!(body.contains("\nphilia_redis_up{prefix=\"philia\"} 1\n"), "{body}");
    redis.stop();
    let (status, body) = get(port, "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("\nphilia_redis_up{prefix=\"philia\"} 0\n"),
        "Redis down reads as down, not as an empty queue: {body}"
    );
    redis.start_again().await;
    shutdown.cancel();
    running.await.unwrap().unwrap();
    drop(db);
}

#[tokio::test]
async fn a_redis_without_persistence_is_warned_about_at_start() {
    let Some(forgetful) = PrivateRedis::start("hardening::a_redis_without_persistence…").await else { return };
    let Some(durable) = PrivateRedis::start_durable("hardening::a_redis_without_persistence…").await else { return };
    let settings = |url: &str| {
        let mut settings = Settings::defaults();
        settings.redis.url = Some(SecretString::from(url.to_owned()));
        settings
    };
    let redis = |url: &str| {
        let settings = settings(url);
        philia_bot::redis_pool::Redis::new(&settings.redis, &settings.jobs, 0).unwrap().unwrap()
    };
    let warning = philia_bot::startup::redis_persistence_warning(&redis(&forgetful.url)).await;
    assert!(warning.as_deref().is_some_and(|w| w.contains("keeps nothing on disk")), "{warning:?}");
    assert_eq!(philia_bot::startup::redis_persistence_warning(&redis(&durable.url)).await, None);

    // Said where the operator looks: the start-up log.
    let dir = tempfile::tempdir().unwrap();
    let mut child = philia(dir.path())
        .arg("serve")
        .env("PHILIA_SERVER__PORT", "0")
        .env("REDIS_URL", &forgetful.url)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let mut child = KillOnDrop(child);
    let reader = std::thread::spawn(move || lines.map_while(Result::ok).any(|l| l.contains("keeps nothing on disk")));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !reader.is_finished() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    child.stop();
    assert!(reader.join().unwrap(), "no warning in the start-up log");
}

/// A production process's logs keep ids and intents, not what customers wrote, nor the OAuth code, nor
/// the staff webhook's URL (a Slack secret). Production needs PostgreSQL: SKIPPED without it.
#[tokio::test]
async fn a_production_run_logs_no_customer_text_oauth_code_or_staff_webhook_url() {
    let Some(db) = TestDatabase::postgres("hardening::a_production_run_logs_no_customer_text…").await else { return };
    let Some(redis) = crate::helpers::TestRedis::new("hardening::a_production_run_logs_no_customer_text…") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut child = philia(dir.path())
        .args(["serve", "--migrate", "--config-dir"])
        .arg(repo_config_dir())
        .env("ENVIRONMENT", "production")
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", &redis.url)
        .env("PHILIA_REDIS__KEY_PREFIX", &redis.prefix)
        .env("TIKTOK_WEBHOOK_SECRET", crate::helpers::WEBHOOK_SECRET)
        .env("PHILIA_TIKTOK__DRY_RUN", "true")
        .env("PHILIA_SERVER__PORT", "0")
        .env("PHILIA_SHOP__STAFF_WEBHOOK_URL", "http://127.0.0.1:1/services/T000/B000/hook-secret-path")
        .env("PHILIA_WORKER__CONCURENCY", "4")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut child = KillOnDrop(child);
    let (lines_to_test, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            if lines_to_test.send(line).is_err() {
                break;
            }
        }
    });
    let mut log: Vec<String> = Vec::new();
    let mut wait_for_line = |needle: &str| -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
            log.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
        panic!("no {needle:?} in the log: {log:#?}");
    };
    philia_bot::install_crypto_provider();
    let started = wait_for_line("philia-bot started");
    // A misspelt variable does not stop a running shop: it is a warning, naming the setting meant.
    let typo = wait_for_line("PHILIA_WORKER__CONCURENCY");
    assert!(typo.contains("did you mean PHILIA_WORKER__CONCURRENCY?") && typo.contains("WARN"), "{typo}");
    let port: u16 =
        started.split("http=127.0.0.1:").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    let client = reqwest::Client::new();
    let post = |body: String| {
        let signature = philia_bot::tiktok::signature::sign(
            crate::helpers::WEBHOOK_SECRET.as_bytes(),
            chrono::Utc::now().timestamp(),
            body.as_bytes(),
        );
        client
            .post(format!("http://127.0.0.1:{port}/webhook/tiktok"))
            .header("Content-Type", "application/json")
            .header("TikTok-Signature", signature)
            .body(body)
            .send()
    };
    let words = "my address is 12 Lantern Street";
    let response = post(crate::helpers::tiktok_message("m-private-1", "kim", words)).await.unwrap();
    assert_eq!(response.status(), 200);
    let stored = wait_for_line("inbound message stored");
    assert!(stored.contains("m-private-1"), "ids stay: {stored}");
    let response = post(crate::helpers::tiktok_message("m-private-2", "kim", "3")).await.unwrap();
    assert_eq!(response.status(), 200, "talk to a human");
    wait_for_line("staff webhook unreachable");
    let callback = client
        .get(format!("http://127.0.0.1:{port}/oauth/tiktok/callback?code=oauth-code-sekrit&state=forged"))
        .send()
        .await
        .unwrap();
    assert!(callback.status().is_client_error(), "{}", callback.status());
    child.stop();
    while let Ok(line) = lines.recv_timeout(std::time::Duration::from_millis(200)) {
        log.push(line);
    }
    for secret in ["Lantern", "oauth-code-sekrit", "hook-secret-path", "/services/T000"] {
        assert!(!log.iter().any(|line| line.contains(secret)), "{secret:?} logged: {log:#?}");
    }
    assert!(log.iter().all(|line| line.starts_with('{')), "JSON lines in production: {log:#?}");
}

/// A spawned `philia-bot` that is stopped however the test ends (a failed assertion included), so it
/// never outlives the test holding its output pipes.
struct KillOnDrop(std::process::Child);

impl KillOnDrop {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.stop();
    }
}

crate::on_every_backend!(customers_forget_takes_a_customer_out_of_the_database_and_redis);

/// `customers forget @kim`: her words, hold, waitlist place and handle go, in the database and in
/// Redis; the piece she held goes to the customer waiting for it; the retention rule then drops old texts.
async fn customers_forget_takes_a_customer_out_of_the_database_and_redis(
    db: TestDatabase,
    redis: Option<crate::helpers::TestRedis>,
) {
    use chrono::Utc;
    use philia_bot::store::entities::items::{self, ItemStatus};
    use philia_bot::store::entities::{messages, users, waitlist};
    use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

    let database_url = db.url.clone();
    let mut settings = test_settings(&db);
    crate::helpers::use_redis(&mut settings, redis.as_ref());
    settings.shop.message_retention_days = Some(30);
    let app = spawn_app_with(db, settings, philia_bot::role::Role::All).await;
    let now = Utc::now();
    items::ActiveModel {
        sku: Set("JKT-001".into()),
        title: Set("Carhartt Detroit jacket".into()),
        category: Set("jacket".into()),
        tag_size: Set(Some("L".into())),
        measurements: Set(serde_json::json!({"pit_to_pit": 52})),
        condition: Set("great".into()),
        price_minor: Set(8_500),
        currency: Set("USD".into()),
        status: Set(ItemStatus::Available),
        dropped_at: Set(Some(now)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&app.state.db)
    .await
    .unwrap();
    let said = [
        ("k-1", "kim", "hi, my address is 12 Lantern Street"),
        ("k-2", "kim", "I'll take JKT-001"),
        ("l-1", "lee", "I want JKT-001"),
    ];
    for (n, (id, who, text)) in said.iter().enumerate() {
        assert_eq!(app.post_webhook(&crate::helpers::tiktok_message(id, who, text)).await.status(), 200);
        crate::helpers::settled_replies(&app, n + 1).await;
    }
    let kim = users::Entity::find().filter(users::Column::TiktokUserId.eq("open-kim")).one(&app.state.db).await;
    let kim = kim.unwrap().expect("kim is a customer");
    let held = items::Entity::find().filter(items::Column::Sku.eq("JKT-001")).one(&app.state.db).await.unwrap();
    assert_eq!(held.unwrap().status, ItemStatus::Reserved, "kim holds the jacket");

    let dir = tempfile::tempdir().unwrap();
    let mut command = philia(dir.path());
    command
        .args(["customers", "forget", "@kim", "--config-dir"])
        .arg(repo_config_dir())
        .env("DATABASE_URL", &database_url);
    if let Some(redis) = &redis {
        command.env("REDIS_URL", &redis.url).env("PHILIA_REDIS__KEY_PREFIX", &redis.prefix);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(stdout(&output).contains("@kim: forgotten ("), "{}", text(&output));

    let everything = app.messages().await;
    assert!(!everything.iter().any(|m| m.text.as_deref().is_some_and(|t| t.contains("Lantern"))), "{everything:#?}");
    let kim_now = users::Entity::find_by_id(kim.id).one(&app.state.db).await.unwrap().unwrap();
    assert_eq!(kim_now.tiktok_user_id, format!("forgotten-{}", kim.id));
    assert_eq!((kim_now.username, kim_now.phone, kim_now.opted_out), (None, None, true));
    let waiting = waitlist::Entity::find().filter(waitlist::Column::UserId.eq(kim.id)).all(&app.state.db).await;
    assert!(waiting.unwrap().is_empty());
    let jacket = items::Entity::find().filter(items::Column::Sku.eq("JKT-001")).one(&app.state.db).await.unwrap();
    assert_ne!(jacket.unwrap().status, ItemStatus::Reserved, "kim's hold ended");
    if let Some(redis) = &redis {
        let entries = crate::helpers::redis_cli(&redis.url, &["XRANGE", &format!("{}:jobs", redis.prefix), "-", "+"])
            .await
            .unwrap_or_default();
        assert!(!entries.contains("open-kim"), "kim's jobs are gone from Redis: {entries}");
    }
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(1), "a second time: {}", text(&output));
    assert!(text(&output).contains("no customer @kim"), "{}", text(&output));

    // Retention: a sweep 31 days on leaves no settled message with its text.
    philia_bot::worker::sweeper::sweep(&app.state, Utc::now() + chrono::Duration::days(31)).await.unwrap();
    let kept: Vec<messages::Model> = app.messages().await.into_iter().filter(|m| m.text.is_some()).collect();
    let awaiting = |m: &messages::Model| {
        use messages::DeliveryStatus::{Pending, Sending, Throttled, Unknown};
        matches!(m.delivery_status, Some(Pending | Sending | Unknown | Throttled))
    };
    assert!(kept.iter().all(awaiting), "only messages still to be sent keep their text: {kept:#?}");
    app.stop().await.unwrap();
}
