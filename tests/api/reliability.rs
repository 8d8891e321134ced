//! The reliability suite: the real binary as separate processes (web and worker roles) against real
//! PostgreSQL and Redis, with faults injected from outside: a worker killed with SIGKILL, Redis stopped
//! and started, PostgreSQL cut off, TikTok answering 40100 and 5xx, every webhook delivered three
//! times, and a corpus of bad requests. Each scenario takes seconds; `PHILIA_SOAK=1` makes the TikTok
//! storm last the full minute.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_redis::redis;
use philia_bot::store::entities::messages::{self, DeliveryStatus, Direction};
use philia_bot::store::entities::processed_events;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::cli::repo_config_dir;
use crate::helpers::{
    PrivateRedis, Signed, TestDatabase, TestRedis, WEBHOOK_SECRET, WebhookCase, tiktok_message, wait_for,
};

const BIN: &str = env!("CARGO_BIN_EXE_philia-bot");
/// The reclaim settings of the suite: a dead worker's jobs are taken over after this idle time.
const MIN_IDLE: Duration = Duration::from_secs(4);
/// How long the pending list may take to drain once every reply is settled: with live sends the echoes
/// of the last replies are jobs too, still arriving and running on a loaded machine.
const DRAIN: Duration = Duration::from_secs(60);

/// The scenarios with hundreds of live sends, and the PostgreSQL outage whose recovery they slowed from
/// 5 s to a minute, take turns: two of them at once on two loaded cores made each one's time limits a
/// measure of the other (each passes alone, and either failed beside the other).
static HEAVY: std::sync::LazyLock<tokio::sync::Mutex<()>> = std::sync::LazyLock::new(|| tokio::sync::Mutex::new(()));

/// The port in a start line's `http=HOST:PORT`: each process binds port 0 and says which one it got, for
/// a port found free and closed again before the process bound it could be taken meanwhile (the suite's
/// other tests bind listeners all the time, and a process takes seconds to start).
fn bound_port(started: &str) -> u16 {
    let address = started.split("http=").nth(1).and_then(|rest| rest.split_whitespace().next());
    let port = address.and_then(|a| a.rsplit(':').next()).and_then(|p| p.trim_end_matches('"').parse().ok());
    port.unwrap_or_else(|| panic!("no http=HOST:PORT in the start line: {started}"))
}

/// One `philia-bot serve` process; its stdout (JSON log lines) and stderr go to files for the checks.
struct Process {
    child: Child,
    port: Option<u16>,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// Where the processes of one scenario connect, and the settings they share.
struct Deployment {
    env: Vec<(String, String)>,
    logs: tempfile::TempDir,
    started: usize,
}

impl Deployment {
    fn new(database_url: &str, redis_url: &str, prefix: &str) -> Self {
        philia_bot::install_crypto_provider(); // the test's own HTTP clients
        let env = [
            ("ENVIRONMENT", "local"),
            ("PHILIA_LOG__FORMAT", "json"),
            ("LOG_LEVEL", "info"),
            ("DATABASE_URL", database_url),
            ("REDIS_URL", redis_url),
            ("PHILIA_REDIS__KEY_PREFIX", prefix),
            ("TIKTOK_WEBHOOK_SECRET", WEBHOOK_SECRET),
            ("PHILIA_CONFIG_DIR", repo_config_dir().to_str().unwrap()),
            ("PHILIA_WORKER__CONCURRENCY", "8"),
            ("PHILIA_WORKER__JOB_TIMEOUT_MS", "3000"),
            ("PHILIA_WORKER__SHUTDOWN_GRACE_SECS", "3"),
            ("PHILIA_TIKTOK__REQUEST_TIMEOUT_MS", "1000"),
            ("PHILIA_JOBS__RECLAIM_MIN_IDLE_MS", &MIN_IDLE.as_millis().to_string()),
            ("PHILIA_JOBS__RECLAIM_INTERVAL_MS", "500"),
            ("PHILIA_DATABASE__MAX_CONNECTIONS", "12"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Self { env, logs: tempfile::tempdir().unwrap(), started: 0 }
    }

    fn set(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// Starts `serve --role ROLE` (migrating first) and waits until it is ready.
    async fn start(&mut self, role: &str) -> Process {
        self.started += 1;
        let stdout = self.logs.path().join(format!("{role}-{}.out", self.started));
        let stderr = self.logs.path().join(format!("{role}-{}.err", self.started));
        // Workers serve only /metrics and /health, on their own port, so the suite can scrape them. Port 0:
        // the process binds a free one and names it in its start line.
        let mut command = Command::new(BIN);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(["serve", "--migrate", "--role", role])
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .stdin(Stdio::null());
        command.env(if role == "worker" { "PHILIA_SERVER__METRICS_PORT" } else { "PORT" }, "0");
        let mut process = Process { child: command.spawn().expect("philia-bot starts"), port: None, stdout, stderr };
        let log = process.stdout.clone();
        let started = wait_for(&format!("the {role} process to start"), Duration::from_secs(20), || {
            let log = log.clone();
            async move {
                let log = std::fs::read_to_string(&log).ok()?;
                log.lines().find(|l| l.contains("philia-bot started")).map(str::to_owned)
            }
        })
        .await;
        process.port = Some(bound_port(&started));
        if role == "worker" || role == "all" {
            let log = process.stdout.clone();
            wait_for("the worker pool", Duration::from_secs(10), || {
                let log = log.clone();
                async move { std::fs::read_to_string(&log).ok().filter(|l| l.contains("worker pool started")).map(drop) }
            })
            .await;
        }
        process
    }
}

impl Process {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/webhook/tiktok", self.port.expect("a web process"))
    }

    /// The value of one metric line (`name{labels}`) in the process's `/metrics`, 0 when absent.
    async fn metric(&self, line: &str) -> f64 {
        let url = format!("http://127.0.0.1:{}/metrics", self.port.expect("a port"));
        let text = reqwest::get(url).await.unwrap().text().await.unwrap();
        text.lines().find_map(|l| l.strip_prefix(line).and_then(|rest| rest.trim().parse::<f64>().ok())).unwrap_or(0.0)
    }

    fn kill_9(&mut self) {
        let status = Command::new("kill").args(["-KILL", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        self.child.wait().unwrap();
    }

    /// SIGSTOP: the process freezes where it is (a stalled VM, a stop-the-world pause), holding its jobs,
    /// its idempotency leases until they lapse, and its connections.
    fn freeze(&self) {
        let status = Command::new("kill").args(["-STOP", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// SIGCONT: a frozen process runs on from where it stopped.
    fn thaw(&self) {
        let status = Command::new("kill").args(["-CONT", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// How many of the process's log records carry `message`.
    fn logged(&self, message: &str) -> usize {
        let (stdout, _) = self.logs();
        stdout.lines().filter(|line| line.contains(&format!("\"message\":\"{message}\""))).count()
    }

    /// SIGTERM, then the exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the process did not stop within 15 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn logs(&self) -> (String, String) {
        (
            std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr).unwrap_or_default(),
        )
    }

    /// Every log record is one JSON line, and nothing panicked.
    fn assert_clean_logs(&self) {
        let (stdout, stderr) = self.logs();
        for line in stdout.lines() {
            let record: Result<serde_json::Value, _> = serde_json::from_str(line);
            assert!(record.is_ok(), "a log record that is not one JSON line: {line:?}");
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!stdout.contains("panicked"), "a panic was logged");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Posts a webhook signed with the suite's secret; the status (0 when the request failed).
async fn post(client: &reqwest::Client, url: &str, body: &str) -> u16 {
    let signature =
        philia_bot::tiktok::signature::sign(WEBHOOK_SECRET.as_bytes(), chrono::Utc::now().timestamp(), body.as_bytes());
    match client
        .post(url)
        .header("Content-Type", "application/json")
        .header("TikTok-Signature", signature)
        .body(body.to_owned())
        .send()
        .await
    {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

/// Posts `count` messages (ids `{tag}-{n}`, one customer each) with `parallel` in flight; the statuses.
async fn post_many(url: &str, tag: &str, count: usize, parallel: usize) -> Vec<(String, u16)> {
    let client = reqwest::Client::new();
    let mut results = Vec::new();
    let mut set = JoinSet::new();
    for n in 0..count {
        if set.len() >= parallel
            && let Some(done) = set.join_next().await
        {
            results.push(done.unwrap());
        }
        let (client, url, id, user) = (client.clone(), url.to_owned(), format!("{tag}-{n}"), format!("{tag}{n}"));
        set.spawn(async move {
            let status = post(&client, &url, &tiktok_message(&id, &user, "hi")).await;
            (id, status)
        });
    }
    while let Some(done) = set.join_next().await {
        results.push(done.unwrap());
    }
    results
}

async fn connect(db: &TestDatabase) -> DatabaseConnection {
    sea_orm::Database::connect(&db.url).await.unwrap()
}

/// Customer messages whose effects are stored (the echoes of live sends are events too, not counted).
async fn processed(db: &DatabaseConnection) -> u64 {
    processed_events::Entity::find()
        .filter(processed_events::Column::IdempotencyKey.starts_with("im_receive_msg:"))
        .filter(processed_events::Column::ProcessedAt.is_not_null())
        .count(db)
        .await
        .unwrap_or(0)
}

/// Replies stored per inbound event (by the event's idempotency key).
async fn replies_per_event(db: &DatabaseConnection) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for reply in messages::Entity::find().filter(messages::Column::Direction.eq(Direction::Out)).all(db).await.unwrap()
    {
        if let Some(key) = reply.metadata["in_reply_to"].as_str() {
            *counts.entry(key.to_owned()).or_default() += 1;
        }
    }
    counts
}

/// Asserts every event of `ids` got exactly one reply (the menu is one message).
async fn assert_one_reply_each(db: &DatabaseConnection, ids: &[String]) {
    let counts = replies_per_event(db).await;
    let wrong: Vec<String> = ids
        .iter()
        .filter_map(|id| {
            let n = counts.get(&format!("im_receive_msg:{id}")).copied().unwrap_or(0);
            (n != 1).then(|| format!("{id}: {n} replies"))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} events without exactly one reply: {:?}",
        wrong.len(),
        ids.len(),
        &wrong[..wrong.len().min(10)]
    );
}

/// XPENDING's count for the deployment's consumer group.
async fn pending(redis_url: &str, prefix: &str) -> i64 {
    let Ok(client) = redis::Client::open(redis_url) else { return -1 };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else { return -1 };
    let summary: Result<redis::Value, _> = redis::cmd("XPENDING")
        .arg(format!("{prefix}:jobs"))
        .arg(format!("{prefix}:workers"))
        .query_async(&mut conn)
        .await;
    match summary {
        Ok(redis::Value::Array(parts)) => match parts.first() {
            Some(redis::Value::Int(n)) => *n,
            _ => -1,
        },
        _ => -1,
    }
}

/// The idempotency keys of the jobs read and not acknowledged in the deployment's group: customer
/// messages (`im_receive_msg:…`) and, with live sends, echoes (`im_send_msg:…`).
async fn pending_events(redis_url: &str, prefix: &str) -> Vec<String> {
    let client = redis::Client::open(redis_url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let (stream, group) = (format!("{prefix}:jobs"), format!("{prefix}:workers"));
    let pending: redis::streams::StreamPendingCountReply = redis::cmd("XPENDING")
        .arg(&stream)
        .arg(&group)
        .arg("-")
        .arg("+")
        .arg(10_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for entry in pending.ids {
        let range: redis::streams::StreamRangeReply =
            redis::cmd("XRANGE").arg(&stream).arg(&entry.id).arg(&entry.id).query_async(&mut conn).await.unwrap();
        for found in range.ids {
            let payload: String = found.get("job").unwrap_or_default();
            let job: serde_json::Value = serde_json::from_str(&payload).unwrap_or_default();
            if let Some(id) = job["idempotency_key"].as_str() {
                ids.push(id.to_owned());
            }
        }
    }
    ids
}

/// The database and shared Redis of a scenario, or `None` (reported) without services.
async fn services(test: &str) -> Option<(TestDatabase, TestRedis)> {
    let db = TestDatabase::postgres(test).await?;
    let redis = TestRedis::new(test)?;
    Some((db, redis))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_load_loses_nothing_and_its_jobs_are_taken_over() {
    let _turn = HEAVY.lock().await;
    let Some((db, redis)) =
        services("reliability::a_worker_killed_mid_load_loses_nothing_and_its_jobs_are_taken_over").await
    else {
        return;
    };
    let fake = Arc::new(FakeTikTok::start(FakeConfig::default()).await);
    let mut deployment = Deployment::new(&db.url, &redis.url, &redis.prefix);
    deployment.live(&fake);
    let mut web = deployment.start("web").await;
    let mut doomed = deployment.start("worker").await;
    fake.set_callback_url(web.url());
    let conn = connect(&db).await;
    let writing = tokio::spawn({
        let fake = fake.clone();
        async move { customers_write_in_turn(&fake, "crash", 1_000, 64, &["hi"]).await }
    });
    // Kill it while it works: some jobs done, others read and not acknowledged (some of them sending),
    // the rest not read yet.
    wait_for("the doomed worker to have done some work", Duration::from_secs(60), || async {
        (processed(&conn).await >= 150).then_some(())
    })
    .await;
    doomed.kill_9();
    let killed_at = Instant::now();
    let in_flight = pending(&redis.url, &redis.prefix).await;
    let abandoned = pending_events(&redis.url, &redis.prefix).await;
    let written = writing.await.unwrap();
    let mut rescuer = deployment.start("worker").await;
    let rescuer_ready = Instant::now();
    // What the kill proves: the jobs the dead worker held are taken over once idle for the min idle
    // time. Timed from the rescuer's start (a loaded machine starts a process slowly), and only for
    // those jobs (the rest of the backlog is ordinary work, whose pace depends on the machine).
    let taken_over =
        wait_for("the dead worker's jobs to be taken over", MIN_IDLE + Duration::from_secs(30), || async {
            let done = processed_events::Entity::find()
                .filter(processed_events::Column::IdempotencyKey.is_in(abandoned.clone()))
                .filter(processed_events::Column::ProcessedAt.is_not_null())
                .count(&conn)
                .await
                .ok()?;
            (done as usize == abandoned.len()).then(|| rescuer_ready.elapsed())
        })
        .await;
    let conversations: Vec<String> = written.iter().map(|(c, _)| c.clone()).collect();
    settle_live(&fake, &conn, &conversations, 1, MIN_IDLE + Duration::from_secs(120)).await;
    let recovery = killed_at.elapsed();
    wait_for("the pending list to drain", DRAIN, || async {
        (pending(&redis.url, &redis.prefix).await == 0).then_some(())
    })
    .await;
    assert_eq!(processed(&conn).await, 1_000);
    let ids: Vec<String> = written.into_iter().flat_map(|(_, ids)| ids).collect();
    assert_one_reply_each(&conn, &ids).await;
    let tally = live_tally(&fake, &conn, &conversations, 1).await;
    eprintln!(
        "crash (live sends): 1,000 messages, {in_flight} job(s) pending at the kill, taken over {:.1} s after the rescuer started (min idle {} s); each reply received exactly once, {} rows unsettled; all settled {:.1} s after the kill",
        taken_over.as_secs_f64(),
        MIN_IDLE.as_secs(),
        tally.unsettled,
        recovery.as_secs_f64()
    );
    assert!(taken_over < MIN_IDLE + Duration::from_secs(15), "the abandoned jobs were taken over after {taken_over:?}");
    assert!(rescuer.stop().success() && web.stop().success());
    rescuer.assert_clean_logs();
    web.assert_clean_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_started_under_load_loses_nothing_it_accepted() {
    let test = "reliability::redis_stopped_and_started_under_load_loses_nothing_it_accepted";
    let Some(db) = TestDatabase::postgres(test).await else { return };
    let Some(mut server) = PrivateRedis::start_durable(test).await else { return };
    // TikTok retries a webhook that got no 2xx for long; 8 attempts 200 ms apart, doubling, outlast the
    // 2 s outage, so every message reaches the queue in the end.
    let config =
        FakeConfig { webhook_attempts: 8, webhook_retry_delay: Duration::from_millis(200), ..FakeConfig::default() };
    let fake = Arc::new(FakeTikTok::start(config).await);
    let mut deployment = Deployment::new(&db.url, &server.url, "philia-reliability");
    deployment.live(&fake);
    let mut web = deployment.start("web").await;
    let mut worker = deployment.start("worker").await;
    fake.set_callback_url(web.url());
    let conn = connect(&db).await;
    // A new customer writes every 20 ms for 7 s, each waiting for their webhook's delivery on its own.
    let load = tokio::spawn({
        let fake = fake.clone();
        async move {
            let mut writes = JoinSet::new();
            let started = Instant::now();
            let mut n = 0;
            while started.elapsed() < Duration::from_secs(7) {
                let (fake, conversation) = (fake.clone(), format!("redis-{n}"));
                writes.spawn(async move {
                    let delivery = fake.customer_writes(&conversation, &format!("{conversation}-customer"), "hi").await;
                    (conversation, delivery)
                });
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            writes.join_all().await
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.start_again().await;
    let back_at = Instant::now();
    let before = processed(&conn).await;
    let resumed = wait_for("the workers to resume", Duration::from_secs(10), || async {
        (processed(&conn).await > before).then(|| back_at.elapsed())
    })
    .await;
    let writes = load.await.unwrap();
    let attempts: Vec<Option<u16>> = writes.iter().flat_map(|(_, d)| d.attempts.clone()).collect();
    let refused = attempts.iter().filter(|a| **a == Some(503)).count();
    let other: Vec<_> = attempts.iter().filter(|a| !matches!(a, Some(200 | 503))).collect();
    assert!(other.is_empty(), "only 200 or 503: {other:?}");
    assert!(refused > 0, "the ingress answered 503 while Redis was down");
    let undelivered: Vec<_> = writes.iter().filter(|(_, d)| !d.delivered()).map(|(c, _)| c).collect();
    assert!(undelivered.is_empty(), "every message accepted in the end (TikTok retries): {undelivered:?}");
    // Each customer is waited for by their own reply, not by a count of processed events: a webhook
    // refused with 503 may still have had its XADD written to the append-only file, so the same message
    // may be queued twice, and it must still be answered once.
    let conversations: Vec<String> = writes.iter().map(|(c, _)| c.clone()).collect();
    let settled = settle_live(&fake, &conn, &conversations, 1, Duration::from_secs(60)).await;
    let ids: Vec<String> = writes.iter().map(|(_, d)| d.content()["message_id"].as_str().unwrap().to_owned()).collect();
    assert_one_reply_each(&conn, &ids).await;
    eprintln!(
        "redis restart (live sends): {} messages, {refused} webhook attempts refused with 503 while down (TikTok retried them); workers resumed {:.2} s after Redis returned; each reply received exactly once, 0 rows unsettled {:.1} s after the last webhook",
        conversations.len(),
        resumed.as_secs_f64(),
        settled.as_secs_f64()
    );
    assert!(resumed < Duration::from_secs(5), "resumed after {resumed:?}");
    assert!(worker.stop().success() && web.stop().success());
    worker.assert_clean_logs();
    web.assert_clean_logs();
}

/// A TCP proxy in front of PostgreSQL that the test can cut and restore: the real server, a real outage
/// as the application sees it (connections reset, new ones refused).
struct Cuttable {
    port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    connections: Arc<Mutex<JoinSet<()>>>,
}

impl Cuttable {
    async fn new(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let (flag, set) = (up.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !flag.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(inbound); // refused: closed at once
                    continue;
                }
                set.lock().unwrap().spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { port, up, connections }
    }

    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.connections.lock().unwrap().abort_all();
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_for_a_while_delays_jobs_and_loses_none() {
    let _turn = HEAVY.lock().await;
    let test = "reliability::postgres_unreachable_for_a_while_delays_jobs_and_loses_none";
    let Some((db, redis)) = services(test).await else { return };
    let target = url::Url::parse(&db.url).unwrap();
    let proxy = Cuttable::new(target.port().unwrap_or(5432)).await;
    let mut proxied = target.clone();
    proxied.set_port(Some(proxy.port)).unwrap();
    let fake = Arc::new(FakeTikTok::start(FakeConfig::default()).await);
    let mut deployment = Deployment::new(&db.url, &redis.url, &redis.prefix);
    deployment.live(&fake);
    let mut web = deployment.start("web").await;
    deployment.set("DATABASE_URL", proxied.as_str());
    deployment.set("PHILIA_DATABASE__CONNECT_TIMEOUT_SECS", "1");
    let mut worker = deployment.start("worker").await;
    fake.set_callback_url(web.url());
    let conn = connect(&db).await;

    proxy.cut();
    // The ingress does not need the database: every webhook is accepted at once.
    let written = customers_write_in_turn(&fake, "pg", 50, 8, &["hi"]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(processed(&conn).await, 0, "nothing can be processed without the database");
    let sends = fake.calls().iter().filter(|c| c.path == crate::fake_tiktok::SEND_PATH).count();
    assert_eq!(sends, 0, "nothing is sent for a message that could not be stored");
    let unacked = pending(&redis.url, &redis.prefix).await;
    assert!(unacked > 0, "the jobs the worker read are not acknowledged: {unacked}");
    proxy.restore();
    let restored = Instant::now();
    let conversations: Vec<String> = written.iter().map(|(c, _)| c.clone()).collect();
    // Alone it settles within seconds; the bound leaves room for a loaded machine.
    settle_live(&fake, &conn, &conversations, 1, MIN_IDLE + Duration::from_secs(60)).await;
    let recovery = restored.elapsed();
    assert_eq!(processed(&conn).await, 50);
    let ids: Vec<String> = written.into_iter().flat_map(|(_, ids)| ids).collect();
    assert_one_reply_each(&conn, &ids).await;
    eprintln!(
        "postgres outage (live sends): 50 messages, {unacked} job(s) held unacknowledged; each reply received exactly once, 0 rows unsettled {:.1} s after the database returned",
        recovery.as_secs_f64()
    );
    wait_for("the pending list to drain", DRAIN, || async {
        (pending(&redis.url, &redis.prefix).await == 0).then_some(())
    })
    .await;
    assert!(worker.stop().success() && web.stop().success());
    worker.assert_clean_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_webhook_three_times_some_at_once_gets_one_reply() {
    let Some((db, redis)) = services("reliability::every_webhook_three_times_some_at_once_gets_one_reply").await else {
        return;
    };
    // A copy refused under load (503: the queue did not answer in time) is delivered again, as TikTok does
    // with any non-2xx: each copy is accepted in the end, so three reach the queue.
    let config =
        FakeConfig { webhook_attempts: 5, webhook_retry_delay: Duration::from_millis(200), ..FakeConfig::default() };
    let fake = Arc::new(FakeTikTok::start(config).await);
    let mut deployment = Deployment::new(&db.url, &redis.url, &redis.prefix);
    deployment.live(&fake);
    let mut web = deployment.start("web").await;
    let mut first = deployment.start("worker").await;
    let mut second = deployment.start("worker").await;
    fake.set_callback_url(web.url());
    let conn = connect(&db).await;
    let mut copies = JoinSet::new();
    for n in 0..200 {
        let fake = fake.clone();
        copies.spawn(async move {
            let conversation = format!("dup-{n}");
            let body = fake.customer_message(&conversation, &format!("{conversation}-customer"), "hi");
            // Two copies at the same moment, the third after the first were (probably) processed.
            let (a, b) = tokio::join!(fake.deliver_again(&body), fake.deliver_again(&body));
            tokio::time::sleep(Duration::from_millis(300)).await;
            let c = fake.deliver_again(&body).await;
            assert!(a.delivered() && b.delivered() && c.delivered(), "{:?}", [a.attempts, b.attempts, c.attempts]);
            (conversation, c.content()["message_id"].as_str().unwrap().to_owned())
        });
    }
    let written = copies.join_all().await;
    let conversations: Vec<String> = written.iter().map(|(c, _)| c.clone()).collect();
    let settled = settle_live(&fake, &conn, &conversations, 1, Duration::from_secs(45)).await;
    wait_for("the 600 deliveries to settle", DRAIN, || async {
        (pending(&redis.url, &redis.prefix).await == 0).then_some(())
    })
    .await;
    assert_eq!(processed(&conn).await, 200);
    let ids: Vec<String> = written.into_iter().map(|(_, id)| id).collect();
    assert_one_reply_each(&conn, &ids).await;
    let replies =
        messages::Entity::find().filter(messages::Column::Direction.eq(Direction::Out)).count(&conn).await.unwrap();
    assert_eq!(replies, 200, "one reply per message, not per copy");
    eprintln!(
        "every webhook 3 times (live sends): 200 messages, 600 deliveries, 200 replies, each received exactly once, 0 rows unsettled {:.1} s after the last webhook",
        settled.as_secs_f64()
    );
    for process in [&mut first, &mut second, &mut web] {
        assert!(process.stop().success());
        process.assert_clean_logs();
    }
}

/// How unevenly requests that left the limiter in order may reach the fake on a loaded 2-core machine.
const ARRIVAL_JITTER: Duration = Duration::from_millis(250);

/// The fake TikTok of the storm: 40100 and 503 until `calm_after`, then success; every answer logged.
struct Storm {
    /// The first send's arrival: the storm lasts `calm_after` from there, however long the processes took
    /// to start (on a loaded machine that alone outlasted a storm timed from the test's start).
    started: std::sync::OnceLock<Instant>,
    calm_after: Duration,
    log: Arc<Mutex<Vec<(Duration, String, bool)>>>,
}

impl wiremock::Respond for Storm {
    fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
        let at = self.started.get_or_init(Instant::now).elapsed();
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let recipient = body["recipient"].as_str().unwrap_or_default().to_owned();
        let mut log = self.log.lock().unwrap();
        let n = log.len();
        let calm = at >= self.calm_after;
        log.push((at, recipient, calm));
        if calm {
            wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "code": 0, "message": "ok", "request_id": "r",
                "data": {"message": {"message_id": format!("tt-{n}")}}
            }))
        } else if n.is_multiple_of(2) {
            wiremock::ResponseTemplate::new(200).set_body_json(
                serde_json::json!({"code": 40100, "message": "rate limited", "request_id": "r", "data": {}}),
            )
        } else {
            wiremock::ResponseTemplate::new(503)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiktok_storm_of_40100_and_5xx_loses_and_doubles_nothing_within_the_send_rate() {
    let test = "reliability::a_tiktok_storm_of_40100_and_5xx_loses_and_doubles_nothing_within_the_send_rate";
    let Some((db, redis)) = services(test).await else { return };
    let soak = std::env::var("PHILIA_SOAK").is_ok_and(|v| v == "1");
    let calm_after = Duration::from_secs(if soak { 60 } else { 6 });
    let tiktok = wiremock::MockServer::start().await;
    let log = Arc::new(Mutex::new(Vec::new()));
    wiremock::Mock::given(wiremock::matchers::path("/open_api/v1.3/business/message/send/"))
        .respond_with(Storm { started: std::sync::OnceLock::new(), calm_after, log: log.clone() })
        .mount(&tiktok)
        .await;
    let (rate, burst) = (20u32, 5u32);
    let mut deployment = Deployment::new(&db.url, &redis.url, &redis.prefix);
    for (key, value) in [
        ("TIKTOK_ACCESS_TOKEN", "storm-token".to_owned()),
        ("TIKTOK_BUSINESS_ID", "biz_open_id".to_owned()),
        ("PHILIA_TIKTOK__API_BASE_URL", tiktok.uri()),
        ("PHILIA_TIKTOK__SEND_RATE_PER_SECOND", rate.to_string()),
        ("PHILIA_TIKTOK__SEND_BURST", burst.to_string()),
        ("PHILIA_TIKTOK__MAX_ATTEMPTS", "3".to_owned()),
        ("PHILIA_TIKTOK__RETRY_BASE_MS", "100".to_owned()),
        ("PHILIA_TIKTOK__RETRY_MAX_DELAY_MS", "500".to_owned()),
        ("PHILIA_TIKTOK__REQUEST_TIMEOUT_MS", "1000".to_owned()),
        // A minute-long storm outlasts the default 5 deliveries; the suite lets jobs keep trying.
        ("PHILIA_JOBS__MAX_DELIVERIES", "50".to_owned()),
    ] {
        deployment.set(key, &value);
    }
    let mut web = deployment.start("web").await;
    let mut workers = [deployment.start("worker").await, deployment.start("worker").await];
    let conn = connect(&db).await;
    let statuses = post_many(&web.url(), "storm", 60, 16).await;
    assert!(statuses.iter().all(|(_, s)| *s == 200));
    let deadline = Instant::now() + calm_after + MIN_IDLE * 3 + Duration::from_secs(30);
    loop {
        let replies =
            messages::Entity::find().filter(messages::Column::Direction.eq(Direction::Out)).all(&conn).await.unwrap();
        let sent = replies.iter().filter(|m| m.delivery_status == Some(DeliveryStatus::Sent)).count();
        if sent == 60 {
            break;
        }
        if Instant::now() > deadline {
            let mut by_status: HashMap<String, usize> = HashMap::new();
            for m in &replies {
                *by_status.entry(format!("{:?}", m.delivery_status)).or_default() += 1;
            }
            let (worker_log, _) = workers[0].logs();
            let tail: Vec<&str> = worker_log.lines().rev().take(15).collect();
            panic!(
                "{sent} of 60 sent; replies by status {by_status:?}; processed {}; worker log tail:\n{}",
                processed(&conn).await,
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = log.lock().unwrap().clone();
    let mut delivered: HashMap<String, usize> = HashMap::new();
    for (_, recipient, ok) in &log {
        if *ok {
            *delivered.entry(recipient.clone()).or_default() += 1;
        }
    }
    assert_eq!(delivered.len(), 60, "every customer got their reply");
    assert!(delivered.values().all(|n| *n == 1), "no reply was sent twice: {delivered:?}");
    // The shared limiter (GCRA in Redis, across both workers): at most `burst` at once and `rate` a second.
    let times: Vec<Duration> = log.iter().map(|(at, _, _)| *at).collect();
    let busiest = times
        .iter()
        .map(|start| times.iter().filter(|t| **t >= *start && **t < *start + Duration::from_secs(1)).count())
        .max()
        .unwrap_or(0);
    // Recovery: the last reply's send after the storm ended (every send was answered at once).
    let last_send = times.iter().max().copied().unwrap_or_default();
    eprintln!(
        "tiktok storm ({} s): 60 messages, each reply received exactly once, 0 rows unsettled, the last sent {:.1} s after the storm ended; {} calls, {} refused, busiest second {busiest} calls (limit {rate}/s, burst {burst})",
        calm_after.as_secs(),
        last_send.saturating_sub(calm_after).as_secs_f64(),
        log.len(),
        log.iter().filter(|(_, _, ok)| !ok).count()
    );
    // The limiter grants at most `rate` a second plus `burst` at grant time; the fake sees arrivals,
    // which a loaded machine delays unevenly (a request granted earlier can arrive later), so a second
    // of arrivals spans at most a second plus that jitter of grants. Without the limiter all 60 sends and
    // their retries would arrive within the first second (16 consumers, no wait).
    let bound = (f64::from(rate) * (1.0 + ARRIVAL_JITTER.as_secs_f64())).ceil() as u32 + burst;
    assert!(
        busiest as u32 <= bound,
        "{busiest} calls in one second (bound {bound}: {rate}/s over 1 s + {ARRIVAL_JITTER:?} of arrival jitter, + {burst} burst)"
    );
    assert!(log.iter().filter(|(_, _, ok)| !ok).count() > 0, "the storm happened");
    // The workers' /metrics tell the same story as the fake TikTok's log.
    let mut by_code = HashMap::new();
    for code in ["0", "40100", "http_503"] {
        let line = format!("philia_tiktok_calls_total{{call=\"send\",code=\"{code}\"}}");
        let total = workers[0].metric(&line).await + workers[1].metric(&line).await;
        by_code.insert(code, total as usize);
    }
    assert_eq!(by_code["0"] + by_code["40100"] + by_code["http_503"], log.len(), "{by_code:?}");
    assert_eq!(by_code["0"], 60, "{by_code:?}");
    for process in workers.iter_mut().chain([&mut web]) {
        assert!(process.stop().success());
        process.assert_clean_logs();
    }
}

/// The bad-input corpus: each request and the status it must get.
fn corpus() -> Vec<WebhookCase> {
    let now = chrono::Utc::now().timestamp();
    let good = tiktok_message("bad-0", "eve", "hi").into_bytes();
    let sign = |t: i64, body: &[u8]| philia_bot::tiktok::signature::sign(WEBHOOK_SECRET.as_bytes(), t, body);
    let hex = |t: i64, body: &[u8]| sign(t, body).split("s=").nth(1).unwrap().to_owned();
    let s = hex(now, &good);
    let bad = |name, body: &[u8], expect| WebhookCase::new(name, body, expect);
    let header = |name, value: String| WebhookCase::signature(name, good.clone(), Signed::As(value));
    let envelope = |content: serde_json::Value| {
        serde_json::json!({"client_key": "k", "event": "im_receive_msg", "create_time": now, "user_openid": "b", "content": content.to_string()})
            .to_string()
            .into_bytes()
    };
    let mut deep = "[".repeat(5_000);
    deep.push_str(&"]".repeat(5_000));
    let mut gzip_bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gzip_bomb, &vec![b' '; 10 * 1024 * 1024]).unwrap();
    let gzip_bomb = gzip_bomb.finish().unwrap();
    let huge_id = format!(r#"{{"event_id":"{}","event":"im_receive_msg","data":{{}}}}"#, "x".repeat(70_000));
    let ansi_event = format!(
        r#"{{"client_key":"k","event":"im_evil\r\n{{\"level\":\"ERROR\",\"fake\":true}}\u001b[31m","create_time":{now},"user_openid":"b","content":"{{}}"}}"#
    );
    let crlf_text = envelope(serde_json::json!({
        "conversation_id": "c\r\n\u{1b}[2J", "message_id": 7.5, "timestamp": now, "type": "text",
        "text": {"body": "line one\r\n{\"level\":\"ERROR\"}\u{1b}[31mred"},
        "from_user": {"id": "u"}, "to_user": {"id": "b"}
    }));
    vec![
        bad("no content type", &good, 415).content_type(None),
        bad("text/plain", &good, 415).content_type(Some("text/plain")),
        bad("form", &good, 415).content_type(Some("application/x-www-form-urlencoded")),
        bad("multipart", &good, 415).content_type(Some("multipart/form-data; boundary=x")),
        bad("json-ish", &good, 415).content_type(Some("application/jsonp")),
        bad("xml", b"<a/>", 415).content_type(Some("application/xml")),
        bad("body over 64 KiB", &vec![b' '; 70_000], 413),
        bad("gzip bomb", &gzip_bomb, 415).content_encoding("gzip"),
        bad("huge field", huge_id.as_bytes(), 413),
        WebhookCase::signature("no signature", good.clone(), Signed::Missing),
        header("empty signature", String::new()),
        header("garbage signature", "garbage".into()),
        header("t only", format!("t={now}")),
        header("s only", format!("s={s}")),
        header("s not hex", format!("t={now},s=zz{}", &s[2..])),
        header("s too short", format!("t={now},s={}", &s[..10])),
        header("wrong secret", philia_bot::tiktok::signature::sign(b"other", now, &good)),
        header("stale", sign(now - 3_600, &good)),
        header("future", sign(now + 3_600, &good)),
        header("t not a number", format!("t=abc,s={s}")),
        header("t twice", format!("t={now},t={now},s={s}")),
        header("signature of another body", sign(now, b"{}")),
        header("CRLF in the header value", format!("t={now},s={s}\u{b}x")),
        // A signed JSON object that is not a readable event is kept and acknowledged (TikTok would retry a
        // refusal for 72 hours); only what is not a JSON object is refused.
        bad("empty body", b"", 400),
        bad("null", b"null", 400),
        bad("an array", b"[]", 400),
        bad("an empty object", b"{}", 200),
        bad("a string", b"\"hi\"", 400),
        bad("not JSON", b"hello", 400),
        bad("truncated JSON", &good[..good.len() / 2], 400),
        bad("invalid UTF-8", b"{\"event\":\"\xff\xfe\"}", 400),
        bad("5,000-deep nesting", deep.as_bytes(), 400),
        bad("no event", br#"{"content":"{}"}"#, 200),
        bad("no content", br#"{"event":"im_receive_msg","create_time":1}"#, 200),
        bad("content not JSON", &envelope(serde_json::json!("not json"))[..], 200),
        bad(
            "content without conversation",
            &envelope(serde_json::json!({"message_id": "m", "type": "text", "text": {"body": "hi"}}))[..],
            200,
        ),
        bad(
            "float message id",
            &envelope(
                serde_json::json!({"conversation_id": "c", "message_id": 1.5, "timestamp": now, "type": "text", "text": {"body": "hi"}, "from_user": {"id": "u"}, "to_user": {"id": "b"}}),
            )[..],
            200,
        ),
        bad("CR/LF and ANSI in fields of a bad message", &crlf_text, 200),
        bad("event with CR/LF and ANSI (ignored, not enqueued)", ansi_event.as_bytes(), 200),
        bad("unknown event (ignored)", br#"{"event_id":"e1","event":"authorization.removed","data":{}}"#, 200),
        bad(
            "duplicate keys (the last wins: an unknown event, ignored)",
            br#"{"event":"im_receive_msg","event":"x","content":"{}"}"#,
            200,
        ),
        bad("NaN", br#"{"event":NaN}"#, 400),
        bad("BOM", &[&[0xEF, 0xBB, 0xBF][..], &good[..]].concat(), 400),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corpus_of_bad_requests_gets_the_right_status_and_enqueues_nothing() {
    let Some((db, redis)) =
        services("reliability::a_corpus_of_bad_requests_gets_the_right_status_and_enqueues_nothing").await
    else {
        return;
    };
    let mut deployment = Deployment::new(&db.url, &redis.url, &redis.prefix);
    let mut web = deployment.start("web").await;
    let client = reqwest::Client::new();
    let cases = corpus();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut wrong = Vec::new();
    for case in &cases {
        let status = case.request(&client, &web.url()).send().await.map_or(0, |r| r.status().as_u16());
        if status != case.status {
            wrong.push(format!("{}: expected {}, got {status}", case.case, case.status));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let enqueued = crate::helpers::redis_cli(&redis.url, &["XLEN", &format!("{}:jobs", redis.prefix)]).await;
    assert_eq!(enqueued.as_deref(), Some("0"), "nothing enqueued");
    let health = client.get(format!("http://127.0.0.1:{}/health", web.port.unwrap())).send().await.unwrap();
    assert_eq!(health.status(), 200, "still serving");
    assert!(web.stop().success());
    web.assert_clean_logs();
    let (stdout, _) = web.logs();
    assert!(!stdout.contains("\u{1b}["), "no raw ANSI escape reaches the log");
    eprintln!(
        "bad input: {} requests, each with its expected status; nothing enqueued; logs are one JSON record per line",
        cases.len()
    );
}

// ---- live sends: the worker processes send to the TikTok stand-in, which counts what each customer got ----

use crate::fake_tiktok::{Answer, Call, FakeConfig, FakeTikTok, Fault, codes};
use philia_bot::store::entities::tiktok_tokens;
use sea_orm::ActiveValue::Set;

impl Deployment {
    /// Sends live to `fake`: its base URL, app, tokens and business id; a send of unknown outcome is
    /// settled after 2 s and the sweeper runs every second, so a scenario settles within seconds.
    fn live(&mut self, fake: &FakeTikTok) {
        let tokens = fake.issue_tokens(&fake.business_id());
        for (key, value) in [
            ("PHILIA_TIKTOK__API_BASE_URL", fake.uri()),
            ("TIKTOK_CLIENT_KEY", "app_key".to_owned()),
            ("TIKTOK_CLIENT_SECRET", WEBHOOK_SECRET.to_owned()),
            ("TIKTOK_ACCESS_TOKEN", tokens.access_token),
            ("TIKTOK_REFRESH_TOKEN", tokens.refresh_token),
            ("TIKTOK_BUSINESS_ID", fake.business_id()),
            ("PHILIA_TIKTOK__SEND_RATE_PER_SECOND", "100000".to_owned()),
            ("PHILIA_TIKTOK__SEND_BURST", "100000".to_owned()),
            ("PHILIA_TIKTOK__RETRY_BASE_MS", "50".to_owned()),
            ("PHILIA_TIKTOK__RETRY_MAX_DELAY_MS", "200".to_owned()),
            ("PHILIA_TIKTOK__UNKNOWN_SETTLE_SECS", "2".to_owned()),
            ("PHILIA_SHOP__SWEEP_INTERVAL_SECS", "1".to_owned()),
        ] {
            self.set(key, &value);
        }
    }
}

/// What a live scenario left: sends per reply at the fake, and rows not settled in the database.
#[derive(Debug, Default)]
struct LiveTally {
    /// Customers who received each of their replies exactly once (as many messages as replies expected).
    once: usize,
    /// Customers who got fewer, or more (a reply twice): `(conversation, sends received)`.
    wrong: Vec<(String, usize)>,
    /// Replies still `pending`, `sending` or `unknown`.
    unsettled: usize,
}

/// What the customers of `conversations` received, each expecting `replies` messages, and the replies
/// left unsettled in the database.
async fn live_tally(
    fake: &FakeTikTok,
    conn: &DatabaseConnection,
    conversations: &[String],
    replies: usize,
) -> LiveTally {
    let mut tally = LiveTally::default();
    for conversation in conversations {
        match fake.received(conversation).len() {
            n if n == replies => tally.once += 1,
            n => tally.wrong.push((conversation.clone(), n)),
        }
    }
    tally.unsettled = messages::Entity::find()
        .filter(messages::Column::Direction.eq(Direction::Out))
        .filter(messages::Column::DeliveryStatus.is_in([
            DeliveryStatus::Pending,
            DeliveryStatus::Sending,
            DeliveryStatus::Unknown,
        ]))
        .count(conn)
        .await
        .unwrap_or(u64::MAX) as usize;
    tally
}

/// Waits until every customer of `conversations` received each of their `replies` replies exactly once
/// and no reply is left unsettled (failing with the tally after `limit`, or at once when a customer got
/// more than `replies`); how long that took.
async fn settle_live(
    fake: &FakeTikTok,
    conn: &DatabaseConnection,
    conversations: &[String],
    replies: usize,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let tally = live_tally(fake, conn, conversations, replies).await;
        if tally.once == conversations.len() && tally.unsettled == 0 {
            return started.elapsed();
        }
        assert!(
            tally.wrong.iter().all(|(_, n)| *n <= replies),
            "a reply reached a customer twice: {:?}",
            tally.wrong.iter().filter(|(_, n)| *n > replies).take(10).collect::<Vec<_>>()
        );
        if started.elapsed() > limit {
            let unsettled: Vec<String> = messages::Entity::find()
                .filter(messages::Column::Direction.eq(Direction::Out))
                .filter(messages::Column::DeliveryStatus.is_in([
                    DeliveryStatus::Pending,
                    DeliveryStatus::Sending,
                    DeliveryStatus::Unknown,
                ]))
                .all(conn)
                .await
                .unwrap_or_default()
                .iter()
                .take(10)
                .map(|m| {
                    format!(
                        "reply {} {:?} (error {:?}, stored {})",
                        m.id, m.delivery_status, m.error_code, m.created_at
                    )
                })
                .collect();
            panic!(
                "{} of {} answered once, {} rows unsettled after {limit:?}; first wrong: {:?}; unsettled: {unsettled:?}",
                tally.once,
                conversations.len(),
                tally.unsettled,
                &tally.wrong[..tally.wrong.len().min(10)]
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `count` customers (`{tag}-{n}`) each write `texts` through the fake, one after another (each webhook
/// delivered before the next is written, as TikTok delivers one customer's messages), `parallel`
/// customers at a time; each conversation with its messages' ids, in the order they were written.
async fn customers_write_in_turn(
    fake: &Arc<FakeTikTok>,
    tag: &str,
    count: usize,
    parallel: usize,
    texts: &'static [&'static str],
) -> Vec<(String, Vec<String>)> {
    let mut set = JoinSet::new();
    let mut written = Vec::new();
    for n in 0..count {
        if set.len() >= parallel
            && let Some(done) = set.join_next().await
        {
            written.push(done.unwrap());
        }
        let (fake, conversation) = (fake.clone(), format!("{tag}-{n}"));
        set.spawn(async move {
            let mut ids = Vec::new();
            for text in texts {
                let delivery = fake.customer_writes(&conversation, &format!("{conversation}-customer"), text).await;
                assert!(delivery.delivered(), "the web process accepted {conversation}: {:?}", delivery.attempts);
                ids.push(delivery.content()["message_id"].as_str().expect("a message id").to_owned());
            }
            (conversation, ids)
        });
    }
    while let Some(done) = set.join_next().await {
        written.push(done.unwrap());
    }
    written
}

/// `count` customers (`{tag}-{n}`) write "hi" through the fake, `parallel` at a time; their conversations.
async fn customers_write(fake: &Arc<FakeTikTok>, tag: &str, count: usize, parallel: usize) -> Vec<String> {
    customers_write_in_turn(fake, tag, count, parallel, &["hi"]).await.into_iter().map(|(c, _)| c).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiktok_recording_then_never_answering_or_answering_502_sends_each_reply_once() {
    let test = "reliability::tiktok_recording_then_never_answering_or_answering_502_sends_each_reply_once";
    let Some((db, redis)) = services(test).await else { return };
    let fake = Arc::new(FakeTikTok::start(FakeConfig::default()).await);
    // A third of the sends land and are never answered, a third land and are answered 502, and some
    // are lost inside TikTok (not recorded, never answered): only reading the conversation tells.
    fake.fault_when(|send| send.index % 3 == 0, Fault::RecordThenHang);
    fake.fault_when(|send| send.index % 3 == 1, Fault::RecordThenHttp(502));
    fake.fault_when(|send| send.index % 10 == 5, Fault::LoseThenHang);
    let mut deployment = Deployment::new(&db.url, &redis.url, &redis.prefix);
    deployment.live(&fake);
    let mut web = deployment.start("web").await;
    let mut worker = deployment.start("worker").await;
    fake.set_callback_url(web.url());
    let conn = connect(&db).await;
    let conversations = customers_write(&fake, "hang", 60, 8).await;
    let settled = settle_live(&fake, &conn, &conversations, 1, Duration::from_secs(60)).await;
    let tally = live_tally(&fake, &conn, &conversations, 1).await;
    let sends = fake.calls().iter().filter(|c| c.path == crate::fake_tiktok::SEND_PATH).count();
    eprintln!(
        "record-then-hang/502/lost: {} messages, each reply received exactly once ({sends} send requests), {} rows unsettled, settled {:.1} s after the last webhook",
        conversations.len(),
        tally.unsettled,
        settled.as_secs_f64()
    );
    assert!(worker.stop().success() && web.stop().success());
    worker.assert_clean_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_while_a_slow_tiktok_holds_its_sends_sends_nothing_twice() {
    let _turn = HEAVY.lock().await;
    let test = "reliability::a_worker_killed_while_a_slow_tiktok_holds_its_sends_sends_nothing_twice";
    let Some((db, redis)) = services(test).await else { return };
    let fake = Arc::new(FakeTikTok::start(FakeConfig::default()).await);
    // Every send is recorded at once and answered after 3 s: the kill lands with sends in the air.
    fake.fault_when(|_| true, Fault::Slow(Duration::from_secs(3)));
    let mut deployment = Deployment::new(&db.url, &redis.url, &redis.prefix);
    deployment.live(&fake);
    for (key, value) in [
        ("PHILIA_WORKER__CONCURRENCY", "64"),
        ("PHILIA_DATABASE__MAX_CONNECTIONS", "16"),
        ("PHILIA_TIKTOK__REQUEST_TIMEOUT_MS", "5000"),
        ("PHILIA_WORKER__JOB_TIMEOUT_MS", "8000"),
        ("PHILIA_WORKER__SHUTDOWN_GRACE_SECS", "8"),
        ("PHILIA_JOBS__RECLAIM_MIN_IDLE_MS", "9000"),
    ] {
        deployment.set(key, value);
    }
    let mut web = deployment.start("web").await;
    let mut doomed = deployment.start("worker").await;
    fake.set_callback_url(web.url());
    let conn = connect(&db).await;
    let writing = tokio::spawn({
        let fake = fake.clone();
        async move { customers_write(&fake, "slow", 500, 32).await }
    });
    wait_for("the doomed worker to have sends in the air", Duration::from_secs(120), || async {
        (fake.calls().iter().filter(|c| c.path == crate::fake_tiktok::SEND_PATH).count() >= 100).then_some(())
    })
    .await;
    doomed.kill_9();
    let killed_at = Instant::now();
    let in_flight = pending(&redis.url, &redis.prefix).await;
    let conversations = writing.await.unwrap();
    let mut rescuer = deployment.start("worker").await;
    // Alone it settles in about a minute (a slow TikTok: each of the 500 sends takes 3 s).
    settle_live(&fake, &conn, &conversations, 1, Duration::from_secs(180)).await;
    let recovery = killed_at.elapsed();
    eprintln!(
        "kill -9 under a slow TikTok (3 s per send): {} messages, {in_flight} job(s) pending at the kill, each reply received exactly once, 0 rows unsettled; all settled {:.1} s after the kill",
        conversations.len(),
        recovery.as_secs_f64()
    );
    assert!(rescuer.stop().success() && web.stop().success());
    rescuer.assert_clean_logs();
}

/// The reclaim settings of the backlog scenario: the shortest reclaim time the config check accepts (it
/// must exceed the job timeout, which must leave room for one TikTok call), against sends that take
/// 1.5 to 3 s of it.
const BACKLOG_REQUEST_TIMEOUT_MS: u64 = 3_500;
const BACKLOG_JOB_TIMEOUT_MS: u64 = 6_000;
const BACKLOG_MIN_IDLE: Duration = Duration::from_millis(6_500);
/// Longer than the reclaim time: every job the frozen worker holds is idle long enough to be taken over
/// while its first copy is still in the middle of its run.
const FREEZE: Duration = Duration::from_secs(10);

/// Issue 14, item 3, across processes: a backlog of slow jobs (every send answered after 1.5, 2.25 or
/// 3 s) with the shortest reclaim time the settings allow, read by two workers × 6 consumers. The config
/// check keeps a live job from going idle past the reclaim time (a job is cut off first), so what puts a
/// job in two places at once here is a worker frozen (SIGSTOP) for longer than the reclaim time with its
/// sends in the air: the other worker takes its jobs over while their first copies are stopped mid-run,
/// then the frozen one runs on (SIGCONT), its copies past their timeout. Every customer must get their
/// reply exactly once, nothing may be left `pending`/`sending`/`unknown`, no job dead-lettered (none
/// failed `jobs.max_deliveries` times), and the pending list must drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_slow_sends_with_a_short_reclaim_time_answers_everyone_once_and_dead_letters_nothing() {
    let _turn = HEAVY.lock().await;
    let test =
        "reliability::a_backlog_of_slow_sends_with_a_short_reclaim_time_answers_everyone_once_and_dead_letters_nothing";
    let Some((db, redis)) = services(test).await else { return };
    let fake = Arc::new(FakeTikTok::start(FakeConfig::default()).await);
    // Each send is recorded at once (its echo goes out) and answered after 1.5, 2.25 or 3 s, in turn.
    for (turn, ms) in [(0, 1_500), (1, 2_250), (2, 3_000)] {
        fake.fault_when(move |send| send.index % 3 == turn, Fault::Slow(Duration::from_millis(ms)));
    }
    let mut deployment = Deployment::new(&db.url, &redis.url, &redis.prefix);
    deployment.live(&fake);
    for (key, value) in [
        ("PHILIA_WORKER__CONCURRENCY", "6".to_owned()),
        ("PHILIA_TIKTOK__REQUEST_TIMEOUT_MS", BACKLOG_REQUEST_TIMEOUT_MS.to_string()),
        ("PHILIA_WORKER__JOB_TIMEOUT_MS", BACKLOG_JOB_TIMEOUT_MS.to_string()),
        ("PHILIA_WORKER__SHUTDOWN_GRACE_SECS", BACKLOG_JOB_TIMEOUT_MS.div_ceil(1000).to_string()),
        ("PHILIA_JOBS__RECLAIM_MIN_IDLE_MS", BACKLOG_MIN_IDLE.as_millis().to_string()),
        ("PHILIA_JOBS__RECLAIM_INTERVAL_MS", "250".to_owned()),
    ] {
        deployment.set(key, &value);
    }
    let mut web = deployment.start("web").await;
    let mut workers = [deployment.start("worker").await, deployment.start("worker").await];
    fake.set_callback_url(web.url());
    let conn = connect(&db).await;
    let count = 240;
    // Every customer at once: the backlog is queued before most of it can be read.
    let queued_at = Instant::now();
    let writing = tokio::spawn({
        let fake = fake.clone();
        async move { customers_write_in_turn(&fake, "backlog", count, count, &["hi"]).await }
    });
    let sends = || fake.calls().iter().filter(|c| c.path == crate::fake_tiktok::SEND_PATH).count();
    wait_for("both workers to have sends in the air", Duration::from_secs(120), || async {
        (sends() >= 40).then_some(())
    })
    .await;
    workers[0].freeze();
    let frozen_with = pending(&redis.url, &redis.prefix).await;
    tokio::time::sleep(FREEZE).await;
    workers[0].thaw();
    let thawed_at = Instant::now();
    let written = writing.await.unwrap();
    let conversations: Vec<String> = written.iter().map(|(c, _)| c.clone()).collect();
    settle_live(&fake, &conn, &conversations, 1, Duration::from_secs(240)).await;
    let (after_thaw, after_queued) = (thawed_at.elapsed(), queued_at.elapsed());
    wait_for("the pending list to drain", DRAIN, || async {
        (pending(&redis.url, &redis.prefix).await == 0).then_some(())
    })
    .await;
    assert_eq!(processed(&conn).await, count as u64);
    let ids: Vec<String> = written.into_iter().flat_map(|(_, ids)| ids).collect();
    assert_one_reply_each(&conn, &ids).await;
    let tally = live_tally(&fake, &conn, &conversations, 1).await;
    assert_eq!((tally.once, tally.unsettled), (count, 0), "{tally:?}");
    let dead = crate::helpers::redis_cli(&redis.url, &["XLEN", &format!("{}:dead", redis.prefix)]).await;
    let (taken_over, retried) =
        (workers[1].logged("took over an unacknowledged job"), workers[0].logged("job failed; it will be retried"));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!(
        "slow backlog, short reclaim (sends answered after 1.5-3 s, job timeout {} s, reclaim after {:.1} s idle): {count} messages, two workers x 6 consumers, one frozen {} s with {frozen_with} job(s) pending; {taken_over} job(s) taken over by the other while their first copies were frozen, {retried} failed copies of the frozen one; dead letters: {}; each reply received exactly once ({} send requests), {} rows unsettled; all settled {:.1} s after the thaw ({:.1} s after the backlog was written); load average {}",
        BACKLOG_JOB_TIMEOUT_MS / 1000,
        BACKLOG_MIN_IDLE.as_secs_f64(),
        FREEZE.as_secs(),
        dead.as_deref().unwrap_or("?"),
        sends(),
        tally.unsettled,
        after_thaw.as_secs_f64(),
        after_queued.as_secs_f64(),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    assert_eq!(dead.as_deref(), Some("0"), "nothing dead-lettered: no job failed jobs.max_deliveries times");
    assert!(taken_over > 0, "the frozen worker's jobs were taken over while their first copies were stopped");
    for process in workers.iter_mut().chain([&mut web]) {
        assert!(process.stop().success());
        process.assert_clean_logs();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_under_load_loses_nothing_and_sends_nothing_twice() {
    let test = "reliability::a_deploy_under_load_loses_nothing_and_sends_nothing_twice";
    let Some((db, redis)) = services(test).await else { return };
    let fake = Arc::new(FakeTikTok::start(FakeConfig::default()).await);
    fake.fault_when(|_| true, Fault::Slow(Duration::from_millis(500)));
    let mut deployment = Deployment::new(&db.url, &redis.url, &redis.prefix);
    deployment.live(&fake);
    deployment.set("PHILIA_WORKER__CONCURRENCY", "16");
    let mut web = deployment.start("web").await;
    let mut old = deployment.start("worker").await;
    fake.set_callback_url(web.url());
    let conn = connect(&db).await;
    let writing = tokio::spawn({
        let fake = fake.clone();
        async move { customers_write(&fake, "deploy", 200, 16).await }
    });
    wait_for("the old worker to be sending", Duration::from_secs(60), || async {
        (fake.calls().iter().filter(|c| c.path == crate::fake_tiktok::SEND_PATH).count() >= 40).then_some(())
    })
    .await;
    // The deploy: SIGTERM to the old worker, which finishes its in-flight jobs within the grace.
    let stopping = Instant::now();
    assert!(old.stop().success(), "the old worker exits cleanly");
    let stopped_in = stopping.elapsed();
    old.assert_clean_logs();
    let mut new = deployment.start("worker").await;
    let conversations = writing.await.unwrap();
    let settled = settle_live(&fake, &conn, &conversations, 1, Duration::from_secs(60)).await;
    eprintln!(
        "deploy (SIGTERM) under load: {} messages, the old worker stopped in {:.1} s, each reply received exactly once, 0 rows unsettled {:.1} s after the last webhook",
        conversations.len(),
        stopped_in.as_secs_f64(),
        settled.as_secs_f64()
    );
    assert!(new.stop().success() && web.stop().success());
    new.assert_clean_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_refreshing_an_expired_token_at_once_spend_the_refresh_token_once() {
    // Answered after 400 ms, well within the suite's 1 s request timeout.
    refresh_race(
        "reliability::two_workers_refreshing_an_expired_token_at_once_spend_the_refresh_token_once",
        Duration::from_millis(400),
    )
    .await;
}

/// Failed before 0b18d09: the refresh was spent at TikTok, its answer dropped by the 1 s request timeout,
/// every later refresh refused (40002), and nothing was sent again until the owner reconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_answered_after_the_request_timeout_still_leaves_working_tokens() {
    // Answered after 1.5 s: later than the suite's 1 s request timeout (TikTok slow for a moment).
    refresh_race(
        "reliability::a_refresh_answered_after_the_request_timeout_still_leaves_working_tokens",
        Duration::from_millis(1_500),
    )
    .await;
}

/// Two worker processes start with the shop's stored access token expired; customers write at once.
/// The fake answers the refresh after `refresh_delay` (its refresh token spent on arrival, as TikTok's
/// are single-use), so both workers' first replies want a token while it is under way: a second refresh
/// with the same token would be refused. Both must keep sending, with one refresh granted and none
/// refused, and every reply received exactly once.
async fn refresh_race(test: &str, refresh_delay: Duration) {
    let Some((db, redis)) = services(test).await else { return };
    let config = FakeConfig { refresh_delay, ..FakeConfig::default() };
    let fake = Arc::new(FakeTikTok::start(config).await);
    let mut deployment = Deployment::new(&db.url, &redis.url, &redis.prefix);
    deployment.live(&fake);
    let mut web = deployment.start("web").await; // migrates the database
    // The shop's stored tokens: the access token expired a minute ago (at TikTok too, and so did the
    // configured one), its refresh token not used yet.
    let business = fake.business_id();
    let stored = fake.issue_tokens(&business);
    fake.expire_access_tokens(&business);
    let conn = connect(&db).await;
    let now = chrono::Utc::now();
    let row = tiktok_tokens::ActiveModel {
        account: Set(philia_bot::tiktok::tokens::ACCOUNT_KEY.to_owned()),
        business_id: Set(Some(business.clone())),
        access_token: Set(stored.access_token.clone()),
        access_expires_at: Set(now - chrono::Duration::minutes(1)),
        refresh_token: Set(Some(stored.refresh_token.clone())),
        refresh_expires_at: Set(Some(now + chrono::Duration::days(300))),
        scope: Set(Some(FakeConfig::default().scope)),
        updated_at: Set(now),
        ..Default::default()
    };
    tiktok_tokens::Entity::insert(row).exec_without_returning(&conn).await.unwrap();
    let mut workers = [deployment.start("worker").await, deployment.start("worker").await];
    fake.set_callback_url(web.url());
    let conversations = customers_write(&fake, "refresh", 100, 32).await;
    let settled = settle_live(&fake, &conn, &conversations, 1, Duration::from_secs(60)).await;
    let calls = fake.calls();
    let refreshes: Vec<&Call> = calls.iter().filter(|c| c.path == crate::fake_tiktok::REFRESH_PATH).collect();
    let answers: Vec<Answer> = refreshes.iter().map(|c| c.answer).collect();
    assert_eq!(
        answers.iter().filter(|a| **a == Answer::Code(codes::OK)).count(),
        1,
        "one refresh granted: {answers:?}"
    );
    assert_eq!(answers.len(), 1, "no process tried the spent refresh token (TikTok refuses it): {answers:?}");
    let refreshed_at = refreshes[0].at + chrono::Duration::from_std(refresh_delay).unwrap();
    let expired = calls
        .iter()
        .filter(|c| c.path != crate::fake_tiktok::REFRESH_PATH)
        .filter(|c| c.answer == Answer::Code(codes::TOKEN_INVALID))
        .count();
    assert_eq!(expired, 0, "no call was made with the expired access token");
    // Both processes had a reply to send while the refresh was under way, and both kept sending.
    let mut sent = Vec::new();
    for worker in &workers {
        let first_stored = first_log_time(worker, "inbound message stored").expect("the worker stored a message");
        assert!(first_stored < refreshed_at, "a worker's first reply was stored after the refresh was answered");
        sent.push(worker.metric("philia_tiktok_calls_total{call=\"send\",code=\"0\"}").await as usize);
    }
    assert!(sent.iter().all(|n| *n > 0), "both workers sent: {sent:?}");
    let row = tiktok_tokens::Entity::find().one(&conn).await.unwrap().expect("the shop's row");
    assert_ne!(row.refresh_token.as_deref(), Some(stored.refresh_token.as_str()), "the new refresh token is kept");
    assert!(row.access_expires_at > chrono::Utc::now(), "the new access token is stored");
    eprintln!(
        "token refresh race (live sends, refresh answered after {refresh_delay:?}): {} messages, two workers sent {sent:?}, {} refresh call(s) at TikTok ({} granted), 0 calls with the expired token; each reply received exactly once, 0 rows unsettled {:.1} s after the last webhook",
        conversations.len(),
        answers.len(),
        answers.iter().filter(|a| **a == Answer::Code(codes::OK)).count(),
        settled.as_secs_f64()
    );
    for process in workers.iter_mut().chain([&mut web]) {
        assert!(process.stop().success());
        process.assert_clean_logs();
    }
}

/// When `process` first logged `message` (its records' `timestamp`), if it did.
fn first_log_time(process: &Process, message: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let (stdout, _) = process.logs();
    stdout.lines().filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok()).find_map(|record| {
        let logged = record["fields"]["message"].as_str().or(record["message"].as_str())?;
        (logged == message).then(|| record["timestamp"].as_str()?.parse().ok()).flatten()
    })
}

/// Five messages whose replies differ (greetings, the menu, thanks): each must be answered, in turn.
const IN_ORDER: &[&str] = &["hi", "hello", "menu", "thanks", "hey"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_messages_from_each_of_200_customers_at_once_are_processed_and_answered_in_order() {
    let _turn = HEAVY.lock().await;
    let test = "reliability::five_messages_from_each_of_200_customers_at_once_are_processed_and_answered_in_order";
    let Some((db, redis)) = services(test).await else { return };
    let fake = Arc::new(FakeTikTok::start(FakeConfig::default()).await);
    let mut deployment = Deployment::new(&db.url, &redis.url, &redis.prefix);
    deployment.live(&fake);
    // 8 consumers: two worker processes × 4, so one customer's messages can reach two processes at once.
    deployment.set("PHILIA_WORKER__CONCURRENCY", "4");
    let mut web = deployment.start("web").await;
    let mut workers = [deployment.start("worker").await, deployment.start("worker").await];
    fake.set_callback_url(web.url());
    let conn = connect(&db).await;
    // Every customer at once, each writing their five messages one after another.
    let written = customers_write_in_turn(&fake, "order", 200, 200, IN_ORDER).await;
    let conversations: Vec<String> = written.iter().map(|(c, _)| c.clone()).collect();
    let settled = settle_live(&fake, &conn, &conversations, IN_ORDER.len(), Duration::from_secs(120)).await;
    let rows = messages::Entity::find().all(&conn).await.unwrap();
    // A customer message's row (its id grows with each insert), and the message each reply answers.
    let stored: HashMap<&str, i64> = rows
        .iter()
        .filter(|m| m.direction == Direction::In)
        .filter_map(|m| Some((m.tiktok_message_id.as_deref()?, m.id)))
        .collect();
    let answers: HashMap<&str, &str> = rows
        .iter()
        .filter(|m| m.direction == Direction::Out)
        .filter_map(|m| Some((m.tiktok_message_id.as_deref()?, m.metadata["in_reply_to"].as_str()?)))
        .collect();
    let processed_at: HashMap<String, chrono::DateTime<chrono::Utc>> = processed_events::Entity::find()
        .all(&conn)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| Some((e.idempotency_key, e.processed_at?)))
        .collect();
    let mut out_of_order = Vec::new();
    for (conversation, ids) in &written {
        let key = |id: &String| format!("im_receive_msg:{id}");
        let rows: Vec<i64> = ids.iter().map(|id| stored[id.as_str()]).collect();
        let times: Vec<_> = ids.iter().map(|id| processed_at[&key(id)]).collect();
        // Which of the customer's messages each reply they received answers, in the order received.
        let answered: Vec<usize> = fake
            .received(conversation)
            .iter()
            .map(|m| {
                let asked = answers[m.message_id.as_str()];
                ids.iter().position(|id| key(id) == asked).expect("a reply to one of the customer's messages")
            })
            .collect();
        if !rows.is_sorted() || !times.is_sorted() || answered != (0..IN_ORDER.len()).collect::<Vec<_>>() {
            out_of_order.push(format!(
                "{conversation}: stored {rows:?}, processed {times:?}, answers received for messages {answered:?}"
            ));
        }
    }
    assert!(
        out_of_order.is_empty(),
        "{} of 200 conversations not processed in the order written: {:#?}",
        out_of_order.len(),
        &out_of_order[..out_of_order.len().min(5)]
    );
    eprintln!(
        "ordered burst (live sends): 200 customers × {} messages (1,000), two workers × 4 consumers; every conversation stored, processed and answered in the order written; each reply received exactly once, 0 rows unsettled {:.1} s after the last webhook",
        IN_ORDER.len(),
        settled.as_secs_f64()
    );
    for process in workers.iter_mut().chain([&mut web]) {
        assert!(process.stop().success());
        process.assert_clean_logs();
    }
}
