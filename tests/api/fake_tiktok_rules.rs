//! The TikTok stand-in itself, over real HTTP: it refuses what TikTok refuses, records what the customer
//! received, signs and retries its webhooks, and its faults do what they say.

use std::time::{Duration, Instant};

use philia_bot::role::Role;
use philia_bot::store::entities::messages::DeliveryStatus;
use philia_bot::tiktok::signature;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::fake_tiktok::*;
use crate::helpers::{TestDatabase, settled_replies, spawn_app_with, test_settings, wait_for};

const PATIENCE: Duration = Duration::from_secs(15);

/// A client of the fake's API, as any TikTok integration would call it.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(fake: &FakeTikTok) -> Self {
        Self { http: reqwest::Client::new(), base: format!("{}/open_api/v1.3", fake.uri()) }
    }

    async fn answer(request: reqwest::RequestBuilder) -> Value {
        let response = request.send().await.expect("the fake answers");
        assert_eq!(response.status(), 200, "TikTok answers refusals with HTTP 200");
        response.json().await.expect("a JSON answer")
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Value {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(token) = token {
            request = request.header("Access-Token", token);
        }
        Self::answer(request).await
    }

    async fn get(&self, path: &str, token: &str, query: &[(&str, &str)]) -> Value {
        Self::answer(self.http.get(format!("{}{path}", self.base)).header("Access-Token", token).query(query)).await
    }

    async fn send_text(&self, token: &str, conversation: &str, text: &str) -> Value {
        self.post(SEND_PATH, Some(token), &text_message("biz_open_id", conversation, text)).await
    }

    async fn upload(&self, token: &str, business_id: &str, file: Vec<u8>) -> Value {
        let part = reqwest::multipart::Part::bytes(file).file_name("photo.jpg").mime_str("image/jpeg").unwrap();
        let form = reqwest::multipart::Form::new()
            .text("business_id", business_id.to_owned())
            .text("media_type", "IMAGE")
            .part("file", part);
        Self::answer(
            self.http.post(format!("{}{UPLOAD_PATH}", self.base)).header("Access-Token", token).multipart(form),
        )
        .await
    }
}

fn text_message(business_id: &str, conversation: &str, text: &str) -> Value {
    json!({
        "business_id": business_id,
        "recipient_type": "CONVERSATION",
        "recipient": conversation,
        "message_type": "TEXT",
        "text": {"body": text},
    })
}

fn image_message(conversation: &str, media_id: &str) -> Value {
    json!({
        "business_id": "biz_open_id",
        "recipient_type": "CONVERSATION",
        "recipient": conversation,
        "message_type": "IMAGE",
        "image": {"media_id": media_id},
    })
}

fn code(answer: &Value) -> i64 {
    answer["code"].as_i64().expect("a code")
}

fn texts(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .map(|m| match &m.content {
            Content::Text(text) => text.clone(),
            Content::Image { media_id } => format!("[image {media_id}]"),
        })
        .collect()
}

/// The shop's fake, a token of the shop, and a client.
async fn shop(config: FakeConfig) -> (FakeTikTok, String, Api) {
    let fake = FakeTikTok::start(config).await;
    let token = fake.issue_tokens(&fake.business_id()).access_token;
    let api = Api::new(&fake);
    (fake, token, api)
}

/// A callback that answers 200 and keeps what it was sent.
async fn callback(fake: &FakeTikTok) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&server).await;
    fake.set_callback_url(format!("{}/webhook/tiktok", server.uri()));
    server
}

/// The webhook bodies `server` received, each checked against its `TikTok-Signature`.
async fn verified_bodies(server: &MockServer, secret: &str) -> Vec<Value> {
    let requests = server.received_requests().await.expect("recording is on");
    requests
        .iter()
        .map(|request| {
            let header = request.headers.get("TikTok-Signature").and_then(|v| v.to_str().ok());
            let now = chrono::Utc::now().timestamp();
            assert_eq!(signature::verify(secret.as_bytes(), header, &request.body, now, 300), Ok(()));
            let mut envelope: Value = serde_json::from_slice(&request.body).unwrap();
            envelope["content"] = serde_json::from_str(envelope["content"].as_str().unwrap()).unwrap();
            envelope
        })
        .collect()
}

#[tokio::test]
async fn the_eleventh_message_of_a_window_is_refused_and_the_first_after_the_customer_writes_again_is_accepted() {
    let (fake, token, api) = shop(FakeConfig::default()).await;
    fake.customer_writes("conv-1", "alice", "is the jacket still available?").await;
    let mut ids = Vec::new();
    for n in 1..=10 {
        let answer = api.send_text(&token, "conv-1", &format!("reply {n}")).await;
        assert_eq!(code(&answer), codes::OK, "{answer}");
        ids.push(answer["data"]["message"]["message_id"].as_str().unwrap().to_owned());
    }
    let eleventh = api.send_text(&token, "conv-1", "reply 11").await;
    assert_eq!((code(&eleventh), eleventh["message"].as_str()), (codes::TOO_FAST, Some(TOO_FAST_MESSAGE)));
    let received = fake.received("conv-1");
    assert_eq!(received.iter().map(|m| m.message_id.clone()).collect::<Vec<_>>(), ids);
    assert!(ids.iter().all(|id| id.len() == 19 && id.bytes().all(|b| b.is_ascii_digit())), "{ids:?}");

    // The customer writes again: ten more, of which TikTok's automatic messages use none and staff's do.
    fake.customer_writes("conv-1", "alice", "ok and the boots?").await;
    fake.shop_sends("conv-1", "Thanks for your message!", Origin::Automatic(AutoMessage::AutoReply)).await;
    fake.shop_sends("conv-1", "Maya here, one sec", Origin::App).await;
    for n in 1..=9 {
        assert_eq!(code(&api.send_text(&token, "conv-1", &format!("again {n}")).await), codes::OK);
    }
    assert_eq!(code(&api.send_text(&token, "conv-1", "again 10").await), codes::TOO_FAST);
    let received = texts(&fake.received("conv-1"));
    assert_eq!(received.len(), 10 + 2 + 9);
    assert_eq!(&received[10..12], ["Thanks for your message!", "Maya here, one sec"]);
    assert!(fake.delivered_texts().values().all(|n| *n == 1));
}

#[tokio::test]
async fn the_window_closes_48_hours_after_the_customers_latest_message() {
    let outside = Refusal::new(codes::NO_PERMISSION, "outside the 48-hour window");
    let (fake, token, api) = shop(FakeConfig { window_refusal: outside.clone(), ..FakeConfig::default() }).await;
    let now = chrono::Utc::now();
    fake.customer_writes_at("conv-old", "bob", "hello?", now - chrono::Duration::hours(49)).await;
    fake.customer_writes_at("conv-recent", "carol", "hello?", now - chrono::Duration::hours(47)).await;
    let late = api.send_text(&token, "conv-old", "sorry for the wait").await;
    assert_eq!((code(&late), late["message"].as_str()), (outside.code, Some(outside.message.as_str())));
    assert_eq!(code(&api.send_text(&token, "conv-recent", "sorry for the wait").await), codes::OK);
    assert!(fake.received("conv-old").is_empty());
    // A customer message older than the latest one does not reopen anything.
    fake.customer_writes_at("conv-old", "bob", "delayed", now - chrono::Duration::hours(50)).await;
    assert_eq!(code(&api.send_text(&token, "conv-old", "still late").await), outside.code);
    fake.customer_writes("conv-old", "bob", "anyone?").await;
    assert_eq!(code(&api.send_text(&token, "conv-old", "here!").await), codes::OK);
}

#[tokio::test]
async fn an_authorization_code_is_traded_once_for_tokens_of_its_account_and_scope() {
    let config = FakeConfig { scope: "user.info.basic".into(), ..FakeConfig::default() };
    let (fake, _, api) = shop(config.clone()).await;
    let exchange = |code: &str, secret: &str| {
        json!({
            "client_id": config.client_key, "client_secret": secret, "grant_type": "authorization_code",
            "auth_code": code, "redirect_uri": "https://shop.example/oauth/tiktok/callback",
        })
    };
    let code_1 = fake.authorization_code_for("biz_open_id");
    let wrong_app = api.post(TOKEN_PATH, None, &exchange(&code_1, "not-the-secret")).await;
    assert_eq!(code(&wrong_app), codes::BAD_APP_CREDENTIALS);
    let granted = api.post(TOKEN_PATH, None, &exchange(&code_1, &config.client_secret)).await;
    assert_eq!(code(&granted), codes::OK, "{granted}");
    let data = &granted["data"];
    assert_eq!(data["open_id"], "biz_open_id");
    assert_eq!(data["scope"], "user.info.basic");
    assert_eq!(
        (data["expires_in"].as_i64(), data["refresh_token_expires_in"].as_i64()),
        (Some(86_400), Some(31_536_000))
    );
    let again = api.post(TOKEN_PATH, None, &exchange(&code_1, &config.client_secret)).await;
    assert_eq!(code(&again), codes::BAD_AUTH_CODE, "a code is single use");
    let unknown = api.post(TOKEN_PATH, None, &exchange("made-up", &config.client_secret)).await;
    assert_eq!(code(&unknown), codes::BAD_AUTH_CODE);

    // Without message.list.send the token cannot send.
    fake.customer_writes("conv-1", "dana", "hi").await;
    let token = data["access_token"].as_str().unwrap();
    assert_eq!(code(&api.send_text(token, "conv-1", "hello").await), codes::NO_PERMISSION);
}

#[tokio::test]
async fn a_refresh_token_works_once_and_a_used_wrong_or_revoked_one_is_refused() {
    let (fake, _, api) = shop(FakeConfig::default()).await;
    let config = FakeConfig::default();
    let first = fake.issue_tokens("biz_open_id");
    let refresh = |token: &str| {
        json!({"client_id": config.client_key, "client_secret": config.client_secret,
               "grant_type": "refresh_token", "refresh_token": token})
    };
    let renewed = api.post(REFRESH_PATH, None, &refresh(&first.refresh_token)).await;
    assert_eq!(code(&renewed), codes::OK, "{renewed}");
    assert_eq!(renewed["data"]["open_id"], "biz_open_id");
    let used = api.post(REFRESH_PATH, None, &refresh(&first.refresh_token)).await;
    assert_eq!(code(&used), codes::BAD_PARAMETER);
    assert!(used["message"].as_str().unwrap().contains("refresh_token"), "{used}");
    assert_eq!(code(&api.post(REFRESH_PATH, None, &refresh("rft.made-up")).await), codes::BAD_PARAMETER);

    fake.customer_writes("conv-1", "erin", "hi").await;
    let fresh_access = renewed["data"]["access_token"].as_str().unwrap();
    assert_eq!(code(&api.send_text(fresh_access, "conv-1", "new token").await), codes::OK);
    assert_eq!(code(&api.send_text(&first.access_token, "conv-1", "old token").await), codes::OK, "until it expires");
    fake.revoke_authorization("biz_open_id");
    let next = renewed["data"]["refresh_token"].as_str().unwrap();
    assert_eq!(code(&api.post(REFRESH_PATH, None, &refresh(next)).await), codes::BAD_PARAMETER);
    assert_eq!(fake.refresh_calls(), 4);
}

#[tokio::test]
async fn another_accounts_token_a_bearer_prefix_and_expired_or_revoked_tokens_get_40105() {
    let config = FakeConfig { accounts: vec!["biz_open_id".into(), "other_shop".into()], ..FakeConfig::default() };
    let (fake, token, api) = shop(config).await;
    fake.customer_writes("conv-1", "finn", "hi").await;
    let other = fake.issue_tokens("other_shop").access_token;
    assert_eq!(
        code(&api.send_text(&other, "conv-1", "x").await),
        codes::TOKEN_INVALID,
        "business_id of another account"
    );
    let foreign = api.post(SEND_PATH, Some(&other), &text_message("other_shop", "conv-1", "x")).await;
    assert_eq!(
        (code(&foreign), foreign["message"].as_str()),
        (codes::BAD_PARAMETER, Some("Param recipient is invalid."))
    );
    assert_eq!(code(&api.send_text(&format!("Bearer {token}"), "conv-1", "x").await), codes::TOKEN_INVALID);
    assert_eq!(
        code(&api.post(SEND_PATH, None, &text_message("biz_open_id", "conv-1", "x")).await),
        codes::TOKEN_INVALID
    );
    fake.expire_access_tokens("biz_open_id");
    assert_eq!(code(&api.send_text(&token, "conv-1", "x").await), codes::TOKEN_INVALID);
    let renewed = fake.issue_tokens("biz_open_id").access_token;
    assert_eq!(code(&api.send_text(&renewed, "conv-1", "ok").await), codes::OK);
    fake.revoke_authorization("biz_open_id");
    assert_eq!(code(&api.send_text(&renewed, "conv-1", "x").await), codes::TOKEN_INVALID);
    assert_eq!(texts(&fake.received("conv-1")), ["ok"]);
}

#[tokio::test]
async fn a_malformed_send_body_is_refused_with_40002_naming_the_field() {
    let (fake, token, api) = shop(FakeConfig::default()).await;
    fake.customer_writes("conv-1", "gus", "hi").await;
    let valid = text_message("biz_open_id", "conv-1", "hello");
    let cases: Vec<(Value, &str)> = vec![
        (json!({"recipient_type": "USER"}), "recipient_type"),
        (json!({"recipient": "conv-nobody"}), "recipient"),
        (json!({"recipient": 42}), "recipient"),
        (json!({"message_type": "VIDEO"}), "message_type"),
        (json!({"message_type": null}), "message_type"),
        (json!({"text": {"body": ""}}), "text.body"),
        (json!({"text": {"body": "é".repeat(6_001)}}), "text.body"),
        (json!({"text": {"text": "hello"}}), "text.body"),
        (json!({"image": {"media_id": "m"}}), "image"),
        (json!({"message_type": "IMAGE", "image": {"media_id": "m"}}), "text"),
        (json!({"message_type": "IMAGE", "text": null}), "image.media_id"),
        (json!({"message_type": "IMAGE", "image": {"media_id": "never-uploaded"}, "text": null}), "image.media_id"),
        (json!({"message_tag": "API"}), "message_tag"),
    ];
    for (change, named) in cases {
        let mut body = valid.clone();
        for (key, value) in change.as_object().unwrap() {
            match value {
                Value::Null => body.as_object_mut().unwrap().remove(key),
                value => body.as_object_mut().unwrap().insert(key.clone(), value.clone()),
            };
        }
        let answer = api.post(SEND_PATH, Some(&token), &body).await;
        assert_eq!(code(&answer), codes::BAD_PARAMETER, "{change} → {answer}");
        assert!(answer["message"].as_str().unwrap().contains(named), "{change} should name {named}: {answer}");
    }
    let without_business = api.post(SEND_PATH, Some(&token), &json!({"recipient_type": "CONVERSATION"})).await;
    assert!(without_business["message"].as_str().unwrap().contains("business_id"), "{without_business}");
    let six_thousand = api.send_text(&token, "conv-1", &"é".repeat(6_000)).await;
    assert_eq!(code(&six_thousand), codes::OK, "6,000 characters are allowed");
    assert_eq!(fake.received("conv-1").len(), 1, "nothing refused reached the customer");
}

#[tokio::test]
async fn an_image_goes_only_where_the_capability_allows_and_uploads_are_jpg_or_png_up_to_3_mb() {
    let (fake, token, api) = shop(FakeConfig { image_send: false, ..FakeConfig::default() }).await;
    fake.customer_writes("conv-us", "hana", "pics?").await;
    let png = [&[0x89, b'P', b'N', b'G'][..], &[0u8; 512]].concat();
    let uploaded = api.upload(&token, "biz_open_id", png).await;
    assert_eq!(code(&uploaded), codes::OK, "{uploaded}");
    let media_id = uploaded["data"]["media_id"].as_str().unwrap().to_owned();
    let capability = |conversation: &'static str| {
        let query = [
            ("business_id", "biz_open_id"),
            ("capability_types", r#"["IMAGE_SEND"]"#),
            ("conversation_id", conversation),
            ("conversation_type", "SINGLE"),
        ];
        let api = &api;
        let token = token.clone();
        async move { api.get(CAPABILITIES_PATH, &token, &query).await }
    };
    let answer = capability("conv-us").await;
    assert_eq!(
        answer["data"]["capability_infos"],
        json!([{"capability_type": "IMAGE_SEND", "capability_result": false}])
    );
    let refused = api.post(SEND_PATH, Some(&token), &image_message("conv-us", &media_id)).await;
    assert_eq!(code(&refused), FakeConfig::default().image_refusal.code);
    assert!(fake.received("conv-us").is_empty());

    fake.set_image_send("conv-us", true);
    assert_eq!(capability("conv-us").await["data"]["capability_infos"][0]["capability_result"], true);
    assert_eq!(code(&capability("conv-unknown").await), codes::BAD_PARAMETER);
    assert_eq!(fake.capability_calls(), 3);
    let asked = fake.calls().into_iter().find(|c| c.path == CAPABILITIES_PATH).unwrap();
    assert!(asked.method == "GET" && asked.query.contains("conversation_type=SINGLE"), "{asked:?}");
    assert_eq!(code(&api.post(SEND_PATH, Some(&token), &image_message("conv-us", &media_id)).await), codes::OK);
    assert_eq!(fake.received("conv-us")[0].content, Content::Image { media_id });

    let gif = api.upload(&token, "biz_open_id", b"GIF89a......".to_vec()).await;
    assert_eq!(code(&gif), codes::UNSUPPORTED_FILE);
    let huge = [&[0xFF, 0xD8, 0xFF, 0xE0][..], &vec![0u8; 3 * 1024 * 1024]].concat();
    let too_big = api.upload(&token, "biz_open_id", huge).await;
    assert_eq!(code(&too_big), codes::BAD_PARAMETER);
    assert!(too_big["message"].as_str().unwrap().contains("file"), "{too_big}");
    assert_eq!(code(&api.upload(&token, "someone_else", vec![0xFF, 0xD8, 0xFF]).await), codes::TOKEN_INVALID);
}

#[tokio::test]
async fn record_then_hang_delivers_the_message_and_the_client_times_out() {
    let (fake, token, api) = shop(FakeConfig::default()).await;
    fake.customer_writes("conv-1", "ivan", "hi").await;
    fake.fault_next(1, Fault::RecordThenHang);
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(500)).build().unwrap();
    let started = Instant::now();
    let error = impatient
        .post(format!("{}/open_api/v1.3{SEND_PATH}", fake.uri()))
        .header("Access-Token", &token)
        .json(&text_message("biz_open_id", "conv-1", "your size is in stock"))
        .send()
        .await
        .expect_err("no answer comes");
    assert!(error.is_timeout(), "{error:?}");
    assert!(started.elapsed() >= Duration::from_millis(500));
    let received = fake.received("conv-1");
    assert_eq!(texts(&received), ["your size is in stock"], "the customer has it");
    let call = fake.calls().into_iter().find(|c| c.path == SEND_PATH).unwrap();
    assert_eq!((call.answer, call.recorded.as_deref()), (Answer::Never, Some(received[0].message_id.as_str())));

    // Reading the conversation settles it: the newest message is ours, from the API.
    let listed =
        api.get(CONTENT_LIST_PATH, &token, &[("business_id", "biz_open_id"), ("conversation_id", "conv-1")]).await;
    let newest = &listed["data"]["messages"][0];
    assert_eq!(newest["message_id"], received[0].message_id.as_str());
    assert_eq!(
        (newest["message_tag"]["source"].as_str(), newest["text"]["body"].as_str()),
        (Some("API"), Some("your size is in stock"))
    );
    assert_eq!(code(&api.send_text(&token, "conv-1", "next one").await), codes::OK, "the fault was for one send");
}

#[tokio::test]
async fn faults_apply_in_script_order_then_by_time_span_and_predicate() {
    let (fake, token, api) = shop(FakeConfig::default()).await;
    fake.customer_writes("conv-1", "jade", "hi").await;
    fake.fault_next(1, Fault::RefuseHttp { status: 429, retry_after_secs: Some(7) });
    fake.fault_next(1, Fault::RefuseHttp { status: 503, retry_after_secs: None });
    fake.fault_next(1, Fault::RefuseCode(codes::RATE_LIMITED));
    fake.fault_next(1, Fault::RecordThenHttp(502));
    fake.fault_next(1, Fault::RecordThenCode(codes::SYSTEM_ERROR));
    fake.fault_when(
        |send| send.conversation_id.as_deref() == Some("conv-1") && send.text.as_deref() == Some("slow"),
        Fault::Slow(Duration::from_millis(300)),
    );
    fake.fault_when(|send| send.index == 7, Fault::RefuseCode(codes::TOO_FAST));
    let url = format!("{}/open_api/v1.3{SEND_PATH}", fake.uri());
    let raw = |text: &str| {
        api.http.post(&url).header("Access-Token", &token).json(&text_message("biz_open_id", "conv-1", text)).send()
    };
    let throttled = raw("a").await.unwrap();
    assert_eq!((throttled.status().as_u16(), throttled.headers()["Retry-After"].to_str().unwrap()), (429, "7"));
    assert_eq!(raw("b").await.unwrap().status(), 503);
    assert_eq!(code(&raw("c").await.unwrap().json().await.unwrap()), codes::RATE_LIMITED);
    assert_eq!(raw("d").await.unwrap().status(), 502);
    assert_eq!(code(&raw("e").await.unwrap().json().await.unwrap()), codes::SYSTEM_ERROR);
    let started = Instant::now();
    assert_eq!(code(&api.send_text(&token, "conv-1", "slow").await), codes::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(code(&api.send_text(&token, "conv-1", "f").await), codes::OK);
    assert_eq!(code(&api.send_text(&token, "conv-1", "g").await), codes::TOO_FAST, "the eighth send");
    assert_eq!(texts(&fake.received("conv-1")), ["d", "e", "slow", "f"], "only what was recorded");
    let answers: Vec<Answer> = fake.calls().iter().filter(|c| c.path == SEND_PATH).map(|c| c.answer).collect();
    assert_eq!(
        answers,
        [
            Answer::Http(429),
            Answer::Http(503),
            Answer::Code(codes::RATE_LIMITED),
            Answer::Http(502),
            Answer::Code(codes::SYSTEM_ERROR),
            Answer::Code(codes::OK),
            Answer::Code(codes::OK),
            Answer::Code(codes::TOO_FAST),
        ]
    );

    let calls = fake.calls();
    assert!(calls.windows(2).all(|pair| pair[0].at <= pair[1].at), "in arrival order");
    assert!(calls.iter().filter(|c| c.path == SEND_PATH).all(|c| c.method == "POST" && c.body.contains("conv-1")));

    fake.clear_faults();
    fake.fault_for(Duration::from_secs(600), Fault::RefuseCode(codes::TOO_FAST));
    assert_eq!(code(&api.send_text(&token, "conv-1", "h").await), codes::TOO_FAST, "within the span");
    fake.clear_faults();
    fake.fault_for(Duration::ZERO, Fault::RefuseCode(codes::TOO_FAST));
    assert_eq!(code(&api.send_text(&token, "conv-1", "i").await), codes::OK, "after the span");
}

#[tokio::test]
async fn content_list_shows_the_20_most_recent_messages_newest_first() {
    let (fake, token, api) = shop(FakeConfig::default()).await;
    for round in 0..3 {
        fake.customer_writes("conv-1", "kim", &format!("customer {round}")).await;
        for n in 0..8 {
            assert_eq!(code(&api.send_text(&token, "conv-1", &format!("reply {round}.{n}")).await), codes::OK);
        }
    }
    fake.shop_sends("conv-1", "Welcome to Philia!", Origin::Automatic(AutoMessage::Welcome)).await;
    let listed =
        api.get(CONTENT_LIST_PATH, &token, &[("business_id", "biz_open_id"), ("conversation_id", "conv-1")]).await;
    assert_eq!(code(&listed), codes::OK, "{listed}");
    let messages = listed["data"]["messages"].as_array().unwrap();
    let bodies: Vec<&str> = messages.iter().map(|m| m["text"]["body"].as_str().unwrap()).collect();
    let expected: Vec<String> = std::iter::once("Welcome to Philia!".to_owned())
        .chain((0..8).rev().map(|n| format!("reply 2.{n}")))
        .chain(std::iter::once("customer 2".to_owned()))
        .chain((0..8).rev().map(|n| format!("reply 1.{n}")))
        .chain(std::iter::once("customer 1".to_owned()))
        .chain(std::iter::once("reply 0.7".to_owned()))
        .collect();
    assert_eq!(bodies, expected);
    assert_eq!(
        (messages[0]["message_tag"]["source"].as_str(), messages[0]["auto_message_type"].as_str()),
        (Some("OTHERS"), Some("WELCOME_MESSAGE"))
    );
    let customer = &messages[9];
    assert_eq!(
        (customer["from_user"]["role"].as_str(), customer["message_type"].as_str()),
        (Some("PERSONAL_ACCOUNT"), Some("TEXT"))
    );
    assert!(customer.get("message_tag").is_none());
    assert_eq!(messages[1]["from_user"], json!({"role": "BUSINESS_ACCOUNT", "id": "biz_open_id"}));
    let stamps: Vec<i64> = messages.iter().map(|m| m["timestamp"].as_i64().unwrap()).collect();
    assert!(stamps.windows(2).all(|w| w[0] >= w[1]), "{stamps:?}");
}

#[tokio::test]
async fn the_webhook_registration_checks_the_app_and_keeps_the_callback() {
    let config = FakeConfig::default();
    let (fake, _, api) = shop(config.clone()).await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&receiver).await;
    let callback_url = format!("{}/webhook/tiktok", receiver.uri());
    let update = |secret: &str, event_type: &str| json!({"app_id": config.client_key, "secret": secret, "event_type": event_type, "callback_url": callback_url});
    let list = |secret: &'static str| {
        let query = [
            ("app_id", config.client_key.clone()),
            ("secret", secret.to_owned()),
            ("event_type", "DIRECT_MESSAGE".to_owned()),
        ];
        api.http.get(format!("{}{WEBHOOK_LIST_PATH}", api.base)).query(&query).send()
    };
    let before: Value = list(crate::helpers::WEBHOOK_SECRET).await.unwrap().json().await.unwrap();
    assert_eq!(code(&before), codes::OK);
    assert!(before["data"].get("callback_url").is_none(), "{before}");
    assert_eq!(
        code(&api.post(WEBHOOK_UPDATE_PATH, None, &update("wrong", "DIRECT_MESSAGE")).await),
        codes::BAD_APP_CREDENTIALS
    );
    assert_eq!(
        code(&api.post(WEBHOOK_UPDATE_PATH, None, &update(&config.client_secret, "VIDEO")).await),
        codes::BAD_PARAMETER
    );
    let registered = api.post(WEBHOOK_UPDATE_PATH, None, &update(&config.client_secret, "DIRECT_MESSAGE")).await;
    assert_eq!(registered["data"]["callback_url"], callback_url.as_str());
    let after: Value = list(crate::helpers::WEBHOOK_SECRET).await.unwrap().json().await.unwrap();
    assert_eq!(after["data"]["callback_url"], callback_url.as_str());
    assert_eq!(code(&list("wrong").await.unwrap().json().await.unwrap()), codes::BAD_APP_CREDENTIALS);

    assert!(fake.customer_writes("conv-1", "lee", "hi").await.delivered(), "webhooks go to the registered URL");
    assert_eq!(receiver.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn echoes_and_events_arrive_signed_with_the_client_secret_and_carry_their_origin() {
    let config = FakeConfig { accounts: vec!["biz_open_id".into()], ..FakeConfig::default() };
    let (fake, token, api) = shop(config.clone()).await;
    let receiver = callback(&fake).await;
    fake.customer_writes("conv-1", "mo", "hi").await;
    let sent = api.send_text(&token, "conv-1", "hello from the bot").await;
    let message_id = sent["data"]["message"]["message_id"].as_str().unwrap().to_owned();
    wait_for("the echo", PATIENCE, || async {
        fake.webhook_deliveries().iter().any(|d| d.event == "im_send_msg").then_some(())
    })
    .await;
    for (text, origin) in [
        ("from the app", Origin::App),
        ("from the web", Origin::Web),
        ("welcome", Origin::Automatic(AutoMessage::Welcome)),
        ("pick a question", Origin::Automatic(AutoMessage::SuggestedQuestion)),
        ("auto reply", Origin::Automatic(AutoMessage::AutoReply)),
        ("no marker", Origin::Unmarked),
    ] {
        assert!(fake.shop_sends("conv-1", text, origin).await.delivered());
    }
    let other = fake.customer_writes_to_other_account("other_shop", "conv-x", "zed", "hello other shop").await;
    assert_eq!(other.content()["to_user"]["id"], "other_shop");
    let removed = fake.authorization_removed(1).await;
    assert!(removed.delivered());

    let bodies = verified_bodies(&receiver, &config.client_secret).await;
    assert_eq!(bodies.len(), 10);
    assert!(bodies.iter().all(|b| b["client_key"] == "app_key"), "{bodies:#?}");
    let inbound = &bodies[0];
    assert_eq!(
        (inbound["event"].as_str(), inbound["user_openid"].as_str()),
        (Some("im_receive_msg"), Some("biz_open_id"))
    );
    assert_eq!(inbound["content"]["from_user"], json!({"id": "mo", "role": "personal_account"}));
    let echo = &bodies[1]["content"];
    assert_eq!(bodies[1]["event"], "im_send_msg");
    assert_eq!((echo["message_id"].as_str(), echo["type"].as_str()), (Some(message_id.as_str()), Some("text")));
    assert_eq!(
        (echo["text"]["body"].as_str(), echo["message_tag"]["source"].as_str()),
        (Some("hello from the bot"), Some("API"))
    );
    assert_eq!(echo["from_user"], json!({"id": "biz_open_id", "role": "business_account"}));
    assert!(echo.get("auto_message_type").is_none());
    let markers: Vec<(Option<&str>, Option<&str>)> = bodies[2..8]
        .iter()
        .map(|b| (b["content"]["message_tag"]["source"].as_str(), b["content"]["auto_message_type"].as_str()))
        .collect();
    assert_eq!(
        markers,
        [
            (Some("APP"), None),
            (Some("WEB"), None),
            (Some("OTHERS"), Some("WELCOME_MESSAGE")),
            (Some("OTHERS"), Some("SUGGESTED_QUESTION")),
            (Some("OTHERS"), Some("AUTO_REPLY")),
            (None, None),
        ]
    );
    assert!(bodies[7]["content"].get("message_tag").is_none(), "no marker at all");
    assert_eq!(
        (bodies[8]["event"].as_str(), bodies[8]["user_openid"].as_str()),
        (Some("im_receive_msg"), Some("other_shop"))
    );
    assert_eq!(
        (bodies[9]["event"].as_str(), &bodies[9]["content"]),
        (Some("authorization.removed"), &json!({"reason": 1}))
    );
    assert_eq!(code(&api.send_text(&token, "conv-1", "still there?").await), codes::TOKEN_INVALID, "revoked first");
    assert!(fake.received("conv-x").is_empty(), "another account's conversation is not the shop's");
}

#[tokio::test]
async fn an_echo_can_beat_the_send_answer_and_failed_deliveries_are_retried_a_bounded_number_of_times() {
    let config = FakeConfig {
        echo: Echo::BeforeAnswer,
        webhook_attempts: 3,
        webhook_retry_delay: Duration::from_millis(10),
        ..FakeConfig::default()
    };
    let (fake, token, api) = shop(config).await;
    let unheard = fake.customer_writes("conv-1", "nia", "hi").await;
    assert!(unheard.attempts.is_empty() && !unheard.delivered(), "no callback URL yet");

    let flaky = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&flaky)
        .await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&flaky).await;
    fake.set_callback_url(flaky.uri());
    let sent = api.send_text(&token, "conv-1", "echo first").await;
    let echo =
        fake.webhook_deliveries().into_iter().find(|d| d.event == "im_send_msg").expect("delivered before the answer");
    assert_eq!(echo.attempts, [Some(500), Some(500), Some(200)]);
    assert_eq!(echo.content()["message_id"], sent["data"]["message"]["message_id"]);

    let broken = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).mount(&broken).await;
    fake.set_callback_url(broken.uri());
    let given_up = fake.shop_sends("conv-1", "staff", Origin::App).await;
    assert_eq!((given_up.attempts.len(), given_up.delivered()), (3, false));
    fake.set_callback_url("http://127.0.0.1:1/webhook/tiktok");
    assert_eq!(fake.shop_sends("conv-1", "nobody listens", Origin::App).await.attempts, [None, None, None]);
}

#[tokio::test]
async fn the_bot_answers_a_customer_through_the_fake_once_and_matches_the_echo() {
    let fake = FakeTikTok::start(FakeConfig::default()).await;
    let db = TestDatabase::sqlite();
    let mut settings = test_settings(&db);
    fake.configure(&mut settings.tiktok);
    settings.tiktok.send_rate_per_second = 1_000;
    settings.tiktok.send_burst = 100;
    let app = spawn_app_with(db, settings, Role::All).await;
    fake.set_callback_url(format!("{}/webhook/tiktok", app.address));
    assert!(fake.customer_writes("conv-1", "olu", "hi").await.delivered());
    let replies = settled_replies(&app, 1).await;
    let reply =
        replies.into_iter().find(|m| m.delivery_status == Some(DeliveryStatus::Sent)).expect("the reply is sent");
    let received = fake.received("conv-1");
    assert_eq!(received.len(), 1);
    assert_eq!(reply.tiktok_message_id.as_deref(), Some(received[0].message_id.as_str()));
    assert_eq!(received[0].content, Content::Text(reply.text.clone().unwrap_or_default()));
    wait_for("the echo to reach the bot", PATIENCE, || async {
        fake.webhook_deliveries().iter().any(|d| d.event == "im_send_msg" && d.delivered()).then_some(())
    })
    .await;
    assert!(fake.delivered_texts().values().all(|n| *n == 1));
    assert!(fake.calls().iter().all(|c| matches!(c.answer, Answer::Code(codes::OK))), "{:#?}", fake.calls());
    app.stop().await.unwrap();
}
