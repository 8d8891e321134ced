//! A stateful stand-in for TikTok's Business Messaging API (v1.3) on a real HTTP server, shared by every
//! suite that talks to "TikTok": it refuses what TikTok refuses, echoes what it accepts to the
//! registered webhook, injects faults on demand, and tells a test what each customer really received.
//!
//! The facts behind each rule, with their sources and confidence, are in `docs/tiktok-facts.md`;
//! the wire format in DESIGN.md ("TikTok wire format"). Where TikTok's behaviour is unknown, the choice
//! made here is named in the list below and, where a test may want the other reading, configurable in
//! [`FakeConfig`].
//!
//! # Starting it and pointing the bot at it
//!
//! ```ignore
//! let fake = FakeTikTok::start(FakeConfig::default()).await;        // 127.0.0.1:<free port>
//! fake.configure(&mut settings.tiktok);       // base URL, app key + secret, webhook secret, business id,
//!                                             // and a fresh access + refresh token pair of the shop
//! fake.set_callback_url(format!("{}/webhook/tiktok", app.address));   // or register it over HTTP
//! let delivery = fake.customer_writes("conv-1", "alice", "hi").await; // signed im_receive_msg, delivered
//! ```
//!
//! Another process reaches it at [`FakeTikTok::uri`] (`PHILIA_TIKTOK__API_BASE_URL`), with the tokens of
//! [`FakeTikTok::issue_tokens`] (`TIKTOK_ACCESS_TOKEN`, `TIKTOK_REFRESH_TOKEN`), [`FakeTikTok::business_id`]
//! (`TIKTOK_BUSINESS_ID`) and the app of [`FakeConfig`] (`TIKTOK_CLIENT_KEY`, `TIKTOK_CLIENT_SECRET`; the
//! webhook secret is the client secret, as with TikTok). The server runs on its own thread and answers
//! until the [`FakeTikTok`] is dropped.
//!
//! # Endpoints (under `/open_api/v1.3`) and the rules they enforce
//!
//! Every answer is HTTP 200 with `{"code","message","request_id","data"}` unless a fault says otherwise;
//! a refusal's `message` names the field or rule. Codes are in [`codes`].
//!
//! - `POST /tt_user/oauth2/token/` trades a code from [`FakeTikTok::authorization_code_for`] (single use,
//!   10 minutes) for `{access_token, token_type, expires_in, refresh_token, refresh_token_expires_in,
//!   open_id, scope}`. Wrong app credentials: 40101. A used, expired or unknown code: 40110.
//! - `POST /tt_user/oauth2/refresh_token/` (counted by [`FakeTikTok::refresh_calls`]): refresh tokens are
//!   **single use**; a used, unknown, expired or revoked one gets 40002 naming `refresh_token`. Older
//!   access tokens stay valid until they expire. The token is spent when the call arrives; the answer
//!   leaves after [`FakeConfig::refresh_delay`] (none by default).
//! - Every other call but the webhook ones needs `Access-Token: <token>` (no `Bearer ` prefix: with one,
//!   the token is unknown). Unknown, expired or revoked tokens get 40105, and so does a `business_id`
//!   that is not the token's account.
//! - `POST /business/message/send/`: exactly `business_id`, `recipient_type: "CONVERSATION"`,
//!   `recipient` (a conversation of that account the fake knows), `message_type` `"TEXT"` with
//!   `text.body` (non-empty, at most 6,000 characters counted as Unicode scalar values) or `"IMAGE"` with
//!   `image.media_id` (issued by this fake's upload), never both; `referenced_message_info` is allowed
//!   on TEXT. Any other shape or unknown field: 40002 naming the field. The token's scope must include
//!   `message.list.send` (else 40001). Then TikTok's rules, in this order:
//!   1. the window: the customer's latest message must be less than [`FakeConfig::window`] (48 h) old,
//!      else [`FakeConfig::window_refusal`];
//!   2. the quota: at most [`FakeConfig::quota_per_window`] (10) business messages recorded after the
//!      customer's last recorded message (so every [`FakeTikTok::customer_writes`] resets it, whatever
//!      its timestamp), else [`FakeConfig::quota_refusal`]; API, staff (APP/WEB) and unmarked messages
//!      count, TikTok's automatic ones do not;
//!   3. images: an IMAGE into a conversation whose `IMAGE_SEND` capability is false gets
//!      [`FakeConfig::image_refusal`].
//!
//!   An accepted message is recorded (the customer has it; see [`FakeTikTok::received`]) with a 19-digit
//!   id, answered `data.message.message_id`, and echoed as `im_send_msg` with `message_tag.source = "API"`.
//! - `GET /business/message/capabilities/get/?business_id&capability_types=["IMAGE_SEND"]&conversation_id&conversation_type=SINGLE|STRANGER`
//!   answers `data.capability_infos[{capability_type: "IMAGE_SEND", capability_result}]` from
//!   [`FakeTikTok::set_image_send`], else [`FakeConfig::image_send`] (false is "US-like"). Counted by
//!   [`FakeTikTok::capability_calls`]. Both conversation types are accepted.
//! - `POST /business/message/media/upload/` (multipart `business_id`, `media_type=IMAGE`, `file`): JPG or
//!   PNG by magic bytes (else 40908), at most 3 MiB (else 40002 naming `file`); answers `data.media_id`.
//! - `GET /business/message/content/list/?business_id&conversation_id`: the conversation's 20 most recent
//!   messages, newest first, each with `message_id`, `timestamp` (ms), `from_user`/`to_user` (`role`
//!   upper case), `message_type`, `text.body` or `image.media_id`, `message_tag.source` and
//!   `auto_message_type` for business messages; plus `participants`. A bot settles a send of unknown
//!   outcome by reading it.
//! - `POST /business/webhook/update/` `{app_id, secret, event_type: "DIRECT_MESSAGE", callback_url}` and
//!   `GET /business/webhook/list/?app_id&secret&event_type`: app credentials checked (40101); one
//!   callback URL, where every webhook below is delivered.
//!
//! Choices where TikTok's behaviour is unknown: the code of an over-quota or out-of-window send (both
//! default to 40064 "You are sending messages too fast. Take a rest.", the only text a source quotes), of
//! an image refused by the capability (default 40001), of a bad refresh token (40002) or auth code
//! (40110), of an oversized upload (40002); whether staff messages count against the quota (they do here);
//! whether old access tokens die at a refresh (they do not here); whether customer messages carry a
//! `message_tag` in `content/list` (they carry none here).
//!
//! # Webhooks
//!
//! Every webhook is TikTok's envelope `{client_key, event, create_time, user_openid, content}` with
//! `content` a JSON string, signed `TikTok-Signature: t=<now>,s=hex(HMAC-SHA256(client_secret, "t." +
//! body))` afresh on each attempt, POSTed to the callback URL and retried on a non-2xx answer or no
//! answer, [`FakeConfig::webhook_attempts`] times in all with a doubling delay. Each is kept as a
//! [`WebhookDelivery`] ([`FakeTikTok::webhook_deliveries`]), also when no callback URL is set (then with
//! no attempts). Echoes of accepted sends go out as [`FakeConfig::echo`] says: concurrently with the
//! answer after a delay, or all attempts before the send is answered (TikTok's echo can beat the answer).
//!
//! Hooks that make TikTok speak, each returning its delivery once done: [`FakeTikTok::customer_writes`] and
//! [`FakeTikTok::customer_writes_at`] (an explicit timestamp, e.g. 47 h ago: the fake has no clock of its
//! own, so it and the bot agree on "now"), [`FakeTikTok::shop_sends`] (a staff echo from the APP or WEB, an
//! automatic one with source OTHERS and `auto_message_type`, or one with no marker),
//! [`FakeTikTok::authorization_removed`] (revokes the shop's tokens first, as TikTok says it does), and
//! [`FakeTikTok::customer_writes_to_other_account`] (`user_openid` is another business). TikTok delivers
//! one event more than once: [`FakeTikTok::customer_message`] records a customer message without
//! delivering it, and [`FakeTikTok::deliver_again`] delivers any envelope (again), so a test can send
//! copies of one event at the same moment.
//!
//! # Faults on sends
//!
//! [`FakeTikTok::fault_next`] scripts the next sends in order; [`FakeTikTok::fault_for`] and
//! [`FakeTikTok::fault_when`] apply to every send arriving within a time span or matching a predicate.
//! The script is consulted first, then the span and predicate rules in the order they were added. See
//! [`Fault`] for what each does; a "record" fault records only what the rules accept.
//!
//! # Inspection
//!
//! [`FakeTikTok::received`] (what one customer got, in order, with ids and origins),
//! [`FakeTikTok::delivered_texts`] (how many times each text reached each conversation: the "exactly
//! once" check), [`FakeTikTok::calls`] (every request with what was recorded and how it was answered),
//! [`FakeTikTok::refresh_calls`], [`FakeTikTok::capability_calls`], [`FakeTikTok::webhook_deliveries`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::{DateTime, Utc};
use philia_bot::config::TikTokSettings;
use philia_bot::tiktok::signature;
use secrecy::SecretString;
use serde_json::{Map, Value, json};

/// Paths of the endpoints, after `/open_api/v1.3` (as [`Call::path`] names them).
pub const TOKEN_PATH: &str = "/tt_user/oauth2/token/";
pub const REFRESH_PATH: &str = "/tt_user/oauth2/refresh_token/";
pub const SEND_PATH: &str = "/business/message/send/";
pub const CAPABILITIES_PATH: &str = "/business/message/capabilities/get/";
pub const UPLOAD_PATH: &str = "/business/message/media/upload/";
pub const CONTENT_LIST_PATH: &str = "/business/message/content/list/";
pub const WEBHOOK_UPDATE_PATH: &str = "/business/webhook/update/";
pub const WEBHOOK_LIST_PATH: &str = "/business/webhook/list/";
const API_PREFIX: &str = "/open_api/v1.3";

/// The codes the fake answers with (`code` in the body of an HTTP 200).
pub mod codes {
    pub const OK: i64 = 0;
    pub const NO_PERMISSION: i64 = 40001;
    pub const BAD_PARAMETER: i64 = 40002;
    pub const TOO_FAST: i64 = 40064;
    pub const RATE_LIMITED: i64 = 40100;
    pub const BAD_APP_CREDENTIALS: i64 = 40101;
    pub const TOKEN_INVALID: i64 = 40105;
    pub const BAD_AUTH_CODE: i64 = 40110;
    pub const UNSUPPORTED_FILE: i64 = 40908;
    pub const SYSTEM_ERROR: i64 = 51065;
}

/// TikTok's text limit, in characters.
const MAX_TEXT_CHARS: usize = 6_000;
/// TikTok's image limit.
const MAX_IMAGE_BYTES: usize = 3 * 1024 * 1024;
/// Larger than any upload TikTok accepts, so an oversized image reaches the rules and gets TikTok's refusal.
const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;
const CONTENT_LIST_LIMIT: usize = 20;
const AUTH_CODE_LIFE: chrono::Duration = chrono::Duration::minutes(10);
const REFRESH_TOKEN_LIFE: chrono::Duration = chrono::Duration::days(365);
/// The only text a source quotes for 40064 (Qiscus).
pub const TOO_FAST_MESSAGE: &str = "You are sending messages too fast. Take a rest.";

/// A refusal TikTok answers with: HTTP 200, this `code` and `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: i64,
    pub message: String,
}

impl Refusal {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    fn token(message: &str) -> Self {
        Self::new(codes::TOKEN_INVALID, message)
    }

    fn parameter(message: impl Into<String>) -> Self {
        Self::new(codes::BAD_PARAMETER, message)
    }
}

/// When the echo of an accepted send is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    /// By a background task, this long after the message was recorded: it races the send's answer.
    Concurrent(Duration),
    /// Every attempt is made before the send is answered: the echo beats the answer.
    BeforeAnswer,
}

/// How the stand-in behaves; [`Default`] is a TikTok with images allowed and every documented limit.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// The app id: `client_key` of webhooks, `client_id` of the token calls, `app_id` of webhook calls.
    pub client_key: String,
    /// The app secret; it also signs webhooks. Default: the test apps' webhook secret.
    pub client_secret: String,
    /// Business accounts (open_ids) that authorized the app. The first is the shop: conversations and
    /// [`FakeTikTok::configure`] use it.
    pub accounts: Vec<String>,
    /// The `scope` granted by the token calls (comma-separated).
    pub scope: String,
    /// `IMAGE_SEND` of a conversation nobody set with [`FakeTikTok::set_image_send`].
    pub image_send: bool,
    /// Business messages allowed after each customer message.
    pub quota_per_window: usize,
    /// How long after the customer's latest message the business may write.
    pub window: chrono::Duration,
    /// The answer to a send over the quota.
    pub quota_refusal: Refusal,
    /// The answer to a send outside the window.
    pub window_refusal: Refusal,
    /// The answer to an IMAGE into a conversation whose `IMAGE_SEND` is false.
    pub image_refusal: Refusal,
    /// `expires_in` of the access tokens the token calls grant.
    pub access_token_life: chrono::Duration,
    /// When echoes of accepted sends are delivered.
    pub echo: Echo,
    /// Attempts per webhook (the first included) before it is given up.
    pub webhook_attempts: u32,
    /// Delay before the second attempt; it doubles each time.
    pub webhook_retry_delay: Duration,
    /// How long the refresh endpoint takes to answer (the refresh token is spent at once): a slow
    /// refresh holds the door open for a second process to try the same refresh token.
    pub refresh_delay: Duration,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            client_key: "app_key".into(),
            client_secret: crate::helpers::WEBHOOK_SECRET.into(),
            accounts: vec!["biz_open_id".into()],
            scope: "user.info.basic,message.list.read,message.list.send,message.list.manage".into(),
            image_send: true,
            quota_per_window: 10,
            window: chrono::Duration::hours(48),
            quota_refusal: Refusal::new(codes::TOO_FAST, TOO_FAST_MESSAGE),
            window_refusal: Refusal::new(codes::TOO_FAST, TOO_FAST_MESSAGE),
            image_refusal: Refusal::new(codes::NO_PERMISSION, "Image sending is not available in this conversation"),
            access_token_life: chrono::Duration::hours(24),
            echo: Echo::Concurrent(Duration::ZERO),
            webhook_attempts: 3,
            webhook_retry_delay: Duration::from_millis(100),
            refresh_delay: Duration::ZERO,
        }
    }
}

/// What goes wrong with a send. A "record" fault records the message only when the rules accept it
/// (its echo then goes out as usual); a "refuse" fault answers at once without looking at the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Handled as usual, answered after this delay (the message, if accepted, is recorded at once).
    Slow(Duration),
    /// Recorded, then never answered: the client times out with the message delivered.
    RecordThenHang,
    /// Lost: not recorded, and never answered (the request died inside TikTok). The client times out
    /// with the message not delivered; only reading the conversation tells the two hangs apart.
    LoseThenHang,
    /// Recorded, then answered with this HTTP status and no body (500, 502, 504).
    RecordThenHttp(u16),
    /// Recorded, then answered with this TikTok code (51065, "system error").
    RecordThenCode(i64),
    /// Not recorded: this HTTP status (503; 429 with `Retry-After: <retry_after_secs>`).
    RefuseHttp { status: u16, retry_after_secs: Option<u64> },
    /// Not recorded: this TikTok code (40100 rate limited, 40064 throttled).
    RefuseCode(i64),
}

/// A send as the fault predicates see it.
#[derive(Debug, Clone)]
pub struct SendAttempt {
    /// How many send requests came before this one.
    pub index: usize,
    /// `recipient`, when the body has one.
    pub conversation_id: Option<String>,
    /// `text.body`, when the body has one.
    pub text: Option<String>,
}

/// Who sent a business message, as its echo's `message_tag.source` (and `auto_message_type`) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Through the API: the bot (source `API`).
    Api,
    /// A person in the TikTok app (source `APP`).
    App,
    /// A person in TikTok Web or Business Center (source `WEB`).
    Web,
    /// TikTok's own automatic messages (source `OTHERS`, with `auto_message_type`).
    Automatic(AutoMessage),
    /// No `message_tag` at all.
    Unmarked,
}

/// `auto_message_type` of TikTok's automatic messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoMessage {
    Welcome,
    SuggestedQuestion,
    AutoReply,
}

impl Origin {
    fn source(self) -> Option<&'static str> {
        match self {
            Origin::Api => Some("API"),
            Origin::App => Some("APP"),
            Origin::Web => Some("WEB"),
            Origin::Automatic(_) => Some("OTHERS"),
            Origin::Unmarked => None,
        }
    }

    fn auto_message_type(self) -> Option<&'static str> {
        match self {
            Origin::Automatic(AutoMessage::Welcome) => Some("WELCOME_MESSAGE"),
            Origin::Automatic(AutoMessage::SuggestedQuestion) => Some("SUGGESTED_QUESTION"),
            Origin::Automatic(AutoMessage::AutoReply) => Some("AUTO_REPLY"),
            _ => None,
        }
    }

    /// TikTok's own automatic messages are not the business writing, so they use no quota.
    fn counts_against_quota(self) -> bool {
        !matches!(self, Origin::Automatic(_))
    }
}

/// What a message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Text(String),
    Image { media_id: String },
}

/// One message of a conversation, as the fake recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub message_id: String,
    pub at: DateTime<Utc>,
    pub content: Content,
    /// `None` for the customer's messages; who sent it for the business's.
    pub origin: Option<Origin>,
}

/// One request the fake received and what came of it.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: DateTime<Utc>,
    pub method: String,
    /// After `/open_api/v1.3`, e.g. [`SEND_PATH`].
    pub path: String,
    pub query: String,
    /// The body (a multipart upload is summarised by its size).
    pub body: String,
    /// For a send: the id of the message the customer received because of it.
    pub recorded: Option<String>,
    pub answer: Answer,
}

/// How a request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// HTTP 200 with this TikTok code (0 is success).
    Code(i64),
    /// This HTTP status without a TikTok body.
    Http(u16),
    /// Never: the client had to give up.
    Never,
}

/// One webhook the fake sent (or could not: no callback URL).
#[derive(Debug, Clone)]
pub struct WebhookDelivery {
    pub event: String,
    pub body: String,
    /// Each attempt's HTTP status, `None` for no answer; empty when no callback URL was set.
    pub attempts: Vec<Option<u16>>,
}

impl WebhookDelivery {
    /// The callback answered 2xx.
    pub fn delivered(&self) -> bool {
        self.attempts.last().copied().flatten().is_some_and(|status| (200..300).contains(&status))
    }

    /// The parsed `content` of the envelope.
    pub fn content(&self) -> Value {
        let envelope: Value = serde_json::from_str(&self.body).expect("the fake writes JSON");
        serde_json::from_str(envelope["content"].as_str().expect("content is a JSON string")).expect("JSON content")
    }
}

/// An access token and the refresh token issued with it.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
}

/// The running stand-in. Dropping it stops the server.
pub struct FakeTikTok {
    shared: Arc<Shared>,
    address: String,
    server: ServerHandle,
}

struct Shared {
    config: FakeConfig,
    http: reqwest::Client,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    callback_url: Option<String>,
    access_tokens: HashMap<String, AccessToken>,
    refresh_tokens: HashMap<String, RefreshToken>,
    auth_codes: HashMap<String, AuthCode>,
    conversations: HashMap<String, Conversation>,
    /// media id → the account that uploaded it.
    media: HashMap<String, String>,
    faults: Faults,
    calls: Vec<Call>,
    webhooks: Vec<WebhookDelivery>,
    sends: usize,
    refresh_calls: usize,
    capability_calls: usize,
    next_id: u64,
}

struct AccessToken {
    account: String,
    scope: String,
    expires_at: DateTime<Utc>,
    revoked: bool,
}

struct RefreshToken {
    account: String,
    expires_at: DateTime<Utc>,
    used: bool,
    revoked: bool,
}

struct AuthCode {
    account: String,
    expires_at: DateTime<Utc>,
    used: bool,
}

struct Conversation {
    account: String,
    customer: String,
    image_send: Option<bool>,
    /// In the order the fake recorded them.
    messages: Vec<Message>,
}

type Predicate = Box<dyn Fn(&SendAttempt) -> bool + Send>;

#[derive(Default)]
struct Faults {
    next: VecDeque<Fault>,
    rules: Vec<(Predicate, Fault)>,
}

impl Faults {
    fn take(&mut self, attempt: &SendAttempt) -> Option<Fault> {
        self.next.pop_front().or_else(|| self.rules.iter().find(|(applies, _)| applies(attempt)).map(|(_, f)| *f))
    }
}

impl FakeTikTok {
    /// Starts the stand-in on 127.0.0.1 and a free port.
    #[expect(clippy::unused_async, reason = "async like every server start in the tests, so callers await it alike")]
    pub async fn start(config: FakeConfig) -> Self {
        assert!(!config.accounts.is_empty(), "the fake needs at least one business account");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port for the TikTok stand-in");
        let address = format!("http://{}", listener.local_addr().expect("a bound address"));
        // reqwest is built without a default TLS provider; the tests' clients need one installed.
        philia_bot::install_crypto_provider();
        let shared = Arc::new(Shared {
            config,
            // No idle connections: deliveries start on the server's runtime and on the test's, and a
            // pooled connection belongs to the runtime that opened it.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(0)
                .build()
                .expect("an HTTP client"),
            state: Mutex::new(State::default()),
        });
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(MAX_REQUEST_BYTES))
                .service(
                    web::scope(API_PREFIX)
                        .route(TOKEN_PATH, web::post().to(token))
                        .route(REFRESH_PATH, web::post().to(refresh))
                        .route(SEND_PATH, web::post().to(send))
                        .route(CAPABILITIES_PATH, web::get().to(capabilities))
                        .route(UPLOAD_PATH, web::post().to(upload))
                        .route(CONTENT_LIST_PATH, web::get().to(content_list))
                        .route(WEBHOOK_UPDATE_PATH, web::post().to(webhook_update))
                        .route(WEBHOOK_LIST_PATH, web::get().to(webhook_list)),
                )
                .default_service(web::to(unknown_endpoint))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .expect("the TikTok stand-in listens")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { shared, address, server: handle }
    }

    /// `http://127.0.0.1:<port>`: the API base URL.
    pub fn uri(&self) -> String {
        self.address.clone()
    }

    /// The shop's business id (open_id): the first of [`FakeConfig::accounts`].
    pub fn business_id(&self) -> String {
        self.shared.config.accounts[0].clone()
    }

    /// Points `tiktok` at the fake as the shop: base URL, app key and secret, webhook secret (the client
    /// secret, as TikTok signs with it), business id, and a new access + refresh token pair.
    pub fn configure(&self, tiktok: &mut TikTokSettings) {
        let config = &self.shared.config;
        let tokens = self.issue_tokens(&self.business_id());
        let secret = || Some(SecretString::from(config.client_secret.clone()));
        tiktok.api_base_url = self.uri();
        tiktok.client_key = Some(config.client_key.clone());
        tiktok.client_secret = secret();
        tiktok.webhook_secret = secret();
        tiktok.business_id = Some(self.business_id());
        tiktok.access_token = Some(SecretString::from(tokens.access_token));
        tiktok.refresh_token = Some(SecretString::from(tokens.refresh_token));
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state()
    }

    // ---- accounts and tokens ----

    /// A new single-use authorization code for `account`, as TikTok puts on the OAuth callback.
    pub fn authorization_code_for(&self, account: &str) -> String {
        self.shared.known_account(account);
        let mut state = self.state();
        let code = format!("code.fake{}", state.next_id());
        let expires_at = Utc::now() + AUTH_CODE_LIFE;
        state.auth_codes.insert(code.clone(), AuthCode { account: account.into(), expires_at, used: false });
        code
    }

    /// A new access + refresh token pair of `account`, as a token exchange would grant.
    pub fn issue_tokens(&self, account: &str) -> Tokens {
        self.shared.known_account(account);
        self.shared.grant(&mut self.state(), account)
    }

    /// Every access token of `account` expires now (its refresh tokens still work).
    pub fn expire_access_tokens(&self, account: &str) {
        let now = Utc::now();
        for token in self.state().access_tokens.values_mut().filter(|t| t.account == account) {
            token.expires_at = now;
        }
    }

    /// Every access and refresh token of `account` is revoked: the authorization is gone.
    pub fn revoke_authorization(&self, account: &str) {
        let mut state = self.state();
        for token in state.access_tokens.values_mut().filter(|t| t.account == account) {
            token.revoked = true;
        }
        for token in state.refresh_tokens.values_mut().filter(|t| t.account == account) {
            token.revoked = true;
        }
    }

    /// Calls of the refresh endpoint, refused ones included.
    pub fn refresh_calls(&self) -> usize {
        self.state().refresh_calls
    }

    // ---- conversations and webhooks ----

    /// Where webhooks go, as registering it with `webhook/update/` would set it.
    pub fn set_callback_url(&self, url: impl Into<String>) {
        self.state().callback_url = Some(url.into());
    }

    /// `IMAGE_SEND` of one conversation (else [`FakeConfig::image_send`]).
    pub fn set_image_send(&self, conversation_id: &str, allowed: bool) {
        self.state().conversation(conversation_id).image_send = Some(allowed);
    }

    /// Calls of the capabilities endpoint, refused ones included.
    pub fn capability_calls(&self) -> usize {
        self.state().capability_calls
    }

    /// The customer `customer` (open_id, also their username) writes `text` in `conversation_id` of the
    /// shop now: the window opens again and the quota resets. Delivers the signed `im_receive_msg`.
    pub async fn customer_writes(&self, conversation_id: &str, customer: &str, text: &str) -> WebhookDelivery {
        self.customer_writes_at(conversation_id, customer, text, Utc::now()).await
    }

    /// [`Self::customer_writes`] with the message's timestamp `at` (e.g. 47 hours ago). The webhook is
    /// still signed now.
    pub async fn customer_writes_at(
        &self,
        conversation_id: &str,
        customer: &str,
        text: &str,
        at: DateTime<Utc>,
    ) -> WebhookDelivery {
        let body = self.customer_message_at(conversation_id, customer, text, at);
        deliver(&self.shared, body).await
    }

    /// The customer writes `text` now, as [`Self::customer_writes`] records it, but the `im_receive_msg`
    /// is only returned (its envelope, unsigned), for the test to deliver with [`Self::deliver_again`]:
    /// TikTok delivers one event more than once, some copies at the same moment.
    pub fn customer_message(&self, conversation_id: &str, customer: &str, text: &str) -> String {
        self.customer_message_at(conversation_id, customer, text, Utc::now())
    }

    fn customer_message_at(&self, conversation_id: &str, customer: &str, text: &str, at: DateTime<Utc>) -> String {
        let account = self.business_id();
        let mut state = self.state();
        let message_id = state.next_message_id();
        let conversation = state.conversations.entry(conversation_id.into()).or_insert_with(|| Conversation {
            account: account.clone(),
            customer: customer.into(),
            image_send: None,
            messages: Vec::new(),
        });
        assert_eq!(conversation.customer, customer, "conversation {conversation_id} is with another customer");
        let message = Message { message_id, at, content: Content::Text(text.into()), origin: None };
        conversation.messages.push(message.clone());
        self.shared.message_webhook(&account, conversation_id, customer, &message)
    }

    /// Delivers a webhook envelope (one [`WebhookDelivery::body`] or [`Self::customer_message`]) once
    /// more, signed afresh and retried like any other: a redelivery of the same event.
    pub async fn deliver_again(&self, body: &str) -> WebhookDelivery {
        deliver(&self.shared, body.to_owned()).await
    }

    /// Someone on the shop's side (or TikTok's automation) sends `text` in a conversation the customer
    /// opened: recorded as the customer received it, and its `im_send_msg` echo delivered.
    pub async fn shop_sends(&self, conversation_id: &str, text: &str, origin: Origin) -> WebhookDelivery {
        let body = {
            let mut state = self.state();
            let message_id = state.next_message_id();
            let message =
                Message { message_id, at: Utc::now(), content: Content::Text(text.into()), origin: Some(origin) };
            let conversation = state.conversation(conversation_id);
            conversation.messages.push(message.clone());
            let (account, customer) = (conversation.account.clone(), conversation.customer.clone());
            self.shared.message_webhook(&account, conversation_id, &customer, &message)
        };
        deliver(&self.shared, body).await
    }

    /// TikTok says the shop's authorization is gone (`{"reason": reason}`: 1 disconnected in the app, 2
    /// account deleted, 4 banned, 5 revoked by the developer), after revoking its tokens.
    pub async fn authorization_removed(&self, reason: u8) -> WebhookDelivery {
        let account = self.business_id();
        self.revoke_authorization(&account);
        let body = self.shared.envelope("authorization.removed", &account, &json!({"reason": reason}));
        deliver(&self.shared, body).await
    }

    /// An `im_receive_msg` for another business account that authorized the same app (`user_openid` is
    /// `account`). Nothing is recorded: the conversation is not the shop's.
    pub async fn customer_writes_to_other_account(
        &self,
        account: &str,
        conversation_id: &str,
        customer: &str,
        text: &str,
    ) -> WebhookDelivery {
        let message_id = self.state().next_message_id();
        let message = Message { message_id, at: Utc::now(), content: Content::Text(text.into()), origin: None };
        let body = self.shared.message_webhook(account, conversation_id, customer, &message);
        deliver(&self.shared, body).await
    }

    // ---- faults ----

    /// The next `count` sends (in arrival order) meet `fault`; queued after faults scripted earlier.
    pub fn fault_next(&self, count: usize, fault: Fault) {
        self.state().faults.next.extend(std::iter::repeat_n(fault, count));
    }

    /// Every send arriving within `span` from now meets `fault` (unless the script or an earlier rule
    /// applies).
    pub fn fault_for(&self, span: Duration, fault: Fault) {
        let until = Instant::now() + span;
        self.fault_when(move |_| Instant::now() < until, fault);
    }

    /// Every send for which `applies` is true meets `fault` (unless the script or an earlier rule applies).
    pub fn fault_when(&self, applies: impl Fn(&SendAttempt) -> bool + Send + 'static, fault: Fault) {
        self.state().faults.rules.push((Box::new(applies), fault));
    }

    /// No more faults: sends are handled by the rules alone.
    pub fn clear_faults(&self) {
        self.state().faults = Faults::default();
    }

    // ---- inspection ----

    /// What the customer of `conversation_id` received from the business, in order.
    pub fn received(&self, conversation_id: &str) -> Vec<Message> {
        let state = self.state();
        let Some(conversation) = state.conversations.get(conversation_id) else { return Vec::new() };
        conversation.messages.iter().filter(|m| m.origin.is_some()).cloned().collect()
    }

    /// How many times each text reached each customer from the business: `(conversation_id, text) → n`.
    pub fn delivered_texts(&self) -> BTreeMap<(String, String), usize> {
        let state = self.state();
        let mut counts = BTreeMap::new();
        for (id, conversation) in &state.conversations {
            for message in conversation.messages.iter().filter(|m| m.origin.is_some()) {
                if let Content::Text(text) = &message.content {
                    *counts.entry((id.clone(), text.clone())).or_default() += 1;
                }
            }
        }
        counts
    }

    /// Every request so far, in the order the fake answered (or decided never to answer) them.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// Every webhook sent so far, in the order their deliveries ended.
    pub fn webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        self.state().webhooks.clone()
    }
}

impl Drop for FakeTikTok {
    fn drop(&mut self) {
        // The stop command is sent at once; the returned future only waits for it to finish.
        drop(self.server.stop(false));
    }
}

impl State {
    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A 19-digit id, as TikTok's message ids are.
    fn next_message_id(&mut self) -> String {
        format!("7447{:015}", self.next_id())
    }

    fn conversation(&mut self, conversation_id: &str) -> &mut Conversation {
        self.conversations
            .get_mut(conversation_id)
            .unwrap_or_else(|| panic!("no customer has written in {conversation_id} yet"))
    }

    /// The account and scope of a valid access token.
    fn authorize(&self, token: Option<&str>) -> Result<(String, String), Refusal> {
        let token = token.ok_or_else(|| Refusal::token("Access-Token header is missing"))?;
        match self.access_tokens.get(token) {
            Some(t) if t.revoked => Err(Refusal::token("Access token is incorrect or has been revoked.")),
            Some(t) if t.expires_at <= Utc::now() => Err(Refusal::token("Access token has expired.")),
            Some(t) => Ok((t.account.clone(), t.scope.clone())),
            None => Err(Refusal::token("Access token is incorrect or has been revoked.")),
        }
    }

    /// The token's account, which `business_id` must name.
    fn authorize_for(&self, token: Option<&str>, business_id: Option<&str>) -> Result<(String, String), Refusal> {
        let (account, scope) = self.authorize(token)?;
        match business_id {
            None => Err(Refusal::parameter("business_id is required")),
            Some(id) if id != account => Err(Refusal::token("business_id does not belong to the access token")),
            Some(_) => Ok((account, scope)),
        }
    }

    /// A conversation of `account`, or 40002 naming `field`.
    fn conversation_of(&self, account: &str, id: Option<&str>, field: &str) -> Result<&Conversation, Refusal> {
        id.and_then(|id| self.conversations.get(id))
            .filter(|c| c.account == account)
            .ok_or_else(|| Refusal::parameter(format!("Param {field} is invalid.")))
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn known_account(&self, account: &str) {
        assert!(self.config.accounts.iter().any(|a| a == account), "{account} is not an account of the fake");
    }

    fn grant(&self, state: &mut State, account: &str) -> Tokens {
        let n = state.next_id();
        let tokens = Tokens { access_token: format!("act.fake{n}"), refresh_token: format!("rft.fake{n}") };
        let now = Utc::now();
        state.access_tokens.insert(
            tokens.access_token.clone(),
            AccessToken {
                account: account.into(),
                scope: self.config.scope.clone(),
                expires_at: now + self.config.access_token_life,
                revoked: false,
            },
        );
        state.refresh_tokens.insert(
            tokens.refresh_token.clone(),
            RefreshToken { account: account.into(), expires_at: now + REFRESH_TOKEN_LIFE, used: false, revoked: false },
        );
        tokens
    }

    fn grant_answer(&self, tokens: Tokens, account: &str) -> Value {
        json!({
            "access_token": tokens.access_token,
            "token_type": "Bearer",
            "expires_in": self.config.access_token_life.num_seconds(),
            "refresh_token": tokens.refresh_token,
            "refresh_token_expires_in": REFRESH_TOKEN_LIFE.num_seconds(),
            "open_id": account,
            "scope": self.config.scope,
        })
    }

    fn app_credentials(&self, id: Option<&str>, secret: Option<&str>) -> Result<(), Refusal> {
        if id == Some(self.config.client_key.as_str()) && secret == Some(self.config.client_secret.as_str()) {
            Ok(())
        } else {
            Err(Refusal::new(codes::BAD_APP_CREDENTIALS, "Invalid app id or secret"))
        }
    }

    fn envelope(&self, event: &str, account: &str, content: &Value) -> String {
        json!({
            "client_key": self.config.client_key,
            "event": event,
            "create_time": Utc::now().timestamp(),
            "user_openid": account,
            "content": content.to_string(),
        })
        .to_string()
    }

    /// `im_receive_msg` for a customer's message, `im_send_msg` (the echo) for a business message.
    fn message_webhook(&self, account: &str, conversation_id: &str, customer: &str, message: &Message) -> String {
        let event = if message.origin.is_some() { "im_send_msg" } else { "im_receive_msg" };
        let content = message_json(message, conversation_id, account, customer, Spelling::Webhook);
        self.envelope(event, account, &content)
    }

    /// Checks a send against the body shape and TikTok's rules; records an accepted message and returns
    /// it with its echo.
    fn accept_send(&self, state: &mut State, token: Option<&str>, body: &[u8]) -> Result<(String, String), Refusal> {
        let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
            return Err(Refusal::parameter("the body must be a JSON object"));
        };
        let (account, scope) = state.authorize_for(token, body.get("business_id").and_then(Value::as_str))?;
        if !scope.split(',').any(|s| s.trim() == "message.list.send") {
            return Err(Refusal::new(codes::NO_PERMISSION, "No permission: the scope lacks message.list.send"));
        }
        let allowed = ["business_id", "recipient_type", "recipient", "message_type", "text", "image"];
        if let Some(unknown) =
            body.keys().find(|k| !allowed.contains(&k.as_str()) && k.as_str() != "referenced_message_info")
        {
            return Err(Refusal::parameter(format!("unknown field {unknown}")));
        }
        expect_field(&body, "recipient_type", "CONVERSATION")?;
        let conversation_id = body.get("recipient").and_then(Value::as_str).unwrap_or_default().to_owned();
        let conversation = state.conversation_of(&account, Some(&conversation_id), "recipient")?;
        let content = send_content(&body, &account, &state.media)?;
        let now = Utc::now();
        let last_customer = conversation.messages.iter().rposition(|m| m.origin.is_none());
        let opened_at = conversation.messages.iter().filter(|m| m.origin.is_none()).map(|m| m.at).max();
        if opened_at.is_none_or(|at| now - at >= self.config.window) {
            return Err(self.config.window_refusal.clone());
        }
        let used = conversation.messages[last_customer.map_or(0, |i| i + 1)..]
            .iter()
            .filter(|m| m.origin.is_some_and(Origin::counts_against_quota))
            .count();
        if used >= self.config.quota_per_window {
            return Err(self.config.quota_refusal.clone());
        }
        let image_send = conversation.image_send.unwrap_or(self.config.image_send);
        if matches!(content, Content::Image { .. }) && !image_send {
            return Err(self.config.image_refusal.clone());
        }
        let customer = conversation.customer.clone();
        let message = Message { message_id: state.next_message_id(), at: now, content, origin: Some(Origin::Api) };
        state.conversation(&conversation_id).messages.push(message.clone());
        Ok((message.message_id.clone(), self.message_webhook(&account, &conversation_id, &customer, &message)))
    }
}

/// The message of a send body: TEXT with `text.body`, or IMAGE with a `media_id` this account uploaded.
fn send_content(body: &Map<String, Value>, account: &str, media: &HashMap<String, String>) -> Result<Content, Refusal> {
    match body.get("message_type").and_then(Value::as_str) {
        Some("TEXT") => {
            if body.contains_key("image") {
                return Err(Refusal::parameter("image is not allowed with message_type TEXT"));
            }
            let text = body.get("text").and_then(|t| t.get("body")).and_then(Value::as_str);
            match text {
                None => Err(Refusal::parameter("text.body is required")),
                Some(text) if text.trim().is_empty() => Err(Refusal::parameter("text.body is empty")),
                Some(text) if text.chars().count() > MAX_TEXT_CHARS => {
                    Err(Refusal::parameter("text.body is longer than 6000 characters"))
                }
                Some(text) => Ok(Content::Text(text.into())),
            }
        }
        Some("IMAGE") => {
            if body.contains_key("text") {
                return Err(Refusal::parameter("text is not allowed with message_type IMAGE"));
            }
            if body.contains_key("referenced_message_info") {
                return Err(Refusal::parameter("referenced_message_info is only allowed with message_type TEXT"));
            }
            let media_id = body.get("image").and_then(|i| i.get("media_id")).and_then(Value::as_str);
            match media_id {
                Some(id) if media.get(id).is_some_and(|owner| owner == account) => {
                    Ok(Content::Image { media_id: id.into() })
                }
                _ => Err(Refusal::parameter("image.media_id is invalid")),
            }
        }
        _ => Err(Refusal::parameter("message_type must be TEXT or IMAGE")),
    }
}

/// How TikTok spells a message: webhooks say `type: "text"`, `from`/`to` and lower-case roles; the REST
/// API says `message_type: "TEXT"`, `sender`/`recipient` and upper-case roles.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Spelling {
    Webhook,
    Rest,
}

/// A message of the conversation between `account` and `customer`, as TikTok shows it.
fn message_json(message: &Message, conversation_id: &str, account: &str, customer: &str, spelling: Spelling) -> Value {
    let case = |word: &str| if spelling == Spelling::Rest { word.to_uppercase() } else { word.to_owned() };
    let business = json!({"id": account, "role": case("business_account")});
    let person = json!({"id": customer, "role": case("personal_account")});
    let (from, to, from_user, to_user) = match message.origin {
        Some(_) => (account, customer, business, person),
        None => (customer, account, person, business),
    };
    let (kind, block) = match &message.content {
        Content::Text(body) => ("text", json!({"body": body})),
        Content::Image { media_id } => ("image", json!({"media_id": media_id})),
    };
    let (type_key, from_key, to_key) =
        if spelling == Spelling::Rest { ("message_type", "sender", "recipient") } else { ("type", "from", "to") };
    let mut json = json!({
        "conversation_id": conversation_id,
        "message_id": message.message_id,
        "timestamp": message.at.timestamp_millis(),
        "from_user": from_user,
        "to_user": to_user,
    });
    json[type_key] = case(kind).into();
    json[kind] = block;
    json[from_key] = from.into();
    json[to_key] = to.into();
    if let Some(source) = message.origin.and_then(Origin::source) {
        json["message_tag"] = json!({"source": source});
    }
    if let Some(kind) = message.origin.and_then(Origin::auto_message_type) {
        json["auto_message_type"] = kind.into();
    }
    json
}

/// Posts a signed webhook to the callback URL, retrying a few times like TikTok, and keeps the delivery.
async fn deliver(shared: &Shared, body: String) -> WebhookDelivery {
    let url = shared.state().callback_url.clone();
    let event = serde_json::from_str::<Value>(&body).ok().and_then(|e| e["event"].as_str().map(str::to_owned));
    let mut delivery = WebhookDelivery { event: event.unwrap_or_default(), body, attempts: Vec::new() };
    if let Some(url) = url {
        let mut delay = shared.config.webhook_retry_delay;
        for attempt in 0..shared.config.webhook_attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            let signed = signature::sign(
                shared.config.client_secret.as_bytes(),
                Utc::now().timestamp(),
                delivery.body.as_bytes(),
            );
            let answer = shared
                .http
                .post(&url)
                .header("Content-Type", "application/json")
                .header("TikTok-Signature", signed)
                .body(delivery.body.clone())
                .send()
                .await;
            delivery.attempts.push(answer.ok().map(|r| r.status().as_u16()));
            if delivery.delivered() {
                break;
            }
        }
    }
    shared.state().webhooks.push(delivery.clone());
    delivery
}

/// What the fake needs of a request.
struct Incoming {
    method: String,
    path: String,
    query: String,
    token: Option<String>,
}

impl Incoming {
    fn of(request: &HttpRequest) -> Self {
        Self {
            method: request.method().to_string(),
            path: request.path().strip_prefix(API_PREFIX).unwrap_or(request.path()).to_owned(),
            query: request.query_string().to_owned(),
            token: request.headers().get("Access-Token").and_then(|v| v.to_str().ok()).map(str::to_owned),
        }
    }

    fn param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }

    fn log(&self, shared: &Shared, body: String, recorded: Option<String>, answer: Answer) {
        let call = Call {
            at: Utc::now(),
            method: self.method.clone(),
            path: self.path.clone(),
            query: self.query.clone(),
            body,
            recorded,
            answer,
        };
        shared.state().calls.push(call);
    }
}

/// TikTok's answer: HTTP 200 with the code, the message and the data.
fn tiktok_answer(code: i64, message: &str, data: Value) -> HttpResponse {
    let request_id = format!("fake-{}", uuid::Uuid::new_v4().simple());
    HttpResponse::Ok().json(json!({"code": code, "message": message, "request_id": request_id, "data": data}))
}

/// Logs and answers a call whose outcome `decide` computes under the state's lock.
fn answer_call(
    shared: &Shared,
    request: &HttpRequest,
    body: String,
    decide: impl FnOnce(&mut State, &Incoming) -> Result<Value, Refusal>,
) -> HttpResponse {
    let incoming = Incoming::of(request);
    let outcome = decide(&mut shared.state(), &incoming);
    let (code, message, data) = match outcome {
        Ok(data) => (codes::OK, "OK".to_owned(), data),
        Err(refusal) => (refusal.code, refusal.message, json!({})),
    };
    incoming.log(shared, body, None, Answer::Code(code));
    tiktok_answer(code, &message, data)
}

/// [`answer_call`] for a JSON body, handed to `decide` parsed (a body that is not a JSON object reads as `{}`).
fn answer_json(
    shared: &Shared,
    request: &HttpRequest,
    body: &[u8],
    decide: impl FnOnce(&mut State, &Map<String, Value>) -> Result<Value, Refusal>,
) -> HttpResponse {
    let parsed = json_body(body);
    answer_call(shared, request, String::from_utf8_lossy(body).into_owned(), |state, _| decide(state, &parsed))
}

/// `name` must be the string `value`, else 40002 saying so.
fn expect_field(body: &Map<String, Value>, name: &str, value: &str) -> Result<(), Refusal> {
    match field(body, name) == Some(value) {
        true => Ok(()),
        false => Err(Refusal::parameter(format!("{name} must be {value}"))),
    }
}

fn json_body(body: &[u8]) -> Map<String, Value> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn field<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    body.get(name).and_then(Value::as_str)
}

async fn token(shared: web::Data<Shared>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    answer_json(&shared, &request, &body, |state, body| {
        shared.app_credentials(field(body, "client_id"), field(body, "client_secret"))?;
        expect_field(body, "grant_type", "authorization_code")?;
        let now = Utc::now();
        let code = field(body, "auth_code").and_then(|c| state.auth_codes.get_mut(c));
        let Some(code) = code.filter(|c| !c.used && c.expires_at > now) else {
            return Err(Refusal::new(codes::BAD_AUTH_CODE, "auth_code is invalid, expired or already used"));
        };
        code.used = true;
        let account = code.account.clone();
        let tokens = shared.grant(state, &account);
        Ok(shared.grant_answer(tokens, &account))
    })
}

async fn refresh(shared: web::Data<Shared>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let answer = answer_json(&shared, &request, &body, |state, body| {
        state.refresh_calls += 1;
        shared.app_credentials(field(body, "client_id"), field(body, "client_secret"))?;
        expect_field(body, "grant_type", "refresh_token")?;
        let now = Utc::now();
        let token = field(body, "refresh_token").and_then(|t| state.refresh_tokens.get_mut(t));
        let Some(token) = token.filter(|t| !t.used && !t.revoked && t.expires_at > now) else {
            return Err(Refusal::parameter("refresh_token is invalid, expired or already used"));
        };
        token.used = true;
        let account = token.account.clone();
        let tokens = shared.grant(state, &account);
        Ok(shared.grant_answer(tokens, &account))
    });
    tokio::time::sleep(shared.config.refresh_delay).await;
    answer
}

async fn send(shared: web::Data<Shared>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let incoming = Incoming::of(&request);
    let (fault, outcome) = {
        let mut state = shared.state();
        let parsed = json_body(&body);
        let attempt = SendAttempt {
            index: state.sends,
            conversation_id: field(&parsed, "recipient").map(str::to_owned),
            text: parsed.get("text").and_then(|t| t.get("body")).and_then(Value::as_str).map(str::to_owned),
        };
        state.sends += 1;
        let fault = state.faults.take(&attempt);
        let outcome = match fault {
            Some(Fault::RefuseHttp { .. } | Fault::RefuseCode(_) | Fault::LoseThenHang) => None,
            _ => Some(shared.accept_send(&mut state, incoming.token.as_deref(), &body)),
        };
        (fault, outcome)
    };
    let (recorded, echo) = match &outcome {
        Some(Ok((message_id, echo))) => (Some(message_id.clone()), Some(echo.clone())),
        _ => (None, None),
    };
    let (answer, response) = match (fault, outcome) {
        (Some(Fault::RefuseHttp { status, retry_after_secs }), _) => {
            let mut response = HttpResponse::build(status_code(status));
            if let Some(secs) = retry_after_secs {
                response.insert_header(("Retry-After", secs.to_string()));
            }
            (Answer::Http(status), Some(response.finish()))
        }
        (Some(Fault::RefuseCode(code) | Fault::RecordThenCode(code)), _) => {
            (Answer::Code(code), Some(tiktok_answer(code, fault_message(code), json!({}))))
        }
        (Some(Fault::RecordThenHttp(status)), _) => {
            (Answer::Http(status), Some(HttpResponse::build(status_code(status)).finish()))
        }
        (Some(Fault::RecordThenHang | Fault::LoseThenHang), _) => (Answer::Never, None),
        (None | Some(Fault::Slow(_)), Some(Err(refusal))) => {
            (Answer::Code(refusal.code), Some(tiktok_answer(refusal.code, &refusal.message, json!({}))))
        }
        (None | Some(Fault::Slow(_)), _) => {
            let message_id = recorded.clone().unwrap_or_default();
            (
                Answer::Code(codes::OK),
                Some(tiktok_answer(codes::OK, "OK", json!({"message": {"message_id": message_id}}))),
            )
        }
    };
    incoming.log(&shared, String::from_utf8_lossy(&body).into_owned(), recorded, answer);
    if let Some(echo) = echo {
        match shared.config.echo {
            Echo::BeforeAnswer => {
                deliver(&shared, echo).await;
            }
            Echo::Concurrent(delay) => {
                let shared = shared.clone().into_inner();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    deliver(&shared, echo).await;
                });
            }
        }
    }
    if let Some(Fault::Slow(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    match response {
        Some(response) => response,
        // Held open until the client gives up and closes the connection (or the fake stops).
        None => std::future::pending().await,
    }
}

fn status_code(status: u16) -> actix_web::http::StatusCode {
    actix_web::http::StatusCode::from_u16(status).expect("a valid HTTP status in a fault")
}

/// The message a fault's TikTok code comes with.
fn fault_message(code: i64) -> &'static str {
    match code {
        codes::TOO_FAST => TOO_FAST_MESSAGE,
        codes::RATE_LIMITED => "Too many requests: the QPS limit was exceeded",
        codes::SYSTEM_ERROR => "System error",
        _ => "Fault injected by the TikTok stand-in",
    }
}

async fn capabilities(shared: web::Data<Shared>, request: HttpRequest) -> HttpResponse {
    answer_call(&shared, &request, String::new(), |state, incoming| {
        state.capability_calls += 1;
        let (account, _) = state.authorize_for(incoming.token.as_deref(), incoming.param("business_id").as_deref())?;
        let types = incoming.param("capability_types").and_then(|t| serde_json::from_str::<Vec<String>>(&t).ok());
        if types.is_none_or(|types| types != ["IMAGE_SEND"]) {
            return Err(Refusal::parameter(r#"capability_types must be ["IMAGE_SEND"]"#));
        }
        let conversation =
            state.conversation_of(&account, incoming.param("conversation_id").as_deref(), "conversation_id")?;
        if !matches!(incoming.param("conversation_type").as_deref(), Some("SINGLE" | "STRANGER")) {
            return Err(Refusal::parameter("conversation_type must be SINGLE or STRANGER"));
        }
        let allowed = conversation.image_send.unwrap_or(shared.config.image_send);
        Ok(json!({"capability_infos": [{"capability_type": "IMAGE_SEND", "capability_result": allowed}]}))
    })
}

async fn upload(shared: web::Data<Shared>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let summary = format!("<multipart upload of {} bytes>", body.len());
    let fields = multipart_fields(&request, body).await;
    answer_call(&shared, &request, summary, |state, incoming| {
        let fields = fields?;
        let text = |name: &str| fields.get(name).map(|v| String::from_utf8_lossy(v).into_owned());
        let (account, _) = state.authorize_for(incoming.token.as_deref(), text("business_id").as_deref())?;
        if text("media_type").as_deref() != Some("IMAGE") {
            return Err(Refusal::parameter("media_type must be IMAGE"));
        }
        let file = fields.get("file").ok_or_else(|| Refusal::parameter("file is required"))?;
        if file.len() > MAX_IMAGE_BYTES {
            return Err(Refusal::parameter("file must be smaller than 3 MB"));
        }
        if !(file.starts_with(&[0xFF, 0xD8, 0xFF]) || file.starts_with(&[0x89, b'P', b'N', b'G'])) {
            return Err(Refusal::new(codes::UNSUPPORTED_FILE, "Unsupported file type: JPG or PNG only"));
        }
        let media_id = format!("media.fake{}", state.next_id());
        state.media.insert(media_id.clone(), account);
        Ok(json!({"media_id": media_id}))
    })
}

/// The parts of a multipart form by name.
async fn multipart_fields(request: &HttpRequest, body: web::Bytes) -> Result<HashMap<String, Vec<u8>>, Refusal> {
    let content_type = request.headers().get("Content-Type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| Refusal::parameter("Content-Type must be multipart/form-data"))?;
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut form = multer::Multipart::new(stream, boundary);
    let mut fields = HashMap::new();
    let malformed = |e: multer::Error| Refusal::parameter(format!("malformed multipart body: {e}"));
    while let Some(part) = form.next_field().await.map_err(malformed)? {
        let name = part.name().unwrap_or_default().to_owned();
        fields.insert(name, part.bytes().await.map_err(malformed)?.to_vec());
    }
    Ok(fields)
}

async fn content_list(shared: web::Data<Shared>, request: HttpRequest) -> HttpResponse {
    answer_call(&shared, &request, String::new(), |state, incoming| {
        let (account, _) = state.authorize_for(incoming.token.as_deref(), incoming.param("business_id").as_deref())?;
        let conversation_id = incoming.param("conversation_id");
        let conversation = state.conversation_of(&account, conversation_id.as_deref(), "conversation_id")?;
        let mut newest_first: Vec<&Message> = conversation.messages.iter().rev().collect();
        newest_first.sort_by_key(|m| std::cmp::Reverse(m.at));
        let messages: Vec<Value> = newest_first
            .into_iter()
            .take(CONTENT_LIST_LIMIT)
            .map(|m| {
                message_json(
                    m,
                    conversation_id.as_deref().unwrap_or_default(),
                    &account,
                    &conversation.customer,
                    Spelling::Rest,
                )
            })
            .collect();
        Ok(json!({
            "participants": [
                {"role": "BUSINESS_ACCOUNT", "id": account, "display_name": account},
                {"role": "PERSONAL_ACCOUNT", "id": conversation.customer, "display_name": conversation.customer},
            ],
            "messages": messages,
        }))
    })
}

async fn webhook_update(shared: web::Data<Shared>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    answer_json(&shared, &request, &body, |state, body| {
        shared.app_credentials(field(body, "app_id"), field(body, "secret"))?;
        expect_field(body, "event_type", "DIRECT_MESSAGE")?;
        let url = field(body, "callback_url").and_then(|u| url::Url::parse(u).ok());
        let Some(url) = url.filter(|u| matches!(u.scheme(), "http" | "https")) else {
            return Err(Refusal::parameter("callback_url must be an http(s) URL"));
        };
        state.callback_url = Some(url.to_string());
        Ok(json!({"app_id": shared.config.client_key, "event_type": "DIRECT_MESSAGE", "callback_url": url.as_str()}))
    })
}

async fn webhook_list(shared: web::Data<Shared>, request: HttpRequest) -> HttpResponse {
    answer_call(&shared, &request, String::new(), |state, incoming| {
        shared.app_credentials(incoming.param("app_id").as_deref(), incoming.param("secret").as_deref())?;
        if incoming.param("event_type").as_deref() != Some("DIRECT_MESSAGE") {
            return Err(Refusal::parameter("event_type must be DIRECT_MESSAGE"));
        }
        let mut data = json!({"app_id": shared.config.client_key, "event_type": "DIRECT_MESSAGE"});
        if let Some(url) = &state.callback_url {
            data["callback_url"] = url.as_str().into();
        }
        Ok(data)
    })
}

/// Any other path: logged (a test sees the bot called something TikTok does not have) and 404.
async fn unknown_endpoint(shared: web::Data<Shared>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    Incoming::of(&request).log(&shared, String::from_utf8_lossy(&body).into_owned(), None, Answer::Http(404));
    HttpResponse::NotFound().finish()
}
