//! `GET /metrics`: what operators scrape, counted by the real request and job paths.

use crate::helpers::{TestDatabase, TestRedis, spawn_app_with, test_settings, tiktok_message, use_redis, wait_for};
use crate::on_every_backend;
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
