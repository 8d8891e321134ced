//! TikTok's sending rules, enforced by the bot against the TikTok stand-in (which refuses what TikTok
//! refuses): 10 messages per customer message, pictures only where TikTok allows them, and the 40064
//! pause.

use std::time::Duration;

use philia_bot::config::ImagePolicy;
use philia_bot::store::entities::messages::{self, DeliveryStatus, Role as Author};
use philia_bot::store::entities::{conversations, users};
use philia_bot::store::ledger::{self, CustomerConversation, Outgoing};
use philia_bot::worker::{delivery, sweeper};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::fake_tiktok::{Answer, Content, FakeConfig, FakeTikTok, Fault, Origin, SEND_PATH, UPLOAD_PATH, codes};
use crate::helpers::{TestApp, TestDatabase, TestRedis, wait_for};
use crate::on_sqlite_and_postgres_redis;
use crate::tiktok_webhook::{connected_app, connected_app_with, from_the_bot, sends, staff_server, staff_texts};

const PATIENCE: Duration = Duration::from_secs(15);

/// The customer and conversation of a TikTok conversation id.
async fn customer(app: &TestApp, conversation: &str) -> CustomerConversation {
    let conversation = conversations::Entity::find()
        .filter(conversations::Column::TiktokConversationId.eq(conversation))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("the conversation");
    let user = users::Entity::find_by_id(conversation.user_id).one(&app.state.db).await.unwrap().unwrap();
    CustomerConversation { user, conversation }
}

fn text(body: &str, why: serde_json::Value) -> Outgoing {
    Outgoing { message_type: "text", text: Some(body.to_owned()), metadata: why }
}

fn picture(url: &str) -> Outgoing {
    Outgoing { message_type: "image", text: None, metadata: json!({"in_reply_to": "test", "image_url": url}) }
}

async fn store(
    app: &TestApp,
    to: &CustomerConversation,
    role: Author,
    outgoing: Vec<Outgoing>,
) -> Vec<messages::Model> {
    ledger::store_outgoing(&app.state.db, to.conversation.id, role, DeliveryStatus::Pending, outgoing).await.unwrap()
}

async fn statuses(app: &TestApp, ids: &[i64]) -> Vec<Option<DeliveryStatus>> {
    let mut found = Vec::new();
    for id in ids {
        found.push(messages::Entity::find_by_id(*id).one(&app.state.db).await.unwrap().unwrap().delivery_status);
    }
    found
}

/// A web server with one PNG, as a shop's photo host.
async fn photo_host() -> MockServer {
    let server = MockServer::start().await;
    let png = [&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A][..], &[0u8; 256]].concat();
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(200).set_body_bytes(png)).mount(&server).await;
    server
}

fn refused_too_fast(fake: &FakeTikTok) -> usize {
    fake.calls().iter().filter(|c| c.path == SEND_PATH && c.answer == Answer::Code(codes::TOO_FAST)).count()
}

on_sqlite_and_postgres_redis!(
    fifteen_bot_messages_after_one_customer_message_send_exactly_ten,
    a_turn_over_the_quota_drops_pictures_first_then_merges_its_texts,
    a_us_like_conversation_gets_no_picture_and_complete_texts,
    a_photo_tiktok_does_not_allow_becomes_the_link_line_replies_toml_has_for_it,
    a_40064_pauses_sending_alerts_once_and_resumes,
    a_send_lost_inside_tiktok_and_sent_again_counts_once_against_the_quota,
);

async fn fifteen_bot_messages_after_one_customer_message_send_exactly_ten(db: TestDatabase, redis: Option<TestRedis>) {
    let fake = FakeTikTok::start(FakeConfig::default()).await;
    let app = connected_app(&fake, db, redis.as_ref(), None).await;
    assert!(fake.customer_writes("conv-1", "alice", "hi").await.delivered());
    app.finish_jobs().await;
    let answered = from_the_bot(&fake, "conv-1");
    assert!((1..10).contains(&answered), "the bot's answer used {answered} of the 10");
    let to = customer(&app, "conv-1").await;
    let notices: Vec<Outgoing> = (1..=15).map(|n| text(&format!("notice {n}"), json!({"notice": "test"}))).collect();
    let stored = store(&app, &to, Author::System, notices).await;
    let ids: Vec<i64> = stored.iter().map(|m| m.id).collect();
    delivery::deliver_notices(&app.state, &ids).await;

    assert_eq!(from_the_bot(&fake, "conv-1"), 10, "exactly 10 after one customer message");
    assert_eq!(refused_too_fast(&fake), 0, "nothing was sent that TikTok refused");
    let after = statuses(&app, &ids).await;
    let sent = after.iter().filter(|s| **s == Some(DeliveryStatus::Sent)).count();
    let exhausted = after.iter().filter(|s| **s == Some(DeliveryStatus::QuotaExhausted)).count();
    assert_eq!((sent, exhausted), (10 - answered, 15 - (10 - answered)), "{after:?}");
    assert!(after[..sent].iter().all(|s| *s == Some(DeliveryStatus::Sent)), "the first ones, in order");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let line = format!(r#"philia_messages_not_sent_total{{outcome="quota_exhausted"}} {exhausted}"#);
    assert!(metrics.contains(&line), "{metrics}");

    // The customer writes again: ten more.
    assert!(fake.customer_writes("conv-1", "alice", "hello again").await.delivered());
    app.finish_jobs().await;
    wait_for("the answer in the new window", PATIENCE, || async { (from_the_bot(&fake, "conv-1") > 10).then_some(()) })
        .await;
    assert_eq!(refused_too_fast(&fake), 0);
    app.stop().await.unwrap();
}

async fn a_turn_over_the_quota_drops_pictures_first_then_merges_its_texts(db: TestDatabase, redis: Option<TestRedis>) {
    let fake = FakeTikTok::start(FakeConfig::default()).await;
    let photos = photo_host().await;
    let app = connected_app(&fake, db, redis.as_ref(), None).await;
    assert!(fake.customer_writes("conv-1", "bea", "hi").await.delivered());
    app.finish_jobs().await;
    let to = customer(&app, "conv-1").await;
    // Use up all but two of the quota with notices.
    let used = from_the_bot(&fake, "conv-1");
    let fillers: Vec<Outgoing> =
        (0..8 - used).map(|n| text(&format!("filler {n}"), json!({"notice": "test"}))).collect();
    let fillers = store(&app, &to, Author::System, fillers).await;
    delivery::deliver_notices(&app.state, &fillers.iter().map(|m| m.id).collect::<Vec<_>>()).await;
    assert_eq!(from_the_bot(&fake, "conv-1"), 8);

    let why = json!({"in_reply_to": "test"});
    let url = format!("{}/jacket.png", photos.uri());
    let mut turn = Vec::new();
    for n in 1..=4 {
        turn.push(text(&format!("piece {n}: Carhartt jacket, size M, $8{n}"), why.clone()));
        turn.push(picture(&url));
    }
    let turn = store(&app, &to, Author::Assistant, turn).await;
    delivery::send_in_order(&app.state, &turn, &to).await.unwrap();

    // Two messages were left: the pictures are dropped, and the four texts fit in one message.
    assert_eq!(from_the_bot(&fake, "conv-1"), 9);
    assert_eq!(refused_too_fast(&fake), 0);
    let received: Vec<String> = fake
        .received("conv-1")
        .into_iter()
        .filter(|m| m.origin == Some(Origin::Api))
        .map(|m| match m.content {
            Content::Text(text) => text,
            Content::Image { media_id } => format!("[image {media_id}]"),
        })
        .collect();
    let merged = &received[8];
    for n in 1..=4 {
        assert!(merged.contains(&format!("piece {n}:")), "piece {n} is told: {merged:?}");
    }
    let after = statuses(&app, &turn.iter().map(|m| m.id).collect::<Vec<_>>()).await;
    let pictures: Vec<_> = after.iter().skip(1).step_by(2).collect();
    assert!(pictures.iter().all(|s| **s == Some(DeliveryStatus::QuotaExhausted)), "{after:?}");
    assert_eq!(after.iter().filter(|s| **s == Some(DeliveryStatus::Merged)).count(), 3, "{after:?}");
    assert_eq!(after[0], Some(DeliveryStatus::Sent));
    app.stop().await.unwrap();
}

async fn a_us_like_conversation_gets_no_picture_and_complete_texts(db: TestDatabase, redis: Option<TestRedis>) {
    let fake = FakeTikTok::start(FakeConfig { image_send: false, ..FakeConfig::default() }).await;
    let photos = photo_host().await;
    let app = connected_app(&fake, db, redis.as_ref(), None).await;
    for (conversation, who) in [("conv-us", "dan"), ("conv-fr", "eve")] {
        assert!(fake.customer_writes(conversation, who, "hi").await.delivered());
    }
    fake.set_image_send("conv-fr", true);
    app.finish_jobs().await;
    let url = format!("{}/jacket.png", photos.uri());
    let why = json!({"in_reply_to": "test"});
    for conversation in ["conv-us", "conv-fr", "conv-us"] {
        let to = customer(&app, conversation).await;
        let turn =
            store(&app, &to, Author::Assistant, vec![text("Carhartt jacket, size M, $85", why.clone()), picture(&url)])
                .await;
        delivery::send_in_order(&app.state, &turn, &to).await.unwrap();
    }
    let us = fake.received("conv-us");
    assert!(us.iter().all(|m| matches!(m.content, Content::Text(_))), "no picture reached the US-like conversation");
    assert_eq!(us.iter().filter(|m| m.content == Content::Text("Carhartt jacket, size M, $85".into())).count(), 2);
    assert!(
        fake.received("conv-fr").iter().any(|m| matches!(m.content, Content::Image { .. })),
        "where TikTok allows pictures, they are sent"
    );
    assert_eq!(fake.capability_calls(), 2, "asked once per conversation, then remembered");
    let refused_images = fake
        .calls()
        .iter()
        .filter(|c| c.path == SEND_PATH && c.body.contains("\"IMAGE\"") && c.answer != Answer::Code(codes::OK))
        .count();
    assert_eq!(refused_images, 0, "no picture was sent where TikTok refuses it");
    let skipped = messages::Entity::find()
        .filter(messages::Column::DeliveryStatus.eq(DeliveryStatus::Skipped))
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(skipped.len(), 2);
    app.stop().await.unwrap();

    // tiktok.images = "never": TikTok is not even asked.
    let fake = FakeTikTok::start(FakeConfig::default()).await;
    let app =
        connected_app_with(&fake, TestDatabase::sqlite(), None, None, |s| s.tiktok.images = ImagePolicy::Never).await;
    assert!(fake.customer_writes("conv-1", "fay", "hi").await.delivered());
    app.finish_jobs().await;
    let to = customer(&app, "conv-1").await;
    let turn = store(&app, &to, Author::Assistant, vec![text("Levi's 501, W32, $40", why), picture(&url)]).await;
    delivery::send_in_order(&app.state, &turn, &to).await.unwrap();
    assert_eq!((fake.capability_calls(), fake.calls().iter().filter(|c| c.path == UPLOAD_PATH).count()), (0, 0));
    assert!(fake.received("conv-1").iter().any(|m| m.content == Content::Text("Levi's 501, W32, $40".into())));
    app.stop().await.unwrap();
}

/// How long TikTok's 40064 pauses sending in the test below. Everything "while paused" must happen within
/// it: with 1 s, a loaded machine late by a second between the 40064 and the notice's delivery (a drain, a
/// wait and four queries) saw the notice sent, the pause being over.
const PAUSE: Duration = Duration::from_secs(5);

async fn a_40064_pauses_sending_alerts_once_and_resumes(db: TestDatabase, redis: Option<TestRedis>) {
    let fake = FakeTikTok::start(FakeConfig::default()).await;
    let staff = staff_server().await;
    let app = connected_app_with(&fake, db, redis.as_ref(), Some(&staff), |s| {
        s.tiktok.throttle_pause_secs = PAUSE.as_secs();
    })
    .await;
    fake.fault_next(1, Fault::RefuseCode(codes::TOO_FAST));
    assert!(fake.customer_writes("conv-1", "gil", "hi").await.delivered());
    app.finish_jobs().await;
    let throttled = wait_for("the throttled reply", PATIENCE, || async {
        let replies = app.replies().await;
        let throttled: Vec<_> =
            replies.into_iter().filter(|m| m.delivery_status == Some(DeliveryStatus::Throttled)).collect();
        (!throttled.is_empty()).then_some(throttled)
    })
    .await;
    assert_eq!(throttled[0].error_code, Some(codes::TOO_FAST));

    // While paused nothing is sent: a notice waits too, without a call.
    let calls = sends(&fake);
    let to = customer(&app, "conv-1").await;
    let notice = store(&app, &to, Author::System, vec![text("your hold ends soon", json!({"notice": "test"}))]).await;
    delivery::deliver_notices(&app.state, &[notice[0].id]).await;
    assert_eq!(statuses(&app, &[notice[0].id]).await, [Some(DeliveryStatus::Throttled)]);
    assert_eq!(sends(&fake), calls, "no call while TikTok asked for a rest");
    let alerts = wait_for("the staff alert", PATIENCE, || async {
        let texts = staff_texts(&staff).await;
        (!texts.is_empty()).then_some(texts)
    })
    .await;
    assert!(alerts[0].contains("40064") && alerts[0].contains("pauses"), "{alerts:?}");

    // The pause is over (it began before the throttled reply was seen): the sweeper sends what waited, in order.
    tokio::time::sleep(PAUSE).await;
    let ids: Vec<i64> = throttled.iter().map(|m| m.id).chain(std::iter::once(notice[0].id)).collect();
    let all_sent = |statuses: &[Option<DeliveryStatus>]| statuses.iter().all(|s| *s == Some(DeliveryStatus::Sent));
    wait_for("the sweeper to send what waited", PATIENCE, || async {
        sweeper::sweep(&app.state, chrono::Utc::now()).await.unwrap();
        all_sent(&statuses(&app, &ids).await).then_some(())
    })
    .await;
    assert!(fake.received("conv-1").iter().any(|m| m.content == Content::Text("your hold ends soon".into())));
    assert_eq!(staff_texts(&staff).await.len(), 1, "one alert per pause");
    app.stop().await.unwrap();
}

/// A send whose outcome was unknown (TikTok lost the request and never answered) is sent again once the
/// conversation shows it absent. TikTok counted one message, not two: the bot's quota must agree, or it
/// refuses the customer's tenth reply that TikTok would take.
async fn a_send_lost_inside_tiktok_and_sent_again_counts_once_against_the_quota(
    db: TestDatabase,
    redis: Option<TestRedis>,
) {
    let fake = FakeTikTok::start(FakeConfig::default()).await;
    let app = connected_app_with(&fake, db, redis.as_ref(), None, |settings| {
        settings.tiktok.request_timeout_ms = 500;
        settings.tiktok.retry_base_ms = 10;
        settings.tiktok.retry_max_delay_ms = 50;
        settings.tiktok.unknown_settle_secs = 1;
        settings.shop.sweep_interval_secs = 1;
    })
    .await;
    fake.fault_next(1, Fault::LoseThenHang);
    assert!(fake.customer_writes("conv-lost", "lou", "hi").await.delivered());
    app.finish_jobs().await;
    let to = customer(&app, "conv-lost").await;
    wait_for("the lost reply, sent again", PATIENCE, || async {
        let replies = messages::Entity::find()
            .filter(messages::Column::ConversationId.eq(to.conversation.id))
            .filter(messages::Column::Direction.eq(messages::Direction::Out))
            .all(&app.state.db)
            .await
            .unwrap();
        let sent = replies.iter().all(|m| m.delivery_status == Some(DeliveryStatus::Sent));
        (sent && !replies.is_empty()).then_some(())
    })
    .await;
    let received = from_the_bot(&fake, "conv-lost");
    assert_eq!(received, 1, "the reply reached the customer once");
    let left = philia_bot::shop::window::quota_left(&app.state.db, to.user.id, chrono::Utc::now()).await.unwrap();
    assert_eq!(left, 10 - received as i64, "the quota counts what TikTok counted");
    app.stop().await.unwrap();
}

/// Issue 13: where TikTok allows no images, "a link line from replies.toml may replace" the photo
/// (`templates.photo_link`). The customer gets the item's text, then the line with the photo's URL.
async fn a_photo_tiktok_does_not_allow_becomes_the_link_line_replies_toml_has_for_it(
    db: TestDatabase,
    redis: Option<TestRedis>,
) {
    let config = tempfile::tempdir().unwrap();
    for file in std::fs::read_dir(crate::cli::repo_config_dir()).unwrap() {
        let file = file.unwrap().path();
        std::fs::copy(&file, config.path().join(file.file_name().unwrap())).unwrap();
    }
    let replies = std::fs::read_to_string(config.path().join("replies.toml")).unwrap();
    let with_link = replies.replacen("[templates]\n", "[templates]\nphoto_link = \"Photo: {photo}\"\n", 1);
    std::fs::write(config.path().join("replies.toml"), with_link).unwrap();
    let fake = FakeTikTok::start(FakeConfig { image_send: false, ..FakeConfig::default() }).await;
    let photos = photo_host().await;
    let dir = config.path().to_path_buf();
    let app = connected_app_with(&fake, db, redis.as_ref(), None, |s| s.config_dir = dir).await;
    assert!(fake.customer_writes("conv-us", "dan", "hi").await.delivered());
    app.finish_jobs().await;
    let url = format!("{}/jacket.png", photos.uri());
    let to = customer(&app, "conv-us").await;
    let why = json!({"in_reply_to": "test"});
    let turn =
        store(&app, &to, Author::Assistant, vec![text("Carhartt jacket, size M, $85", why), picture(&url)]).await;
    delivery::send_in_order(&app.state, &turn, &to).await.unwrap();

    let received: Vec<Content> = fake.received("conv-us").into_iter().map(|m| m.content).collect();
    let item = received.iter().position(|c| *c == Content::Text("Carhartt jacket, size M, $85".into()));
    let link = received.iter().position(|c| *c == Content::Text(format!("Photo: {url}")));
    assert!(matches!((item, link), (Some(i), Some(l)) if i < l), "the text, then the link line: {received:?}");
    assert!(!received.iter().any(|c| matches!(c, Content::Image { .. })), "{received:?}");
    let statuses = statuses(&app, &turn.iter().map(|m| m.id).collect::<Vec<_>>()).await;
    assert_eq!(statuses, [Some(DeliveryStatus::Sent), Some(DeliveryStatus::Sent)], "the photo's place was sent");
    app.stop().await.unwrap();
}
