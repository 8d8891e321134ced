//! The TikTok client against a fake TikTok (wiremock): request shape, retries, token refresh, the
//! window, the shared send rate, and that nothing is sent twice.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use philia_bot::bot::Replies;
use philia_bot::config::{Settings, TikTokSettings};
use philia_bot::role::Role;
use philia_bot::store::entities::messages::{DeliveryStatus, Direction};
use philia_bot::store::entities::tiktok_tokens;
use philia_bot::tiktok::alerts::StaffAlerts;
use philia_bot::tiktok::limiter::SendLimiter;
use philia_bot::tiktok::tokens::TokenManager;
use philia_bot::tiktok::{ApiError, TikTokClient, client};
use sea_orm::EntityTrait;
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::{
    TestApp, TestDatabase, TestRedis, settled_replies, spawn_app_with, test_settings, tiktok_message, use_redis,
    wait_for,
};

const SEND: &str = "/open_api/v1.3/business/message/send/";
const REFRESH: &str = "/open_api/v1.3/tt_user/oauth2/refresh_token/";
const PATIENCE: Duration = Duration::from_secs(15);

fn sent(message_id: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(
        json!({"code": 0, "message": "OK", "request_id": "r", "data": {"message": {"message_id": message_id}}}),
    )
}

fn tiktok_error(code: i64) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"code": code, "message": "fake error", "request_id": "r", "data": {}}))
}

/// TikTok's answer to a refresh: new tokens, the refresh token rotated.
fn fresh_tokens() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"code": 0, "message": "ok", "data": {
        "access_token": "fresh-token", "expires_in": 86400,
        "refresh_token": "next-refresh", "refresh_token_expires_in": 31536000, "scope": "message",
    }}))
}

/// TikTok settings pointing at the fake, with fast retries.
fn live(tiktok: &mut TikTokSettings, fake: &MockServer) {
    tiktok.api_base_url = fake.uri();
    tiktok.access_token = Some(SecretString::from("test-token".to_owned()));
    tiktok.business_id = Some("biz_open_id".into());
    tiktok.client_key = Some("app-key".into());
    tiktok.client_secret = Some(SecretString::from("app-secret".to_owned()));
    tiktok.retry_base_ms = 10;
    tiktok.retry_max_delay_ms = 50;
    tiktok.send_rate_per_second = 1_000;
    tiktok.send_burst = 100;
    // wiremock knows none of TikTok's rules: pictures are sent without asking (the stateful fake, in
    // tiktok_rules.rs, asks).
    tiktok.images = philia_bot::config::ImagePolicy::Always;
}

async fn live_app(fake: &MockServer, redis: Option<&TestRedis>) -> TestApp {
    let db = TestDatabase::sqlite();
    let mut settings = test_settings(&db);
    live(&mut settings.tiktok, fake);
    use_redis(&mut settings, redis);
    spawn_app_with(db, settings, Role::All).await
}

/// A client of its own (no app), on a migrated SQLite database for its tokens.
async fn client_for(fake: &MockServer, tweak: impl FnOnce(&mut TikTokSettings)) -> (TikTokClient, TestDatabase) {
    let db = TestDatabase::sqlite();
    let mut settings: Settings = test_settings(&db);
    live(&mut settings.tiktok, fake);
    tweak(&mut settings.tiktok);
    let conn = sea_orm::Database::connect(&db.url).await.unwrap();
    philia_bot::store::migrate_up(&conn).await.unwrap();
    let http = client::http_client(&settings.tiktok).unwrap();
    let alerts = StaffAlerts::new(http.clone(), None);
    let tokens = TokenManager::new(&settings.tiktok, conn, http.clone(), philia_bot::kv::Kv::new(None), alerts);
    let limiter = SendLimiter::new(None, settings.tiktok.send_rate_per_second, settings.tiktok.send_burst);
    (TikTokClient::new(&settings.tiktok, http, tokens, limiter, philia_bot::kv::Kv::new(None), Default::default()), db)
}

fn menu() -> String {
    Replies::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config")).unwrap().menu()
}

#[tokio::test]
async fn a_reply_is_sent_with_the_exact_body_and_headers_and_recorded() {
    let fake = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SEND))
        .and(header("Access-Token", "test-token"))
        .and(header("Content-Type", "application/json"))
        .and(body_json(json!({
            "business_id": "biz_open_id",
            "recipient_type": "CONVERSATION",
            "recipient": "conv-alice",
            "message_type": "TEXT",
            "text": {"body": menu()},
        })))
        .respond_with(sent("7447000000000000001"))
        .expect(1)
        .mount(&fake)
        .await;
    let app = live_app(&fake, None).await;
    assert_eq!(app.post_webhook(&tiktok_message("m1", "alice", "hi")).await.status(), 200);
    let replies = settled_replies(&app, 1).await;
    assert_eq!(replies[0].delivery_status, Some(DeliveryStatus::Sent));
    assert_eq!(replies[0].tiktok_message_id.as_deref(), Some("7447000000000000001"));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn rate_limited_twice_then_sent() {
    let fake = MockServer::start().await;
    Mock::given(path(SEND)).respond_with(tiktok_error(40100)).up_to_n_times(2).with_priority(1).mount(&fake).await;
    Mock::given(path(SEND)).respond_with(sent("m-ok")).mount(&fake).await;
    let (client, _db) = client_for(&fake, |_| {}).await;
    assert_eq!(client.send_text("conv", "hello").await, Ok("m-ok".to_owned()));
    assert_eq!(fake.received_requests().await.unwrap().len(), 3);
}

/// A job whose deadline leaves no room for a request sends nothing, and the error says where the time
/// went: it read "waiting for the send rate" even when the limiter had not waited at all.
#[tokio::test]
async fn a_send_with_no_time_left_in_its_job_is_not_blamed_on_the_send_rate() {
    let fake = MockServer::start().await;
    Mock::given(path(SEND)).respond_with(sent("m-late")).mount(&fake).await;
    let (client, _db) = client_for(&fake, |_| {}).await;
    let deadline = tokio::time::Instant::now();
    let sent = client::CALL_DEADLINE.scope(deadline, client.send_text("conv", "hello")).await;
    let Err(error @ ApiError::OutOfTime(_)) = sent else { panic!("expected no time left, got {sent:?}") };
    assert!(error.to_string().contains("before the first request"), "{error}");
    assert!(!error.to_string().contains("send rate"), "{error}");
    assert!(fake.received_requests().await.unwrap().is_empty(), "nothing sent");
}

#[tokio::test]
async fn http_429_with_retry_after_is_honoured() {
    let fake = MockServer::start().await;
    Mock::given(path(SEND))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "2"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&fake)
        .await;
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    Mock::given(path(SEND)).respond_with(Recorder(arrivals.clone(), sent("m-ok"))).mount(&fake).await;
    let (client, _db) = client_for(&fake, |_| {}).await;
    let started = Instant::now();
    assert_eq!(client.send_text("conv", "hello").await, Ok("m-ok".to_owned()));
    let second = arrivals.lock().unwrap()[0];
    assert!(second - started >= Duration::from_secs(2), "retried after {:?}", second - started);
}

#[tokio::test]
async fn a_network_error_is_retried_then_reported() {
    // Nothing listens on port 1: every attempt is refused before anything is sent.
    let fake = MockServer::start().await;
    let (client, _db) = client_for(&fake, |t| {
        t.api_base_url = "http://127.0.0.1:1".into();
        t.max_attempts = 3;
    })
    .await;
    let error = client.send_text("conv", "hello").await.unwrap_err();
    assert!(matches!(error, ApiError::Unreachable(_)), "{error:?}");
    assert!(error.is_retryable() && !error.maybe_delivered());
}

#[tokio::test]
async fn bad_parameter_is_not_retried() {
    let fake = MockServer::start().await;
    Mock::given(path(SEND)).respond_with(tiktok_error(40002)).expect(1).mount(&fake).await;
    let (client, _db) = client_for(&fake, |_| {}).await;
    let error = client.send_text("conv", "hello").await.unwrap_err();
    assert_eq!(error.code(), Some(40002));
}

#[tokio::test]
async fn a_40064_is_throttled_not_outside_the_window_and_not_retried() {
    let fake = MockServer::start().await;
    Mock::given(path(SEND)).respond_with(tiktok_error(40064)).expect(1).mount(&fake).await;
    let app = live_app(&fake, None).await;
    assert_eq!(app.post_webhook(&tiktok_message("m1", "alice", "hi")).await.status(), 200);
    let replies = settled_replies(&app, 1).await;
    // The bot checks the window itself: 40064 is TikTok's per-account limit, a pause (tiktok_rules.rs).
    assert_eq!(replies[0].delivery_status, Some(DeliveryStatus::Throttled));
    assert_eq!(replies[0].error_code, Some(40064));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_invalid_token_is_refreshed_once_and_the_new_tokens_are_kept() {
    let fake = MockServer::start().await;
    Mock::given(path(SEND))
        .and(header("Access-Token", "test-token"))
        .respond_with(tiktok_error(40105))
        .mount(&fake)
        .await;
    Mock::given(path(SEND)).and(header("Access-Token", "fresh-token")).respond_with(sent("m-ok")).mount(&fake).await;
    Mock::given(method("POST"))
        .and(path(REFRESH))
        .and(body_json(json!({
            "client_id": "app-key", "client_secret": "app-secret",
            "grant_type": "refresh_token", "refresh_token": "seed-refresh",
        })))
        .respond_with(fresh_tokens())
        .expect(1)
        .mount(&fake)
        .await;
    let (client, db) =
        client_for(&fake, |t| t.refresh_token = Some(SecretString::from("seed-refresh".to_owned()))).await;
    assert_eq!(client.send_text("conv", "hello").await, Ok("m-ok".to_owned()));
    let conn = sea_orm::Database::connect(&db.url).await.unwrap();
    let stored = tiktok_tokens::Entity::find().one(&conn).await.unwrap().expect("tokens stored");
    assert_eq!(stored.access_token, "fresh-token");
    assert_eq!(stored.refresh_token.as_deref(), Some("next-refresh"), "the new refresh token is kept");
    assert!(!format!("{stored:?}").contains("fresh-token"), "tokens never reach debug output");
    // Later sends use the stored token without refreshing again (the refresh mock expects one call).
    assert_eq!(client.send_text("conv", "again").await, Ok("m-ok".to_owned()));
}

/// TikTok rotates refresh tokens: the one sent stops working when TikTok receives the call. A refresh
/// answered after the request timeout, or after the job that asked for it gave up, must still store the
/// new tokens; dropping that answer left the shop unable to send until the owner reconnected.
#[tokio::test]
async fn a_refresh_answered_after_its_caller_gave_up_still_stores_the_new_tokens() {
    let fake = MockServer::start().await;
    Mock::given(path(SEND))
        .and(header("Access-Token", "test-token"))
        .respond_with(tiktok_error(40105))
        .mount(&fake)
        .await;
    Mock::given(method("POST"))
        .and(path(REFRESH))
        .respond_with(fresh_tokens().set_delay(Duration::from_millis(3_000)))
        .expect(1)
        .mount(&fake)
        .await;
    let (client, db) = client_for(&fake, |t| {
        t.refresh_token = Some(SecretString::from("seed-refresh".to_owned()));
        t.request_timeout_ms = 300;
    })
    .await;
    // The job's deadline comes while the refresh is under way (it was asked for at once, after the 40105,
    // and is answered after 3 s): the caller gives up, five request timeouts in. The deadline leaves a
    // loaded machine 1.5 s to start the refresh, and the refresh's answer 1.5 s more to come after it.
    let gave_up = tokio::time::timeout(Duration::from_millis(1_500), client.send_text("conv", "hello")).await;
    assert!(gave_up.is_err(), "still waiting for the refresh, not given up at the request timeout: {gave_up:?}");
    let conn = sea_orm::Database::connect(&db.url).await.unwrap();
    let stored = wait_for("the refreshed tokens", PATIENCE, || async {
        tiktok_tokens::Entity::find().one(&conn).await.unwrap()
    })
    .await;
    assert_eq!(stored.access_token, "fresh-token");
    assert_eq!(stored.refresh_token.as_deref(), Some("next-refresh"), "the rotated refresh token is kept");
}

#[tokio::test]
async fn no_request_is_made_after_the_48_hour_window() {
    let fake = MockServer::start().await;
    Mock::given(path(SEND)).respond_with(sent("m")).expect(0).mount(&fake).await;
    let app = live_app(&fake, None).await;
    let mut body: Value = serde_json::from_str(&tiktok_message("old", "carol", "hello?")).unwrap();
    let mut content: Value = serde_json::from_str(body["content"].as_str().unwrap()).unwrap();
    content["timestamp"] = (chrono::Utc::now() - chrono::Duration::hours(49)).timestamp_millis().into();
    body["content"] = content.to_string().into();
    assert_eq!(app.post_webhook(&body.to_string()).await.status(), 200);
    let replies = settled_replies(&app, 1).await;
    assert_eq!(replies[0].delivery_status, Some(DeliveryStatus::OutsideWindow));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_redelivered_job_does_not_send_twice() {
    let fake = MockServer::start().await;
    Mock::given(path(SEND)).respond_with(sent("m-once")).expect(1).mount(&fake).await;
    let app = live_app(&fake, None).await;
    let body = tiktok_message("dup", "erin", "hi");
    for _ in 0..3 {
        assert_eq!(app.post_webhook(&body).await.status(), 200);
    }
    app.drain().await;
    assert_eq!(app.messages().await.iter().filter(|m| m.direction == Direction::Out).count(), 1);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_long_reply_is_sent_as_several_messages_in_order() {
    let fake = MockServer::start().await;
    Mock::given(path(SEND)).respond_with(UniqueIds::default()).mount(&fake).await;
    let config = tempfile::tempdir().unwrap();
    let intro = "Every piece here is one of a kind, measured by hand and photographed in daylight. ".repeat(100);
    let shipped =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/replies.toml")).unwrap();
    let long_intro = shipped.replace("[menu]\n", &format!("[menu]\nintro = \"{intro}\"\n")).replacen(
        "\nintro = \"Hey!",
        "\n# intro = \"Hey!",
        1,
    );
    std::fs::write(config.path().join("replies.toml"), long_intro).unwrap();
    let db = TestDatabase::sqlite();
    let mut settings = test_settings(&db);
    settings.config_dir = config.path().to_path_buf();
    live(&mut settings.tiktok, &fake);
    let app = spawn_app_with(db, settings, Role::All).await;
    assert_eq!(app.post_webhook(&tiktok_message("long", "frank", "hi")).await.status(), 200);
    let replies = settled_replies(&app, 2).await;
    assert_eq!(replies.len(), 2);
    assert!(replies.iter().all(|r| r.delivery_status == Some(DeliveryStatus::Sent)));
    let requests = fake.received_requests().await.unwrap();
    let texts: Vec<String> = requests
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["text"]["body"].as_str().unwrap().to_owned())
        .collect();
    assert!(texts.iter().all(|t| t.chars().count() <= 6_000));
    assert!(texts[0].starts_with("Every piece") && texts[1].contains("3. Talk to a human"), "in order");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn two_replicas_sharing_redis_stay_within_the_send_rate() {
    let Some(redis) = TestRedis::new("tiktok::two_replicas_sharing_redis_stay_within_the_send_rate") else { return };
    let fake = MockServer::start().await;
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    Mock::given(path(SEND)).respond_with(Recorder(arrivals.clone(), UniqueIds::default())).mount(&fake).await;
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let db = TestDatabase::sqlite();
        let mut settings = test_settings(&db);
        live(&mut settings.tiktok, &fake);
        settings.tiktok.send_rate_per_second = 10;
        settings.tiktok.send_burst = 1;
        use_redis(&mut settings, Some(&redis));
        replicas.push(spawn_app_with(db, settings, Role::All).await);
    }
    // 30 customers write at once, their webhooks spread over both replicas.
    let bodies: Vec<String> = (0..30).map(|n| tiktok_message(&format!("r{n}"), &format!("u{n}"), "hi")).collect();
    let posts = bodies.iter().enumerate().map(|(n, body)| replicas[n % 2].post_webhook(body));
    for response in futures_util::future::join_all(posts).await {
        assert_eq!(response.status(), 200);
    }
    wait_for("30 sends", Duration::from_secs(20), || async { (arrivals.lock().unwrap().len() >= 30).then_some(()) })
        .await;
    let mut times = arrivals.lock().unwrap().clone();
    times.sort();
    // The limiter grants on Redis' clock, 100 ms apart; the fake stamps arrivals, which a loaded machine
    // delays unevenly (both replicas send from the test's one thread): a second of arrivals spans at most
    // a second plus that jitter of grants, plus one for where the window starts. Two limiters of their own
    // (20/s together) would put about 20 sends in a second and all 30 within 1.5 s.
    let busiest = times
        .iter()
        .map(|start| times.iter().filter(|t| **t >= *start && **t - *start < Duration::from_secs(1)).count())
        .max()
        .unwrap();
    let bound = (10.0 * (1.0 + ARRIVAL_JITTER.as_secs_f64())).ceil() as usize + 1;
    assert!(busiest <= bound, "{busiest} sends within one second (bound {bound}: 10/s over 1 s + {ARRIVAL_JITTER:?})");
    // 29 intervals of 100 ms between the first grant and the last, less the jitter of their arrivals.
    let span = *times.last().unwrap() - times[0];
    let least = Duration::from_millis(2_900) - ARRIVAL_JITTER;
    println!("busiest second: {busiest} sends; 30 sends over {span:?}");
    assert!(span >= least, "30 sends at 10/s take about 3 s (at least {least:?} apart), took {span:?}");
    for app in replicas {
        app.stop().await.unwrap();
    }
}

/// How unevenly sends granted in order by the shared limiter may reach the fake on a loaded machine
/// (`reliability::ARRIVAL_JITTER` for the worker processes; here both replicas send from the test's thread).
const ARRIVAL_JITTER: Duration = Duration::from_millis(500);

/// Answers as its inner responder does and records when each request arrived.
struct Recorder<R>(Arc<Mutex<Vec<Instant>>>, R);

impl<R: Respond> Respond for Recorder<R> {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.lock().unwrap().push(Instant::now());
        self.1.respond(request)
    }
}

/// A successful send with a new message id each time, as TikTok answers.
#[derive(Default)]
struct UniqueIds(std::sync::atomic::AtomicUsize);

impl Respond for UniqueIds {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        sent(&format!("m-{}", self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed)))
    }
}

/// Runs the queued jobs, then checks that `n` events are processed.
async fn events_processed(app: &TestApp, n: usize) {
    use philia_bot::store::entities::processed_events;
    app.drain().await;
    let events = processed_events::Entity::find().all(&app.state.db).await.unwrap();
    assert!(events.iter().filter(|e| e.processed_at.is_some()).count() >= n, "{n} processed events: {events:#?}");
}

#[tokio::test]
async fn the_echo_of_our_own_reply_is_not_treated_as_staff() {
    let fake = MockServer::start().await;
    Mock::given(path(SEND)).respond_with(UniqueIds::default()).mount(&fake).await;
    let app = live_app(&fake, None).await;
    assert_eq!(app.post_webhook(&tiktok_message("m1", "gina", "hi")).await.status(), 200);
    let replies = settled_replies(&app, 1).await;
    assert_eq!(replies[0].tiktok_message_id.as_deref(), Some("m-0"));
    assert_eq!(app.post_webhook(&crate::helpers::tiktok_echo("m-0", "gina", &menu())).await.status(), 200);
    events_processed(&app, 2).await;
    let messages = app.messages().await;
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(messages.iter().all(|m| m.role != philia_bot::store::entities::messages::Role::Staff));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_echo_that_beats_the_send_answer_is_matched_to_our_reply() {
    let fake = MockServer::start().await;
    Mock::given(path(SEND)).respond_with(sent("m-early").set_delay(Duration::from_millis(1_500))).mount(&fake).await;
    let app = live_app(&fake, None).await;
    assert_eq!(app.post_webhook(&tiktok_message("m1", "hank", "hi")).await.status(), 200);
    wait_for("the reply to be claimed for sending", PATIENCE, || async {
        let messages = app.messages().await;
        messages.iter().any(|m| m.delivery_status == Some(DeliveryStatus::Sending)).then_some(())
    })
    .await;
    // TikTok's echo arrives while the send call is still waiting for its answer.
    assert_eq!(app.post_webhook(&crate::helpers::tiktok_echo("m-early", "hank", &menu())).await.status(), 200);
    let replies = settled_replies(&app, 1).await;
    assert_eq!(replies.len(), 1, "no staff message: {replies:#?}");
    assert_eq!(replies[0].delivery_status, Some(DeliveryStatus::Sent));
    assert_eq!(replies[0].tiktok_message_id.as_deref(), Some("m-early"));
    events_processed(&app, 2).await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_reply_from_staff_in_the_tiktok_app_is_stored_as_staff() {
    let fake = MockServer::start().await;
    Mock::given(path(SEND)).respond_with(UniqueIds::default()).mount(&fake).await;
    let app = live_app(&fake, None).await;
    let echo = crate::helpers::tiktok_echo("staff-1", "ivy", "hey! it's Maya from the shop, the jacket is yours");
    assert_eq!(app.post_webhook(&echo).await.status(), 200);
    events_processed(&app, 1).await;
    let messages = app.messages().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].role, philia_bot::store::entities::messages::Role::Staff);
    assert_eq!(messages[0].direction, Direction::Out);
    assert_eq!(messages[0].tiktok_message_id.as_deref(), Some("staff-1"));
    assert!(fake.received_requests().await.unwrap().is_empty(), "the bot does not answer staff");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_image_is_uploaded_once_then_sent_by_media_id() {
    let fake = MockServer::start().await;
    let jpeg = [&[0xFF, 0xD8, 0xFF, 0xE0][..], &[0u8; 2048]].concat();
    Mock::given(method("GET"))
        .and(path("/photos/carhartt.jpg"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(jpeg).insert_header("Content-Type", "image/jpeg"))
        .expect(1)
        .mount(&fake)
        .await;
    Mock::given(method("POST"))
        .and(path("/open_api/v1.3/business/message/media/upload/"))
        .and(header("Access-Token", "test-token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"code": 0, "message": "OK", "data": {"media_id": "media-1"}})),
        )
        .expect(1)
        .mount(&fake)
        .await;
    Mock::given(method("POST"))
        .and(path(SEND))
        .and(body_json(json!({
            "business_id": "biz_open_id", "recipient_type": "CONVERSATION", "recipient": "conv",
            "message_type": "IMAGE", "image": {"media_id": "media-1"},
        })))
        .respond_with(UniqueIds::default())
        .expect(2)
        .mount(&fake)
        .await;
    let (client, _db) = client_for(&fake, |_| {}).await;
    let url = format!("{}/photos/carhartt.jpg", fake.uri());
    assert_eq!(client.send_image_url("conv", &url).await, Ok("m-0".to_owned()));
    // The media id is cached: the second send neither downloads nor uploads again.
    assert_eq!(client.send_image_url("conv", &url).await, Ok("m-1".to_owned()));
    let upload =
        fake.received_requests().await.unwrap().into_iter().find(|r| r.url.path().ends_with("/media/upload/")).unwrap();
    let form = String::from_utf8_lossy(&upload.body);
    assert!(form.contains("name=\"media_type\"") && form.contains("IMAGE") && form.contains("name=\"file\""));
}

#[tokio::test]
async fn an_image_that_is_not_jpg_or_png_is_refused_before_any_upload() {
    let fake = MockServer::start().await;
    Mock::given(path("/photos/x.gif"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"GIF89a....".to_vec()))
        .mount(&fake)
        .await;
    let (client, _db) = client_for(&fake, |_| {}).await;
    let error = client.send_image_url("conv", &format!("{}/photos/x.gif", fake.uri())).await.unwrap_err();
    assert!(matches!(error, ApiError::Image(_)), "{error:?}");
    assert_eq!(fake.received_requests().await.unwrap().len(), 1, "only the download");
}

#[tokio::test]
async fn a_reply_with_text_and_image_is_sent_as_two_messages_in_order() {
    let fake = MockServer::start().await;
    let png = [&[0x89, b'P', b'N', b'G'][..], &[0u8; 512]].concat();
    Mock::given(method("GET"))
        .and(path("/banner.png"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(png))
        .mount(&fake)
        .await;
    Mock::given(path("/open_api/v1.3/business/message/media/upload/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"code": 0, "message": "OK", "data": {"media_id": "banner-1"}})),
        )
        .mount(&fake)
        .await;
    Mock::given(path(SEND)).respond_with(UniqueIds::default()).mount(&fake).await;
    let config = tempfile::tempdir().unwrap();
    let shipped =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/replies.toml")).unwrap();
    let with_image = shipped.replace("[menu]\n", &format!("[menu]\nimage_url = \"{}/banner.png\"\n", fake.uri()));
    std::fs::write(config.path().join("replies.toml"), with_image).unwrap();
    let db = TestDatabase::sqlite();
    let mut settings = test_settings(&db);
    settings.config_dir = config.path().to_path_buf();
    live(&mut settings.tiktok, &fake);
    let app = spawn_app_with(db, settings, Role::All).await;
    assert_eq!(app.post_webhook(&tiktok_message("pic", "jo", "hi")).await.status(), 200);
    let replies = settled_replies(&app, 2).await;
    assert!(replies.iter().all(|r| r.delivery_status == Some(DeliveryStatus::Sent)), "{replies:#?}");
    let sends: Vec<String> = fake
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == SEND)
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["message_type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sends, ["TEXT", "IMAGE"], "one message each, text first");
    app.stop().await.unwrap();
}
