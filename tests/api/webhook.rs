//! `POST /webhook/tiktok`: every answer of the ingress, and that nothing it refuses reaches the queue.

use std::io::Write;
use std::time::Duration;

use philia_bot::role::Role;
use philia_bot::tiktok::signature;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, TestDatabase, TestRedis, WEBHOOK_SECRET, spawn_app_with, test_settings, tiktok_message, use_redis,
    wait_for,
};
use crate::on_both_queues;

async fn app_on(redis: Option<&TestRedis>) -> TestApp {
    let db = TestDatabase::sqlite();
    let mut settings = test_settings(&db);
    use_redis(&mut settings, redis);
    spawn_app_with(db, settings, Role::All).await
}

async fn body_of(response: reqwest::Response) -> Value {
    response.json().await.expect("a JSON body")
}

on_both_queues!(
    signed_message_is_queued_and_answered_with_its_event_id,
    bad_signatures_get_401_and_are_not_queued,
    malformed_bodies_get_400_naming_the_problem_and_are_not_queued,
    oversized_bodies_get_413_compressed_or_not,
    non_json_content_types_get_415,
    events_the_bot_does_not_handle_are_acknowledged_and_not_queued,
);

async fn signed_message_is_queued_and_answered_with_its_event_id(redis: Option<TestRedis>) {
    let app = app_on(redis.as_ref()).await;
    let response =
        app.post_webhook(&tiktok_message("7447361234567890123", "alice", "is the carhartt still available?")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(body_of(response).await, json!({"status": "ok", "event_id": "im_receive_msg:7447361234567890123"}));
    assert_eq!(app.enqueued().await, 1);
    app.stop().await.unwrap();
}

async fn bad_signatures_get_401_and_are_not_queued(redis: Option<TestRedis>) {
    let app = app_on(redis.as_ref()).await;
    let body = tiktok_message("1", "alice", "hi");
    let now = chrono::Utc::now().timestamp();
    let good = signature::sign(WEBHOOK_SECRET.as_bytes(), now, body.as_bytes());
    let mut flipped = body.clone().into_bytes();
    flipped[10] ^= 0x01;
    let cases: Vec<(&str, Option<String>, Vec<u8>)> = vec![
        ("missing header", None, body.clone().into_bytes()),
        ("wrong secret", Some(signature::sign(b"not-the-secret", now, body.as_bytes())), body.clone().into_bytes()),
        ("one byte of body flipped", Some(good.clone()), flipped),
        (
            "stale",
            Some(signature::sign(WEBHOOK_SECRET.as_bytes(), now - 301, body.as_bytes())),
            body.clone().into_bytes(),
        ),
        (
            "future",
            Some(signature::sign(WEBHOOK_SECRET.as_bytes(), now + 301, body.as_bytes())),
            body.clone().into_bytes(),
        ),
        ("non-integer t", Some(good.replacen(&format!("t={now}"), "t=soon", 1)), body.clone().into_bytes()),
        ("empty s", Some(format!("t={now},s=")), body.clone().into_bytes()),
        ("duplicated parts", Some(format!("{good},{good}")), body.clone().into_bytes()),
        ("garbage", Some("Bearer abc".into()), body.clone().into_bytes()),
    ];
    for (case, header, payload) in cases {
        let mut request = app.webhook_request().body(payload);
        if let Some(header) = header {
            request = request.header("TikTok-Signature", header);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{case}");
        // The body never says which check failed.
        assert_eq!(body_of(response).await, json!({"status": "error", "error": "invalid signature"}), "{case}");
    }
    let spaced = good.replace(',', " ,  ").replace("t=", " t = ");
    let response = app.webhook_request().header("TikTok-Signature", spaced).body(body).send().await.unwrap();
    assert_eq!(response.status(), 200, "spaces around the parts are tolerated");
    assert_eq!(app.enqueued().await, 1, "only the valid request was queued");
    app.stop().await.unwrap();
}

async fn malformed_bodies_get_400_naming_the_problem_and_are_not_queued(redis: Option<TestRedis>) {
    let app = app_on(redis.as_ref()).await;
    let mut no_conversation: Value = serde_json::from_str(&tiktok_message("1", "alice", "hi")).unwrap();
    let mut content: Value = serde_json::from_str(no_conversation["content"].as_str().unwrap()).unwrap();
    content.as_object_mut().unwrap().remove("conversation_id");
    no_conversation["content"] = Value::String(content.to_string());
    let cases = [
        ("{not json".to_owned(), "malformed JSON"),
        ("[1, 2, 3]".to_owned(), "JSON object"),
        (r#"{"content": "{}"}"#.to_owned(), "missing field `event`"),
        (r#"{"event": "im_receive_msg", "content": "{oops"}"#.to_owned(), "not valid JSON"),
        (no_conversation.to_string(), "missing field `content.conversation_id`"),
        ("[".repeat(5_000) + &"]".repeat(5_000), "malformed JSON"),
    ];
    for (body, expected) in cases {
        let response = app.post_webhook(&body).await;
        assert_eq!(response.status(), 400, "{expected}");
        let reply = body_of(response).await;
        assert!(reply["error"].as_str().unwrap().contains(expected), "{expected}: {reply}");
    }
    let invalid_utf8 = b"{\"event\": \"im_receive_msg\xff\xfe\"}".to_vec();
    let signature = signature::sign(WEBHOOK_SECRET.as_bytes(), chrono::Utc::now().timestamp(), &invalid_utf8);
    let response = app.webhook_request().header("TikTok-Signature", signature).body(invalid_utf8).send().await.unwrap();
    assert_eq!(response.status(), 400, "invalid UTF-8");
    assert_eq!(app.enqueued().await, 0);
    app.stop().await.unwrap();
}

async fn oversized_bodies_get_413_compressed_or_not(redis: Option<TestRedis>) {
    let app = app_on(redis.as_ref()).await;
    let huge = tiktok_message("1", "alice", &"a".repeat(70 * 1024));
    let response = app.post_webhook(&huge).await;
    assert_eq!(response.status(), 413);
    assert_eq!(body_of(response).await["status"], "error");

    // 70 KiB of text compresses to well under the limit; decompressed it is over it.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(huge.as_bytes()).unwrap();
    let gzipped = encoder.finish().unwrap();
    assert!(gzipped.len() < 8 * 1024);
    let signature = signature::sign(WEBHOOK_SECRET.as_bytes(), chrono::Utc::now().timestamp(), huge.as_bytes());
    let response = app
        .webhook_request()
        .header("Content-Encoding", "gzip")
        .header("TikTok-Signature", signature)
        .body(gzipped)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413, "the limit applies after decompression");
    assert_eq!(app.enqueued().await, 0);
    app.stop().await.unwrap();
}

async fn non_json_content_types_get_415(redis: Option<TestRedis>) {
    let app = app_on(redis.as_ref()).await;
    let body = tiktok_message("1", "alice", "hi");
    let signature = signature::sign(WEBHOOK_SECRET.as_bytes(), chrono::Utc::now().timestamp(), body.as_bytes());
    for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let mut request =
            app.client.post(format!("{}/webhook/tiktok", app.address)).header("TikTok-Signature", &signature);
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        let response = request.body(body.clone()).send().await.unwrap();
        assert_eq!(response.status(), 415, "{content_type:?}");
        assert_eq!(body_of(response).await["status"], "error");
    }
    let response = app
        .client
        .post(format!("{}/webhook/tiktok", app.address))
        .header("Content-Type", "application/json; charset=utf-8")
        .header("TikTok-Signature", &signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "a charset parameter is fine");
    assert_eq!(app.enqueued().await, 1);
    app.stop().await.unwrap();
}

async fn events_the_bot_does_not_handle_are_acknowledged_and_not_queued(redis: Option<TestRedis>) {
    let app = app_on(redis.as_ref()).await;
    for event in ["im_mark_read_msg", "im_some_future_event"] {
        let body = json!({"event": event, "create_time": 1767225600, "content": "{\"conversation_id\":\"c\"}"});
        let response = app.post_webhook(&body.to_string()).await;
        assert_eq!(response.status(), 200);
        let reply = body_of(response).await;
        assert_eq!(reply["status"], "ignored");
        assert_eq!(reply["event"], event);
    }
    assert_eq!(app.enqueued().await, 0);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_source_past_its_rate_limit_gets_429_and_is_not_queued() {
    let db = TestDatabase::sqlite();
    let mut settings = test_settings(&db);
    settings.webhook.rate_limit_per_second = 1;
    settings.webhook.rate_limit_burst = 2;
    let app = spawn_app_with(db, settings, Role::All).await;
    let mut statuses = Vec::new();
    for n in 0..4 {
        statuses.push(app.post_webhook(&tiktok_message(&n.to_string(), "alice", "hi")).await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429, 429]);
    assert_eq!(app.enqueued().await, 2);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_ingress_answers_503_when_the_queue_cannot_take_the_job() {
    let db = TestDatabase::sqlite();
    let mut settings = test_settings(&db);
    // Nothing listens on port 1: every XADD fails at once, as with Redis down.
    settings.redis.url = Some(SecretString::from("redis://127.0.0.1:1/0".to_owned()));
    settings.redis.timeout_ms = 300;
    let app = spawn_app_with(db, settings, Role::All).await;
    let response = app.post_webhook(&tiktok_message("1", "alice", "hi")).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(body_of(response).await["status"], "unavailable");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_in_process_queue_answers_503_when_full() {
    let db = TestDatabase::sqlite();
    let mut settings = test_settings(&db);
    settings.jobs.memory_capacity = 1;
    settings.worker.concurrency = 1;
    settings.worker.job_timeout_ms = 2_000;
    let app = spawn_app_with(db, settings, Role::All).await;
    // A concurrent burst fills the queue faster than one consumer drains it: some must be refused.
    let bodies: Vec<String> = (0..20).map(|n| tiktok_message(&n.to_string(), "alice", "hi")).collect();
    let responses = futures_util::future::join_all(bodies.iter().map(|body| app.post_webhook(body))).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert!(statuses.iter().all(|s| *s == 200 || *s == 503), "{statuses:?}");
    assert!(statuses.contains(&503), "{statuses:?}");
    let accepted = statuses.iter().filter(|s| **s == 200).count();
    // Every accepted message is processed: a 503 lost nothing, TikTok will redeliver it.
    wait_for("accepted messages to be stored", Duration::from_secs(10), || async {
        let inbound =
            app.messages().await.iter().filter(|m| m.role == philia_bot::store::entities::messages::Role::User).count();
        (inbound == accepted).then_some(())
    })
    .await;
    app.stop().await.unwrap();
}
