//! The webhook as TikTok uses it, against the TikTok stand-in: the key, `authorization.removed`, events for
//! another account, signed events the bot cannot read, automatic echoes, and the operator's commands.

use std::time::Duration;

use philia_bot::role::Role;
use philia_bot::store::entities::messages::{DeliveryStatus, Role as Author};
use philia_bot::store::entities::{conversations, unparsed_webhooks};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::cli::{philia, repo_config_dir, text};
use crate::fake_tiktok::{AutoMessage, FakeConfig, FakeTikTok, Origin, SEND_PATH};
use crate::helpers::{TestApp, TestDatabase, TestRedis, spawn_app_with, wait_for};
use crate::on_sqlite_and_postgres_redis;
use crate::tiktok_account::{callback, link, unconnected};

const PATIENCE: Duration = Duration::from_secs(15);

/// An app connected to the fake's shop account the way an owner connects it, with the fake's webhooks
/// pointed at it and, when given, a staff webhook.
pub async fn connected_app(
    fake: &FakeTikTok,
    db: TestDatabase,
    redis: Option<&TestRedis>,
    staff: Option<&MockServer>,
) -> TestApp {
    connected_app_with(fake, db, redis, staff, |_| {}).await
}

/// [`connected_app`], with `tweak` applied to the settings first.
pub async fn connected_app_with(
    fake: &FakeTikTok,
    db: TestDatabase,
    redis: Option<&TestRedis>,
    staff: Option<&MockServer>,
    tweak: impl FnOnce(&mut philia_bot::config::Settings),
) -> TestApp {
    let mut settings = unconnected(fake, &db, redis);
    settings.tiktok.send_rate_per_second = 1_000;
    settings.tiktok.send_burst = 100;
    settings.shop.staff_webhook_url = staff.map(|s| format!("{}/staff", s.uri()).into());
    tweak(&mut settings);
    let app = spawn_app_with(db, settings, Role::All).await;
    let state = link(&app, false).await;
    let code = fake.authorization_code_for(&fake.business_id());
    assert_eq!(callback(&app, &format!("auth_code={code}&state={state}")).await.0, 200);
    fake.set_callback_url(format!("{}/webhook/tiktok", app.address));
    app
}

/// What the customer received from the bot (through the API) in a conversation.
pub fn from_the_bot(fake: &FakeTikTok, conversation: &str) -> usize {
    fake.received(conversation).iter().filter(|m| m.origin == Some(Origin::Api)).count()
}

pub fn sends(fake: &FakeTikTok) -> usize {
    fake.calls().iter().filter(|c| c.path == SEND_PATH).count()
}

pub async fn staff_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&server).await;
    server
}

pub async fn staff_texts(server: &MockServer) -> Vec<String> {
    let requests = server.received_requests().await.unwrap();
    requests
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter_map(|b| b["text"].as_str().map(str::to_owned))
        .collect()
}

on_sqlite_and_postgres_redis!(
    an_automatic_echo_never_silences_the_bot_and_a_persons_does,
    a_removed_authorization_stops_sending_and_tells_the_team_how_to_reconnect,
    events_for_another_business_account_are_ignored_and_counted,
    a_signed_event_the_bot_cannot_read_is_kept_and_acknowledged,
    a_staff_message_from_tiktok_web_hands_the_conversation_to_staff,
);

async fn an_automatic_echo_never_silences_the_bot_and_a_persons_does(db: TestDatabase, redis: Option<TestRedis>) {
    let fake = FakeTikTok::start(FakeConfig::default()).await;
    let app = connected_app(&fake, db, redis.as_ref(), None).await;
    assert!(fake.customer_writes("conv-1", "alice", "hi").await.delivered());
    app.finish_jobs().await;
    let answered = from_the_bot(&fake, "conv-1");
    assert!(answered >= 1, "the bot answered");

    for auto in [AutoMessage::Welcome, AutoMessage::SuggestedQuestion, AutoMessage::AutoReply] {
        assert!(fake.shop_sends("conv-1", "Thanks for messaging Philia!", Origin::Automatic(auto)).await.delivered());
    }
    app.finish_jobs().await;
    let system = wait_for("the automatic echoes", PATIENCE, || async {
        let stored: Vec<_> = app.replies().await.into_iter().filter(|m| m.role == Author::System).collect();
        (stored.len() == 3).then_some(stored)
    })
    .await;
    assert!(system.iter().all(|m| m.text.as_deref() == Some("Thanks for messaging Philia!")));
    let conversation = conversations::Entity::find().one(&app.state.db).await.unwrap().unwrap();
    assert!(!conversation.handoff_active, "TikTok's automatic messages are not staff");

    assert!(fake.customer_writes("conv-1", "alice", "new drops").await.delivered());
    wait_for("the bot's next answer", PATIENCE, || async { (from_the_bot(&fake, "conv-1") > answered).then_some(()) })
        .await;

    assert!(fake.shop_sends("conv-1", "Maya here, I'll take it from here", Origin::App).await.delivered());
    wait_for("staff to take over", PATIENCE, || async {
        let conversation = conversations::Entity::find().one(&app.state.db).await.ok()??;
        conversation.handoff_active.then_some(())
    })
    .await;
    let before = from_the_bot(&fake, "conv-1");
    assert!(fake.customer_writes("conv-1", "alice", "thanks!").await.delivered());
    app.finish_jobs().await;
    assert_eq!(from_the_bot(&fake, "conv-1"), before, "a person from the shop took over: the bot is silent");
    app.stop().await.unwrap();
}

async fn a_removed_authorization_stops_sending_and_tells_the_team_how_to_reconnect(
    db: TestDatabase,
    redis: Option<TestRedis>,
) {
    let fake = FakeTikTok::start(FakeConfig::default()).await;
    let staff = staff_server().await;
    let app = connected_app(&fake, db, redis.as_ref(), Some(&staff)).await;
    assert!(fake.customer_writes("conv-1", "bo", "hi").await.delivered());
    app.finish_jobs().await;
    assert!(from_the_bot(&fake, "conv-1") >= 1);

    let removed = fake.authorization_removed(1).await;
    assert_eq!(removed.attempts, [Some(200)], "acknowledged at once");
    let alert = wait_for("the staff alert", PATIENCE, || async {
        staff_texts(&staff).await.into_iter().find(|t| t.contains("disconnected"))
    })
    .await;
    assert!(alert.contains("the owner disconnected the app") && alert.contains("philia-bot tiktok connect"), "{alert}");

    let sent_before = sends(&fake);
    assert!(fake.customer_writes("conv-1", "bo", "hello?").await.delivered());
    app.finish_jobs().await;
    let replies = wait_for("the reply to be settled", PATIENCE, || async {
        let replies = app.replies().await;
        let last = replies.last()?.clone();
        (last.delivery_status == Some(DeliveryStatus::NotConnected)).then_some(replies)
    })
    .await;
    assert!(replies.iter().all(|r| r.delivery_status != Some(DeliveryStatus::Failed)), "{replies:#?}");
    assert_eq!(sends(&fake), sent_before, "nothing is sent with revoked tokens");
    let report = philia_bot::tiktok::status::report(
        &app.state.db,
        &app.state.settings.tiktok,
        &app.state.tokens,
        &app.state.http,
    )
    .await;
    assert!(report.facts.iter().any(|(label, v)| *label == "account" && v.contains("DISCONNECTED")), "{report:?}");
    assert!(report.problems.iter().any(|p| p.contains("philia-bot tiktok connect")), "{report:?}");
    assert!(fake.authorization_removed(1).await.delivered(), "again: acknowledged");
    assert_eq!(staff_texts(&staff).await.iter().filter(|t| t.contains("disconnected")).count(), 1, "told once");

    // Connecting again brings it back.
    let state = link(&app, false).await;
    let code = fake.authorization_code_for(&fake.business_id());
    assert_eq!(callback(&app, &format!("auth_code={code}&state={state}")).await.0, 200);
    assert!(fake.customer_writes("conv-1", "bo", "still there?").await.delivered());
    app.finish_jobs().await;
    wait_for("a reply after reconnecting", PATIENCE, || async { (sends(&fake) > sent_before).then_some(()) }).await;
    app.stop().await.unwrap();
}

async fn events_for_another_business_account_are_ignored_and_counted(db: TestDatabase, redis: Option<TestRedis>) {
    let config = FakeConfig { accounts: vec!["biz_open_id".into(), "other_shop".into()], ..FakeConfig::default() };
    let fake = FakeTikTok::start(config).await;
    let app = connected_app(&fake, db, redis.as_ref(), None).await;
    let other = fake.customer_writes_to_other_account("other_shop", "conv-x", "zed", "hello other shop").await;
    assert!(other.delivered());
    assert!(fake.customer_writes("conv-1", "amy", "hi").await.delivered());
    app.finish_jobs().await;
    let conversations: Vec<String> = conversations::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.tiktok_conversation_id)
        .collect();
    assert_eq!(conversations, ["conv-1"], "the other account's conversation is not the shop's");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"philia_webhook_requests_total{outcome="other_account"} 1"#), "{metrics}");
    app.stop().await.unwrap();
}

async fn a_signed_event_the_bot_cannot_read_is_kept_and_acknowledged(db: TestDatabase, redis: Option<TestRedis>) {
    let fake = FakeTikTok::start(FakeConfig::default()).await;
    let app = connected_app(&fake, db, redis.as_ref(), None).await;
    let unreadable = [
        json!({"event": "im_receive_msg", "user_openid": "biz_open_id", "content": "{\"type\": \"text\"}"}),
        json!({"event": "im_receive_msg", "content": "{oops"}),
        json!({"content": "{}"}),
    ];
    for body in &unreadable {
        let response = app.post_webhook(&body.to_string()).await;
        assert_eq!(response.status(), 200, "{body}");
        assert_eq!(response.json::<Value>().await.unwrap()["status"], "kept");
    }
    let kept = unparsed_webhooks::Entity::find().all(&app.state.db).await.unwrap();
    assert_eq!(kept.len(), 3);
    assert_eq!(kept[0].event.as_deref(), Some("im_receive_msg"));
    assert!(kept[0].reason.contains("content.text.body") || kept[0].reason.contains("content."), "{:?}", kept[0]);
    assert_eq!(kept[0].body, unreadable[0].to_string(), "kept raw");
    assert_eq!(app.enqueued().await, 0);
    for malformed in ["{not json", "[1, 2]"] {
        assert_eq!(app.post_webhook(malformed).await.status(), 400, "{malformed}");
    }
    let unsigned = app.webhook_request().body(unreadable[0].to_string()).send().await.unwrap();
    assert_eq!(unsigned.status(), 401, "an unsigned event is refused, not kept");
    assert_eq!(unparsed_webhooks::Entity::find().count(&app.state.db).await.unwrap(), 3);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"philia_webhook_requests_total{outcome="unparsed"} 3"#), "{metrics}");
    app.stop().await.unwrap();
}

on_sqlite_and_postgres_redis!(the_operator_connects_registers_the_webhook_and_reads_the_status_from_the_command_line);

async fn the_operator_connects_registers_the_webhook_and_reads_the_status_from_the_command_line(
    db: TestDatabase,
    _redis: Option<TestRedis>,
) {
    let fake = FakeTikTok::start(FakeConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], extra: &[(&str, &str)]| {
        let mut command = philia(dir.path());
        command
            .arg("--config-dir")
            .arg(repo_config_dir())
            .args(args)
            .env("DATABASE_URL", &db.url)
            .env("PHILIA_TIKTOK__API_BASE_URL", fake.uri())
            .env("TIKTOK_CLIENT_KEY", "app_key")
            .env("TIKTOK_CLIENT_SECRET", crate::helpers::WEBHOOK_SECRET)
            .env("PHILIA_TIKTOK__OAUTH_REDIRECT_URL", "https://shop.example/oauth/tiktok/callback");
        for (name, value) in extra {
            command.env(name, value);
        }
        command.output().unwrap()
    };
    philia_bot::store::migrate_up(&sea_orm::Database::connect(&db.url).await.unwrap()).await.unwrap();

    let shown = run(&["tiktok", "webhook", "show"], &[]);
    assert!(!shown.status.success() && text(&shown).contains("webhook set"), "{}", text(&shown));
    let set = run(&["tiktok", "webhook", "set", "https://shop.example/webhook/tiktok"], &[]);
    assert!(set.status.success(), "{}", text(&set));
    let shown = run(&["tiktok", "webhook", "show"], &[]);
    assert_eq!(String::from_utf8_lossy(&shown.stdout).trim(), "https://shop.example/webhook/tiktok");

    let status = run(&["tiktok", "status"], &[]);
    let said = text(&status);
    assert!(!status.status.success(), "not connected yet is a problem: {said}");
    assert!(said.contains("webhook:") && said.contains("https://shop.example/webhook/tiktok"), "{said}");
    assert!(said.contains("not connected") && said.contains("philia-bot tiktok connect"), "{said}");

    let connect = run(&["tiktok", "connect"], &[]);
    let said = String::from_utf8_lossy(&connect.stdout).into_owned();
    assert!(connect.status.success(), "{}", text(&connect));
    let url = said.lines().find(|l| l.starts_with("https://www.tiktok.com/v2/auth/authorize?")).expect("the link");
    assert!(url.contains("state=") && url.contains("message.list.send"), "{url}");

    let differs = run(&["tiktok", "status"], &[("TIKTOK_WEBHOOK_SECRET", "something-else")]);
    assert!(text(&differs).contains("Unset TIKTOK_WEBHOOK_SECRET"), "{}", text(&differs));
}

/// The webhook calls carry the app's secret in their URL (`webhook/list/?…&secret=`): when TikTok cannot
/// be reached, what the operator reads names the call, never the secret.
#[test]
fn a_failed_webhook_call_never_prints_the_client_secret() {
    const SECRET: &str = "client-secret-never-printed-7f3a";
    let dir = tempfile::tempdir().unwrap();
    let commands: [&[&str]; 3] = [
        &["tiktok", "webhook", "show"],
        &["tiktok", "webhook", "set", "https://shop.example/webhook/tiktok"],
        &["tiktok", "status"],
    ];
    for args in commands {
        let output = philia(dir.path())
            .arg("--config-dir")
            .arg(repo_config_dir())
            .args(args)
            .env("PHILIA_TIKTOK__API_BASE_URL", "http://127.0.0.1:1")
            .env("TIKTOK_CLIENT_KEY", "app_key")
            .env("TIKTOK_CLIENT_SECRET", SECRET)
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        let said = text(&output);
        assert!(said.contains("TikTok"), "{args:?} says what failed: {said}");
        assert!(!said.contains(SECRET), "{args:?} printed the client secret: {said}");
    }
}

/// Every reason TikTok documents for `authorization.removed` (0 unknown … 5 revoked by the developer) is
/// told to the team in words; only a reason TikTok has not documented is "no reason the bot knows".
#[test]
fn every_documented_reason_of_a_removed_authorization_is_named() {
    use philia_bot::tiktok::tokens::removal_reason;
    let undocumented = removal_reason(6);
    let named: Vec<&str> = (0..=5).map(removal_reason).collect();
    for (reason, said) in named.iter().enumerate() {
        assert_ne!(*said, undocumented, "reason {reason} is documented by TikTok");
    }
    let distinct: std::collections::HashSet<&&str> = named.iter().collect();
    assert_eq!(distinct.len(), 6, "{named:?}");
    assert!(named[0].contains("did not say"), "{}", named[0]);
    assert!(named[3].contains("age"), "{}", named[3]);
}

/// Staff answering from TikTok Web or Business Center (`message_tag.source` `WEB`) take over like staff in
/// the app (`APP`): the bot falls silent.
async fn a_staff_message_from_tiktok_web_hands_the_conversation_to_staff(db: TestDatabase, redis: Option<TestRedis>) {
    let fake = FakeTikTok::start(FakeConfig::default()).await;
    let app = connected_app(&fake, db, redis.as_ref(), None).await;
    assert!(fake.customer_writes("conv-1", "wren", "hi").await.delivered());
    app.finish_jobs().await;
    assert!(from_the_bot(&fake, "conv-1") >= 1, "the bot answered");

    assert!(fake.shop_sends("conv-1", "Sam from the shop here", Origin::Web).await.delivered());
    wait_for("staff to take over", PATIENCE, || async {
        let conversation = conversations::Entity::find().one(&app.state.db).await.ok()??;
        conversation.handoff_active.then_some(())
    })
    .await;
    let stored = app.replies().await.into_iter().find(|m| m.text.as_deref() == Some("Sam from the shop here"));
    assert_eq!(stored.map(|m| m.role), Some(Author::Staff), "stored as staff's");
    let before = from_the_bot(&fake, "conv-1");
    assert!(fake.customer_writes("conv-1", "wren", "thanks!").await.delivered());
    app.finish_jobs().await;
    assert_eq!(from_the_bot(&fake, "conv-1"), before, "a person from the shop took over: the bot is silent");
    app.stop().await.unwrap();
}

/// `philia-bot serve` on the embedded default in a folder of its own, with the given TikTok variables, up
/// to the end of its start-up (its log lines so far kept); killed when dropped.
struct Served {
    child: std::process::Child,
    port: u16,
    log: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Served {
    fn start(variables: &[(&str, &str)]) -> Served {
        use std::io::{BufRead, BufReader};
        let dir = tempfile::tempdir().unwrap();
        let mut command = philia(dir.path());
        command.arg("serve").env("PHILIA_SERVER__PORT", "0").stdout(std::process::Stdio::piped());
        for (name, value) in variables {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut served = Served { child, port: 0, log: Vec::new(), _dir: dir };
        // The last line of start-up on an empty embedded shop; the warnings come before it.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let done = line.contains("no items yet");
            served.log.push(line);
            if done {
                break;
            }
        }
        let started = served.log.iter().find(|l| l.contains("philia-bot started")).expect("start line");
        served.port =
            started.split("http=127.0.0.1:").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
        served
    }

    /// Posts an event TikTok could send, signed with `key` (or unsigned); the HTTP status.
    async fn post_signed(&self, key: Option<&str>) -> u16 {
        philia_bot::install_crypto_provider();
        let body = json!({"event": "im_receive_msg", "content": "{}"}).to_string();
        let mut request = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/webhook/tiktok", self.port))
            .header("Content-Type", "application/json");
        if let Some(key) = key {
            let signed =
                philia_bot::tiktok::signature::sign(key.as_bytes(), chrono::Utc::now().timestamp(), body.as_bytes());
            request = request.header("TikTok-Signature", signed);
        }
        request.body(body).send().await.unwrap().status().as_u16()
    }

    fn warns_of_a_differing_secret(&self) -> bool {
        self.log.iter().any(|l| l.contains("TIKTOK_WEBHOOK_SECRET differs from TIKTOK_CLIENT_SECRET"))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CLIENT_SECRET: &str = "the-apps-client-secret";

/// TikTok signs with the app's client secret: with no `TIKTOK_WEBHOOK_SECRET`, that is the key, and
/// signatures are checked (not skipped as when no key is known at all).
#[tokio::test]
async fn a_webhook_is_verified_with_the_client_secret_when_no_webhook_secret_is_set() {
    let served = Served::start(&[("TIKTOK_CLIENT_SECRET", CLIENT_SECRET)]);
    assert_eq!(served.post_signed(Some(CLIENT_SECRET)).await, 200);
    assert_eq!(served.post_signed(Some("another-secret")).await, 401, "a signature with another key is refused");
    assert_eq!(served.post_signed(None).await, 401, "an unsigned event is refused");
    assert!(!served.warns_of_a_differing_secret(), "{:#?}", served.log);
}

/// `TIKTOK_WEBHOOK_SECRET=` (blank, as a dashboard leaves it) is unset: the client secret is the key,
/// never an empty one that anybody can sign with.
#[tokio::test]
async fn a_blank_webhook_secret_is_unset_and_never_an_empty_key() {
    let served = Served::start(&[("TIKTOK_CLIENT_SECRET", CLIENT_SECRET), ("TIKTOK_WEBHOOK_SECRET", "")]);
    assert_eq!(served.post_signed(Some("")).await, 401, "signed with an empty key: forged");
    assert_eq!(served.post_signed(Some(CLIENT_SECRET)).await, 200);
    assert!(!served.warns_of_a_differing_secret(), "{:#?}", served.log);
}

/// A `TIKTOK_WEBHOOK_SECRET` other than the client secret is kept (a proxy may re-sign), but TikTok's own
/// signatures will not verify with it: the bot says so when it starts.
#[tokio::test]
async fn a_webhook_secret_that_differs_from_the_client_secret_is_warned_about_at_start() {
    let served = Served::start(&[("TIKTOK_CLIENT_SECRET", CLIENT_SECRET), ("TIKTOK_WEBHOOK_SECRET", "a-proxys-key")]);
    assert!(served.warns_of_a_differing_secret(), "{:#?}", served.log);
    assert_eq!(served.post_signed(Some("a-proxys-key")).await, 200, "the explicit key is the one used");
}
