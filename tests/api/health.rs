//! `GET /health` and `GET /ready`.

use crate::helpers::{TestDatabase, TestRedis, spawn_app, spawn_app_with, test_settings};
use crate::on_both_databases;
use philia_bot::role::Role;
use secrecy::SecretString;
use serde_json::{Value, json};

on_both_databases!(
    health_answers_ok_with_a_connected_database,
    health_answers_503_when_the_database_is_unreachable,
    ready_without_redis_reports_it_not_configured,
    ready_answers_503_when_redis_is_unreachable,
);

async fn health_answers_ok_with_a_connected_database(db: TestDatabase) {
    let app = spawn_app(db).await;
    let response = app.get("/health").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"), "every response carries its request id");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"status": "ok", "db": "connected", "service": "philia-bot"}));
    app.stop().await.unwrap();
}

async fn health_answers_503_when_the_database_is_unreachable(db: TestDatabase) {
    let app = spawn_app(db).await;
    // Closing the shared pool makes every query fail, as a lost database would.
    app.state.db.clone().close().await.unwrap();
    let response = app.get("/health").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"status": "error", "db": "unreachable", "service": "philia-bot"}));
}

async fn ready_without_redis_reports_it_not_configured(db: TestDatabase) {
    let app = spawn_app(db).await;
    let response = app.get("/ready").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["redis"], "not_configured");
    assert_eq!(body["db"], "connected");
    app.stop().await.unwrap();
}

async fn ready_answers_503_when_redis_is_unreachable(db: TestDatabase) {
    let mut settings = test_settings(&db);
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    settings.redis.url = Some(SecretString::from("redis://127.0.0.1:1/0".to_owned()));
    settings.redis.timeout_ms = 500;
    let app = spawn_app_with(db, settings, Role::All).await;
    let response = app.get("/ready").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["redis"], "unreachable");
    assert_eq!(body["db"], "connected");
    // Liveness does not depend on Redis: a Redis outage must not get the process restarted.
    assert_eq!(app.get("/health").await.status(), 200);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn ready_reports_redis_connected_when_it_answers() {
    let Some(redis) = TestRedis::new("health::ready_reports_redis_connected_when_it_answers") else {
        return;
    };
    let db = TestDatabase::sqlite();
    let mut settings = test_settings(&db);
    settings.redis.url = Some(SecretString::from(redis.url.clone()));
    settings.redis.key_prefix = redis.prefix.clone();
    let app = spawn_app_with(db, settings, Role::All).await;
    let response = app.get("/ready").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"status": "ok", "db": "connected", "redis": "connected", "sending": "dry_run", "service": "philia-bot"})
    );
    app.stop().await.unwrap();
}
