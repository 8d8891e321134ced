//! `GET /metrics`: what operators scrape, counted by the real request and job paths.

use crate::helpers::{
    TestDatabase, TestRedis, redis_cli, spawn_app_with, test_settings, tiktok_message, use_redis, wait_for,
};
use crate::on_every_backend;
use philia_bot::jobs::{JobQueue, RedisQueue};
use philia_bot::redis_pool::Redis;
use philia_bot::role::Role;

on_every_backend!(metrics_count_webhooks_jobs_and_the_queue);

async fn metrics_count_webhooks_jobs_and_the_queue(db: TestDatabase, redis: Option<TestRedis>) {
    let mut settings = test_settings(&db);
    use_redis(&mut settings, redis.as_ref());
    let app = spawn_app_with(db, settings, Role::All).await;
    for id in ["m-1", "m-2"] {
        assert_eq!(app.post_webhook(&tiktok_message(id, "kim", "hi")).await.status(), 200);
    }
    assert_eq!(app.post_webhook(&tiktok_message("m-1", "kim", "hi")).await.status(), 200, "a redelivery");
    let unsigned = app.webhook_request().body(tiktok_message("m-3", "kim", "hi")).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    wait_for("three jobs finished", std::time::Duration::from_secs(15), || async {
        let response = app.get("/metrics").await;
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
        let text = response.text().await.unwrap();
        let done = text.contains("philia_jobs_processed_total{outcome=\"processed\"} 2")
            && text.contains("philia_jobs_processed_total{outcome=\"duplicate\"} 1");
        done.then_some(())
    })
    .await;
    // A fresh scrape: the one that saw the counters complete read the queue's depth a moment before
    // the last jobs were acknowledged.
    let text = app.get("/metrics").await.text().await.unwrap();
    for line in [
        "philia_webhook_requests_total{outcome=\"enqueued\"} 3",
        "philia_webhook_requests_total{outcome=\"unauthorized\"} 1",
        "philia_webhook_duration_seconds_count 4",
        "philia_jobs_enqueued_total 3",
        "philia_jobs_dead_total 0",
        "philia_queue_pending 0",
        "philia_active_holds 0",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    assert!(text.ends_with("# EOF\n"));
    app.stop().await.unwrap();
}

/// Every log line written while it is the thread's subscriber (the test's runtime runs on this thread).
#[derive(Clone, Default)]
struct Log(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The value of an unlabelled sample in a scrape.
fn sample(scrape: &str, name: &str) -> u64 {
    let line = scrape.lines().find(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ')));
    let line = line.unwrap_or_else(|| panic!("no {name} in:\n{scrape}"));
    line[name.len() + 1..].parse().unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

/// Issue 17: the job stream's length and memory are in `/metrics`, a stream over `jobs.stream_max_len` is
/// warned about, and the cap trims nothing (jobs unread or unacknowledged stay).
#[tokio::test]
async fn the_stream_gauges_read_redis_and_a_stream_over_its_cap_is_warned_about_and_not_trimmed() {
    let test = "metrics::the_stream_gauges_read_redis_and_a_stream_over_its_cap_is_warned_about_and_not_trimmed";
    let Some(redis) = TestRedis::new(test) else { return };
    let db = TestDatabase::sqlite();
    let mut settings = test_settings(&db);
    use_redis(&mut settings, Some(&redis));
    settings.jobs.stream_max_len = 3;
    settings.jobs.reclaim_interval_ms = 50;
    let jobs = settings.jobs.clone();
    let redis_settings = settings.redis.clone();
    // The web role only: nothing consumes, so every job stays in the stream.
    let app = spawn_app_with(db, settings, Role::Web).await;
    let stream = format!("{}:jobs", redis.prefix);
    for n in 1..=5 {
        let customer = format!("customer-{n}");
        assert_eq!(app.post_webhook(&tiktok_message(&format!("m-{n}"), &customer, "hi")).await.status(), 200);
    }

    let scrape = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(sample(&scrape, "philia_queue_stream_length"), 5, "5 jobs past a cap of 3:\n{scrape}");
    let memory = redis_cli(&redis.url, &["MEMORY", "USAGE", &stream]).await.expect("MEMORY USAGE");
    let bytes = sample(&scrape, "philia_queue_stream_bytes");
    assert!(bytes > 0, "{scrape}");
    assert_eq!(bytes.to_string(), memory, "the gauge is Redis's MEMORY USAGE of the stream");

    // A consumer with the same settings: its first read runs the reclaim tick, which checks the length.
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let pool = Redis::new(&redis_settings, &jobs, 1).unwrap().expect("Redis configured");
    let queue = JobQueue::Redis(RedisQueue::new(pool, &jobs, "checker".to_owned()));
    let mut consumer = queue.consumer();
    let taken = loop {
        if let Some(delivery) = consumer.next().await.unwrap() {
            break delivery;
        }
    };
    drop(guard);
    let logged = log.text();
    let warning = logged
        .lines()
        .find(|line| line.contains("job stream longer than jobs.stream_max_len"))
        .unwrap_or_else(|| panic!("no warning about the stream's length in:\n{logged}"));
    assert!(warning.contains("WARN") && warning.contains("length=5") && warning.contains("max_len=3"), "{warning}");

    // One job read and unacknowledged, four unread, one more accepted past the cap: all six are kept.
    assert_eq!(app.post_webhook(&tiktok_message("m-6", "customer-6", "hi")).await.status(), 200);
    assert_eq!(redis_cli(&redis.url, &["XLEN", &stream]).await.as_deref(), Some("6"), "nothing trimmed");
    let kept = redis_cli(&redis.url, &["XRANGE", &stream, &taken.id, &taken.id]).await;
    assert!(kept.as_deref().is_some_and(|entry| entry.contains(&taken.id)), "the job read is kept: {kept:?}");
    let scrape = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(sample(&scrape, "philia_queue_stream_length"), 6, "{scrape}");
    assert_eq!(sample(&scrape, "philia_queue_pending"), 1, "{scrape}");

    // Acknowledged, a job leaves the stream, and the gauge follows.
    taken.ack().await.unwrap();
    let scrape = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(sample(&scrape, "philia_queue_stream_length"), 5, "{scrape}");
    app.stop().await.unwrap();
}
