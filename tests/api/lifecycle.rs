//! Roles and shutdown: a process runs only the parts its role asks for and stops cleanly.

use std::time::{Duration, Instant};

use crate::helpers::{TestDatabase, TestRedis, spawn_app, spawn_app_with, test_settings};
use philia_bot::role::Role;
use philia_bot::startup::{Application, StartOptions};
use secrecy::SecretString;

#[tokio::test]
async fn shutdown_request_stops_the_app_within_the_grace_period() {
    let app = spawn_app(TestDatabase::sqlite()).await;
    let address = app.address.clone();
    assert_eq!(app.get("/health").await.status(), 200);
    let started = Instant::now();
    app.stop().await.expect("clean stop");
    assert!(started.elapsed() < Duration::from_secs(5), "stopped in {:?}", started.elapsed());
    let after = reqwest::Client::new().get(format!("{address}/health")).send().await;
    assert!(after.is_err(), "the listener is closed after shutdown");
}

#[tokio::test]
async fn split_roles_are_refused_without_redis() {
    for role in [Role::Web, Role::Worker] {
        let db = TestDatabase::sqlite();
        let settings = test_settings(&db);
        let error = Application::build(settings, StartOptions::new(role, true)).await.err().expect("refused");
        let text = format!("{error:#}");
        assert!(text.contains("redis.url") && text.contains("REDIS_URL"), "{text}");
    }
}

#[tokio::test]
async fn worker_role_serves_no_http_and_web_role_does() {
    let Some(redis) = TestRedis::new("lifecycle::worker_role_serves_no_http_and_web_role_does") else {
        return;
    };
    for (role, serves_http) in [(Role::Worker, false), (Role::Web, true)] {
        let db = TestDatabase::sqlite();
        let mut settings = test_settings(&db);
        settings.redis.url = Some(SecretString::from(redis.url.clone()));
        settings.redis.key_prefix = redis.prefix.clone();
        let app = spawn_app_with(db, settings, role).await;
        assert_eq!(app.port.is_some(), serves_http, "{role:?}");
        if serves_http {
            assert_eq!(app.get("/health").await.status(), 200);
        }
        app.stop().await.expect("clean stop");
    }
}

#[tokio::test]
async fn a_worker_with_a_metrics_port_serves_metrics_and_health_but_no_webhook() {
    let Some(redis) =
        TestRedis::new("lifecycle::a_worker_with_a_metrics_port_serves_metrics_and_health_but_no_webhook")
    else {
        return;
    };
    let db = TestDatabase::sqlite();
    let mut settings = test_settings(&db);
    settings.redis.url = Some(SecretString::from(redis.url.clone()));
    settings.redis.key_prefix = redis.prefix.clone();
    settings.server.metrics_port = Some(0);
    let app = spawn_app_with(db, settings, Role::Worker).await;
    assert!(app.port.is_some(), "the metrics port is bound");
    assert_eq!(app.get("/health").await.status(), 200);
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    assert!(metrics.text().await.unwrap().contains("philia_jobs_dead_total 0"));
    assert_eq!(app.post_webhook("{}").await.status(), 404, "a worker takes no webhooks");
    app.stop().await.expect("clean stop");
}
